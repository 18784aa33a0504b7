"""Mutation fuzzing of the files a user writes (issue #16, must-show 3): a valid agent config and a
valid devices file, mutated as bytes (flips, inserts, deletes, truncation, invalid UTF-8, NUL, BOM)
and as TOML (huge numbers, deep nesting, duplicated keys and tables, odd strings), then loaded as
`config check` loads them. Every outcome must be ok or a ConfigError naming the file and the key
path or the byte offset / line; anything else is a traceback a user would see.

`python -m hil.bench.config_fuzz [--cases N] [--seed S]` prints one JSON line of counts.
tests/config/test_config_fuzz.py runs the same fuzzer, smaller.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway_agent.config import ConfigFileError, preflight, read_config, read_devices
from gateway_agent.errors import ConfigError

KEYS = (
    "000102030405060708090a0b0c0d0e0f",
    "101112131415161718191a1b1c1d1e1f",
    "2b7e151628aed2a6abf7158809cf4f3c",
)

CONFIG = b"""\
# agent config under fuzz
[agent]
gateway_id   = "fife-ps-017"
state_dir    = "state"
devices_file = "devices.toml"
log_level    = "INFO"
frame_queue  = 10000

[[sources]]
type   = "gwmp"
listen = ["127.0.0.1:1700", "[::1]:1701"]
name   = "pf"
route_stale_s = 30.5

[[sources]]
type     = "serial"
port     = "/dev/ttyUSB0"
format   = "rn2483"
baudrate = 57600
sf       = 9
bw_khz   = 125
code_rate = "4/5"

[upstream]
host         = "127.0.0.1"
port         = 1883
topic_prefix = "gateway-agent"
format       = "cbor"
username     = "fife"
keepalive_s  = 30
batch_max    = 16
rate_limit_per_s = 0.0

[store]
synchronous    = "NORMAL"
commit_interval_ms = 2000
max_db_mb      = 512
retention_days = 7

[lorawan]
region  = "EU868"
net_id  = "000013"
dev_addr_prefix = "26"
rx2_freq_hz = 869525000
adr = true
adr_margin_db = 10

[metrics]
listen = "127.0.0.1:9108"

[[rules]]
preset = "co2"

[[rules]]
name = "pipe-hot"
kind = "threshold"
measurement = "temperature_c"
below = 50
for = "10m"
severity = "critical"
select = { class = "legionella", tags_any = ["school-017"] }

[[rules]]
name = "offline"
kind = "silence"
for = "2h"
command = ["/usr/local/bin/page", "--team", "iot"]
"""

DEVICES = f"""\
# devices under fuzz
[[device]]
dev_eui   = "70b3d57ed0000001"
name      = "P7 classroom"
class     = "co2"
codec     = "cayenne-lpp"
tags      = ["fife", "school-017"]
dev_addr  = "26011bda"
nwk_s_key = "{KEYS[0]}"
app_s_key = "{KEYS[1]}"

[[device]]
dev_eui   = "a84041000181c061"
name      = "Gully, Main St"
class     = "gully"
codec     = "cayenne-lpp"
join_eui  = "a840410000000101"
app_key   = "{KEYS[2]}"
relaxed_fcnt = true

[device.settings]
empty_distance_mm = 1500
full_distance_mm = 200

[[device]]
dev_eui  = "70-B3-D5-7E-D0-00-00-03"
class    = "legionella"
tags     = []
join_eui = "0x70b3d57ed0001234"
app_key  = "{KEYS[2].upper()}"

