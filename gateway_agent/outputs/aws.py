"""The `aws-iot` output: MQTT with mutual TLS (`cert_file`, `key_file`, `ca_file`) to an AWS IoT
Core endpoint; each row on `topic_template` with `{gateway_id}`, `{dev_eui}` (`gateway` for the
gateway's own events) and `{kind}` (up | alert | event) filled in; the body is today's JSON."""

from __future__ import annotations

from gateway_agent.config.outputs import OutputConfig, _template
from gateway_agent.errors import ConfigError
from gateway_agent.outputs.mqtt import Messages, RowSink, body_text, client_id
from gateway_agent.outputs.mqttlink import MqttLink
from gateway_agent.outputs.worker import SinkContext
from gateway_agent.store import QueueRow


def check_template(name: str, template: str) -> None:
    """The config check (config/outputs.py), again for settings built in code."""
    _template(template, f"outputs[name={name}].topic_template")


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> RowSink:
    assert cfg.mqtt is not None
    check_template(cfg.name, cfg.topic_template)
    if cfg.mqtt.cert_file is None or cfg.mqtt.key_file is None:
        raise ConfigError(
            f"outputs[name={cfg.name}].cert_file", "aws-iot needs cert_file and key_file"
        )
    template, gid = cfg.topic_template, ctx.gateway_id

    def encode(r: QueueRow) -> Messages:
        topic = template.format(gateway_id=gid, dev_eui=r.dev_eui or "gateway", kind=r.kind)
        return [(topic, body_text(r).encode(), False)]

    return RowSink(MqttLink(cfg.mqtt, client_id(cfg, ctx), cfg.timeout_s), encode, (ValueError,))
