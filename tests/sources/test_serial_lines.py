"""Serial modem dialect state machines and line buffering (pure; SERIAL.md examples)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import AgentError, SerialLineError
from gateway_agent.sources.serial_lines import (
    DIALECTS,
    LineBuffer,
    LoraE5Session,
    ModemSession,
    Packet,
    RadioSettings,
    Rn2483Session,
    Rui3Session,
    SetupDone,
    SetupFailed,
    new_session,
    parse_payload_hex,
)

W1_HEX = "405A3C0B26802A00016A485FEFD2EEFC1BD02B37"
W3_HEX = "405A3C0B26002C000045E97B37F25B6D35"
W1 = bytes.fromhex(W1_HEX)
W3 = bytes.fromhex(W3_HEX)
RADIO = RadioSettings()

RN_SETUP = [
    ("sys reset", "RN2483 1.0.5 Oct 31 2018 15:06:52"),
    ("mac pause", "4294967245"),
    ("radio set mod lora", "ok"),
    ("radio set freq 868100000", "ok"),
    ("radio set sf sf7", "ok"),
    ("radio set bw 125", "ok"),
    ("radio set cr 4/5", "ok"),
    ("radio set crc on", "ok"),
    ("radio set iqi off", "ok"),
    ("radio set sync 34", "ok"),
    ("radio set prlen 8", "ok"),
    ("radio set wdt 0", "ok"),
    ("radio rx 0", "ok"),
]
RUI3_SETUP = [
    ("AT+NWM=0", "OK"),
    ("AT+P2P=868100000:7:125:0:8:14", "OK"),
    ("AT+SYNCWORD=3444", "OK"),
    ("AT+IQINVER=0", "OK"),
    ("AT+PRECV=65534", "OK"),
]
E5_RFCFG = (
    "+TEST: RFCFG F:868100000, SF7, BW125K, TXPR:12, RXPR:15, POW:14dBm, CRC:ON, IQ:OFF, NET:ON"
)
E5_SETUP = [
    ("AT", "+AT: OK"),
    ("AT+MODE=TEST", "+MODE: TEST"),
    ("AT+TEST=RFCFG,868.1,SF7,125,12,15,14,ON,OFF,ON", E5_RFCFG),
    ("AT+TEST=RXLRPKT", "+TEST: RXLRPKT"),
]
SETUPS = {"rn2483": RN_SETUP, "rui3": RUI3_SETUP, "lora-e5": E5_SETUP}


def run_setup(s: ModemSession, script: list[tuple[str, str]], now: float = 0.0) -> None:
    s.begin(now)
    for i, (cmd, answer) in enumerate(script):
        assert s.take_writes() == [cmd]
        ev = s.feed(answer, now)
        assert ev == (SetupDone(s.name) if i == len(script) - 1 else None)
    assert s.receiving
    assert s.take_writes() == []


# ----------------------------------------------------------------------------- line buffer


def test_line_buffer_splits_joins_and_strips() -> None:
    b = LineBuffer()
    assert b.feed(b"radio_rx  405A") == []
    assert b.feed(b"3C\r\nok\r\n9\r") == ["radio_rx  405A3C", "ok"]
    assert b.feed(b"\n\r\n-71\n") == ["9", "", "-71"]
    assert b.feed(b"caf\xe9\r\n") == ["caf\ufffd"]


def test_line_buffer_discards_over_long_lines() -> None:
    b = LineBuffer(cap=1024)
    assert b.feed(b"x" * 700) == []
    assert b.feed(b"y" * 700) == []  # past the cap: dropped, the tail too
    assert b.feed(b"z" * 300 + b"\r\nok\r\n") == ["ok"]
    assert b.overflows == 1
    assert b.feed(b"q" * 2000 + b"\nfine\n") == ["fine"]
    assert b.overflows == 2
    assert b.feed(b"w" * 540 + b"\r\n") == ["w" * 540]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (W1_HEX, True),
        (W1_HEX.lower(), True),
        ("00" * 12, True),
        ("00" * 255, True),
        ("00" * 11, False),
        ("00" * 256, False),
        (W1_HEX[:-1], False),
        (W1_HEX[:-2] + "ZZ", False),
        ("", False),
        ("0x" + W1_HEX, False),
    ],
)
def test_payload_hex(text: str, ok: bool) -> None:
    if ok:
        assert parse_payload_hex(text) == bytes.fromhex(text)
    else:
        with pytest.raises(SerialLineError) as ei:
            parse_payload_hex(text)
        assert ei.value.reason == "serial_bad_line"


# ----------------------------------------------------------------------------- RN2483


def test_rn2483_setup_and_reception_exchange() -> None:
    s = Rn2483Session(RADIO)
    run_setup(s, RN_SETUP)
    assert s.feed(f"radio_rx  {W1_HEX}", 10.0) is None
    assert s.take_writes() == ["radio get snr"]
    assert s.feed("9", 10.01) is None
    assert s.take_writes() == ["radio get rssi"]
    assert s.feed("-71", 10.02) == Packet(W1, -71, 9, 10.0)
    assert s.take_writes() == ["radio rx 0"]
    assert s.feed("ok", 10.03) is None
    assert s.feed("radio_err", 20.0) is None
    assert s.take_writes() == ["radio rx 0"]
    s.feed("ok", 20.0)
    # single space and lowercase still parse (do not rely on two spaces)
    s.feed(f"radio_rx {W3_HEX.lower()}", 30.0)
    s.take_writes()
    s.feed("-6", 30.0)
    s.take_writes()
    assert s.feed("invalid_param", 30.0) == Packet(W3, None, -6, 30.0)  # fw < 1.0.5: no rssi


def test_rn2483_signal_timeout_and_busy_rearm() -> None:
    s = Rn2483Session(RADIO)
    run_setup(s, RN_SETUP)
    s.feed(f"radio_rx  {W1_HEX}", 5.0)
    assert s.take_writes() == ["radio get snr"]
    assert s.tick(5.5) is None
    assert s.tick(6.1) == Packet(W1, None, None, 5.0)
    assert s.take_writes() == ["radio rx 0"]
    assert s.feed("busy", 6.2) is None
    assert s.take_writes() == []
    s.tick(6.5)
    assert s.take_writes() == ["radio rx 0"]
    s.feed("ok", 6.5)
    assert s.tick(100.0) is None  # listening quietly forever (wdt 0)
    assert s.take_writes() == []


def test_rn2483_bad_payload_rearms_and_raises() -> None:
    s = Rn2483Session(RADIO)
    run_setup(s, RN_SETUP)
    with pytest.raises(SerialLineError):
        s.feed("radio_rx  40ZZ", 1.0)
    assert s.take_writes() == ["radio rx 0"]
    with pytest.raises(SerialLineError):
        s.feed("radio_rx", 1.0)
    with pytest.raises(SerialLineError):
        s.feed("bananas", 1.0)


def test_rn2483_optional_reset_and_failures() -> None:
    s = Rn2483Session(RADIO)
    s.begin(0.0)
    assert s.take_writes() == ["sys reset"]
    assert s.tick(3.1) is None  # no banner: carry on
    assert s.take_writes() == ["mac pause"]
    assert s.tick(5.2) == SetupFailed("mac pause", "timeout")
    assert s.failed
    s.begin(10.0)
    s.take_writes()
    s.feed("RN2483 1.0.5 Oct 31 2018 15:06:52", 10.0)
    s.feed("4294967245", 10.0)
    assert s.feed("invalid_param", 10.0) == SetupFailed("radio set mod lora", "invalid_param")


# ----------------------------------------------------------------------------- RUI3


def test_rui3_setup_with_echo_and_receive_lines() -> None:
    s = Rui3Session(RADIO)
    s.begin(0.0)
    for cmd, answer in RUI3_SETUP[:-1]:
        assert s.take_writes() == [cmd]
        assert s.feed(cmd, 0.0) is None  # echoed command line
        assert s.feed(answer, 0.0) is None
    # an unsolicited packet between a command and its answer
    assert s.take_writes() == ["AT+PRECV=65534"]
    assert s.feed(f"+EVT:RXP2P:-71:9:{W1_HEX}", 1.0) == Packet(W1, -71, 9, 1.0)
    assert s.feed("OK", 1.0) == SetupDone("rui3")
    assert s.feed(f"+EVT:RXP2P:-108:-6:{W3_HEX}", 2.0) == Packet(W3, -108, -6, 2.0)
    assert s.feed(f"+EVT:RXP2P:-108:-6:17:{W3_HEX}", 2.0) == Packet(W3, -108, -6, 2.0)
    with pytest.raises(SerialLineError):
        s.feed(f"+EVT:RXP2P:-108:-6:18:{W3_HEX}", 2.0)
    with pytest.raises(SerialLineError):
        s.feed(f"+EVT:RXP2P:x:-6:{W3_HEX}", 2.0)
    assert s.feed("+EVT:TXP2P DONE", 3.0) is None
    assert s.feed("+EVT:RXP2P RECEIVE TIMEOUT", 3.0) is None
    assert s.take_writes() == ["AT+PRECV=65534"]
    assert s.feed("OK", 3.0) is None


def test_rui3_old_two_line_format() -> None:
    s = Rui3Session(RADIO)
    run_setup(s, RUI3_SETUP)
    assert s.feed("+EVT:RXP2P, RSSI -71, SNR 9", 1.0) is None
    assert s.feed(f"+EVT:{W1_HEX}", 1.1) == Packet(W1, -71, 9, 1.0)
    assert s.feed(f"+EVT:{W3_HEX}", 2.0) == Packet(W3, None, None, 2.0)  # no meta: unknown
    assert s.take_errors() == []
    s.feed("+EVT:RXP2P, RSSI -71, SNR 9", 3.0)
    assert s.feed(f"+EVT:RXP2P:-50:5:{W1_HEX}", 3.1) == Packet(W1, -50, 5, 3.1)
    assert len(s.take_errors()) == 1  # the unpaired metadata line is counted


def test_rui3_error_answer_fails_setup() -> None:
    s = Rui3Session(RADIO)
    s.begin(0.0)
    s.take_writes()
    s.feed("OK", 0.0)
    assert s.feed("AT_PARAM_ERROR", 0.0) == SetupFailed(
        "AT+P2P=868100000:7:125:0:8:14", "AT_PARAM_ERROR"
    )


def test_rui3_code_rate_and_bandwidth_in_p2p() -> None:
    s = Rui3Session(RadioSettings(869_525_000, 12, 250, "4/8"))
    s.begin(0.0)
    s.take_writes()
    s.feed("OK", 0.0)
    assert s.take_writes() == ["AT+P2P=869525000:12:250:3:8:14"]


# ----------------------------------------------------------------------------- LoRa-E5


def test_lora_e5_setup_and_pairing() -> None:
    s = LoraE5Session(RADIO)
    run_setup(s, E5_SETUP)
    assert s.feed("+TEST: LEN:20, RSSI:-71, SNR:9", 1.0) is None
    assert s.feed(f'+TEST: RX "{W1_HEX}"', 1.05) == Packet(W1, -71, 9, 1.0)
    assert s.feed("+TEST:LEN:17,RSSI:-108,SNR:-6", 2.0) is None  # other firmware spacing
    assert s.feed(f'+TEST: RX "{W3_HEX}"', 2.0) == Packet(W3, -108, -6, 2.0)
    assert s.feed(f'+TEST: RX "{W3_HEX}"', 3.0) == Packet(W3, None, None, 3.0)
    s.feed("+TEST: LEN:20, RSSI:-71, SNR:9", 4.0)
    with pytest.raises(SerialLineError):
        s.feed(f'+TEST: RX "{W3_HEX}"', 4.0)  # LEN 20 but 17 bytes
    s.feed("+TEST: LEN:20, RSSI:-71, SNR:9", 5.0)
    with pytest.raises(SerialLineError):
        s.feed("garbage", 5.0)
    assert len(s.take_errors()) == 1
    assert s.feed(f'+TEST: RX "{W1_HEX}"', 6.0) == Packet(W1, None, None, 6.0)


def test_lora_e5_rfcfg_echo_is_checked() -> None:
    s = LoraE5Session(RADIO)
    s.begin(0.0)
    s.feed("+AT: OK", 0.0)
    s.feed("+MODE: TEST", 0.0)
    wrong = E5_RFCFG.replace("SF7", "SF12")
    assert s.feed(wrong, 0.0) == SetupFailed(E5_SETUP[2][0], wrong)
    s.begin(1.0)
    s.feed("+AT: OK", 1.0)
    assert s.feed("+MODE: ERROR(-1)", 1.0) == SetupFailed("AT+MODE=TEST", "+MODE: ERROR(-1)")


def test_lora_e5_frequency_formatting() -> None:
    s = LoraE5Session(RadioSettings(869_525_000, 12, 125, "4/5"))
    steps = [st.command for st in s.steps()]
    assert steps[2] == "AT+TEST=RFCFG,869.525,SF12,125,12,15,14,ON,OFF,ON"


# ----------------------------------------------------------------------------- registry


def test_registry_and_unknown_format() -> None:
    assert set(DIALECTS) == {"rn2483", "rui3", "lora-e5"}
    assert isinstance(new_session("rui3", RADIO), Rui3Session)
    with pytest.raises(ValueError, match="unknown serial format"):
        new_session("sx1276", RADIO)


@settings(max_examples=200)
@given(
    st.sampled_from(sorted(DIALECTS)),
    st.booleans(),
    st.lists(
        st.text(max_size=60)
        | st.sampled_from(["ok", "OK", "radio_rx  ", "+EVT:RXP2P:", "+TEST: LEN:5, RSSI:1, SNR:2"])
        | st.builds(
            lambda p, h: p + h,
            st.sampled_from(["radio_rx  ", "+EVT:", '+TEST: RX "']),
            st.text('0123456789abcdefABCDEF"', max_size=60),
        ),
        max_size=12,
    ),
)
def test_arbitrary_lines_raise_only_serial_line_errors(
    fmt: str, set_up: bool, lines: list[str]
) -> None:
    s = new_session(fmt, RADIO)
    if set_up:
        run_setup(s, SETUPS[fmt])
    else:
        s.begin(0.0)
    now = 0.0
    for line in lines:
        now += 0.7
        try:
            ev = s.feed(line, now)
        except SerialLineError:
            continue
        except AgentError as e:  # pragma: no cover - reported with its type
            raise AssertionError(f"unexpected {type(e).__name__}") from e
        assert ev is None or isinstance(ev, (Packet, SetupDone, SetupFailed))
        if isinstance(ev, Packet):
            assert 12 <= len(ev.payload) <= 255
        s.tick(now)
        s.take_errors()
        assert all(isinstance(w, str) and "\n" not in w for w in s.take_writes())


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_line_buffer_never_yields_long_or_newline_lines(chunks: list[bytes]) -> None:
    b = LineBuffer()
    for c in chunks:
        for line in b.feed(c):
            assert len(line) <= 1024
            assert "\n" not in line