[device.settings]
ds18b20_fitted = true
water_density_kg_m3 = 1000
field_map = {{ temp = "temperature_c", "probe.t2" = {{ name = "temperature_c", scale = 0.1 }} }}
""".encode()

ODD_VALUES = (
    b"9" * 30,
    b"-" + b"9" * 30,
    b"1" * 5000,
    b"0x" + b"f" * 5000,
    b"1e999",
    b"-1e999",
    b"nan",
    b"inf",
    b"-0",
    b"0.0",
    b"1979-05-27T07:32:00Z",
    b"07:32:00",
    b'""',
    b'"\\u0000"',
    b'"~no_such_user_fuzz/x"',
    b'"a\\nb"',
    b'"\\u001b[2J"',
    b'"' + b"x" * 100_000 + b'"',
    b"'''\nmulti\n'''",
    b"[]",
    b"{}",
    b"[1, 'a', {x = 1}]",
    b"{ a = { b = { c = 1 } } }",
    b"true",
    b'"\xc3\xa9\xe2\x82\xac"',
    b'"\xed\xa0\x80"',  # a UTF-8-encoded surrogate: not UTF-8
    b'"\xf4\x90\x80\x80"',  # above U+10FFFF: not UTF-8
)
TOKENS = (b"[", b"]", b"[[", b"]]", b"=", b'"', b"'", b"\n", b"\r", b"\r\n", b"\t", b".", b",")
TOKENS += (b"\n[agent]\n", b"\n[[sources]]\n", b"\n[[device]]\n", b"\n[upstream]\n", b"#")
TOKENS += (b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\x80", b"\xfe\xff", b"\x7f")


def _value_spans(data: bytes) -> list[tuple[int, int]]:
    return [m.span(1) for m in re.finditer(rb"=[ \t]*([^\n]+)", data)]


def mutate(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    """One mutation; returns the new bytes and its kind."""
    kind = rnd.choice(MUTATIONS)
    return kind(data, rnd), kind.__name__


def flip(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d)) if d else 0
    return d[:i] + bytes([d[i] ^ (1 << r.randrange(8))]) + d[i + 1 :] if d else d


def set_byte(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d)) if d else 0
    return d[:i] + bytes([r.randrange(256)]) + d[i + 1 :]


def insert(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    ins = r.choice(TOKENS) if r.random() < 0.6 else r.randbytes(r.randint(1, 8))
    return d[:i] + ins + d[i:]


def delete(d: bytes, r: random.Random) -> bytes:
    if not d:
        return d
    i = r.randrange(len(d))
    return d[:i] + d[i + r.randint(1, 40) :]


def truncate(d: bytes, r: random.Random) -> bytes:
    return d[: r.randrange(len(d) + 1)]


def random_chunk(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    n = r.randint(1, 64)
    return d[:i] + r.randbytes(n) + d[i + n :]


def bom(d: bytes, r: random.Random) -> bytes:
    i = 0 if r.random() < 0.5 else r.randrange(len(d) + 1)
    return d[:i] + b"\xef\xbb\xbf" + d[i:]


def odd_value(d: bytes, r: random.Random) -> bytes:
    spans = _value_spans(d)
    if not spans:
        return insert(d, r)
    a, b = r.choice(spans)
    return d[:a] + r.choice(ODD_VALUES) + d[b:]


def deep(d: bytes, r: random.Random) -> bytes:
    spans = _value_spans(d)
    n = r.choice((10, 40, 200, 2000, 20000))
    nest = b"[" * n + b"1" + b"]" * n if r.random() < 0.5 else b"{a=" * n + b"1" + b"}" * n
    if r.random() < 0.3:  # dotted keys and [a.b.c...] tables nest too
        nest = b"1\n[" + b".".join(b"t%d" % k for k in range(n % 3000)) + b"]\nx = 1"
    if not spans:
        return d + b"\nx = " + nest
    a, b = r.choice(spans)
    return d[:a] + nest + d[b:]


def dup_line(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    i = r.randrange(len(lines))
    j = r.randrange(len(lines) + 1)
    lines.insert(j, lines[i])
    return b"\n".join(lines)


def swap_lines(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    i, j = r.randrange(len(lines)), r.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def drop_line(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    del lines[r.randrange(len(lines))]
    return b"\n".join(lines)


def rename_key(d: bytes, r: random.Random) -> bytes:
    keys = [m.span() for m in re.finditer(rb"(?m)^[a-z_]+(?=[ \t]*=)", d)]
    if not keys:
        return insert(d, r)
    a, b = r.choice(keys)
    other = r.choice([d[x:y] for x, y in keys])
    return d[:a] + other + d[b:]


MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    flip,
    set_byte,
    insert,
    delete,
    truncate,
    random_chunk,
    bom,
    odd_value,
    odd_value,
    deep,
    dup_line,
    swap_lines,
    drop_line,
    rename_key,
)


@dataclass
class Outcome:
    ok: int = 0
    refused: int = 0
    tracebacks: list[str] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)
    mutations: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "refused": self.refused,
            "tracebacks": len(self.tracebacks),
            "unclear_refusals": len(self.bad_messages),
        }


_WHERE = re.compile(r"(offset|line) \d+")


def message_problem(e: ConfigError) -> str | None:
    """Why a refusal's message is not good enough, or None: it must name the file (a
    ConfigFileError, or a path in the message of a key's file check) and the key path or where
    in the bytes; one line, bounded, and never a key from the file."""
    text = str(e)
    if isinstance(e, ConfigFileError):
        if not text.startswith(f"{e.file}: "):
            return "file not named"
    elif "/" not in e.detail:
        return "no file named"
    if not e.key_path and not _WHERE.search(e.detail):
        return "neither a key path nor a position"
    if "\n" in text or len(e.detail) > 450 or len(e.key_path) > 250:
        return "not one short line"
    low = text.lower()
    if any(k in low for k in KEYS):
        return "a key in the message"
    return None


def check_file(path: Path, load: Callable[[Path], object], out: Outcome) -> None:
    try:
        load(path)
    except ConfigError as e:
        out.refused += 1
        why = message_problem(e)
        if why is not None:
            out.bad_messages.append(f"{why}: {str(e)[:300]!r}")
    except Exception:  # the finding: what a user would see as a traceback
        out.tracebacks.append(traceback.format_exc(limit=-4))
    else:
        out.ok += 1


def load_config_file(path: Path) -> object:
    return preflight(read_config(path))  # what `config check` does


def setup(tmp: Path) -> tuple[Path, Path]:
    """The valid pair in `tmp`: agent.toml and devices.toml (0600), the state dir absent."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg, devs = tmp / "agent.toml", tmp / "devices.toml"
    cfg.write_bytes(CONFIG)
    devs.write_bytes(DEVICES)
    devs.chmod(0o600)
    return cfg, devs


