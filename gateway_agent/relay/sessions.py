"""Passive mode's sessions from ChirpStack's API (`[relay] api_server`): fetched on start, every
`api_refresh_s`, when a frame of an unknown DevAddr arrives (at most `api_lookup_per_min`
GetActivation calls a minute for those) and a little after a known device's join-request.

A fetched session goes to the ingest (`Ingest.apply_session`): cached at once and written to the
devices table's session columns with the next group commit, like a join, so decoding goes on
through a backhaul outage and a restart. Its origin is noted in `meta` (`session_source:{eui}`)
for `devices show`. The API unreachable: the cache is kept, the fetch backs off, one log line
per outage. Keys and the token never reach a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from gateway_agent.logfmt import log_event
from gateway_agent.relay.api import Activation, ActivationClient, ApiError, Unusable, read_token

log = logging.getLogger("gateway_agent.relay")

JOIN_LOOKUP_DELAYS_S = (6.0, 20.0)  # after a join-request: the accept went out ~5 s after it
ADDR_RETRY_S = 60.0  # the same unknown DevAddr is looked up again at most this often
BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 300.0
META_KEY = "session_source:"


def session_source_key(dev_eui: bytes) -> str:
    return META_KEY + dev_eui.hex()


class SessionFetch:
    """The fetch loop of one daemon. `host` is the daemon (duck-typed: cfg, ingest, store, st,
    counters, stop); `client` the API's ActivationClient."""

    def __init__(self, host: Any, client: ActivationClient) -> None:
        self.host = host
        self.client = client
        relay = host.cfg.relay
        self.refresh_s = float(relay.api_refresh_s)
        self.per_min = int(relay.api_lookup_per_min)
        self.wake = asyncio.Event()
        self.unknown: dict[bytes, None] = {}  # DevAddrs waiting for a lookup, in arrival order
        self.addr_tried: dict[bytes, float] = {}  # DevAddr -> when it was last looked up
        self.joins: dict[bytes, float] = {}  # dev_eui -> when its join-request was heard
        self.due: list[tuple[float, bytes]] = []  # (when, dev_eui): lookups after a join
        self.tokens = float(self.per_min)
        self.tokens_at = time.monotonic()
        self.state = "unknown"  # "ok" | "unreachable" | "unauthenticated" | ... (one log each)
        self.backoff_s = 0.0
        self.retry_at = 0.0
        self.next_refresh = 0.0  # at once on start
        self.cursor = 0  # where the unknown-DevAddr search through every device resumes

    # -- the ingest's hooks (event loop, never blocking) ----------------------------------

    def on_unknown_addr(self, dev_addr: bytes) -> None:
        now = time.monotonic()
        if dev_addr in self.unknown or now - self.addr_tried.get(dev_addr, -1e9) < ADDR_RETRY_S:
            return
        if len(self.unknown) >= 1024:
            return  # a flood of foreign DevAddrs: the periodic refresh still finds ours
        self.unknown[dev_addr] = None
        self.wake.set()

    def on_join_heard(self, dev_eui: bytes) -> None:
        now = time.monotonic()
        self.joins[dev_eui] = now
        for d in JOIN_LOOKUP_DELAYS_S:
            self.due.append((now + d, dev_eui))
        self.wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._round()
                except Exception:  # a bug: loud and counted, the daemon carries on
                    self.host.counters.internal_error("session_fetch")
                    log.exception("internal_error where=session_fetch")
                    self.retry_at = time.monotonic() + BACKOFF_MAX_S
                await self._sleep(stop)
        finally:
            await self.client.close()

    async def _sleep(self, stop: asyncio.Event) -> None:
        now = time.monotonic()
        until = self.next_refresh
        if self.due:
            until = min(until, min(t for t, _ in self.due))
        if self.unknown:
            until = min(until, now + 60.0 / max(1, self.per_min))
        until = max(until, self.retry_at)
        self.wake.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        try:
            await asyncio.wait(waits, timeout=max(0.0, until - now), return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()

    async def _round(self) -> None:
        now = time.monotonic()
        if now < self.retry_at:
            return
        try:
            if now >= self.next_refresh:
                await self._fetch_all(self._otaa_euis())
                self.next_refresh = time.monotonic() + self.refresh_s
            due = sorted({e for t, e in self.due if t <= now})
            if due:
                self.due = [(t, e) for t, e in self.due if t > now]
                await self._fetch_all(due)
            await self._lookups()
        except ApiError as e:
            self._down(e)
            return
        self._up()

    def _otaa_euis(self) -> list[bytes]:
        return [eui for eui, d in self.host.ingest.devices.items() if d.app_key is not None]

    async def _fetch_all(self, euis: Iterable[bytes]) -> None:
        for eui in euis:
            await self._fetch(eui)

    async def _fetch(self, eui: bytes) -> Activation | None:
        counters = self.host.counters
        try:
            act = await self.client.activation(eui)
        except Unusable as e:
            counters.inc("session_fetch", outcome=e.reason)
            log_event(log, logging.WARNING, "session_unusable", dev_eui=eui.hex(), reason=e.reason)
            return None
        if act is None:
            counters.inc("session_fetch", outcome="none")
            return None
        await self._apply(act)
        return act

    async def _apply(self, act: Activation) -> None:
        host = self.host
        outcome = host.ingest.apply_session(
            act.dev_eui, act.dev_addr, act.nwk_s_key, act.app_s_key, act.f_cnt_up
        )
        host.counters.inc("session_fetch", outcome=outcome)
        if outcome != "new":
            return
        log_event(
            log,
            logging.INFO,
            "session_fetched",
            dev_eui=act.dev_eui.hex(),
            dev_addr=act.dev_addr.hex(),
            f_cnt_up=act.f_cnt_up,
            source="chirpstack",
        )
        note = {
            "source": "chirpstack",
            "server": self.client.server,
            "devAddr": act.dev_addr.hex(),
            "fetched": time.time(),
        }
        try:
            await host.st.call(
                host.store.set_meta, session_source_key(act.dev_eui), json.dumps(note)
            )
        except Exception as e:  # the session itself commits with the batch; this is a note
            log_event(log, logging.WARNING, "session_note_failed", error=type(e).__name__)

    async def _lookups(self) -> None:
        """Unknown DevAddrs: the devices most likely to have rejoined first, within the
        per-minute budget; a DevAddr is done once a session of it is found."""
        while self.unknown:
            addr = next(iter(self.unknown))
            found = False
            for eui in self._candidates(addr):
                if not self._take_token():
                    return  # the budget of this minute is spent: the addr waits
                act = await self._fetch(eui)
                if act is not None and act.dev_addr == addr:
                    found = True
                    break
            self.unknown.pop(addr, None)
            self.addr_tried[addr] = time.monotonic()
            if len(self.addr_tried) > 4096:
                self.addr_tried.pop(next(iter(self.addr_tried)))
            self.host.counters.inc("session_lookup", found="yes" if found else "no")

    def _candidates(self, addr: bytes) -> list[bytes]:
        """Devices that heard a join lately, then those without a session, then those whose
        session has this DevAddr (a counter run past what this agent heard), then the rest."""
        ing = self.host.ingest
        otaa = self._otaa_euis()
        recent = time.monotonic() - 600.0
        joined = [e for e in otaa if self.joins.get(e, -1e9) >= recent]
        without = [e for e in otaa if e not in ing.addr_of]
        same = [e for e in otaa if ing.addr_of.get(e) == addr]
        first = list(dict.fromkeys(joined + without + same))
        seen = set(first)
        rest = [e for e in otaa if e not in seen]
        if rest:
            k = self.cursor % len(rest)
            rest = rest[k:] + rest[:k]
            self.cursor += 1
        return first + rest

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(
            float(self.per_min), self.tokens + (now - self.tokens_at) * self.per_min / 60.0
        )
        self.tokens_at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    # -- reachability ----------------------------------------------------------------------

    def _down(self, e: ApiError) -> None:
        self.backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, self.backoff_s * 2))
        self.retry_at = time.monotonic() + self.backoff_s
        self.host.counters.inc("session_api_errors", reason=e.reason)
        if self.state != e.reason:
            self.state = e.reason
            hint = {"unauthenticated": "check api_token_file", "denied": "the token's rights"}
            log_event(
                log,
                logging.ERROR if e.reason in hint else logging.WARNING,
                "chirpstack_api_" + ("unreachable" if e.reason == "unreachable" else "refused"),
                server=self.client.server,
                reason=e.reason,
                code=e.code,
                detail=e.detail,
                hint=hint.get(e.reason, "sessions kept from the cache; retrying with backoff"),
            )

    def _up(self) -> None:
        self.backoff_s = 0.0
        self.retry_at = 0.0
        if self.state != "ok":
            if self.state != "unknown":
                log_event(log, logging.INFO, "chirpstack_api_reachable", server=self.client.server)
            self.state = "ok"


