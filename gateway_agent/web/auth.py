"""Who is asking: sessions (cookie), CSRF tokens, the login rate limit, roles. No IO, no clock:
callers pass `now` (loop time, seconds)."""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from gateway_agent.web.settings import WebSettings

COOKIE = "ga_session"
MAX_SESSIONS = 1000  # signed-in sessions kept; the least recently used goes first
MAX_VISITORS = 2000  # sessions before sign-in (they only carry a CSRF token), kept apart so a
# flood of anonymous requests cannot push signed-in users out
MAX_TRACKED_CLIENTS = 10_000
FAILURE_WINDOW_S = 60.0


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    created: float
    last: float
    user: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a signed-in user, the API token, or anyone (no auth configured)."""

    name: str
    role: str
    via: str  # "session" | "token" | "open"

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def _new_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass(slots=True)
class Sessions:
    """Server-side sessions in memory (a restart signs everyone out; nothing on the SD card)."""

    idle_s: float
    max_age_s: float
    signed_in: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    visitors: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    @classmethod
    def for_settings(cls, s: WebSettings) -> Sessions:
        return cls(s.session_idle_min * 60, s.session_max_h * 3600)

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid or len(sid) > 64:
            return None
        for table in (self.signed_in, self.visitors):
            s = table.get(sid)
            if s is None:
                continue
            if now - s.last > self.idle_s or now - s.created > self.max_age_s:
                del table[sid]
                return None
            s.last = now
            table.move_to_end(sid)
            return s
        return None

    def visitor(self, now: float) -> Session:
        s = Session(_new_id(), _new_id(), now, now)
        self.visitors[s.sid] = s
        while len(self.visitors) > MAX_VISITORS:
            self.visitors.popitem(last=False)
        return s

    def sign_in(self, old: Session | None, user: str, role: str, now: float) -> Session:
        """A new session id and CSRF token on sign-in (no session fixation)."""
        if old is not None:
            self.drop(old.sid)
        s = Session(_new_id(), _new_id(), now, now, user, role)
        self.signed_in[s.sid] = s
        while len(self.signed_in) > MAX_SESSIONS:
            self.signed_in.popitem(last=False)
        return s

    def drop(self, sid: str) -> None:
        self.signed_in.pop(sid, None)
        self.visitors.pop(sid, None)

    def drop_user(self, user: str) -> None:
        for sid in [k for k, s in self.signed_in.items() if s.user == user]:
            del self.signed_in[sid]


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    if session is None or not sent:
        return False
    return hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace"))


def token_ok(expected: bytes | None, header: str | None) -> bool:
    """`Authorization: Bearer <token>` against the configured token (constant time)."""
    if expected is None or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected)


@dataclass(slots=True)
class LoginLimiter:
    """Failed sign-ins per client address in the last minute; past the limit, refused (429)
    before any password is hashed."""

    per_min: int
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self.failures.get(client)
        if q is None:
            if len(self.failures) >= MAX_TRACKED_CLIENTS:
                self.failures.clear()  # a flood from many addresses: start over, stay bounded
            q = self.failures[client] = deque(maxlen=self.per_min)
        while q and now - q[0] > FAILURE_WINDOW_S:
            q.popleft()
        return q

    def retry_after(self, client: str, now: float) -> float:
        """0 when the client may try; else seconds until it may."""
        q = self._recent(client, now)
        if len(q) < self.per_min:
            return 0.0
        return max(1.0, FAILURE_WINDOW_S - (now - q[0]))

    def failed(self, client: str, now: float) -> None:
        self._recent(client, now).append(now)

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)
