"""The page shell: head, navigation, sign-out form, and the small HTML helpers pages share. Pure.

Every value that came from a device, a config or a user passes through `e()` (html.escape).
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

NAV = (
    ("/", "Overview"),
    ("/gateways", "Gateways"),
    ("/devices", "Devices"),
    ("/alerts", "Alerts"),
    ("/live", "Live"),
    ("/outbox", "Outbox"),
    ("/reports", "Reports"),
    ("/doctor", "Doctor"),
)
LIGHT_TEXT = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}


def e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def when(t: float | None) -> str:
    if not t:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def ago(t: float | None, now: float) -> str:
    if not t:
        return "never"
    s = max(now - t, 0)
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 172_800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86_400:.0f} days ago"


def light(status: str) -> str:
    return f'<span class="light {e(status)}">{LIGHT_TEXT.get(status, e(status))}</span>'


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def page(
    title: str,
    body: str,
    *,
    path: str,
    user: str | None,
    role: str | None,
    csrf: str,
    gateway_id: str,
    script: bool = False,
) -> str:
    nav = "".join(
        f'<li><a href="{href}"{" aria-current=page" if _current(path, href) else ""}>'
        f"{label}</a></li>"
        for href, label in NAV
    )
    who = ""
    if user:
        who = (
            f'<form method="post" action="/logout" class="who">{csrf_field(csrf)}'
            f"<span>{e(user)} ({e(role)})</span> <button type=submit>Sign out</button></form>"
        )
    js = '<script src="/static/app.js" defer></script>' if script else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · {e(gateway_id)}</title>"
        f'<link rel="stylesheet" href="/static/style.css">{js}</head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><span class="brand">gateway-agent · {e(gateway_id)}</span>{who}'
        f'<nav aria-label="Main"><ul>{nav}</ul></nav></header>'
        f'<main id="main" tabindex="-1"><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def _current(path: str, href: str) -> bool:
    return path == href if href == "/" else path.startswith(href)


def login_page(csrf: str, next_path: str, message: str = "", gateway_id: str = "") -> str:
    msg = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Sign in · {e(gateway_id)}</title>"
        '<link rel="stylesheet" href="/static/style.css"></head><body>'
        f'<main id="main" class="login"><h1>Sign in</h1><p>gateway-agent · {e(gateway_id)}</p>{msg}'
        f'<form method="post" action="/login">{csrf_field(csrf)}'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label for="username">User</label>'
        '<input id="username" name="username" autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form></main></body></html>'
    )


def table(headers: list[str], rows: list[list[str]], caption: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{e(h)}">{c}</td>' for h, c in zip(headers, r, strict=False))
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