def fuzz(tmp: Path, cases: int, seed: int) -> dict[str, Outcome]:
    """`cases` mutated configs (the devices file valid) and `cases` mutated devices files."""
    cfg, devs = setup(tmp)
    assert load_config_file(cfg) is not None, "the unmutated pair must load"
    rnd = random.Random(seed)
    results = {"config": Outcome(), "devices": Outcome()}
    for which, path, valid, load in (
        ("config", cfg, CONFIG, load_config_file),
        ("devices", devs, DEVICES, read_devices),
    ):
        out = results[which]
        for _ in range(cases):
            data = valid
            for _ in range(rnd.choice((1, 1, 1, 2, 3))):
                data, kind = mutate(data, rnd)
                out.mutations[kind] += 1
            path.write_bytes(data)
            check_file(path, load, out)
        path.write_bytes(valid)
    return results


def main(argv: list[str] | None = None) -> None:
    import tempfile

    from hil.bench.meta import git_commit

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000, help="per file kind")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        res = fuzz(Path(d), args.cases, args.seed)
    line = {
        "bench": "config_fuzz",
        "commit": git_commit(),
        "seed": args.seed,
        "cases_per_kind": args.cases,
        **{k: v.as_dict() for k, v in res.items()},
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    for k, v in res.items():
        for tb in v.tracebacks[:3] + v.bad_messages[:3]:
            print(f"{k}: {tb}", flush=True)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
