"""Bounds-checked reading of integers from a payload (FORMATS.md rule 4.1). Pure."""

from __future__ import annotations

from gateway_agent.errors import CodecError


class Reader:
    """Sequential reader; reading past the end raises `CodecError(reason="codec_short")`."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CodecError(
                f"frame too short: need {n} byte(s) at offset {self.pos}, "
                f"have {len(self.buf) - self.pos}",
                reason="codec_short",
            )
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def s8(self) -> int:
        return int.from_bytes(self.take(1), "big", signed=True)

    def u16le(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def s16le(self) -> int:
        return int.from_bytes(self.take(2), "little", signed=True)

    def u32le(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u16be(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def s16be(self) -> int:
        return int.from_bytes(self.take(2), "big", signed=True)

    def s24be(self) -> int:
        return int.from_bytes(self.take(3), "big", signed=True)

    def u32be(self) -> int:
        return int.from_bytes(self.take(4), "big")


def require_length(payload: bytes, n: int) -> None:
    """Fixed layouts (Dragino): exactly `n` bytes."""
    if len(payload) != n:
        raise CodecError(
            f"frame length {len(payload)}, layout needs exactly {n}", reason="codec_length"
        )


def require_port(f_port: int, ports: tuple[int, ...]) -> None:
    """FORMATS.md rule 4.3: only where the port selects the layout."""
    if f_port not in ports:
        raise CodecError(
            f"unknown fPort {f_port} (expected {', '.join(map(str, ports))})",
            reason="codec_fport",
        )
