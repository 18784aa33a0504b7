"""FCnt32 reconstruction (LORAWAN.md 5.1-5.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.lorawan.fcnt import FcntCheck, reconstruct_fcnt, relaxed_reset

GAP = 16384


@pytest.mark.parametrize(
    ("last", "f", "candidate", "kind"),
    [
        (None, 0, 0, "new"),
        (None, 42, 42, "new"),
        (41, 42, 42, "new"),
        (42, 42, 42, "retransmission"),
        (65530, 0x0003, 65539, "new"),  # the LORAWAN.md 5.1 example
        (65530, 5, 65541, "new"),  # W4
        (100, 97, 100 + 65533, "replay"),  # last - 3 shows up as forward 65533
        (100, 100 + GAP, 100 + GAP, "new"),
        (100, 100 + GAP + 1, 100 + GAP + 1, "replay"),
        (0x1_0000_0005, 5, 0x1_0000_0005, "retransmission"),
        (0xFFFFFFFF, 0, 0x1_0000_0000, "exhausted"),
        (0xFFFFFFF0, 0xFFFF, 0xFFFFFFFF, "new"),
        (0x0002FFFF, 0x0000, 0x00030000, "new"),
    ],
)
def test_reconstruct_table(last: int | None, f: int, candidate: int, kind: str) -> None:
    assert reconstruct_fcnt(last, f, GAP) == FcntCheck(candidate, kind)  # type: ignore[arg-type]


def test_rejects_out_of_range_fcnt16() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        reconstruct_fcnt(None, 0x10000, GAP)


@pytest.mark.parametrize(
    ("last", "f", "expected"),
    [
        (10_000, 3, FcntCheck(3, "reset")),
        (70_000, 4500, FcntCheck(4500, "reset")),
        (None, 3, None),  # fresh session: the normal path already takes MSB 0
        (10, 10, None),
        (10, 12, None),
        (100_000, GAP + 1, None),  # not a small counter
    ],
)
def test_relaxed_reset(last: int | None, f: int, expected: FcntCheck | None) -> None:
    assert relaxed_reset(last, f, GAP) == expected


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 0xFFFF_0000), steps=st.lists(st.integers(1, GAP), max_size=30))
def test_monotone_across_the_16_bit_wrap(start: int, steps: list[int]) -> None:
    """A device counting up in steps within the gap is always reconstructed exactly."""
    last = start
    for step in steps:
        true = last + step
        if true > 0xFFFFFFFF:
            break
        chk = reconstruct_fcnt(last, true & 0xFFFF, GAP)
        assert chk == FcntCheck(true, "new")
        assert chk.candidate > last
        last = chk.candidate


@settings(max_examples=200, deadline=None)
@given(last=st.integers(0, 0xFFFFFFFF), back=st.integers(1, 0xFFFF - GAP))
def test_older_counters_are_replays(last: int, back: int) -> None:
    chk = reconstruct_fcnt(last, (last - back) & 0xFFFF, GAP)
    assert chk.kind == "replay"
