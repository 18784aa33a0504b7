"""Network-side ADR (adaptive data rate) for class-A devices, LoRaWAN 1.0.x. Pure.

The common network-server algorithm (the one ChirpStack ships as its default): from the best SNR
of a device's last `HISTORY` uplinks at one data rate, the margin over that rate's demodulation
floor less an installation margin gives a number of 3 dB steps; each step first raises the data
rate (up to the region's fastest 125 kHz rate), then lowers the transmit power; a negative margin
raises the power back, never the data rate down (the device's own ADR back-off does that when it
hears nothing, LORAWAN.md 9).

A request goes out as a LinkADRReq with ChMaskCntl = 6 ("all defined channels on"), so it never
switches off a channel the network does not know the device has. The device's answer
(LinkADRAns, all three bits set) confirms it; a refusal stops requests for a while. State is a
small mutable record per device, kept in memory: after a restart the history is learnt again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway_agent.lorawan.mac import MacCommand, link_adr_req
from gateway_agent.lorawan.region import Region

HISTORY = 20  # uplinks at one data rate before a decision
ANSWER_WAIT = 3  # uplinks without a LinkADRAns before the request may be sent again
MAX_TRIES = 3  # requests left unanswered before the device counts as refusing
REFUSED_PAUSE = 5 * HISTORY  # uplinks without requests after a device refused one
STEP_DB = 3.0
CH_MASK_ALL_ON = 6  # EU868 ChMaskCntl: every defined channel on, ChMask ignored


@dataclass(slots=True)
class AdrState:
    """What the network knows of one device's radio settings. Mutable, owned by the planner."""

    dr: int = -1  # data rate of the uplinks counted below
    count: int = 0  # uplinks at `dr` since the last decision
    best_snr: float = float("-inf")  # best SNR of those uplinks
    tx_power: int = 0  # TXPower index the device uses as far as we know (0 = max EIRP)
    pending: tuple[int, int] | None = None  # (dr, tx_power) asked for, no answer yet
    wait: int = 0  # uplinks to let pass before another request
    tries: int = 0  # times the pending request was sent


def required_snr_db(sf: int) -> float:
    """Demodulation floor of a LoRa spreading factor (SX127x/SX130x: -7.5 dB at SF7, 2.5 dB
    lower per step)."""
    return -7.5 - 2.5 * (sf - 7)


def decide(
    region: Region, dr: int, tx_power: int, best_snr: float, margin_db: float
) -> tuple[int, int]:
    """(data rate, TXPower index) for a device heard at best `best_snr` dB at `dr`."""
    sf = region.data_rate(dr).sf
    if sf is None:
        return dr, tx_power
    steps = int((best_snr - required_snr_db(sf) - margin_db) / STEP_DB)  # toward zero
    while steps > 0 and dr < region.adr_max_dr:
        dr += 1
        steps -= 1
    while steps > 0 and tx_power < region.max_tx_power_index:
        tx_power += 1
        steps -= 1
    while steps < 0 and tx_power > 0:
        tx_power -= 1
        steps += 1
    return dr, tx_power


def answer_status(commands: Sequence[MacCommand]) -> int | None:
    """The status byte of a LinkADRAns among an uplink's MAC commands (the last one counts: a
    device answers a block of requests with one answer each)."""
    status = None
    for c in commands:
        if c.name == "LinkADRAns" and c.raw[1:2]:
            status = c.raw[1]
    return status


def uplink(
    region: Region,
    st: AdrState,
    *,
    dr: int,
    snr_db: float | None,
    adr: bool,
    commands: Sequence[MacCommand],
    margin_db: float,
) -> tuple[bytes, str | None]:
    """Account one accepted uplink (at `dr`, best SNR `snr_db`) in `st`; `adr` is the frame's
    ADR bit, and False also when no downlink can reach the device now (history only).
    Returns the LinkADRReq to send in its downlink (or b"") and what happened to an earlier
    request ("accepted", "refused", "unanswered") or None."""
    outcome = None
    status = answer_status(commands)
    if st.pending is not None and (status is not None or dr == st.pending[0] != st.dr):
        if status is None or status & 0x07 == 0x07:
            st.dr, st.tx_power = st.pending
            outcome = "accepted"
        else:
            st.wait = REFUSED_PAUSE
            outcome = "refused"
        st.pending, st.tries = None, 0
        st.count, st.best_snr = 0, float("-inf")
    if dr != st.dr:  # the device moved on its own (ADR back-off, a new join): start again
        st.dr, st.count, st.best_snr = dr, 0, float("-inf")
    if snr_db is not None:
        st.count += 1
        st.best_snr = max(st.best_snr, snr_db)
    if st.wait > 0:
        st.wait -= 1
        return b"", outcome
    if st.pending is not None and adr:  # asked, no answer in ANSWER_WAIT uplinks: again
        if st.tries >= MAX_TRIES:
            st.pending, st.tries, st.wait = None, 0, REFUSED_PAUSE
            return b"", "unanswered"
        want = st.pending
    elif adr and st.count >= HISTORY and dr <= region.adr_max_dr:
        want = decide(region, dr, st.tx_power, st.best_snr, margin_db)
        st.count, st.best_snr = 0, float("-inf")
        if want == (dr, st.tx_power):
            return b"", outcome
    else:
        return b"", outcome
    st.pending, st.wait = want, ANSWER_WAIT
    st.tries += 1
    return link_adr_req(want[0], want[1], 0, ch_mask_cntl=CH_MASK_ALL_ON, nb_trans=1), outcome
