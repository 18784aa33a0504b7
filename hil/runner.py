"""Runs a scenario against the REAL daemon and a real mosquitto: simulated clock drives the fleet,
real GWMP datagrams / serial lines reach the agent in real time, a paho subscriber checks upstream."""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway_agent.lorawan.sessionid import reading_id, session_id
from hil.agentfiles import TOPIC_PREFIX, write_agent_files
from hil.broker import Mosquitto
from hil.channel import Channel, ChannelParams, Position, Reception
from hil.daemonproc import REPO, DaemonProcess
from hil.fleet import FleetDevice, build_fleet
from hil.forwarder import Downlink, PacketForwarder, RxMeta
from hil.lorawan_crypto import LorawanSimError, build_data_frame
from hil.lorawan_device import AirTx, LorawanDevice, choose_dr
from hil.modem import MODEMS, ModemEmulator
from hil.ports import free_udp_port
from hil.report import UplinkRecord, build_report, render
from hil.runstats import child_cpu_s, own_cpu_s, slot_values, sum_device_stats
from hil.scenario import Fault, Scenario
from hil.subscriber import Subscriber

KILL_RISK_S = 1.0  # uplinks forwarded this long before a SIGKILL may legally be uncommitted
FETCH_MAX = 8  # rxpk per PUSH_DATA when batching (lora_pkt_fwd's NB_PKT_MAX)
SLEEP_MIN_S = 0.002
BURST_MAX = 32
RETX_WALL_S = 3.0  # no ACK this long (wall) after a confirmed uplink: retransmit


def _reading_id(stack: LorawanDevice, fcnt: int) -> str:
    """The id the agent gives this frame (DESIGN.md invariant 2): the device's current session."""
    assert stack.dev_addr is not None and stack.nwk_s_key is not None
    assert stack.app_s_key is not None
    sid = session_id(stack.dev_addr, stack.nwk_s_key, stack.app_s_key)
    return reading_id(stack.dev_eui, sid, fcnt)


