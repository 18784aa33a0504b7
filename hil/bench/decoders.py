"""Decode throughput per built-in codec (on the FORMATS.md worked examples) and for the shipped
JS codecs. `python -m hil.bench.decoders [--seconds S]` prints JSON, then a table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import decoders
from hil.bench.meta import git_commit
from tests.core.decoders.test_codec_vectors import VECTORS

JS_CASES = [
    ("js:milesight-em500-co2", 85, "01754603 67BE00 046864 057D2003 0673A127", "milesight/em500-co2"),
    ("js:dragino-ldds20-chirpstack", 2, "0CF004D200000001", "dragino/ldds20"),
    ("js:elsys-ers-co2-v2", 1, "0100CB0237 04012C0500 0603E8070E10", "elsys/ers-co2"),
]  # fmt: skip


def _rate(codec_id: str, cases: list[tuple[int, bytes, dict[str, Any]]], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for port, payload, settings in cases:
            decoders.decode(codec_id, port, payload, settings)
        n += len(cases)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per codec")
    args = parser.parse_args()

    by_codec: dict[str, list[tuple[int, bytes, dict[str, Any]]]] = {}
    for codec_id, port, hexstr, settings, *_ in VECTORS:
        primary = decoders.CODECS[codec_id].alias_of or codec_id
        by_codec.setdefault(primary, []).append((port, bytes.fromhex(hexstr), settings))
    rows = []
    for codec_id, cases in sorted(by_codec.items()):
        rows.append({"codec": codec_id, "source": "builtin", "frames": len(cases),
                     "decodes_per_s": round(_rate(codec_id, cases, args.seconds))})  # fmt: skip
    for js_id, port, hexstr, builtin in JS_CASES:
        payload = bytes.fromhex(hexstr.replace(" ", ""))
        rows.append({"codec": js_id, "source": "js", "frames": 1, "same_device_as": builtin,
                     "decodes_per_s": round(_rate(js_id, [(port, payload, {})], args.seconds))})  # fmt: skip
    report = {
        "bench": "decoders",
        "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                    "cores": os.cpu_count()},
        "commit": git_commit(),
        "seconds_per_codec": args.seconds,
        "results": rows,
    }  # fmt: skip
    print(json.dumps(report))
    print(f"{'codec':34} {'source':8} {'decodes/s':>10}")
    for row in rows:
        print(f"{row['codec']:34} {row['source']:8} {row['decodes_per_s']:>10}")


if __name__ == "__main__":
    main()
