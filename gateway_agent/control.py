"""The control socket protocol, client side: one JSON request per line, one JSON answer per line.

The CLI imports this module alone (never the daemon); the daemon's server
(`gateway_agent.daemon.control_server`) shares the framing defined here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_REQUEST = 1 << 20  # the longest request line the server reads


def encode_request(cmd: str, args: dict[str, Any]) -> bytes:
    """One request line: `{"cmd": ..., **args}` and a newline."""
    return json.dumps({"cmd": cmd, **args}).encode() + b"\n"


def decode_request(line: bytes) -> dict[str, Any]:
    """Parse one request line; raises ValueError when it is not `{"cmd": "<name>", ...}`."""
    req = json.loads(line)
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        raise ValueError('expected {"cmd": ...}')
    return req


def encode_answer(obj: Any) -> bytes:
    """One answer line, compact; values JSON cannot hold are sent as their str()."""
    return json.dumps(obj, default=str, separators=(",", ":")).encode() + b"\n"


def request(path: Path, cmd: str, timeout_s: float = 10.0, **args: Any) -> Any:
    """Blocking client for the CLI. Raises ControlError when unreachable or on an error answer."""
    import socket

    from gateway_agent.errors import ControlError

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(path))
            s.sendall(encode_request(cmd, args))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as e:
        raise ControlError(f"control socket {path}: {e.strerror or e}") from e
    try:
        ans = json.loads(buf)
    except ValueError as e:
        raise ControlError(f"control socket {path}: bad answer") from e
    if not ans.get("ok"):
        raise ControlError(str(ans.get("error")))
    return ans.get("result")


def stream(path: Path, cmd: str, **args: Any) -> Iterator[Any]:
    """Yield JSON objects from a streaming command (e.g. readings tail) until the daemon closes."""
    import socket

    from gateway_agent.errors import ControlError

    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
    except OSError as e:
        raise ControlError(f"control socket {path}: {e.strerror or e}") from e
    with s, s.makefile("rb") as f:
        s.sendall(encode_request(cmd, args))
        for line in f:
            yield json.loads(line)
