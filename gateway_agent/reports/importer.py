"""`readings import FILE`: CSV or JSON lines (devEui, time, measurements) -> validated rows. Pure.

All or nothing: every line is checked and every problem is reported (line number + problem);
the caller stores the rows only when there is none. Storing (marked as imported, never forwarded
as live traffic) is the shell's job.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway_agent.errors import BadInput

NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
MAX_PROBLEMS = 50  # listed; the count is exact
EUI_KEYS = ("devEui", "dev_eui", "deveui")


class ImportFileError(BadInput):
    """The file has problems; `problems` lists (line number, problem), first MAX_PROBLEMS."""

    reason = "import_file"

    def __init__(self, problems: list[tuple[int, str]], count: int) -> None:
        head = "; ".join(f"line {n}: {p}" for n, p in problems[:5])
        super().__init__(f"{count} problem(s), nothing imported: {head}")
        self.problems = problems
        self.count = count


@dataclass(frozen=True, slots=True)
class ImportRow:
    dev_eui: bytes
    time: float  # Unix seconds
    measurements: Mapping[str, float]
    line: int


class _Bad(ValueError):
    pass


def _eui(v: Any) -> bytes:
    if not isinstance(v, str):
        raise _Bad("devEui: expected 16 hex digits")
    s = re.sub(r"[\s:\-_]", "", v.strip())
    if s[:2].lower() == "0x":
        s = s[2:]
    try:
        b = bytes.fromhex(s)
    except ValueError:
        raise _Bad(f"devEui: not hex: {v[:40]!r}") from None
    if len(b) != 8:
        raise _Bad(f"devEui: expected 8 bytes, got {len(b)}")
    return b


def _time(v: Any) -> float:
    """ISO 8601 with an offset or Z, or Unix seconds. A time without an offset is refused:
    local or UTC cannot be guessed for history from another system."""
    if (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        or isinstance(v, str)
        and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", v)
    ):
        t = float(v)
    elif isinstance(v, str):
        try:
            d = dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _Bad(f"time: not ISO 8601 or Unix seconds: {v[:40]!r}") from None
        if d.tzinfo is None:
            raise _Bad("time: no UTC offset (write 2026-01-05T10:00:00Z or +01:00)")
        t = d.timestamp()
    else:
        raise _Bad("time: missing")
    if not math.isfinite(t) or not 946684800 <= t <= 4102444800:  # 2000..2100
        raise _Bad("time: outside 2000-2100")
    return t


def _measurements(m: Any) -> dict[str, float]:
    if not isinstance(m, dict):
        raise _Bad("measurements: expected an object of name -> number")
    out: dict[str, float] = {}
    for k, v in m.items():
        if not isinstance(k, str) or not NAME.match(k):
            raise _Bad(f"measurements: bad name {str(k)[:40]!r} (snake_case, devices/FORMATS.md)")
        if v is None or v == "":
            continue
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise _Bad(f"measurements.{k}: not a number: {v[:40]!r}") from None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _Bad(f"measurements.{k}: not a finite number")
        out[k] = float(v)
    if not out:
        raise _Bad("measurements: none")
    return out


def _jsonl(lines: Iterable[str]) -> Iterable[tuple[int, Any]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield n, _Bad(f"not JSON: {e.msg}")
            continue
        except (ValueError, RecursionError):  # a 4,300+ digit number, nesting past the stack
            yield n, _Bad("not JSON this importer reads (a huge number or deep nesting)")
            continue
        if not isinstance(obj, dict):
            yield n, _Bad("expected a JSON object")
            continue
        eui = next((obj[k] for k in EUI_KEYS if k in obj), None)
        yield n, (eui, obj.get("time"), obj.get("measurements"))


def _csv(lines: Iterable[str]) -> Iterable[tuple[int, Any]]:
    reader = csv.reader(lines)
    header: list[str] | None = None
    for row in reader:
        n = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            if not any(h in EUI_KEYS for h in header) or "time" not in header:
                yield (
                    n,
                    _Bad(
                        "header: expected columns devEui, time and measurements (or one column per measurement)"
                    ),
                )
                return
            continue
        if len(row) != len(header):
            yield n, _Bad(f"expected {len(header)} columns, got {len(row)}")
            continue
        rec = dict(zip(header, row, strict=True))
        eui = next((rec[k] for k in EUI_KEYS if k in rec), None)
        if "measurements" in rec:
            try:
                m: Any = json.loads(rec["measurements"])
            except ValueError:
                yield n, _Bad("measurements: not a JSON object")
                continue
        else:  # wide: one column per measurement
            m = {k: v.strip() for k, v in rec.items() if k not in EUI_KEYS and k != "time"}
        yield n, (eui, rec["time"], m)


def sniff_format(first_line: str) -> str:
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def parse_import(text: str, fmt: str | None = None) -> list[ImportRow]:
    """Every row, or ImportFileError with every problem. `fmt`: "csv" | "jsonl" | None (sniff)."""
    lines = text.splitlines()
    if fmt is None:
        fmt = sniff_format(next((ln for ln in lines if ln.strip()), ""))
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"format must be csv or jsonl, got {fmt!r}")
    rows: list[ImportRow] = []
    problems: list[tuple[int, str]] = []
    count = 0
    seen: dict[tuple[bytes, float], int] = {}
    source = _jsonl(lines) if fmt == "jsonl" else _csv(lines)
    for n, item in source:
        try:
            if isinstance(item, _Bad):
                raise item
            eui_v, time_v, m_v = item
            eui, t, m = _eui(eui_v), _time(time_v), _measurements(m_v)
            if (eui, t) in seen:
                raise _Bad(f"same devEui and time as line {seen[(eui, t)]}")
            seen[(eui, t)] = n
            rows.append(ImportRow(eui, t, MappingProxyType(m), n))
        except _Bad as e:
            count += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append((n, str(e)))
    if count:
        raise ImportFileError(problems, count)
    if not rows:
        raise ImportFileError([(0, "no readings in the file")], 1)
    return rows