class Run:
    def __init__(self, scn: Scenario, workdir: Path, live: bool = False) -> None:
        t0 = time.monotonic()
        self.cpu0 = own_cpu_s()
        self.broker_cpu_s: float | None = None
        self.scn, self.dir, self.live = scn, workdir, live or scn.live
        self.rng = random.Random(scn.seed)
        self.fleet = build_fleet(scn)
        self.by_eui = {d.dev_eui: d for d in self.fleet}
        self.records: dict[str, UplinkRecord] = {}
        self.gateway_id = f"hil-{scn.name}"
        self.forwarders: list[PacketForwarder] = []
        self.modems: list[ModemEmulator] = []
        self.captured: list[bytes] = []
        self.agent_up = True
        self.kill_times: list[float] = []
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.sent_mono = 0.0  # wall slot of the last transmission (rate bound)
        self.slot_mono = 0.0  # wall slot of the event being handled
        self.notes: list[str] = []
        self.time_jump_s = 0.0
        self.phases: dict[str, float] = {}
        self.fetch_s = scn.fetch_ms / 1000.0
        self.fetch_queue: dict[int, list[tuple[dict[str, Any], UplinkRecord | None]]] = {}
        positions = [Position(g.x_m, g.y_m) for g in scn.gateways] + [
            Position(m.x_m, m.y_m) for m in scn.modems
        ]
        self.channel = Channel(positions, ChannelParams(**scn.channel), seed=scn.seed)
        for d in self.fleet:
            self.channel.place(d.dev_eui, d.pos)
            d.stack.dr = choose_dr(self.channel.best_snr(d.dev_eui))
        self.phases["build_fleet_s"] = round(time.monotonic() - t0, 2)

    # -- setup ------------------------------------------------------------------------------

    def write_agent_files(
        self, broker_port: int, udp_port: int, max_db_mb: float | None = None
    ) -> Path:
        modem_paths = [m.path for m in self.modems]
        return write_agent_files(
            self.dir,
            self.scn,
            self.fleet,
            self.gateway_id,
            modem_paths,
            broker_port,
            udp_port,
            max_db_mb,
        )

    def push(self, when: float, kind: str, arg: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, kind, arg))

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t_wall0 = time.monotonic()
        # mosquitto started as root drops to its own user: it must reach and write its directory
        # (for the persistence file), so it lives outside a possibly 0700 workdir.
        mdir = Path(tempfile.mkdtemp(prefix="hil-mosq-"))
        os.chmod(mdir, 0o777)  # noqa: S103 - a private throwaway test broker directory
        self.broker_dir = mdir
        self.broker = Mosquitto(
            workdir=mdir, extra_conf=f"persistence true\npersistence_location {mdir}/"
        )
        self.broker.start()
        udp_port = free_udp_port()
        for spec in self.scn.modems:
            m = MODEMS[spec.format](self.dir, name=f"tty{spec.format}")
            m.plug()
            self.modems.append(m)
        cfg = self.write_agent_files(self.broker.port, udp_port)
        self.daemon = DaemonProcess(
            cfg,
            self.dir / "state" / "control.sock",
            self.dir / "state" / "agent.db",
            self.dir / "agent.log",
            cwd=REPO,
        )
        names = {d.dev_eui.hex(): d.name for d in self.fleet}
        self.sub = Subscriber(
            self.broker.port, f"{TOPIC_PREFIX}/{self.gateway_id}/#", self.live, names
        )
        sampler: asyncio.Task[None] | None = None
        try:
            self.daemon.start()
            for g in self.scn.gateways:
                f = PacketForwarder(
                    g.eui,
                    ("127.0.0.1", udp_port),
                    version=g.protocol,
                    keepalive_s=g.keepalive_s,
                    stat_interval_s=g.stat_interval_s,
                    on_downlink=self.on_downlink,
                )
                await f.start()
                self.forwarders.append(f)
            await asyncio.sleep(0.3)  # first PULL_DATA: downlink routes exist before uplinks
            sampler = asyncio.create_task(self._sample())
            t_sim = time.monotonic()
            self.phases["setup_s"] = round(t_sim - t_wall0, 2)
            await self.simulate()
            t_drain = time.monotonic()
            self.phases["simulate_s"] = round(t_drain - t_sim, 2)
            self.phases["simulate_target_s"] = round(self.scn.duration_s / self.scn.accel, 2)
            await self.drain()
            self.phases["drain_s"] = round(time.monotonic() - t_drain, 2)
            self.mark_unacked()
            counters = self.daemon.counters()
            accepted = self.daemon.accepted_ids()
        finally:
            if sampler is not None:
                sampler.cancel()
            for f in self.forwarders:
                await f.close()
            self.daemon.stop()
            self.sub.close()
            for m in self.modems:
                m.close()
            self.broker_cpu_s = child_cpu_s(self.broker.proc.pid if self.broker.proc else None)
            self.broker.stop()
            shutil.rmtree(self.broker_dir, ignore_errors=True)
        extra = {
            "devices": len(self.fleet),
            "simulated_s": self.scn.duration_s,
            "wall_s": round(time.monotonic() - t_wall0, 2),
            "daemon_cpu_s": round(self.daemon.cpu_s, 2),
            "daemon_peak_rss_mib": round(self.daemon.peak_kb / 1024, 1),
            "daemon_starts": self.daemon.starts,
            "simulator_cpu_s": round(own_cpu_s() - self.cpu0, 2),
            "broker_cpu_s": self.broker_cpu_s,
            "phases_s": self.phases,
            "channel": vars(self.channel.stats)
            if hasattr(self.channel.stats, "__dict__")
            else slot_values(self.channel.stats),
            "forwarders": [slot_values(f.stats) for f in self.forwarders],
            "modems": [slot_values(m.stats) for m in self.modems],
            "devices_stats": sum_device_stats(self.fleet),
            "agent_counters": counters,
            "notes": self.notes,
        }
        report = build_report(
            self.scn.name, self.records, self.sub.up, accepted, self.expected_alerts(), extra=extra
        )
        return report

    async def _sample(self) -> None:
        while True:
            self.daemon.sample()
            await asyncio.sleep(0.5)

    def expected_alerts(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        if not self.scn.rules:
            return out
        for e in self.scn.expect_alerts:
            for r in self.records.values():
                if r.device_class != e.device_class or r.id not in self.sub.up.first_seen:
                    continue
                v = r.truth.get(e.measurement)
                if v is None:
                    continue
                if (e.above is not None and v > e.above) or (e.below is not None and v < e.below):
                    out.add((r.dev_eui, e.rule))
        return out

    async def simulate(self) -> None:
        scn = self.scn
        for d in self.fleet:
            first = self.rng.uniform(0, min(d.interval_s, scn.duration_s))
            self.push(first, "join" if d.stack.otaa else "uplink", d)
        for f in scn.faults:
            self.push(f.at_s, "fault", f)
        t0 = time.monotonic()
        min_gap = 1.0 / scn.max_uplinks_per_s
        burst = 0
        while self.heap and self.heap[0][0] <= scn.duration_s:
            t, _, kind, arg = heapq.heappop(self.heap)
            wall = t0 + t / scn.accel
            if kind in ("uplink", "join", "retx"):
                wall = max(wall, self.sent_mono + min_gap)  # the wall-clock send rate is bounded
            self.slot_mono = wall
            # A sleep per event costs a loop turn and a wake-up on a busy host, which alone caps
            # the rate near 500/s: sleep only when well ahead, otherwise run a short burst.
            delay = wall - time.monotonic()
            if delay > SLEEP_MIN_S:
                await asyncio.sleep(delay)
                burst = 0
            else:
                burst += 1
                if burst >= BURST_MAX:  # let datagrams, acks and timers through
                    await asyncio.sleep(0)
                    burst = 0
            if kind == "uplink":
                self.do_uplink(arg, t)
            elif kind == "join":
                self.do_join(arg, t)
            elif kind == "retx":
                self.do_retx(arg, t)
            elif kind == "release":
                self.deliver(t)
            elif kind == "fault":
                await self.do_fault(arg, t)
            elif kind == "fault_end":
                await self.end_fault(arg)
        self.deliver(float("inf"))
        for g in list(self.fetch_queue):
            self._flush(g)

    # -- devices ----------------------------------------------------------------------------

    def _air(self, d: FleetDevice, tx: AirTx | None, t: float, retry_kind: str) -> None:
        if tx is None:  # duty cycle: try again when the sub-band frees up
            self.push(max(d.stack.earliest_tx_s(), t + 1.0), retry_kind, d)
            return
        self.sent_mono = self.slot_mono
        self.channel.transmit(tx)
        self.push(tx.end_s, "release")

    def do_uplink(self, d: FleetDevice, t: float) -> None:
        if not d.stack.joined:
            return
        s = d.model.sample(t)
        tx = d.stack.uplink(t, s.f_port, s.payload, confirmed=d.group.confirmed)
        if tx is not None and tx.fcnt is not None:
            rid = _reading_id(d.stack, tx.fcnt)
            self.records[rid] = UplinkRecord(rid, d.dev_eui.hex(), d.device_class, tx.fcnt, s.truth)
            self.push(t + d.interval_s * self.rng.uniform(0.95, 1.05), "uplink", d)
            if d.group.confirmed:  # the ACK is due ~1 s (wall) later, in RX1
                self.push(t + RETX_WALL_S * self.scn.accel, "retx", (d, tx.fcnt))
        self._air(d, tx, t, "uplink")

    def do_retx(self, arg: tuple[FleetDevice, int], t: float) -> None:
        d, fcnt = arg
        p = d.stack.pending
        if p is None or p.fcnt != fcnt:
            return
        tx = d.stack.retransmission(t)
        if tx is not None:
            self.sent_mono = self.slot_mono
            self.channel.transmit(tx)
            self.push(tx.end_s, "release")
            self.push(t + RETX_WALL_S * self.scn.accel, "retx", arg)
        elif d.stack.pending is not None:  # duty cycle: retry when the sub-band frees up
            self.push(max(d.stack.earliest_tx_s(), t + 1.0), "retx", arg)

    def do_join(self, d: FleetDevice, t: float) -> None:
        if d.stack.joined:
            return
        tx = d.stack.join_request(t)
        self._air(d, tx, t, "join")
        if tx is not None:  # no join-accept within ~8 s wall: try again
            self.push(t + 8.0 * self.scn.accel, "join", d)

    def on_downlink(self, dl: Downlink) -> None:
        if dl.phy[:1] == b"\x20":
            for d in self.fleet:
                if d.stack.joining_nonce is not None and not d.stack.joined:
                    try:
                        d.stack.accept_join(dl.phy)
                    except LorawanSimError:
                        continue
                    now = self._sim_now()
                    self.push(now + self.rng.uniform(1, 5), "uplink", d)
                    return
            return
        addr = dl.phy[1:5][::-1]
        for d in self.fleet:
            if d.stack.dev_addr == addr:
                try:
                    d.stack.on_downlink(dl.phy)
                except LorawanSimError:
                    pass
                return

    def _sim_now(self) -> float:
        return self.heap[0][0] if self.heap else self.scn.duration_s

    # -- air -> gateways -> agent ----------------------------------------------------------

    def deliver(self, t: float) -> None:
        per_gw: dict[int, list[tuple[dict[str, Any], UplinkRecord | None]]] = {}
        now = time.monotonic()
        n_gw = len(self.forwarders)
        for tx, recs in self.channel.release(t):
            rec = self._record_for(tx)
            if rec is not None:
                rec.sent += 1
                rec.heard = rec.heard or bool(recs)
            forwarded = False
            for r in recs:
                if r.gateway < n_gw:
                    f = self.forwarders[r.gateway]
                    if f.connected:
                        pk = f.rxpk(tx.phy, _meta(tx, r), None)
                        per_gw.setdefault(r.gateway, []).append((pk, rec))
                        forwarded = True
                else:
                    spec = self.scn.modems[r.gateway - n_gw]
                    if tx.freq_hz == spec.freq_hz and tx.sf == spec.sf:
                        forwarded |= self.modems[r.gateway - n_gw].inject(
                            tx.phy, r.rssi_dbm, round(r.snr_db)
                        )
            if forwarded:
                self.captured.append(tx.phy)
                if rec is not None:
                    if rec.forwarded_mono is None:
                        rec.forwarded_mono = now
                        rec.forwarded_while_down = not self.agent_up
                    elif self.agent_up:
                        rec.forwarded_while_down = False  # a retry reached the live agent
        for g, pks in per_gw.items():
            if self.time_jump_s:
                for pk, _ in pks:
                    pk["time"] = _shift_iso(pk.get("time"), self.time_jump_s)
            if self.fetch_s <= 0:
                self._push(g, pks)
                continue
            queue = self.fetch_queue.setdefault(g, [])
            if not queue:
                asyncio.get_running_loop().call_later(self.fetch_s, self._flush, g)
            queue.extend(pks)
            if len(queue) >= FETCH_MAX:
                self._flush(g)

    def _flush(self, g: int) -> None:
        """lora_pkt_fwd fetches the concentrator every ~10 ms and sends what it got (up to a
        few packets) in one PUSH_DATA; `fetch_ms` emulates that in wall time."""
        pks = self.fetch_queue.pop(g, [])
        while pks:
            self._push(g, pks[:FETCH_MAX])
            pks = pks[FETCH_MAX:]

    def _push(self, g: int, pks: list[tuple[dict[str, Any], UplinkRecord | None]]) -> None:
        seq = self.forwarders[g].push([pk for pk, _ in pks])
        for _, rec in pks:
            if rec is None:
                continue
            if seq is not None:
                rec.pushes.append((g, seq))
            elif not rec.pushes:
                rec.pushes.append((g, -1))  # the gateway went away with it queued: never sent

    def _record_for(self, tx: AirTx) -> UplinkRecord | None:
        if tx.fcnt is None:
            return None
        d = self.by_eui.get(tx.dev_eui)
        return self.records.get(_reading_id(d.stack, tx.fcnt)) if d is not None else None

    # -- faults -----------------------------------------------------------------------------

    async def do_fault(self, f: Fault, t: float) -> None:
        from hil.faults import apply_fault

        await apply_fault(self, f, t)
        if f.duration_s > 0:
            self.push(t + f.duration_s, "fault_end", f)

    async def end_fault(self, f: Fault) -> None:
        from hil.faults import end_fault

        await end_fault(self, f)

    def mark_kill(self) -> None:
        now = time.monotonic()
        self.kill_times.append(now)
        for r in self.records.values():
            if r.forwarded_mono is not None and now - r.forwarded_mono < KILL_RISK_S:
                r.at_risk = True

    def mark_unacked(self, records: Iterable[UplinkRecord] | None = None) -> None:
        for r in self.records.values() if records is None else records:
            if r.forwarded_mono is not None and r.pushes:
                r.reached_agent = any(
                    g < 0 or seq in self.forwarders[g].acked_seqs for g, seq in r.pushes
                )

    async def drain(self) -> None:
        """Wait until every uplink forwarded to a live agent is upstream, or `drain_s` passes."""
        deadline = time.monotonic() + self.scn.drain_s
        # Only the still-missing records are re-examined: a fleet run has ~500k of them.
        waiting = [
            r
            for r in self.records.values()
            if r.forwarded_mono is not None and not r.forwarded_while_down and not r.at_risk
        ]
        while time.monotonic() < deadline:
            with self.sub.lock:
                seen = self.sub.up.first_seen
                waiting = [r for r in waiting if r.id not in seen]
            self.mark_unacked(waiting)
            waiting = [r for r in waiting if r.reached_agent]
            if not waiting:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let stragglers (alerts, duplicates) land


def _meta(tx: AirTx, r: Reception) -> RxMeta:
    chans = (
        868_100_000,
        868_300_000,
        868_500_000,
        867_100_000,
        867_300_000,
        867_500_000,
        867_700_000,
        867_900_000,
    )
    chan = chans.index(tx.freq_hz) if tx.freq_hz in chans else 0
    return RxMeta(tx.freq_hz, tx.sf, tx.bw_khz, r.rssi_dbm, r.snr_db, chan=chan)


def _shift_iso(value: Any, jump_s: float) -> Any:
    from datetime import datetime, timedelta

    if not isinstance(value, str):
        return value
    t = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(seconds=jump_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run_scenario(
    scn: Scenario, workdir: Path | None = None, live: bool = False
) -> dict[str, Any]:
    """Run one scenario end to end; returns the JSON report (dict)."""
    wd = Path(workdir or tempfile.mkdtemp(prefix=f"hil-{scn.name}-"))
    os.makedirs(wd, exist_ok=True)
    return await Run(scn, wd, live).run()


def run_sync(
    scn: Scenario, workdir: Path | None = None, live: bool = False, show: bool = True
) -> dict[str, Any]:
    report = asyncio.run(run_scenario(scn, workdir, live))
    if show:
        render(report)
    return report


__all__ = ["Run", "build_data_frame", "run_scenario", "run_sync"]
