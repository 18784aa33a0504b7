"""What the HTTP outputs (influxdb, webhook) share: one aiohttp session per open link, a POST
that turns every failure into a verdict, and the secret files read once at open.

A response's status decides a row's fate:
- 2xx: it landed;
- 408, 429, 5xx, a redirect, a timeout, no connection: the destination is down (`OutputDown`:
  the worker backs off and offers the same rows again, in order);
- 401, 403, 404, 405, 407: the destination is misconfigured for every row alike (credentials,
  URL, database): also down, so a typo never drops a week of readings; the reason says why;
- any other 4xx: this row will never land (refused: dropped and counted per output).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from gateway_agent.outputs.worker import OutputDown

DONE, REFUSED, DOWN = "done", "refused", "down"
# 4xx that say "not this destination, as configured" rather than "not this row".
CONFIG_STATUSES = frozenset({401, 403, 404, 405, 407})
RETRY_STATUSES = frozenset({408, 429})
REASON_MAX = 160  # characters of the server's error text kept in a reason


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str  # the server's error text, one line, trimmed (empty for 2xx)

    @property
    def verdict(self) -> str:
        s = self.status
        if 200 <= s < 300:
            return DONE
        if 400 <= s < 500 and s not in CONFIG_STATUSES and s not in RETRY_STATUSES:
            return REFUSED
        return DOWN

    @property
    def reason(self) -> str:
        return f"http {self.status}: {self.text}" if self.text else f"http {self.status}"


def read_secret(path: Path) -> str:
    """A token, password or key from its file (0600, checked by config check and the start),
    without its trailing newline. Raises OutputDown naming the file, never its content."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise OutputDown(f"cannot read {path}: {type(e).__name__}") from None
    if not value:
        raise OutputDown(f"{path} is empty")
    return value


def error_text(raw: str) -> str:
    """The server's error in one trimmed line: InfluxDB answers {"error": ...} (1.x) or
    {"message": ...} (2.x); anything else is taken as text."""
    text = raw.strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                text = doc[key]
                break
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 3] + "..."


def where(url: str) -> str:
    """host:port of a URL for reasons and logs (never its userinfo, path or query)."""
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.hostname}:{port}"


class HttpLink:
    """One aiohttp session while the output is open; `post` answers or raises OutputDown."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=self.timeout, raise_for_status=False)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        if self.session is None:
            raise OutputDown("not open")
        try:
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = "" if 200 <= resp.status < 300 else await resp.text(errors="replace")
                await resp.read()
                return Answer(resp.status, error_text(raw))
        except TimeoutError:
            raise OutputDown(f"timeout after {self.timeout.total} s ({where(url)})") from None
        except aiohttp.ClientConnectorError as e:
            why = e.os_error.strerror or type(e.os_error).__name__
            raise OutputDown(f"cannot connect to {where(url)}: {why}") from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as e:
            raise OutputDown(f"{type(e).__name__} ({where(url)})") from None

    async def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()