def start_session_fetch(daemon: Any, tg: asyncio.TaskGroup) -> SessionFetch | None:
    """Wire the session fetch into a running daemon: passive mode with `[relay] api_server`.
    Returns None (and says why, once) when it does not apply or cannot start."""
    relay = daemon.cfg.relay
    if relay is None or relay.api_server is None:
        return None
    if daemon.cfg.lorawan.mode != "passive":
        log_event(
            log, logging.WARNING, "session_fetch_off", reason="edge_mode", server=relay.api_server
        )
        return None
    try:
        token = read_token(relay.api_token_file) if relay.api_token_file else None
        if token is None:
            raise OSError("api_token_file is not set")
        client = ActivationClient(relay.api_server, token, relay.api_tls, relay.api_ca_file)
    except ImportError:
        log_event(log, logging.ERROR, "session_fetch_off", reason="chirpstack extra missing")
        return None
    except OSError as e:
        log_event(log, logging.ERROR, "session_fetch_off", reason="token", error=str(e))
        return None
    fetch = SessionFetch(daemon, client)
    daemon.ingest.on_unknown_addr = fetch.on_unknown_addr
    daemon.ingest.on_join_heard = fetch.on_join_heard
    tg.create_task(fetch.run(daemon.stop), name="session-fetch")
    return fetch
