"""Rule actions: run a command (argv list, never a shell string) with the alert as JSON on stdin,
or queue a downlink. Executed by one worker task, after the alert is committed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Protocol

from gateway_agent.logfmt import log_event
from gateway_agent.model import Alert, Device
from gateway_agent.upstream.formats import alert_message

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.ingest import Ingest
    from gateway_agent.metrics import Counters
    from gateway_agent.rules.rule import Action
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread

log = logging.getLogger(__name__)


class ActionHost(Protocol):
    """What rule actions need from the daemon."""

    actions_q: asyncio.Queue[tuple[Alert, Device]]
    stop: asyncio.Event
    cfg: Config
    counters: Counters
    st: StoreThread
    store: Store
    ingest: Ingest


def run_rule_actions(daemon: ActionHost, alert: Alert, dev: Device) -> None:
    try:
        daemon.actions_q.put_nowait((alert, dev))
    except asyncio.QueueFull:
        daemon.counters.inc("action_failures", reason="queue_full")


async def actions_worker(daemon: ActionHost) -> None:
    q: asyncio.Queue[tuple[Alert, Device]] = daemon.actions_q
    while not (daemon.stop.is_set() and q.empty()):
        try:
            alert, dev = await asyncio.wait_for(q.get(), timeout=0.5)
        except TimeoutError:
            continue
        rule = next((r for r in daemon.cfg.rules if r.name == alert.rule), None)
        for action in rule.actions_for(alert.state) if rule is not None else ():
            try:
                await _run_one(daemon, action, alert, dev)
            except Exception as e:
                daemon.counters.inc("action_failures", rule=alert.rule, reason=type(e).__name__)
                log_event(log, logging.WARNING, "action_failed", rule=alert.rule, error=str(e))


async def _run_one(daemon: ActionHost, action: Action, alert: Alert, dev: Device) -> None:
    from gateway_agent.rules.rule import CommandAction, DownlinkAction

    if isinstance(action, CommandAction):
        argv = [str(a) for a in action.argv]
        timeout = float(getattr(action, "timeout_s", 10.0))
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        payload = json.dumps(alert_message(alert)).encode()
        try:
            _, err = await asyncio.wait_for(proc.communicate(payload), timeout=timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            daemon.counters.inc("action_failures", rule=alert.rule, reason="timeout")
            log_event(
                log,
                logging.WARNING,
                "action_failed",
                rule=alert.rule,
                reason="timeout",
                argv0=argv[0],
            )
            return
        if proc.returncode != 0:
            daemon.counters.inc("action_failures", rule=alert.rule, reason="exit_status")
            log_event(
                log,
                logging.WARNING,
                "action_failed",
                rule=alert.rule,
                reason="exit_status",
                status=proc.returncode,
                argv0=argv[0],
                stderr=err.decode(errors="replace")[:200],
            )
            return
        daemon.counters.inc("actions_run", rule=alert.rule, kind="command")
    elif isinstance(action, DownlinkAction):
        if daemon.cfg.lorawan.mode == "passive":
            # The central network server owns this device's downlinks: a queued row would
            # never be sent. Refused and counted, the rule's alert itself went out.
            daemon.counters.inc("actions_refused", rule=alert.rule, reason="passive")
            log_event(
                log, logging.WARNING, "action_refused", rule=alert.rule, reason="passive_mode"
            )
            return
        seq = await daemon.st.call(
            daemon.store.queue_downlink,
            dev.dev_eui,
            int(action.f_port),
            bytes(action.payload),
            bool(getattr(action, "confirmed", False)),
        )
        daemon.ingest.downlinks.enqueue(dev.dev_eui, seq, int(action.f_port), bytes(action.payload))
        daemon.counters.inc("actions_run", rule=alert.rule, kind="downlink")
