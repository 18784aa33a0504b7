"""Reading a TOML file a user wrote: bytes -> UTF-8 -> TOML -> dict, every failure a ConfigError
naming the file and where (the byte offset, line and column, or the key path) — never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from gateway_agent.errors import ConfigError

# Larger than any real config or devices file (10,000 devices is ~3 MB); bounds memory on a
# mistaken path (a log, an image, /dev/zero).
MAX_FILE_BYTES = 64 * 1024 * 1024
# Deeper than any real table; tomllib itself recurses, and so would anything walking the values.
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the TOML spec's integer range


_TOML_AT = re.compile(r" \((?:at (line \d+, column \d+)|at end of document)\)$")
_QUOTED = re.compile(r'"([^"]*)"')
_HEX_SEPARATORS = re.compile(r"0x|[\s:_-]", re.IGNORECASE)


def _redact_key(m: re.Match[str]) -> str:
    """A quoted value that is 16+ bytes of hex is taken for a key put under the wrong name."""
    bare = _HEX_SEPARATORS.sub("", m.group(1))
    if len(bare) >= 32 and all(c in "0123456789abcdefABCDEF" for c in bare):
        return '"<redacted>"'
    return m.group(0)


def one_line(message: str, limit: int = 400) -> str:
    """A message as it leaves the config package: one line (a value quoted back may hold control
    characters), bounded (or a long value quoted back floods the journal), and no key quoted
    back (invariant 6, also when a key was typed under the wrong name)."""
    message = _QUOTED.sub(_redact_key, message)
    if not message.isprintable():
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return message if len(message) <= limit else message[:limit] + f"...({len(message)} chars)"


class ConfigFileError(ConfigError):
    """A ConfigError in a named file; `key_path` is the key inside it ("" when the problem is the
    file's bytes or syntax, then the message gives the offset or line)."""

    def __init__(self, file: str | Path, key_path: str, message: str) -> None:
        super().__init__(one_line(key_path, 200), one_line(message))
        self.file = Path(file)
        self.args = (f"{self.file}: {self.args[0]}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.key_path, self.detail))


def in_file(file: str | Path, e: ConfigError) -> ConfigFileError:
    """`e` (raised by a loader on a parsed document) as an error in `file`."""
    if isinstance(e, ConfigFileError):
        return e
    return ConfigFileError(file, e.key_path, e.detail)


def byte_position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"offset {offset} (line {line}, column {col})"


def decode_utf8(data: bytes, file: str | Path) -> str:
    """UTF-8 text of a file, a leading BOM dropped (editors on Windows write one)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigFileError(
            file,
            "",
            f"not UTF-8: byte 0x{data[e.start]:02x} at {byte_position(data, e.start)}; "
            "save the file as UTF-8",
        ) from e
    return text[1:] if text.startswith("\ufeff") else text


def _long_number_offset(data: bytes) -> int:
    """Where tomllib's integer-length limit was hit (it does not say): the first long digit run."""
    run = 0
    for i, b in enumerate(data):
        run = run + 1 if chr(b) in "0123456789abcdefABCDEF_" else 0
        if run > 4300:
            return i - run + 1
    return 0


def _deep_offset(data: bytes) -> int:
    """Where brackets first nest past MAX_DEPTH (strings are not skipped: a hint, not a parse)."""
    depth = 0
    for i, b in enumerate(data):
        depth += (b in b"[{") - (b in b"]}")
        if depth > MAX_DEPTH:
            return i
    return 0


def _toml_error_text(e: tomllib.TOMLDecodeError, data: bytes) -> str:
    """tomllib ends its message "(at line L, column C)" or "(at end of document)": the position
    goes first, so that cutting a long message (it may list a long key) never loses it."""
    m = _TOML_AT.search(str(e))
    if m is None:
        return f"not valid TOML: {e}"
    where = m.group(1) or f"the end, {byte_position(data, len(data))}"
    return f"not valid TOML at {where}: {str(e)[: m.start()]}"


def parse_toml(data: bytes, file: str | Path) -> dict[str, Any]:
    """Decode and parse; the document's nesting is bounded. Raises ConfigFileError."""
    text = decode_utf8(data, file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigFileError(file, "", _toml_error_text(e, data)) from e
    except ValueError as e:  # int() refuses more than 4300 digits (CVE-2020-10735 limit)
        where = byte_position(data, _long_number_offset(data))
        raise ConfigFileError(file, "", f"not valid TOML: a number too long at {where}") from e
    except RecursionError as e:  # arrays or inline tables nested hundreds deep
        where = byte_position(data, _deep_offset(data))
        raise ConfigFileError(
            file, "", f"not valid TOML: nested more than {MAX_DEPTH} levels deep at {where}"
        ) from e
    _check_values(doc, file)
    return doc


def _check_values(doc: dict[str, Any], file: str | Path) -> None:
    """Bounded nesting, and integers in TOML's 64-bit range: tomllib accepts any size, but
    nothing downstream expects a 400-digit number (float() and repr() of one raise)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigFileError(file, path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
            raise ConfigFileError(
                file, path, f"an integer of {v.bit_length()} bits; TOML integers are 64-bit"
            )
        if isinstance(v, dict):
            stack.extend((x, f"{path}.{k}" if path else str(k), depth + 1) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v))


def read_bytes(file: str | Path) -> bytes:
    """A user's file, bounded in size. Raises ConfigFileError (missing, a directory, no access)."""
    p = Path(file)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigFileError(p, "", f"cannot read: {e.strerror or e}") from e
    if len(data) > MAX_FILE_BYTES:
        raise ConfigFileError(p, "", f"larger than {MAX_FILE_BYTES // 2**20} MiB; not a config")
    return data


def read_toml(file: str | Path) -> dict[str, Any]:
    """Read and parse a TOML file. Raises ConfigFileError naming the file and where."""
    return parse_toml(read_bytes(file), file)
