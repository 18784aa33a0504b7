"""Network-side ADR (issue 3): the decision, the request, and the device's answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway_agent.lorawan import adr
from gateway_agent.lorawan.mac import MacCommand, parse_mac_commands
from gateway_agent.lorawan.region import EU868

H = bytes.fromhex


def ans(status: int) -> tuple[MacCommand, ...]:
    return parse_mac_commands(bytes((0x03, status)), uplink=True)


def feed(
    s: adr.AdrState, n: int, dr: int, snr: float, commands: tuple[MacCommand, ...] = ()
) -> list[tuple[bytes, str | None]]:
    out = []
    for i in range(n):
        out.append(
            adr.uplink(
                EU868,
                s,
                dr=dr,
                snr_db=snr,
                adr=True,
                commands=commands if i == 0 else (),
                margin_db=10,
            )
        )
    return out


def test_decide_steps_data_rate_first_then_power() -> None:
    # SF12 floor -20 dB; SNR 5 dB -> 25 dB over the floor, 15 over the margin: 5 steps.
    assert adr.decide(EU868, 0, 0, 5.0, 10.0) == (5, 0)
    # 8 steps: DR0 -> DR5 (5), then 3 power steps.
    assert adr.decide(EU868, 0, 0, 14.5, 10.0) == (5, 3)
    # Already at DR5: every step lowers the power, up to index 7.
    assert adr.decide(EU868, 5, 0, 30.0, 10.0) == (5, 7)
    # Below the margin: power back up, the data rate never down.
    assert adr.decide(EU868, 5, 4, -7.5, 10.0) == (5, 1)
    assert adr.decide(EU868, 3, 0, -20.0, 10.0) == (3, 0)
    # Under one step either way: no change (truncation toward zero).
    assert adr.decide(EU868, 2, 0, -2.1, 10.0) == (2, 0)
    assert adr.decide(EU868, 7, 0, 30.0, 10.0) == (7, 0), "FSK: nothing to decide"


@given(
    dr=st.integers(0, 5),
    power=st.integers(0, 7),
    snr=st.floats(-40, 40),
    margin=st.floats(0, 30),
)
def test_decide_stays_in_the_region_and_never_slows_a_device(
    dr: int, power: int, snr: float, margin: float
) -> None:
    new_dr, new_power = adr.decide(EU868, dr, power, snr, margin)
    assert dr <= new_dr <= EU868.adr_max_dr
    assert 0 <= new_power <= EU868.max_tx_power_index
    if new_dr > dr:
        assert new_power == power or new_dr == EU868.adr_max_dr


def test_request_after_a_full_history_then_accepted() -> None:
    s = adr.AdrState()
    out = feed(s, adr.HISTORY - 1, dr=0, snr=5.0)
    assert all(req == b"" for req, _ in out), "no decision before HISTORY uplinks"
    ((req, outcome),) = feed(s, 1, dr=0, snr=5.0)
    assert outcome is None
    (cmd,) = parse_mac_commands(req, uplink=False)
    assert cmd.name == "LinkADRReq"
    assert req == H("0350000061"), "DR5, TXPower 0, ChMaskCntl 6 (all on), NbTrans 1"
    assert s.pending == (5, 0)
    # The device answers with all three ACKs and moves to DR5.
    ((req, outcome),) = feed(s, 1, dr=5, snr=-3.0, commands=ans(0x07))
    assert (req, outcome) == (b"", "accepted")
    assert (s.dr, s.tx_power, s.pending) == (5, 0, None)
    # Heard well at DR5 (the answering uplink counts): a full history later, power steps down.
    out = feed(s, adr.HISTORY - 1, dr=5, snr=9.5)
    assert [r for r, _ in out[:-1]] == [b""] * (adr.HISTORY - 2)
    assert out[-1][0] == H("0352000061"), "DR5, TXPower 2"


def test_refused_request_pauses_requests() -> None:
    s = adr.AdrState()
    feed(s, adr.HISTORY, dr=0, snr=5.0)
    ((req, outcome),) = feed(s, 1, dr=0, snr=5.0, commands=ans(0x06))  # channel mask NACK
    assert (req, outcome) == (b"", "refused")
    out = feed(s, adr.REFUSED_PAUSE - 1, dr=0, snr=5.0)  # the refusing uplink was the first
    assert all(r == b"" for r, _ in out)
    assert feed(s, 1, dr=0, snr=5.0)[0][0] != b"", "asked again after the pause"


def test_unanswered_request_is_repeated_then_given_up() -> None:
    s = adr.AdrState()
    feed(s, adr.HISTORY, dr=0, snr=5.0)  # the HISTORY-th uplink carries the first request
    sent = 1
    outcomes = []
    for _ in range(adr.ANSWER_WAIT * (adr.MAX_TRIES + 1) + 2):
        ((req, outcome),) = feed(s, 1, dr=0, snr=5.0)
        sent += req != b""
        outcomes.append(outcome)
    assert sent == adr.MAX_TRIES
    assert "unanswered" in outcomes and s.pending is None


def test_applied_without_an_answer_seen_counts_as_accepted() -> None:
    """The uplink carrying LinkADRAns may be lost; the next one at the new DR tells all the same."""
    s = adr.AdrState()
    feed(s, adr.HISTORY, dr=0, snr=5.0)
    ((_, outcome),) = feed(s, 1, dr=5, snr=-2.0)
    assert outcome == "accepted" and s.dr == 5


def test_no_adr_bit_no_request_and_own_moves_restart_the_history() -> None:
    s = adr.AdrState()
    for _ in range(2 * adr.HISTORY):
        req, _ = adr.uplink(EU868, s, dr=0, snr_db=5.0, adr=False, commands=(), margin_db=10)
        assert req == b""
    s = adr.AdrState()
    feed(s, adr.HISTORY - 1, dr=2, snr=5.0)
    feed(s, 1, dr=1, snr=5.0)  # the device stepped down by itself
    assert s.count == 1 and s.dr == 1
    # Receptions without an SNR (a serial modem that does not report one) are not counted.
    adr.uplink(EU868, s, dr=1, snr_db=None, adr=True, commands=(), margin_db=10)
    assert s.count == 1


def test_no_request_while_no_downlink_can_reach_the_device() -> None:
    """The ingest passes adr=False when no gateway that heard the uplink can transmit (a serial
    modem): the history goes on, a pending request is neither repeated nor given up."""
    s = adr.AdrState()
    feed(s, adr.HISTORY, dr=0, snr=5.0)
    assert s.pending == (5, 0) and s.tries == 1
    for _ in range(3 * adr.ANSWER_WAIT * adr.MAX_TRIES):
        req, outcome = adr.uplink(EU868, s, dr=0, snr_db=5.0, adr=False, commands=(), margin_db=10)
        assert (req, outcome) == (b"", None)
    assert s.pending == (5, 0) and s.tries == 1
    assert feed(s, 1, dr=0, snr=5.0)[0][0] != b"", "asked again once a route is back"
