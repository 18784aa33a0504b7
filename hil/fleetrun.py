"""The `fleet` scenario (#17): three real agents, each behind its own backhaul (a loopback TCP proxy)
to one real mosquitto, each with its own simulated packet forwarder (a distinct gateway EUI) that
sends what its gateway hears of 300 devices with overlapping coverage. Every agent relays every
frame to the broker in ChirpStack's gateway protocol and decodes the ABP devices of the shared
devices file itself. A ChirpStack stand-in (hil/central.py) consumes `event/up`; a consumer merges
the agents' readings by id. One agent's backhaul is cut for a simulated hour meanwhile.

The radio side (fleet, channel, collisions, duty cycle, simulated clock) is the single-agent
runner's (`hil.runner.Run`); this module adds the agents, the backhauls and the verdicts.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import shutil
import tempfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hil.agentfiles import TOPIC_PREFIX, write_agent_files
from hil.broker import Mosquitto
from hil.central import Central, ReadingsMerge
from hil.daemonproc import REPO, DaemonProcess
from hil.fleetreport import render_fleet, verdicts
from hil.forwarder import PacketForwarder
from hil.ports import free_udp_port
from hil.proxy import TcpProxy
from hil.report import UplinkRecord, Upstream, measurement_mismatches
from hil.runner import Run
from hil.runstats import child_cpu_s, own_cpu_s, slot_values
from hil.scenario import Fault, Scenario, ScenarioError, find_scenario

CUT = "backhaul_cut"


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """`[fleet_run]` of a scenario file: what makes it a multi-agent run."""

    cut_gateway: int = 1  # index into [[gateways]]: that agent's backhaul is cut
    cut_at_s: float = 900.0  # simulated
    cut_duration_s: float = 3600.0  # simulated: "an hour"
    redelivery_max: int = 32  # at-least-once copies allowed per cut (the PUBACK window)
    cut_mode: str = "blackhole"  # "blackhole": the link goes silent; "reset": connections reset


def fleet_spec(name_or_path: str) -> FleetSpec | None:
    """The `[fleet_run]` table of a scenario, or None for a single-agent scenario."""
    path = find_scenario(name_or_path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from e
    t = doc.get("fleet_run")
    if t is None:
        return None
    if not isinstance(t, dict):
        raise ScenarioError("fleet_run: expected a table")
    unknown = sorted(set(t) - set(FleetSpec.__slots__))
    if unknown:
        raise ScenarioError(f"fleet_run.{unknown[0]}: unknown key")
    try:
        spec = FleetSpec(**t)
    except TypeError as e:
        raise ScenarioError(f"fleet_run: {e}") from None
    if spec.cut_mode not in ("blackhole", "reset"):
        raise ScenarioError("fleet_run.cut_mode: expected blackhole | reset")
    for k in ("cut_at_s", "cut_duration_s"):
        v = getattr(spec, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ScenarioError(f"fleet_run.{k}: expected a number >= 0")
    return spec


def check_spec(scn: Scenario, spec: FleetSpec) -> None:
    if len(scn.gateways) < 2 or scn.modems:
        raise ScenarioError("fleet_run: two or more [[gateways]] (one agent each), no modems")
    if not 0 <= spec.cut_gateway < len(scn.gateways):
        raise ScenarioError("fleet_run.cut_gateway: not an index into [[gateways]]")
    if spec.cut_at_s + spec.cut_duration_s >= scn.duration_s:
        raise ScenarioError("fleet_run: the cut must end before duration_s")
    if any(g.activation != "abp" for g in scn.fleet):
        raise ScenarioError("fleet_run: ABP devices only (every agent decodes the same sessions)")


def relay_available() -> bool:
    """Whether this tree has the relay (gateway_agent/relay/service.py) to configure."""
    try:
        return importlib.util.find_spec("gateway_agent.relay.service") is not None
    except ModuleNotFoundError:
        return False


@dataclass(slots=True)
class Push:
    seq: int
    mono: float
    frames: list[tuple[bytes, str | None]]  # (PHYPayload, reading id)


class FleetRun(Run):
    def __init__(self, scn: Scenario, spec: FleetSpec, workdir: Path, live: bool = False) -> None:
        check_spec(scn, spec)
        self.relay = relay_available()
        cfg = dict(scn.agent_config)
        if not self.relay:
            cfg.pop("relay", None)
        relay_cfg = dict(scn.agent_config.get("relay", {}))
        self.relay_prefix = str(relay_cfg.get("topic_prefix", "eu868"))
        self.relay_json = bool(relay_cfg.get("json", False))
        super().__init__(replace(scn, agent_config=cfg), workdir, live)
        self.spec = spec
        self.agent_ids = [f"{scn.name}-{chr(ord('a') + i)}" for i in range(len(scn.gateways))]
        self.euis = [g.eui.hex() for g in scn.gateways]
        self.pushed: list[list[Push]] = [[] for _ in scn.gateways]
        self.proxies: list[TcpProxy] = []
        self.daemons: list[DaemonProcess] = []
        self.cut_mono: float | None = None
        self.restore_mono: float | None = None
        self.end_mono = float("inf")

    # -- setup ----------------------------------------------------------------------------------

    def _agent(self, i: int, udp_port: int) -> DaemonProcess:
        d = self.dir / f"agent-{chr(ord('a') + i)}"
        d.mkdir(parents=True, exist_ok=True)
        cfg = write_agent_files(
            d, self.scn, self.fleet, self.agent_ids[i], [], self.proxies[i].port, udp_port
        )
        return DaemonProcess(
            cfg, d / "state" / "control.sock", d / "state" / "agent.db", d / "agent.log", cwd=REPO
        )

    async def run(self) -> dict[str, Any]:
        t_wall0 = time.monotonic()
        mdir = Path(tempfile.mkdtemp(prefix="hil-mosq-"))
        os.chmod(mdir, 0o777)  # noqa: S103 - a private throwaway test broker directory
        self.broker = Mosquitto(workdir=mdir)
        self.broker.start()
        self.central: Central | None = None
        self.merge: ReadingsMerge | None = None
        sampler: asyncio.Task[None] | None = None
        try:
            if self.relay:
                self.central = Central(self.broker.port, self.relay_prefix, self.relay_json)
            self.merge = ReadingsMerge(self.broker.port, TOPIC_PREFIX)
            for c in (self.central, self.merge):
                if c is not None and not await asyncio.to_thread(c.wait_subscribed):
                    raise RuntimeError("the council's consumers did not subscribe")
            ports = []
            for i in range(len(self.scn.gateways)):
                self.proxies.append(TcpProxy(self.broker.port).start())
                ports.append(free_udp_port())
                self.daemons.append(self._agent(i, ports[-1]))
            await asyncio.gather(*(asyncio.to_thread(d.start) for d in self.daemons))
            for g, port in zip(self.scn.gateways, ports, strict=True):
                f = PacketForwarder(
                    g.eui,
                    ("127.0.0.1", port),
                    version=g.protocol,
                    keepalive_s=g.keepalive_s,
                    stat_interval_s=g.stat_interval_s,
                    on_downlink=self.on_downlink,
                )
                await f.start()
                self.forwarders.append(f)
            await asyncio.sleep(0.3)
            sampler = asyncio.create_task(self._sample_all())
            s = self.spec
            self.push(s.cut_at_s, "fault", Fault(s.cut_at_s, CUT, s.cut_duration_s, {}))
            t_sim = time.monotonic()
            self.phases["setup_s"] = round(t_sim - t_wall0, 2)
            await self.simulate()
            t_drain = time.monotonic()
            self.phases["simulate_s"] = round(t_drain - t_sim, 2)
            await self.drain()
            self.end_mono = time.monotonic()  # the daemons' own goodbyes come after this
            self.phases["drain_s"] = round(self.end_mono - t_drain, 2)
            counters = [d.counters() for d in self.daemons]
        finally:
            if sampler is not None:
                sampler.cancel()
            for f in self.forwarders:
                await f.close()
            for d in self.daemons:
                d.stop()
            for c in (self.central, self.merge):
                if c is not None:
                    c.close()
            for p in self.proxies:
                p.close()
            self.broker_cpu_s = child_cpu_s(self.broker.proc.pid if self.broker.proc else None)
            self.broker.stop()
            shutil.rmtree(mdir, ignore_errors=True)
        return self.report(counters, time.monotonic() - t_wall0)

    async def _sample_all(self) -> None:
        while True:
            for d in self.daemons:
                d.sample()
            await asyncio.sleep(0.5)

    # -- what each gateway heard ----------------------------------------------------------------

    def _push(self, g: int, pks: list[tuple[dict[str, Any], UplinkRecord | None]]) -> None:
        f = self.forwarders[g]
        before = f.push_seq
        super()._push(g, pks)
        if f.push_seq != before:
            frames = [(base64.b64decode(pk["data"]), r.id if r else None) for pk, r in pks]
            self.pushed[g].append(Push(f.push_seq, time.monotonic(), frames))

    def heard(self, g: int, during_cut: bool = False) -> list[tuple[bytes, str | None]]:
        """Frames gateway `g` handed to its agent (PUSH_ACKed), in the order heard."""
        acked = self.forwarders[g].acked_seqs
        out = []
        for p in self.pushed[g]:
            if p.seq not in acked:
                continue
            if during_cut and not self._in_cut(p.mono):
                continue
            out.extend(p.frames)
        return out

    def unacked(self, g: int) -> int:
        acked = self.forwarders[g].acked_seqs
        return sum(len(p.frames) for p in self.pushed[g] if p.seq not in acked)

    def _in_cut(self, mono: float) -> bool:
        if self.cut_mono is None:
            return False
        return self.cut_mono <= mono and (self.restore_mono is None or mono < self.restore_mono)

    # -- the cut ----------------------------------------------------------------------------------

    async def do_fault(self, f: Fault, t: float) -> None:
        if f.kind != CUT:
            await super().do_fault(f, t)
            return
        self.proxies[self.spec.cut_gateway].cut(blackhole=self.spec.cut_mode == "blackhole")
        self.cut_mono = time.monotonic()
        self.notes.append(
            f"t={t:.0f}s backhaul of agent {self.agent_ids[self.spec.cut_gateway]} cut"
            f" ({self.spec.cut_mode}) for {f.duration_s:.0f} s simulated"
        )
        self.push(t + f.duration_s, "fault_end", f)

    async def end_fault(self, f: Fault) -> None:
        if f.kind != CUT:
            await super().end_fault(f)
            return
        self.proxies[self.spec.cut_gateway].restore()
        self.restore_mono = time.monotonic()

    # -- drain ------------------------------------------------------------------------------------

    def _expected_ids(self, g: int | None = None) -> set[str]:
        gws = range(len(self.forwarders)) if g is None else (g,)
        return {rid for k in gws for _, rid in self.heard(k) if rid is not None}

    def _missing(self) -> int:
        assert self.merge is not None
        n = 0
        for g, agent in enumerate(self.agent_ids):
            n += len(self._expected_ids(g) - self.merge.ids(agent))
            if self.central is not None:
                n += len({p for p, _ in self.heard(g)} - self.central.received(self.euis[g]))
        return n

    async def drain(self) -> None:
        """Until every agent delivered what its gateway heard (relayed frames and readings), or
        `drain_s` passes."""
        deadline = time.monotonic() + self.scn.drain_s
        while time.monotonic() < deadline and self._missing():  # noqa: ASYNC110 - polls sets
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # let stragglers (redelivered copies) land

    # -- report ---------------------------------------------------------------------------------

    def report(self, counters: list[dict[str, int]], wall_s: float) -> dict[str, Any]:
        assert self.merge is not None
        spec, scn = self.spec, self.scn
        cut_g = spec.cut_gateway
        per_gw = []
        for g, agent in enumerate(self.agent_ids):
            heard = self.heard(g)
            heard_phys = [p for p, _ in heard]
            row: dict[str, Any] = {
                "gateway": self.euis[g],
                "agent": agent,
                "heard": len(heard_phys),
                "unacked_udp": self.unacked(g),
                "heard_during_cut": len(self.heard(g, during_cut=True)),
                "readings": len(self.merge.ids(agent)),
                "readings_missing": len(self._expected_ids(g) - self.merge.ids(agent)),
                "readings_unexpected": len(self.merge.ids(agent) - self._expected_ids(g)),
                "proxy": slot_values(self.proxies[g].stats),
                "downlinks": self.forwarders[g].stats.pull_resp,  # PULL_RESP from its agent
                "daemon_cpu_s": round(self.daemons[g].cpu_s, 2),
                "daemon_peak_rss_mib": round(self.daemons[g].peak_kb / 1024, 1),
                "counters": counters[g],
            }
            row.update(self._relay_row(g, heard_phys))
            per_gw.append(row)
        union = {rid for g in range(len(self.agent_ids)) for rid in self._expected_ids(g)}
        merged = self.merge.ids()
        with self.merge.lock:
            copies = sum(sum(per.values()) for per in self.merge.copies.values())
            by_agents = [len(per) for per in self.merge.copies.values()]
            self_dups = sum(n - 1 for per in self.merge.copies.values() for n in per.values())
        up = Upstream(measurements=dict(self.merge.measurements))
        recs = list(self.records.values())
        heard_recs = [r for r in recs if r.heard]
        coverage = [0, 0, 0, 0]
        for n in self._devices_by_gateways().values():
            coverage[min(n, 3)] += 1
        report: dict[str, Any] = {
            "scenario": scn.name,
            "relay_built": self.relay,
            "passive": self.scn.agent_config.get("lorawan", {}).get("mode") == "passive",
            "devices": len(self.fleet),
            "agents": len(self.agent_ids),
            "simulated_s": scn.duration_s,
            "accel": scn.accel,
            "interval_s": sorted({round(d.interval_s) for d in self.fleet}),
            "cut": {
                "agent": self.agent_ids[cut_g],
                "gateway": self.euis[cut_g],
                "at_s": spec.cut_at_s,
                "mode": spec.cut_mode,
                "simulated_s": spec.cut_duration_s,
                "wall_s": None
                if self.cut_mono is None or self.restore_mono is None
                else round(self.restore_mono - self.cut_mono, 2),
                "readings_drain_s": self._readings_drain_s(),
                "relay_drain_s": per_gw[cut_g].get("drain_s"),
            },
            "devices_heard_by_gateways": {str(k): n for k, n in enumerate(coverage)},
            "uplinks": len(recs),
            "sent": sum(r.sent for r in recs),
            "heard_on_air": len(heard_recs),
            "reached_an_agent": len(union),
            "merge": {
                "messages": copies,
                "unique_ids": len(merged),
                "missing": len(union - merged),
                "missing_ids": sorted(union - merged)[:50],
                "unknown": len(merged - set(self.records)),
                "copies_merged": copies - len(merged),
                "by_agents": {str(k): by_agents.count(k) for k in sorted(set(by_agents))},
                "redelivered_by_one_agent": self_dups,
                "bad_messages": self.merge.bad,
                "measurement_mismatches": len(measurement_mismatches(recs, up)),
            },
            "central": self._central_view(),
            "gateways": per_gw,
            "wall_s": round(wall_s, 2),
            "phases_s": self.phases,
            "simulator_cpu_s": round(own_cpu_s() - self.cpu0, 2),
            "broker_cpu_s": self.broker_cpu_s,
            "channel": slot_values(self.channel.stats),
            "notes": self.notes,
        }
        report["checks"] = verdicts(report, spec)
        report["verdict"] = "pass" if all(report["checks"].values()) else "fail"
        return report

    def _devices_by_gateways(self) -> dict[str, int]:
        """Per device: how many gateways heard at least one of its frames."""
        by_dev: dict[str, set[int]] = {}
        for g in range(len(self.forwarders)):
            for _, rid in self.heard(g):
                if rid is not None:
                    by_dev.setdefault(rid.split("-", 1)[0], set()).add(g)
        out = {d.dev_eui.hex(): 0 for d in self.fleet}
        out.update({k: len(v) for k, v in by_dev.items()})
        return out

    def _relay_row(self, g: int, heard_phys: list[bytes]) -> dict[str, Any]:
        if self.central is None:
            return {}
        with self.central.lock:
            gf = self.central.gateways.get(self.euis[g])
            order = gf.first_order() if gf else []
            first = dict(gf.first) if gf else {}
            redelivered = gf.redelivered if gf else 0
        pos = {p: i for i, p in enumerate(heard_phys)}
        seq = [pos[p] for p in order if p in pos]
        during = [p for p, _ in self.heard(g, during_cut=True)]
        arrivals = [first[p] for p in during if p in first]
        drain = None
        if during and len(arrivals) == len(during) and self.restore_mono is not None:
            drain = round(max(arrivals) - self.restore_mono, 2)
        return {
            "relayed": len(first),
            "relay_missing": len(set(heard_phys) - set(first)),
            "relay_foreign": len(set(first) - set(heard_phys)),
            "redelivered": redelivered,
            "out_of_order": sum(1 for a, b in zip(seq, seq[1:], strict=False) if b < a),
            "drain_s": drain,
        }

    def _readings_drain_s(self) -> float | None:
        g = self.spec.cut_gateway
        if self.merge is None or self.restore_mono is None:
            return None
        agent = self.agent_ids[g]
        ids = [rid for _, rid in self.heard(g, during_cut=True) if rid is not None]
        with self.merge.lock:
            t = [self.merge.first.get((rid, agent)) for rid in ids]
        if not t or any(x is None for x in t):
            return None
        return round(max(x for x in t if x is not None) - self.restore_mono, 2)

    def _central_view(self) -> dict[str, Any]:
        if self.central is None:
            return {"consumed": False}
        ns = self.central.uplinks()
        heard_any = {p for g in range(len(self.forwarders)) for p, _ in self.heard(g)}
        with self.central.lock:
            copies = sum(len(g.copies) for g in self.central.gateways.values())
            conn = [(gw, st) for gw, st, _ in self.central.conn]
            cut_eui = self.euis[self.spec.cut_gateway]
            cut_states = [
                (st, t) for gw, st, t in self.central.conn if gw == cut_eui and t <= self.end_mono
            ]
            errors = (self.central.decode_errors, self.central.id_mismatch)
            no_rx = self.central.no_rx_info
        return {
            "consumed": True,
            "messages": copies,
            "uplinks": len(ns),
            "uplinks_heard": len(heard_any),
            "missing": len(heard_any - set(ns)),
            "gateway_copies_deduplicated": sum(len(v) for v in ns.values()) - len(ns),
            "decode_errors": errors[0],
            "gateway_id_mismatch": errors[1],
            "no_rx_info": no_rx,
            "conn_states": conn[:20],
            "cut_gateway_states": [st for st, _ in cut_states],
            "cut_gateway_offline_online": self._offline_online(cut_states),
        }

    def _offline_online(self, states: list[tuple[str, float]]) -> bool:
        """OFFLINE arrived after the cut began, and ONLINE after that once it was restored."""
        if self.cut_mono is None or self.restore_mono is None:
            return False
        off = [t for st, t in states if st == "OFFLINE" and t >= self.cut_mono]
        return bool(off) and any(
            st == "ONLINE" and t >= max(off[0], self.restore_mono) for st, t in states
        )


async def run_fleet(
    scn: Scenario, spec: FleetSpec, workdir: Path | None = None, live: bool = False
) -> dict[str, Any]:
    wd = Path(workdir or tempfile.mkdtemp(prefix=f"hil-{scn.name}-"))
    os.makedirs(wd, exist_ok=True)
    return await FleetRun(scn, spec, wd, live).run()


def run_fleet_sync(
    scn: Scenario,
    spec: FleetSpec,
    workdir: Path | None = None,
    live: bool = False,
    show: bool = True,
) -> Mapping[str, Any]:
    report = asyncio.run(run_fleet(scn, spec, workdir, live))
    if show:
        render_fleet(report)
    return report
