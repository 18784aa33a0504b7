"""The console's users and API token: scrypt password hashes, the 0600 users file, the token file.

Read once at start (a bad file stops the start with one line, like a world-readable key file).
`python -m gateway_agent.web.users NAME ROLE` prints a `[[user]]` block with a fresh hash.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.secret import Secret
from gateway_agent.web.settings import ROLES, WebSettings

# scrypt n=2^14, r=8, p=1: 16 MiB and ~50 ms on a Pi 4 per check (RFC 7914's interactive
# figure); with the login rate limit this bounds what a password flood costs the gateway.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
MAX_PASSWORD = 1024  # longer is refused before hashing: bounded work per attempt
MAX_USERS = 1000


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str

    def __repr__(self) -> str:
        return f"User(name={self.name!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class Credentials:
    users: dict[str, User]
    token: Secret | None = None
    token_role: str = "viewer"  # noqa: S105  (a role name)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64): what a users file stores, never the password."""
    salt = salt or secrets.token_bytes(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(h)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, h = (
            base64.b64decode(parts[4], validate=True),
            base64.b64decode(parts[5], validate=True),
        )
    except ValueError:
        return None
    # Bounds: a hand-edited file must not make one login cost a gigabyte or a minute.
    if not (2 <= n <= 1 << 17 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
        return None
    if len(salt) < 8 or len(h) < 16:
        return None
    return n, r, p, salt, h


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored hash (blocking: ~50 ms)."""
    parsed = _parse_hash(stored)
    if parsed is None or len(password) > MAX_PASSWORD:
        return False
    n, r, p, salt, h = parsed
    got = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(h), maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(got, h)


def check_private_file(path: Path, key_path: str) -> None:
    """The file exists and only its owner may read it (mode 0600 or stricter)."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(key_path, f"{path}: cannot read: {e.strerror}") from e
    if mode & 0o077:
        raise ConfigError(
            key_path,
            f"{path} holds credentials and others may read it (mode {mode & 0o777:o}); "
            f"run: chmod 600 {path}",
        )


def load_users(doc: dict[str, Any], key_path: str = "web.users_file") -> dict[str, User]:
    """The parsed users file: `[[user]]` tables with name, role, password (a scrypt hash)."""
    raw = doc.get("user", [])
    extra = sorted(set(doc) - {"user"})
    if extra:
        raise ConfigError(f"{key_path}: {extra[0]}", "unknown key (expected [[user]] tables)")
    if not isinstance(raw, list) or len(raw) > MAX_USERS:
        raise ConfigError(f"{key_path}: user", f"expected at most {MAX_USERS} [[user]] tables")
    out: dict[str, User] = {}
    for i, u in enumerate(raw):
        p = f"{key_path}: user[{i}]"
        if not isinstance(u, dict) or set(u) - {"name", "role", "password"}:
            raise ConfigError(p, "expected a table with name, role and password")
        name, role, pw = u.get("name"), u.get("role"), u.get("password")
        if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
            raise ConfigError(f"{p}.name", "expected a name of 1-64 printable characters")
        if role not in ROLES:
            raise ConfigError(f"{p}.role", f"expected one of {' | '.join(ROLES)}")
        if not isinstance(pw, str) or _parse_hash(pw) is None:
            # The value is never quoted back: it may be a password typed in clear.
            raise ConfigError(
                f"{p}.password",
                "expected a scrypt hash (make one: python -m gateway_agent.web.users NAME ROLE)",
            )
        if name in out:
            raise ConfigError(f"{p}.name", f"duplicate user {name!r}")
        out[name] = User(name, str(role), pw)
    return out


def read_credentials(s: WebSettings) -> Credentials:
    """Read and check the users file and token file named by `s` (at start). ConfigError."""
    users: dict[str, User] = {}
    token: Secret | None = None
    if s.users_file is not None:
        check_private_file(s.users_file, "web.users_file")
        try:
            doc = tomllib.loads(s.users_file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError("web.users_file", f"{s.users_file}: {e}") from e
        users = load_users(doc)
    if s.token_file is not None:
        check_private_file(s.token_file, "web.token_file")
        try:
            text = s.token_file.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("web.token_file", f"{s.token_file}: cannot read") from e
        if len(text) < 32 or not text.isascii() or not text.isprintable() or " " in text:
            raise ConfigError(
                "web.token_file", "expected one token of 32+ printable ASCII characters"
            )
        token = Secret(text.encode())
    return Credentials(users, token, s.token_role)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ROLES:
        sys.stderr.write("usage: python -m gateway_agent.web.users NAME viewer|operator\n")
        return 2
    pw = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(pw) < 8:
        sys.stderr.write("a password has at least 8 characters\n")
        return 1
    sys.stdout.write(
        f'[[user]]\nname = "{argv[0]}"\nrole = "{argv[1]}"\npassword = "{hash_password(pw)}"\n'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
