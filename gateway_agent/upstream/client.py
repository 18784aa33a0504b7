"""One way to make an MQTT client from an `UpstreamConfig` (the forwarder, the outputs and the
relay's links all connect through it), and the first real error inside a TaskGroup's group."""

from __future__ import annotations

import logging

import aiomqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.upstream.tls import read_password, tls_context

# aiomqtt warns per pending publish: a log storm on an SD card (the forwarder keeps it at ERROR)
MQTT_LOG = logging.getLogger("gateway_agent.mqtt")
MQTT_LOG.setLevel(logging.ERROR)


def mqtt_client(
    cfg: UpstreamConfig,
    identifier: str,
    *,
    inflight: int,
    will: aiomqtt.Will | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    logger: logging.Logger = MQTT_LOG,
) -> aiomqtt.Client:
    """QoS 1 publishing never queued by paho (`max_queued_outgoing_messages=0`). `inflight` 0:
    paho keeps no limit of its own (a caller's `Window` bounds what is in flight; with a limit,
    paho scans its outgoing table on every PUBACK). Credentials: `cfg`'s unless given."""
    v5 = cfg.mqtt_version == "5"
    if username is None:
        username, password = cfg.username, read_password(cfg)
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        identifier=identifier,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        keepalive=cfg.keepalive_s,
        clean_session=None if v5 else True,
        will=will,
        tls_context=tls_context(cfg),
        max_inflight_messages=inflight,
        max_queued_outgoing_messages=0,
        timeout=timeout_s,
        logger=logger,
    )


def first_leaf(e: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: the one that ended the session."""
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e
