"""The bodies of the console's pages, from the same JSON the API serves. Pure: data in, HTML out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from gateway_agent.status_lines import status_checks
from gateway_agent.web.chart import RANGES, Series, svg
from gateway_agent.web.layout import ago, csrf_field, e, light, table, when

PAGE_SIZE = 50


def checks_fragment(st: dict[str, Any], now: float) -> str:
    items = "".join(
        f'<li class="check {lt}">{light(lt)} <strong>{e(what)}</strong> <span>{e(detail)}</span></li>'
        for lt, what, detail in status_checks(st, now)
    )
    return f'<ul class="checks" id="checks" aria-live="polite">{items}</ul>'


def overview_body(st: dict[str, Any], now: float) -> str:
    return (
        checks_fragment(st, now)
        + f'<p class="note">Refreshes every 5 s. Updated <span id="updated">{e(when(now))}</span>.</p>'
    )


def gateways_body(st: dict[str, Any], now: float) -> str:
    gws = st.get("gateways") or {}
    if not gws:
        return "<p>No gateway has been heard yet.</p>"
    rows = [
        [
            e(gid),
            e(ago(g.get("last_seen"), now)),
            e(g.get("rx_ok", 0)),
            e(g.get("rx_bad", 0)),
            e(g.get("tx_ok", 0)),
            e(g.get("tx_failed", 0)),
        ]
        for gid, g in sorted(gws.items())
    ]
    return table(["gateway", "last packet", "rx ok", "rx bad", "tx ok", "tx failed"], rows)


def _battery(r: dict[str, Any]) -> str:
    if r.get("battery_v") is not None:
        return f"{r['battery_v']} V"
    if r.get("battery_pct") is not None:
        return f"{r['battery_pct']} %"
    return "-"


def _values(lv: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in list(lv.items())[:4] if k not in ("battery_v",))


def search(rows: list[dict[str, Any]], q: str) -> list[dict[str, Any]]:
    """Devices whose EUI, name, class, codec or a tag contains `q` (case-insensitive)."""
    q = q.strip().lower()
    if not q:
        return rows
    return [
        r
        for r in rows
        if q in r["dev_eui"]
        or q in (r.get("name") or "").lower()
        or q in (r.get("class") or "").lower()
        or q in (r.get("codec") or "").lower()
        or any(q in t.lower() for t in r.get("tags") or ())
    ]


def devices_body(rows: list[dict[str, Any]], q: str, page_no: int, now: float) -> str:
    found = search(rows, q)
    pages = max(1, -(-len(found) // PAGE_SIZE))
    page_no = min(max(page_no, 1), pages)
    shown = found[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    form = (
        '<form method="get" action="/devices" role="search" class="search">'
        '<label for="q">Search</label>'
        f'<input id="q" name="q" type="search" value="{e(q)}" placeholder="name, EUI, class, tag">'
        "<button type=submit>Search</button></form>"
    )
    body = [
        [
            f'<a href="/devices/{e(r["dev_eui"])}">{e(r.get("name") or r["dev_eui"])}</a>',
            f"<code>{e(r['dev_eui'])}</code>",
            e(r.get("class")),
            e(ago(r.get("last_seen"), now)),
            e("-" if r.get("rssi") is None else r["rssi"]),
            e("-" if r.get("snr") is None else r["snr"]),
            e(_battery(r)),
            e(_values(r.get("last_values") or {})),
        ]
        for r in shown
    ]
    nav = ""
    if pages > 1:
        links = []
        for n, label in ((page_no - 1, "Previous"), (page_no + 1, "Next")):
            if 1 <= n <= pages:
                links.append(f'<a href="/devices?{urlencode({"q": q, "page": n})}">{label}</a>')
        nav = f'<nav aria-label="Pages" class="pages">Page {page_no} of {pages} {" ".join(links)}</nav>'
    return (
        form
        + f"<p>{len(found)} of {len(rows)} devices</p>"
        + table(
            ["name", "DevEUI", "class", "last seen", "RSSI", "SNR", "battery", "last values"],
            body,
        )
        + nav
    )


def alert_rows(rows: list[dict[str, Any]], csrf: str, operator: bool) -> str:
    out = []
    for a in rows:
        if a["state"] == "raised" and not a["acked"]:
            act = (
                f'<form method="post" action="/alerts/ack">{csrf_field(csrf)}'
                f'<input type="hidden" name="id" value="{e(a["id"])}">'
                f'<button type="submit">Acknowledge</button></form>'
                if operator
                else "open"
            )
        else:
            act = "acknowledged" if a["acked"] else e(a["state"])
        out.append(
            [
                e(when(a["time"])),
                f'<a href="/devices/{e(a["dev_eui"])}"><code>{e(a["dev_eui"])}</code></a>',
                e(a["rule"]),
                f'<span class="sev {e(a["severity"])}">{e(a["severity"])}</span>',
                e(f"{a.get('measurement') or ''} {'' if a.get('value') is None else a['value']}"),
                act,
            ]
        )
    return table(["time", "device", "rule", "severity", "value", "state"], out)


def device_body(
    dev: dict[str, Any],
    series: dict[str, Series],
    rng: str,
    alerts: list[dict[str, Any]],
    capped: bool,
    csrf: str,
    operator: bool,
    now: float,
    *,
    encodes: bool = False,
    queued: Mapping[str, str] | None = None,
) -> str:
    eui = dev["dev_eui"]
    facts = [
        ("DevEUI", f"<code>{e(eui)}</code>"),
        ("class", e(dev.get("class"))),
        ("codec", e(dev.get("codec") or "-")),
        ("tags", e(", ".join(dev.get("tags") or []) or "-")),
        ("activation", e(dev.get("activation"))),
        ("last seen", e(ago(dev.get("last_seen"), now))),
        ("RSSI / SNR", e(f"{dev.get('rssi', '-')} dBm / {dev.get('snr', '-')} dB")),
        ("battery", e(_battery(dev))),
        ("FCnt up", e(dev.get("fcnt_up"))),
    ]
    dl = "<dl class=facts>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    tabs = " ".join(
        f'<a href="/devices/{quote(eui)}?range={r}"'
        + (' aria-current="true" class="on"' if r == rng else "")
        + f">{r}</a>"
        for r in RANGES
    )
    charts = (
        "".join(
            f'<section class="chart-box"><h3>{e(name)}</h3>{svg(s)}</section>'
            for name, s in series.items()
        )
        or f"<p>No readings in the last {e(rng)}.</p>"
    )
    note = "<p class=note>Showing the newest readings only (row cap).</p>" if capped else ""
    downlink = ""
    if operator:
        downlink = (
            f'<h2>Queue a downlink</h2><form method="post" action="/devices/{e(eui)}/downlink" '
            f'class="downlink">{csrf_field(csrf)}'
            '<label for="f_port">FPort</label>'
            '<input id="f_port" name="f_port" type="number" min="1" max="223" value="1" required>'
            '<label for="payload">Payload (hex)</label>'
            '<input id="payload" name="payload" pattern="[0-9a-fA-F]{2,}" required>'
            '<label><input type="checkbox" name="confirmed" value="1"> confirmed</label>'
            "<button type=submit>Queue</button></form>"
        )
    if encodes:  # the codec's encodeDownlink makes the bytes (and usually the fPort)
        downlink += (
            f'<h2>Queue a downlink by object</h2><form method="post" '
            f'action="/devices/{e(eui)}/downlink" class="downlink">{csrf_field(csrf)}'
            '<label for="object">Object (JSON, encoded by the codec)</label>'
            '<textarea id="object" name="object" rows="3" maxlength="4000" required '
            "placeholder='{\"interval\": 600}'></textarea>"
            '<label for="object_f_port">FPort (when the codec names none)</label>'
            '<input id="object_f_port" name="f_port" type="number" min="1" max="223">'
            '<label><input type="checkbox" name="confirmed" value="1"> confirmed</label>'
            "<button type=submit>Encode and queue</button></form>"
        )
    if queued and queued.get("queued", "").isdigit():
        downlink = (
            f'<p class="note" role="status">Queued downlink {e(queued["queued"])}: fPort '
            f"{e(queued.get('fport'))}, <code>{e(queued.get('bytes'))}</code></p>" + downlink
        )
    return (
        f"<h2>{e(dev.get('name') or eui)}</h2>{dl}"
        f'<h2>Readings</h2><nav aria-label="Range" class="ranges">{tabs}</nav>{note}{charts}'
        f"<h2>Alerts</h2>"
        + (alert_rows(alerts, csrf, operator) if alerts else "<p>No alerts.</p>")
        + downlink
    )


def live_body() -> str:
    return (
        "<p>New readings appear here as they are stored (newest first).</p>"
        '<p id="live-state" role="status">connecting…</p>'
        '<ol id="live" class="live" aria-live="polite"></ol>'
    )


def outbox_body(st: dict[str, Any], csrf: str, operator: bool) -> str:
    ob = st["outbox"]
    up = st.get("upstream") or {}
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(ob["by_kind"].items())) or "-"
    rows = [
        ["waiting", e(ob["depth"])],
        ["by kind", e(kinds)],
        ["oldest", e("-" if ob.get("oldest_age_s") is None else f"{ob['oldest_age_s']:.0f} s")],
        ["upstream", e(f"{up.get('host', '-')}:{up.get('port', '-')}")],
        ["connected", e("yes" if up.get("connected") else "no")],
        ["last error", e(up.get("last_error") or "-")],
        ["published", e(up.get("published", 0))],
    ]
    form = ""
    if operator:
        form = (
            f'<form method="post" action="/outbox/retry">{csrf_field(csrf)}'
            "<button type=submit>Retry upstream now</button></form>"
        )
    return table(["", ""], rows) + form


def reports_body(kinds: list[str], month: str) -> str:
    form = (
        '<form method="get" action="/reports" class="search"><label for="month">Month</label>'
        f'<input id="month" name="month" type="month" value="{e(month)}" required>'
        "<button type=submit>Show</button></form>"
    )
    items = "".join(
        f"<li><strong>{e(k)}</strong>: "
        + " ".join(
            f'<a href="/reports/{e(k)}.{fmt}?month={e(month)}" download>{fmt.upper()}</a>'
            for fmt in ("html", "csv", "json")
        )
        + "</li>"
        for k in kinds
    )
    return form + f"<ul class=reports>{items}</ul>"


def doctor_body(checks: list[dict[str, str]]) -> str:
    items = "".join(
        f'<li class="check {e(c["status"])}">{light(c["status"])} <strong>{e(c["name"])}</strong> '
        f"<span>{e(c['detail'])}</span>"
        + (f"<br>fix: <code>{e(c['fix'])}</code>" if c.get("fix") else "")
        + "</li>"
        for c in checks
    )
    return f'<ul class="checks">{items}</ul>'
