"""`type = "influxdb"`: readings, alerts and events as InfluxDB line protocol over HTTP, one
request per delivery (up to `batch_max` rows).

1.x: `POST {url}/write?db={database}&precision=ms` (basic auth with `username` and
`password_file` if given); 2.x/3.x: `POST {url}/api/v2/write?org=&bucket=&precision=ms` with
`Authorization: Token <token_file>`.

What is written (docs/outputs-http.md):
- a reading: measurement = the device class when the message carries one, else `readings`;
  tags dev_eui, name, class, tags (the device tags, comma-joined); fields = the normalized
  measurements, every one a float (a field's type can never change in InfluxDB), plus `fcnt`
  (integer) and `id` (the reading id, string); timestamp = the reception time (ms);
- an alert: measurement `alerts`, tags dev_eui, rule, severity, state; fields value (float),
  message, measurement, id;
- an event: measurement `events`, tag event; fields id and data (the rest of the event, JSON).

Escaping follows the line-protocol reference (measurement: comma, space; tag keys and values
and field keys: comma, equals, space; string fields: double quote, backslash) and is tested by
writing into a real influxd and querying back (tests/outputs/test_influxdb.py): no library here
is both small and kept up (influxdb-client's Point pulls in reactivex, urllib3, dateutil).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.http import DONE, DOWN, REFUSED, Answer, HttpLink, read_secret
from gateway_agent.outputs.worker import Delivery, OutputDown, SinkContext
from gateway_agent.store import QueueRow

READINGS = "readings"  # the measurement of readings whose message names no device class
ALERTS = "alerts"
EVENTS = "events"
RESERVED_FIELDS = ("fcnt", "id")  # beside the measurements; a measurement by these names yields


def _escaper(chars: str) -> dict[int, str]:
    return {ord(c): "\\" + c for c in chars}


_MEAS = _escaper(", ")
_KEY = _escaper(",= ")
_STR = _escaper('"\\')


def measurement_name(s: str) -> str:
    """As a tag (tag_text), but only commas and spaces are escaped."""
    return s.replace("\n", " ").replace("\r", " ").rstrip("\\").translate(_MEAS) or "_"


def tag_text(s: str) -> str:
    """A tag key or value, or a field key. Line protocol has no escape for a line break (it
    becomes a space) nor for a backslash: InfluxDB keeps backslashes as they are, but one at
    the end would escape the separator after it, so trailing backslashes are left out."""
    return s.replace("\n", " ").replace("\r", " ").rstrip("\\").translate(_KEY)


def string_field(s: str) -> str:
    return '"' + s.translate(_STR) + '"'


def float_field(v: Any) -> str | None:
    """A number as a float field (also integers and booleans: one type per field, always), or
    None for what InfluxDB cannot hold (NaN, infinities, non-numbers)."""
    if isinstance(v, bool):
        v = float(v)
    if not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return repr(f) if math.isfinite(f) else None


def point(measurement: str, tags: dict[str, str], fields: dict[str, str], time_ms: int) -> str:
    """One line: tags sorted by key (InfluxDB's advice), empty tag values left out. `fields`
    values are already encoded."""
    head = measurement_name(measurement)
    for k in sorted(tags):
        v = tag_text(tags[k])
        if v:
            head += f",{tag_text(k)}={v}"
    body = ",".join(f"{tag_text(k)}={v}" for k, v in fields.items())
    return f"{head} {body} {time_ms}"


def reading_line(msg: dict[str, Any], created: float) -> str:
    info = msg.get("deviceInfo") or {}
    cls = info.get("class") or msg.get("class") or ""
    tags = {
        "dev_eui": str(msg.get("devEui") or ""),
        "name": str(info.get("deviceName") or ""),
        "class": str(cls),
        "tags": ",".join(str(t) for t in info.get("tags") or ()),
    }
    fields: dict[str, str] = {}
    for k, v in (msg.get("measurements") or {}).items():
        f = float_field(v)
        if f is not None and k not in RESERVED_FIELDS and tag_text(str(k)):
            fields[str(k)] = f
    if isinstance(msg.get("fCnt"), int):
        fields["fcnt"] = f"{msg['fCnt']}i"
    fields["id"] = string_field(str(msg.get("id", "")))
    return point(str(cls) or READINGS, tags, fields, round(created * 1000))


def alert_line(msg: dict[str, Any], created: float) -> str:
    tags = {k: str(msg.get(k) or "") for k in ("rule", "severity", "state")}
    tags["dev_eui"] = str(msg.get("devEui") or "")
    fields: dict[str, str] = {}
    value = float_field(msg.get("value"))
    if value is not None:
        fields["value"] = value
    fields["message"] = string_field(str(msg.get("message") or ""))
    fields["measurement"] = string_field(str(msg.get("measurement") or ""))
    fields["id"] = string_field(str(msg.get("id", "")))
    return point(ALERTS, tags, fields, round(created * 1000))


def event_line(msg: dict[str, Any], created: float) -> str:
    rest = {k: v for k, v in msg.items() if k not in ("id", "event", "time")}
    fields = {
        "id": string_field(str(msg.get("id", ""))),
        "data": string_field(json.dumps(rest, separators=(",", ":"), sort_keys=True)),
    }
    return point(EVENTS, {"event": str(msg.get("event") or "")}, fields, round(created * 1000))


_LINES = {"up": reading_line, "alert": alert_line, "event": event_line}


def row_line(row: QueueRow) -> str:
    """The row's line; ValueError when its body is not a message this output can write."""
    make = _LINES.get(row.kind)
    if make is None:
        raise ValueError(f"kind {row.kind!r} is not written to InfluxDB")
    body = row.body.decode() if isinstance(row.body, bytes) else row.body
    msg = orjson.loads(body)
    if not isinstance(msg, dict):
        raise ValueError("body is not a JSON object")
    return make(msg, row.created)


def write_url(cfg: OutputConfig) -> str:
    base = cfg.url.rstrip("/")
    if cfg.database is not None:
        return f"{base}/write?" + urlencode({"db": cfg.database, "precision": "ms"})
    q = {"org": cfg.org or "", "bucket": cfg.bucket or "", "precision": "ms"}
    return f"{base}/api/v2/write?" + urlencode(q)


class InfluxSink:
    """Batches of lines; a batch the server refuses (400: a type conflict, a bad point) is
    sent again line by line, so one bad row costs only itself (1.x keeps the good points of a
    partial write; writing them twice is harmless: same series and time)."""

    def __init__(self, cfg: OutputConfig, ctx: SinkContext) -> None:
        self.cfg = cfg
        self.url = write_url(cfg)
        self.link = HttpLink(cfg.timeout_s)
        self.headers: dict[str, str] = {}

    async def open(self) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        cfg = self.cfg
        if cfg.token_file is not None:
            headers["Authorization"] = f"Token {read_secret(cfg.token_file)}"
        elif cfg.username is not None:
            pw = read_secret(cfg.password_file) if cfg.password_file is not None else ""
            cred = base64.b64encode(f"{cfg.username}:{pw}".encode()).decode()
            headers["Authorization"] = f"Basic {cred}"
        self.headers = headers
        await self.link.open()

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        out = Delivery()
        lines: list[tuple[int, str]] = []
        for r in rows:
            try:
                lines.append((r.seq, row_line(r)))
            except (ValueError, TypeError, AttributeError) as e:  # orjson.JSONDecodeError too
                out.refused.append(r.seq)
                out.refused_reason = f"unwritable: {type(e).__name__}"
        if not lines:
            return out
        got = await self._post([ln for _, ln in lines])
        if got.verdict == DONE:
            out.done.extend(seq for seq, _ in lines)
        elif got.verdict == DOWN:
            raise OutputDown(got.reason)
        elif len(lines) == 1:
            out.refused.append(lines[0][0])
            out.refused_reason = got.reason
        else:
            await self._one_by_one(lines, out)
        return out

    async def _one_by_one(self, lines: list[tuple[int, str]], out: Delivery) -> None:
        for seq, ln in lines:
            try:
                got = await self._post([ln])
            except OutputDown:
                if out.done or out.refused:
                    return  # what landed stays landed; the rest is offered again
                raise
            if got.verdict == DONE:
                out.done.append(seq)
            elif got.verdict == REFUSED:
                out.refused.append(seq)
                out.refused_reason = got.reason
            elif out.done or out.refused:
                return
            else:
                raise OutputDown(got.reason)

    async def _post(self, lines: list[str]) -> Answer:
        return await self.link.post(self.url, "\n".join(lines).encode(), self.headers)

    async def close(self) -> None:
        await self.link.close()


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> InfluxSink:
    return InfluxSink(cfg, ctx)
