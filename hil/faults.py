"""Field faults injected during a scenario: broker outage, agent SIGKILL + restart, gateway
disconnect, replay attacker, garbage injector, clock jump, disk-cap pressure, modem unplug."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import TYPE_CHECKING

from hil.forwarder import RxMeta
from hil.lorawan_crypto import build_data_frame

if TYPE_CHECKING:
    from hil.runner import Run
    from hil.scenario import Fault


def garbage_datagrams(eui: bytes, rng_bytes: bytes, forged_frames: list[bytes]) -> list[bytes]:
    """Malformed or hostile GWMP datagrams (GWMP.md section 8 pitfalls turned into attacks)."""
    hdr = b"\x02\x12\x34\x00" + eui

    def rx(data: str, size: int, **kw: object) -> bytes:
        pk = {
            "tmst": 1,
            "freq": 868.1,
            "stat": 1,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "rssi": -80,
            "lsnr": 5.0,
            "size": size,
            "data": data,
        }
        pk.update(kw)
        return hdr + json.dumps({"rxpk": [pk]}).encode()

    out = [
        b"",
        b"\x02",
        b"\x02\x00",
        b"\x09\x00\x00\x00" + eui,  # unknown version
        b"\x02\x00\x00\x07" + eui,  # unknown identifier
        b"\x02\x00\x00\x01",  # a PUSH_ACK sent to the server: must not be answered
        b"\x02\x00\x00\x02" + eui + b"extra",  # PULL_DATA of the wrong length
        hdr + b"{not json",
        hdr + b'{"rxpk": "nope"}',
        hdr + b'{"rxpk":[{"tmst":NaN,"freq":Infinity}]}',
        hdr + b"\xff\xfe" + rng_bytes[:64],
        rx("QFo8CyaAKgABakhf79Lu-BvQKzc=", 20),  # '-' is not base64
        rx("QFo8CyaAKgABakhf79Lu/BvQKzc=", 99),  # size mismatch
        rx("AAAA", 3),  # shorter than any LoRaWAN frame
        rx("QFo8CyaAKgABakhf79Lu/BvQKzc=", 20, stat=-1),  # CRC failed
        rx("QFo8CyaAKgABakhf79Lu/BvQKzc=", 20, modu="FM"),
        hdr + json.dumps({"rxpk": [{"data": 5}] * 3}).encode(),
        rng_bytes,
    ]
    for phy in forged_frames:
        out.append(rx(base64.b64encode(phy).decode(), len(phy)))
    return out


def forged_frames(run: Run, n: int) -> list[bytes]:
    """Frames for real DevAddrs with far-ahead counters and wrong keys: never acceptable."""
    frames = []
    abp = [d for d in run.fleet if d.stack.dev_addr is not None][: max(1, n)]
    for i, d in enumerate(abp):
        assert d.stack.dev_addr is not None
        fcnt = d.stack.fcnt_up + 50 + i
        frames.append(
            build_data_frame(
                2,
                d.stack.dev_addr,
                fcnt,
                os.urandom(16),
                os.urandom(16),
                f_port=85,
                payload=b"\x01\x75\x01",
            )
        )
    return frames


async def apply_fault(run: Run, f: Fault, t: float) -> None:
    run.notes.append(f"t={t:.0f}s {f.kind} {dict(f.params)}".strip())
    if f.kind == "broker_outage":
        await asyncio.to_thread(run.broker.stop)
    elif f.kind == "agent_kill":
        run.mark_kill()
        run.agent_up = False
        await asyncio.to_thread(run.daemon.kill)
        restart_after = float(f.params.get("restart_after_wall_s", 1.0))
        await asyncio.sleep(restart_after)
        await asyncio.to_thread(run.daemon.start)
        run.agent_up = True
    elif f.kind == "gateway_disconnect":
        await run.forwarders[int(f.params.get("gateway", 0))].close()
    elif f.kind == "replay":
        count = int(f.params.get("count", 20))
        fwd = run.forwarders[int(f.params.get("gateway", 0))]
        frames = run.captured[: max(1, len(run.captured) - 5)][-count:]
        pks = [fwd.rxpk(phy, RxMeta(868_100_000, 7, 125, -60, 9.0)) for phy in frames]
        for i in range(0, len(pks), 8):
            fwd.push(pks[i : i + 8])
        run.notes.append(f"replayed {len(pks)} captured frames")
    elif f.kind == "garbage":
        fwd = run.forwarders[int(f.params.get("gateway", 0))]
        forged = forged_frames(run, int(f.params.get("forged", 5)))
        dgrams = garbage_datagrams(fwd.eui, os.urandom(200), forged)
        for _ in range(int(f.params.get("rounds", 3))):
            for dg in dgrams:
                fwd.send_raw_up(dg)
            await asyncio.sleep(0.05)
        run.notes.append(f"sent {len(dgrams) * int(f.params.get('rounds', 3))} garbage datagrams")
    elif f.kind == "clock_jump":
        # The daemon's own wall clock cannot be faked from outside: the gateways' GPS `time`
        # fields jump instead (rxpk time and stat time), as a gateway with a bad GPS fix would.
        run.time_jump_s = float(f.params.get("jump_s", 3600))
        for fwd in run.forwarders:
            stat = fwd.stat_object()
            stat["time"] = "2031-01-01 00:00:00 GMT"
            fwd.push([], stat)
    elif f.kind == "disk_pressure":
        # Store settings need a restart (the daemon reports restart_needed on SIGHUP): rewrite
        # the config with a tiny cap and restart gracefully.
        run.write_agent_files(
            run.broker.port, run.forwarders[0].server[1], float(f.params.get("max_db_mb", 0.2))
        )
        run.agent_up = False
        await asyncio.to_thread(run.daemon.stop)
        await asyncio.to_thread(run.daemon.start)
        run.agent_up = True
    elif f.kind == "modem_unplug":
        run.modems[int(f.params.get("modem", 0))].unplug()


async def end_fault(run: Run, f: Fault) -> None:
    if f.kind == "broker_outage":
        await asyncio.to_thread(run.broker.start)
    elif f.kind == "gateway_disconnect":
        await run.forwarders[int(f.params.get("gateway", 0))].start()
    elif f.kind == "clock_jump":
        run.time_jump_s = 0.0
    elif f.kind == "modem_unplug":
        run.modems[int(f.params.get("modem", 0))].plug()
