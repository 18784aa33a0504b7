"""The hand-written CBOR encoder beside cbor2, same readings, same process, same run.

(a) ours, as the daemon runs it: a stored item made at ingest (uplink_item), spliced by the
drain into batches with string references (cbor_messages via encode_batch);
(b) cbor2 doing the same job straightforwardly: the JSON structure (formats.uplink_message)
mapped to its labelled CBOR form in Python, `cbor2.dumps` at ingest, and per batch
`cbor2.loads` of each stored item then one `cbor2.dumps(..., string_referencing=True)`;
(c) cbor2 from stored JSON text (what the drain did before stored items): orjson.loads, the
same mapping, one `cbor2.dumps(..., string_referencing=True)` per batch.
Every batch of every path decodes (json_form) to the same JSON structures, checked here.

`python -m hil.bench.cbor [--readings N] [--batch B] [--repeat R]` prints JSON, then one line.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import datetime
import json
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import cbor2
import orjson

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Reading, reading_id
from gateway_agent.upstream.formats import dumps, tx_info, uplink_message
from gateway_agent.upstream.wire import LABELS, encode_batch, json_form, uplink_item
from hil.bench.meta import git_commit

GW = "bench-gw"
NAME, TAGS = "room", ("school-017",)


def readings(n: int, devices: int = 50) -> list[Reading]:
    """LPP temperature/humidity readings as hil/bench/drain.py builds them: values, payloads,
    RF figures and times differ from reading to reading."""
    t0 = time.time()
    out = []
    for i in range(n):
        eui = (0x70B3D57ED0000000 + i % devices).to_bytes(8, "big")
        fcnt = i // devices
        temp10 = 150 + (i * 7) % 120
        hum2 = 60 + (i * 3) % 80
        rx = RxInfo(
            gateway_id="b827ebfffe6c1a2b",
            rx_mono=0.0,
            rx_wall=t0 + i * 0.01,
            rssi_dbm=-70 - i % 30,
            snr_db=(i % 40) / 4 - 2,
            freq_hz=868_100_000,
            sf=7,
            bw_khz=125,
            code_rate="4/5",
            channel=0,
            rf_chain=0,
            tmst=(1_000_000 + i * 1000) & 0xFFFFFFFF,
        )
        out.append(
            Reading(
                id=reading_id(eui, "8f14e45f", fcnt),
                dev_eui=eui,
                dev_addr=bytes.fromhex("260b3c5a"),
                fcnt=fcnt,
                f_port=1,
                payload=bytes([1, 0x67, *temp10.to_bytes(2, "big"), 2, 0x68, hum2]),
                time=t0 + i * 0.01,
                time_valid=True,
                confirmed=False,
                codec="cayenne-lpp",
                measurements={"temperature_c": temp10 / 10, "humidity_pct": hum2 / 2},
                object={"temperature_1": temp10 / 10, "humidity_2": hum2 / 2},
                rx=(rx,),
            )
        )
    return out


# -- (b), (c): the labelled CBOR form in plain Python, for cbor2 -----------------------------

_OPAQUE = frozenset(("object", "measurements", "flags", "extras"))
_HEX = frozenset(("devEui", "devAddr", "gatewayId"))
_B64 = frozenset(("data", "context"))


def _epoch(s: str) -> cbor2.CBORTag | str:
    try:
        head, frac = s[:19], s[20:26]
        sec = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        return cbor2.CBORTag(1, sec + int(frac) / 1_000_000)
    except ValueError:
        return s


def _form(v: Any, key: str = "") -> Any:
    """The structure docs/store-and-forward.md "CBOR" describes, as cbor2 input."""
    if type(v) is dict:
        if key in _OPAQUE:
            return v
        return {LABELS.get(k, k): _form(x, k) for k, x in v.items()}
    if type(v) is list:
        return [_form(x, key) for x in v]
    if type(v) is str:
        if key == "time":
            return _epoch(v)
        try:  # text that would not come back identical stays text, as in ours
            if key in _HEX and bytes.fromhex(v).hex() == v:
                return bytes.fromhex(v)
            if key in _B64 and base64.b64encode(b := base64.b64decode(v)).decode() == v:
                return b
        except ValueError:
            pass
    return v


def cbor2_form(m: dict[str, Any]) -> dict[Any, Any]:
    """An uplink message's CBOR form, leaving out what the decoder restores (the standard
    `id`, `deviceInfo.devEui`), as our encoder does."""
    m = dict(m)
    if m["id"] == f"{m['gatewayId']}:{m['devEui']}:{m['fCnt']}":
        del m["id"]
    info = dict(m["deviceInfo"])
    if info.get("devEui") == m["devEui"]:
        del info["devEui"]
    m["deviceInfo"] = info
    form: dict[Any, Any] = _form(m)
    return form


def _tag1(t: float) -> cbor2.CBORTag:
    sec = int(t // 1)  # iso_time's microseconds, as our encoder writes them
    return cbor2.CBORTag(1, sec + int((t - sec) * 1_000_000) / 1_000_000)


def _id(s: str) -> str | bytes:
    try:
        b = bytes.fromhex(s)
    except ValueError:
        return s
    return b if b.hex() == s else s


def direct_form(r: Reading) -> dict[int, Any]:
    """The same CBOR form built straight from the reading (no JSON strings in between): the
    best a cbor2 replacement of uplink_item could do in Python."""
    L = LABELS
    m: dict[int, Any] = {
        L["gatewayId"]: _id(GW),
        L["deviceInfo"]: {L["deviceName"]: NAME, L["tags"]: list(TAGS)},
        L["devEui"]: r.dev_eui,
        L["devAddr"]: r.dev_addr,
        L["fPort"]: r.f_port,
        L["codec"]: r.codec,
        L["time"]: _tag1(r.time),
        L["timeValid"]: r.time_valid,
        L["fCnt"]: r.fcnt,
        L["confirmed"]: r.confirmed,
        L["data"]: r.payload,
        L["object"]: dict(r.object),
        L["measurements"]: dict(r.measurements),
    }
    rxs = []
    for rx in r.rx:
        d: dict[int, Any] = {L["gatewayId"]: _id(rx.gateway_id), L["crcStatus"]: "CRC_OK"}
        d[L["time"]] = _tag1(rx.rx_wall)
        for k, v in (("rssi", rx.rssi_dbm), ("snr", rx.snr_db), ("channel", rx.channel),
                     ("rfChain", rx.rf_chain), ("antenna", rx.antenna), ("board", rx.board)):  # fmt: skip
            if v is not None:
                d[L[k]] = v
        if rx.tmst is not None:
            d[L["context"]] = rx.tmst.to_bytes(4, "big")
        rxs.append(d)
    m[L["rxInfo"]] = rxs
    m[L["txInfo"]] = _form(tx_info(r.rx[0])) if r.rx else {}
    return m


def _dumps_batch(forms: list[Any]) -> bytes:
    return cbor2.dumps(
        forms,
        string_referencing=True,
        datetime_as_timestamp=True,  # a tag 1 item read back is a datetime: keep it tag 1
        timezone=datetime.UTC,
    )


# -- the three paths ----------------------------------------------------------------------------


def ingest_ours(rs: Sequence[Reading]) -> list[bytes]:
    return [uplink_item(r, GW, NAME, TAGS) for r in rs]


def ingest_cbor2(rs: Sequence[Reading]) -> list[bytes]:
    return [cbor2.dumps(cbor2_form(uplink_message(r, GW, NAME, TAGS))) for r in rs]


def ingest_cbor2_direct(rs: Sequence[Reading]) -> list[bytes]:
    return [cbor2.dumps(direct_form(r)) for r in rs]


def ingest_json(rs: Sequence[Reading]) -> list[str]:
    return [dumps(uplink_message(r, GW, NAME, TAGS)) for r in rs]


def drain_ours(items: Sequence[bytes], batch: int) -> list[bytes]:
    return [encode_batch(items[i : i + batch]) for i in range(0, len(items), batch)]


def drain_cbor2(items: Sequence[bytes], batch: int) -> list[bytes]:
    return [
        _dumps_batch([cbor2.loads(b) for b in items[i : i + batch]])
        for i in range(0, len(items), batch)
    ]


def drain_json(items: Sequence[str], batch: int) -> list[bytes]:
    return [
        _dumps_batch([cbor2_form(orjson.loads(s)) for s in items[i : i + batch]])
        for i in range(0, len(items), batch)
    ]


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=5, help="best of R runs")
    a = ap.parse_args(argv)
    rs = readings(a.readings)
    n = len(rs)
    ingest_ours(rs[:500])  # warm the caches the daemon keeps warm (device pieces, floats)
    out: dict[str, Any] = {"bench": "cbor_encoder", "readings": n, "batch": a.batch}
    payloads: dict[str, list[bytes]] = {}
    paths: tuple[tuple[str, Callable[..., list[Any]], Callable[..., list[bytes]]], ...] = (
        ("ours", ingest_ours, drain_ours),
        ("cbor2", ingest_cbor2, drain_cbor2),
        ("cbor2_direct", ingest_cbor2_direct, drain_cbor2),
        ("cbor2_from_json", ingest_json, drain_json),
    )
    # Round robin, best of R per path: a shared machine's load changes over seconds, and a
    # path timed all at once after another would meet different weather.
    t_in = dict.fromkeys((p[0] for p in paths), float("inf"))
    t_dr = dict(t_in)
    stored_items: dict[str, list[Any]] = {}
    for _ in range(a.repeat):
        for name, ingest, drain in paths:
            t, items = _timed(ingest, rs)
            t_in[name] = min(t_in[name], t)
            t, payloads[name] = _timed(drain, items, a.batch)
            t_dr[name] = min(t_dr[name], t)
            stored_items[name] = items
    for name, items in stored_items.items():
        stored = sum(len(x.encode() if type(x) is str else x) for x in items)
        out[name] = {
            "ingest_us_per_reading": round(t_in[name] / n * 1e6, 2),
            "drain_us_per_reading": round(t_dr[name] / n * 1e6, 2),
            "total_us_per_reading": round((t_in[name] + t_dr[name]) / n * 1e6, 2),
            "stored_bytes_per_reading": round(stored / n, 1),
            "wire_bytes_per_reading": round(sum(map(len, payloads[name])) / n, 1),
        }
    # Same decoded structures, batch by batch, and the same as the JSON messages.
    want = [json.loads(dumps(uplink_message(r, GW, NAME, TAGS))) for r in rs]
    for name, msgs in payloads.items():
        got = [m for p in msgs for m in json_form(cbor2.loads(p))]
        if got != want:
            raise SystemExit(f"{name}: decoded messages differ from the JSON ones")
    o, c = out["ours"], out["cbor2"]
    d, j = out["cbor2_direct"], out["cbor2_from_json"]
    best = min(c, d, j, key=lambda x: x["total_us_per_reading"])
    out["best_cbor2_vs_ours_total"] = round(
        best["total_us_per_reading"] / o["total_us_per_reading"], 2
    )
    out["cbor2_vs_ours_drain"] = round(d["drain_us_per_reading"] / o["drain_us_per_reading"], 1)
    out["machine"] = {
        "platform": platform.platform(),
        "cpu": platform.machine(),
        "python": platform.python_version(),
        "cbor2": _version("cbor2"),
    }
    out["commit"] = git_commit()
    print(json.dumps(out))

    def fig(x: dict[str, Any]) -> str:
        return (
            f"{x['ingest_us_per_reading']} + {x['drain_us_per_reading']} = "
            f"{x['total_us_per_reading']} us, {x['wire_bytes_per_reading']} B"
        )

    print(
        f"cbor {n} readings, batches of {a.batch}; per reading ingest + drain = total, wire "
        f"bytes: ours {fig(o)}; cbor2 {fig(c)}; cbor2 direct {fig(d)}; cbor2 from JSON "
        f"{fig(j)}; drain cbor2/ours {out['cbor2_vs_ours_drain']}x, total best cbor2/ours "
        f"{out['best_cbor2_vs_ours_total']}x"
    )
    return out


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
