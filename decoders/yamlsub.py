"""The YAML subset the TTN Device Repository writes (block maps and lists, flow lists, quoted and
plain scalars, block scalars, comments), read without a YAML dependency. Pure: text in, data out.
"""

from __future__ import annotations

import json
import re
from typing import Any

_INT = re.compile(r"[-+]?(0x[0-9a-fA-F]+|0o[0-7]+|[0-9]+)$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
MAX_DEPTH = 64


class YamlError(ValueError):
    """Text outside the subset, with the 1-based line it is on."""


def _strip_comment(text: str) -> str:
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or text[i - 1] in " [{,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def scalar(text: str) -> Any:
    """One plain or quoted scalar: int (also 0x..), float, bool, null or string."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] == '"':
        return json.loads(t)
    if len(t) >= 2 and t[0] == t[-1] == "'":
        return t[1:-1].replace("''", "'")
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if _INT.match(t):
        return int(t, 0) if not re.match(r"[-+]?0[0-9]", t) else int(t, 10)
    if _FLOAT.match(t):
        return float(t)
    return t


def _flow(text: str, line: int) -> Any:
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\n":
            pos += 1

    def item(depth: int) -> Any:
        nonlocal pos
        if depth > MAX_DEPTH:
            raise YamlError(f"line {line}: nested too deeply")
        skip()
        if pos < len(text) and text[pos] in "[{":
            close = "]" if text[pos] == "[" else "}"
            is_map = close == "}"
            pos += 1
            out: Any = {} if is_map else []
            while True:
                skip()
                if pos < len(text) and text[pos] == close:
                    pos += 1
                    return out
                if is_map:
                    key = atom(":")
                    pos += 1
                    out[str(key)] = item(depth + 1)
                else:
                    out.append(item(depth + 1))
                skip()
                if pos < len(text) and text[pos] == ",":
                    pos += 1
                elif pos >= len(text) or text[pos] != close:
                    raise YamlError(f"line {line}: bad flow collection")
        return atom(",]}")

    def atom(stops: str) -> Any:
        nonlocal pos
        skip()
        start = pos
        if pos < len(text) and text[pos] in "'\"":
            q = text[pos]
            pos += 1
            while pos < len(text) and (text[pos] != q or (q == '"' and text[pos - 1] == "\\")):
                pos += 1
            pos += 1
        else:
            while pos < len(text) and text[pos] not in stops:
                pos += 1
        return scalar(text[start:pos])

    value = item(0)
    skip()
    if pos != len(text):
        raise YamlError(f"line {line}: text after a flow collection")
    return value


def _key_split(text: str) -> tuple[str, str] | None:
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and i == 0:
            quote = ch
        elif ch == ":" and (i + 1 == len(text) or text[i + 1] in " \t"):
            return text[:i].strip(), text[i + 1 :].strip()
    return None


class _Reader:
    def __init__(self, source: str) -> None:
        self.raw = source.splitlines()
        self.lines: list[tuple[int, int, str]] = []  # (line number, indent, text without comment)
        for n, raw in enumerate(self.raw, 1):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise YamlError(f"line {n}: tab in indentation")
            text = _strip_comment(raw)
            if text.strip() and text.strip() != "---":
                self.lines.append((n, len(text) - len(text.lstrip()), text.strip()))

    def block(self, i: int, indent: int, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise YamlError("nested too deeply")
        if i >= len(self.lines):
            return None, i
        n, ind, text = self.lines[i]
        if text == "-" or text.startswith("- "):
            return self.sequence(i, ind, depth)
        return self.mapping(i, ind, depth)

    def sequence(self, i: int, ind: int, depth: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        while i < len(self.lines):
            n, cur, text = self.lines[i]
            if cur != ind or not (text == "-" or text.startswith("- ")):
                break
            rest = text[1:].strip()
            if not rest:
                if i + 1 < len(self.lines) and self.lines[i + 1][1] > ind:
                    value, i = self.block(i + 1, self.lines[i + 1][1], depth + 1)
                else:
                    value, i = None, i + 1
            elif rest[0] in "[{" or _key_split(rest) is None or rest[0] in "'\"":
                value, i = self.value(rest, i, ind, depth)
            else:  # "- key: value" opens a mapping indented to where the key starts
                self.lines[i] = (n, cur + len(text) - len(rest), rest)
                value, i = self.mapping(i, self.lines[i][1], depth + 1)
            out.append(value)
        return out, i

    def mapping(self, i: int, ind: int, depth: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        while i < len(self.lines):
            n, cur, text = self.lines[i]
            if cur < ind:
                break
            if cur > ind or text.startswith("- ") or text == "-":
                raise YamlError(f"line {n}: unexpected indentation")
            split = _key_split(text)
            if split is None:
                raise YamlError(f"line {n}: expected 'key: value'")
            key, rest = split
            key = str(scalar(key))
            if rest:
                out[key], i = self.value(rest, i, ind, depth)
            elif i + 1 < len(self.lines) and (
                self.lines[i + 1][1] > ind
                or (self.lines[i + 1][1] == ind and self.lines[i + 1][2].startswith("- "))
            ):
                out[key], i = self.block(i + 1, self.lines[i + 1][1], depth + 1)
            else:
                out[key], i = None, i + 1
        return out, i

    def value(self, rest: str, i: int, ind: int, depth: int) -> tuple[Any, int]:
        n = self.lines[i][0]
        if rest[0] in "|>":
            return self.block_scalar(rest, i, ind)
        if rest[0] in "[{":
            text = rest
            j = i
            while True:
                try:
                    return _flow(text, n), j + 1
                except YamlError:
                    if j + 1 >= len(self.lines) or self.lines[j + 1][1] <= ind:
                        raise
                    j += 1
                    text += " " + self.lines[j][2]
        parts = [rest]
        j = i + 1  # a plain scalar may continue on more-indented lines (folded with spaces)
        while (
            rest[0] not in "'\""
            and j < len(self.lines)
            and self.lines[j][1] > ind
            and _key_split(self.lines[j][2]) is None
            and not self.lines[j][2].startswith("- ")
        ):
            parts.append(self.lines[j][2])
            j += 1
        return scalar(" ".join(parts)), j

    def block_scalar(self, head: str, i: int, ind: int) -> tuple[str, int]:
        n = self.lines[i][0]
        body: list[str] = []
        k = n  # raw line numbers are 1-based: raw[n] is the line after the header
        while k < len(self.raw):
            raw = self.raw[k]
            if raw.strip() and len(raw) - len(raw.lstrip()) <= ind:
                break
            body.append(raw)
            k += 1
        while body and not body[-1].strip():
            body.pop()
        cut = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        lines = [b[cut:] for b in body]
        text = "\n".join(lines) if head[0] == "|" else " ".join(x.strip() for x in lines)
        j = i + 1
        while j < len(self.lines) and self.lines[j][0] <= k:
            j += 1
        return text + ("" if "-" in head else "\n"), j


def loads(source: str) -> Any:
    """Parse a document of the subset; raises YamlError naming the line."""
    reader = _Reader(source)
    if not reader.lines:
        return None
    value, i = reader.block(0, reader.lines[0][1], 0)
    if i != len(reader.lines):
        raise YamlError(f"line {reader.lines[i][0]}: unexpected text")
    return value
