"""The open batch: the one place that turns a reading, an alert, an event or a join into the
store's rows and the outbox's messages (topics, bodies), and what runs once the batch commits."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway_agent.config import Config
from gateway_agent.config.outputs import KINDS, RELAY_OUTPUT, upstream_in_lane
from gateway_agent.logfmt import log_event
from gateway_agent.lorawan.radio import DownlinkTx
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Device, Reading
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, Batch
from gateway_agent.store.fanout import FANOUT
from gateway_agent.upstream.formats import alert_message, dumps, event_message
from gateway_agent.upstream.wire import uplink_body

log = logging.getLogger("gateway_agent.ingest")  # one logger name for the ingest's log lines


@dataclass(slots=True)
class PostCommit:
    """What may happen only once the batch committed: downlinks and the alerts' actions."""

    downlinks: list[tuple[DownlinkTx, bytes | None]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def alert_publication(a: Alert) -> tuple[str, str]:
    """The topic and body an alert goes upstream with."""
    return f"devices/{a.dev_eui.hex()}/alert", dumps(alert_message(a))


class Stage:
    """The batch filling now (`batch`, `post`) and when it started; `take` hands it over."""

    def __init__(self, cfg: Config, counters: Counters) -> None:
        self.cfg = cfg
        self.counters = counters
        self.batch = Batch()
        self.post = PostCommit()
        self.started: float | None = None  # loop clock of the first staged item
        # [[outputs]] by the kinds they take: each gets its own row (store/queue.py) with the
        # JSON body. `[upstream]` (the outbox) unless the outputs replaced it (config/load.py).
        # One shared row per message for all of them (store/fanout.py), when any takes its kind;
        # a JSON [upstream] beside them reads the same rows (config/outputs.py upstream_in_lane).
        lane = upstream_in_lane(cfg)
        self.fan = {k: lane or any(k in o.kinds for o in cfg.outputs) for k in KINDS}
        self.primary = not lane and (cfg.upstream.enabled or not cfg.outputs)

    def take(self) -> tuple[Batch, PostCommit]:
        """The open batch and its post-commit work; a new empty one opens."""
        out = self.batch, self.post
        self.batch, self.post, self.started = Batch(), PostCommit(), None
        return out

    def touch(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def reading(self, dev: Device, r: Reading) -> None:
        """The reading's row, its upstream message, the device's FCntUp and last-seen."""
        b = self.batch
        eui = dev.dev_eui.hex()
        best = r.rx[0] if r.rx else None
        rssi = best.rssi_dbm if best else None
        snr = best.snr_db if best else None
        m_json = dumps(dict(r.measurements)) if r.measurements else "{}"
        f_json = dumps(dict(r.flags)) if r.flags else "{}"
        b.readings.append(
            (
                r.id,
                eui,
                r.fcnt,
                r.f_port,
                r.time,
                int(r.time_valid),
                r.payload,
                m_json,
                f_json,
                r.decode_error,
                rssi,
                snr,
                len(r.rx),
            )
        )
        fmt = self.cfg.upstream.format
        gid = self.cfg.agent.gateway_id
        cls = dev.device_class
        body = uplink_body(r, gid, dev.name, dev.tags, fmt, cls) if self.primary else None
        if body is not None:
            b.outbox.append(
                (PRIO_READING, "up", eui, f"devices/{eui}/up", r.id, body, r.time, time.monotonic())
            )
        if self.fan["up"]:
            if body is None or fmt != "json":
                body = uplink_body(r, gid, dev.name, dev.tags, "json", cls)
            b.queued.append((FANOUT, PRIO_READING, "up", eui, r.id, body, r.time))
        b.fcnt_up[eui] = r.fcnt
        b.seen[eui] = (r.time, rssi, snr, m_json)
        if self.started is None:
            self.started = time.monotonic()

    def rule_state(self, key: tuple[str, str], state_json: str | None) -> None:
        self.batch.rule_state[key] = state_json
        self.touch()

    def alert(self, a: Alert, dev: Device | None) -> None:
        """The alert's row and upstream message, counted and logged; its actions (when `dev`
        is known) run after the commit."""
        self.batch.alerts.append(a)
        eui = a.dev_eui.hex()
        body = dumps(alert_message(a))
        if self.primary:
            self.batch.outbox.append(
                (
                    PRIO_ALERT,
                    "alert",
                    eui,
                    f"devices/{eui}/alert",
                    a.id,
                    body,
                    a.time,
                    time.monotonic(),
                )
            )
        if self.fan["alert"]:
            self.batch.queued.append((FANOUT, PRIO_ALERT, "alert", eui, a.id, body, a.time))
        self.counters.inc("alerts", state=a.state, rule=a.rule)
        log_event(
            log,
            logging.WARNING if a.state == "raised" else logging.INFO,
            f"alert_{a.state}",
            rule=a.rule,
            dev_eui=eui,
            severity=a.severity,
            measurement=a.measurement,
            value=a.value,
        )
        if dev is not None:
            self.post.alerts.append(a)
        self.touch()

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """A gateway event (`device_joined`, `config_reloaded`, ...) for the `events` topic."""
        now = time.time()
        eid = f"{self.cfg.agent.gateway_id}:event:{kind}:{int(now * 1000)}"
        body = dumps(event_message(eid, kind, now, data))
        if self.primary:
            self.batch.outbox.append(
                (PRIO_EVENT, "event", None, "events", eid, body, now, time.monotonic())
            )
        if self.fan["event"]:
            self.batch.queued.append((FANOUT, PRIO_EVENT, "event", None, eid, body, now))
        self.touch()

    def relay(self, kind: str, msg_id: str, body: bytes, heard: float) -> None:
        """A frame for the central network server (`[relay]`), in its own lane, committed with
        the batch like a reading (kind `relay_up` or `relay_join`)."""
        self.batch.queued.append((RELAY_OUTPUT, PRIO_READING, kind, None, msg_id, body, heard))
        self.touch()

    def join(
        self,
        dev_eui: bytes,
        dev_nonce: int,
        dev_addr: bytes,
        nwk_s_key: bytes,
        app_s_key: bytes,
        join_nonce: int,
    ) -> None:
        """An accepted join: its DevNonce (never again, LORAWAN.md 8) and the new session."""
        eui = dev_eui.hex()
        self.batch.dev_nonces.append((eui, dev_nonce, time.time()))
        self.batch.sessions.append((eui, dev_addr.hex(), nwk_s_key, app_s_key, join_nonce))
        # The old session's counters: the new one starts afresh. An uplink of the old session
        # staged earlier in this batch must not write its FCntUp over the join's NULL (its new
        # frames would then be refused as replays after a restart).
        self.batch.fcnt_down.pop(eui, None)
        self.batch.fcnt_up.pop(eui, None)
        self.batch.fcnt_resets.pop(eui, None)

    def fcnt_reset(self, dev_eui: bytes, reset_epoch: int) -> None:
        """A counter reset accepted (relaxed mode): the session's new reset epoch, persisted
        with the reading that carries it (its id names the epoch)."""
        self.batch.fcnt_resets[dev_eui.hex()] = reset_epoch
        self.touch()

    def fcnt_down(self, dev_eui: bytes, next_fcnt_down: int) -> None:
        """A FCntDown taken: the next one is persisted with the batch, before the answer is sent."""
        self.batch.fcnt_down[dev_eui.hex()] = next_fcnt_down
        self.touch()

    def downlink_sent(self, seq: int, fcnt_down: int) -> None:
        """A queued application downlink rides in a frame: no longer pending in the store."""
        self.batch.downlinks_sent[seq] = (time.time(), fcnt_down)
        self.touch()

    def downlink_unsent(self, seq: int) -> None:
        """A queued downlink that never went on air: pending again in the store."""
        self.batch.downlinks_sent[seq] = None
        self.touch()

    def downlink(self, tx: DownlinkTx, dev_eui: bytes | None) -> None:
        """A downlink to send once the batch committed (the run loop commits at once)."""
        self.post.downlinks.append((tx, dev_eui))
        self.touch()


# Readers of the staged rows, for whoever must see uncommitted joins and counters.


def staged_joins(b: Batch) -> Iterator[tuple[bytes, bytes, bytes, bytes]]:
    """(dev_eui, dev_addr, nwk_s_key, app_s_key) of each join staged in `b`."""
    for eui_hex, addr_hex, nwk_s_key, app_s_key, _ in b.sessions:
        yield bytes.fromhex(eui_hex), bytes.fromhex(addr_hex), nwk_s_key, app_s_key


def staged_fcnt_up(b: Batch) -> Iterator[tuple[bytes, int]]:
    """(dev_eui, FCnt32) of each device whose uplink counter `b` advances."""
    for eui_hex, fcnt in b.fcnt_up.items():
        yield bytes.fromhex(eui_hex), fcnt


def staged_fcnt_resets(b: Batch) -> Iterator[tuple[bytes, int]]:
    """(dev_eui, reset epoch) of each device whose counter reset `b` stages."""
    for eui_hex, epoch in b.fcnt_resets.items():
        yield bytes.fromhex(eui_hex), epoch


def staged_dev_nonces(batches: list[Batch], dev_eui: bytes) -> set[int]:
    eui = dev_eui.hex()
    return {n for b in batches for e, n, _ in b.dev_nonces if e == eui}


def staged_join_count(batches: list[Batch], dev_eui: bytes) -> int:
    eui = dev_eui.hex()
    return sum(1 for b in batches for s in b.sessions if s[0] == eui)
