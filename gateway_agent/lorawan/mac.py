"""MAC commands by direction (LORAWAN.md 8): parser and the downlink answers the agent sends. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway_agent.errors import FrameError

Fields = dict[str, Any]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MacCommand:
    """One MAC command. `raw` includes the CID. Unknown/proprietary CIDs (and, in lenient mode, a
    truncated command) carry everything from the CID to the end in `raw`, with empty `fields`."""

    cid: int
    name: str
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    raw: bytes = b""


# CID -> (uplink name, uplink payload length, downlink name, downlink payload length)
MAC_TABLE: dict[int, tuple[str | None, int, str, int]] = {
    0x01: ("ResetInd", 1, "ResetConf", 1),
    0x02: ("LinkCheckReq", 0, "LinkCheckAns", 2),
    0x03: ("LinkADRAns", 1, "LinkADRReq", 4),
    0x04: ("DutyCycleAns", 0, "DutyCycleReq", 1),
    0x05: ("RXParamSetupAns", 1, "RXParamSetupReq", 4),
    0x06: ("DevStatusAns", 2, "DevStatusReq", 0),
    0x07: ("NewChannelAns", 1, "NewChannelReq", 5),
    0x08: ("RXTimingSetupAns", 0, "RXTimingSetupReq", 1),
    0x09: ("TxParamSetupAns", 0, "TxParamSetupReq", 1),
    0x0A: ("DlChannelAns", 1, "DlChannelReq", 4),
    0x0B: ("RekeyInd", 1, "RekeyConf", 1),
    0x0C: ("ADRParamSetupAns", 0, "ADRParamSetupReq", 1),
    0x0D: ("DeviceTimeReq", 0, "DeviceTimeAns", 5),
    0x0E: (None, 0, "ForceRejoinReq", 2),
    0x0F: ("RejoinParamSetupAns", 1, "RejoinParamSetupReq", 1),
    0x10: ("PingSlotInfoReq", 1, "PingSlotInfoAns", 0),
    0x11: ("PingSlotChannelAns", 1, "PingSlotChannelReq", 4),
    0x12: ("BeaconTimingReq", 0, "BeaconTimingAns", 3),
    0x13: ("BeaconFreqAns", 1, "BeaconFreqReq", 3),
    0x20: ("DeviceModeInd", 1, "DeviceModeConf", 1),
}


def _freq(b: bytes) -> int:
    return int.from_bytes(b, "little") * 100


def _bits(v: int, **names: int) -> Fields:
    return {k: bool(v >> bit & 1) for k, bit in names.items()}


def _margin6(v: int) -> int:
    v &= 0x3F
    return v - 64 if v & 0x20 else v


_FIELDS: dict[str, Callable[[bytes], Fields]] = {
    "LinkCheckAns": lambda p: {"margin": p[0], "gw_cnt": p[1]},
    "LinkADRReq": lambda p: {
        "data_rate": p[0] >> 4,
        "tx_power": p[0] & 0x0F,
        "ch_mask": int.from_bytes(p[1:3], "little"),
        "ch_mask_cntl": (p[3] >> 4) & 0x07,
        "nb_trans": p[3] & 0x0F,
    },
    "LinkADRAns": lambda p: _bits(p[0], power_ack=2, data_rate_ack=1, channel_mask_ack=0),
    "DutyCycleReq": lambda p: {"max_duty_cycle": p[0] & 0x0F},
    "RXParamSetupReq": lambda p: {
        "rx1_dr_offset": (p[0] >> 4) & 0x07,
        "rx2_data_rate": p[0] & 0x0F,
        "freq_hz": _freq(p[1:4]),
    },
    "RXParamSetupAns": lambda p: _bits(
        p[0], rx1_dr_offset_ack=2, rx2_data_rate_ack=1, channel_ack=0
    ),
    "DevStatusAns": lambda p: {"battery": p[0], "margin": _margin6(p[1])},
    "NewChannelReq": lambda p: {
        "ch_index": p[0],
        "freq_hz": _freq(p[1:4]),
        "max_dr": p[4] >> 4,
        "min_dr": p[4] & 0x0F,
    },
    "NewChannelAns": lambda p: _bits(p[0], data_rate_range_ok=1, channel_freq_ok=0),
    "RXTimingSetupReq": lambda p: {"delay_s": max(1, p[0] & 0x0F)},
    "TxParamSetupReq": lambda p: {
        "downlink_dwell_time": bool(p[0] & 0x20),
        "uplink_dwell_time": bool(p[0] & 0x10),
        "max_eirp_index": p[0] & 0x0F,
    },
    "DlChannelReq": lambda p: {"ch_index": p[0], "freq_hz": _freq(p[1:4])},
    "DlChannelAns": lambda p: _bits(p[0], uplink_freq_exists=1, channel_freq_ok=0),
    "DeviceTimeAns": lambda p: {
        "gps_seconds": int.from_bytes(p[0:4], "little"),
        "fraction_256": p[4],
    },
}


def mac_name(cid: int, uplink: bool) -> str | None:
    entry = MAC_TABLE.get(cid)
    if entry is None:
        return None
    return entry[0] if uplink else entry[2]


def parse_mac_commands(
    data: bytes, uplink: bool, *, lenient: bool = False
) -> tuple[MacCommand, ...]:
    """Parse FOpts or an FPort-0 FRMPayload. `uplink` picks the direction's length table.

    An unknown or proprietary CID keeps the rest of the bytes as one raw command and stops
    (lengths are unknown). A command cut short raises `FrameError` (reason "mac_truncated"),
    or with `lenient=True` becomes a raw "Truncated" command (the uplink path uses that: a
    valid, MIC-checked frame is never dropped for its MAC commands).
    """
    data = bytes(data)
    out: list[MacCommand] = []
    i, n = 0, len(data)
    while i < n:
        cid = data[i]
        entry = MAC_TABLE.get(cid)
        name = entry and (entry[0] if uplink else entry[2])
        if entry is None or name is None:
            label = "Proprietary" if cid >= 0x80 else "Unknown"
            out.append(MacCommand(cid, label, _EMPTY, data[i:]))
            break
        size = entry[1] if uplink else entry[3]
        end = i + 1 + size
        if end > n:
            if not lenient:
                raise FrameError(f"{name} needs {size} bytes", reason="mac_truncated")
            out.append(MacCommand(cid, "Truncated", _EMPTY, data[i:]))
            break
        payload = data[i + 1 : end]
        decode = _FIELDS.get(name)
        fields = MappingProxyType(decode(payload)) if decode else _payload_fields(payload)
        out.append(MacCommand(cid, name, fields, data[i:end]))
        i = end
    return tuple(out)


def _payload_fields(payload: bytes) -> Mapping[str, Any]:
    return MappingProxyType({"payload": payload.hex()}) if payload else _EMPTY


# -- builders for the downlink answers the agent sends ---------------------------------------


def link_check_ans(margin_db: int, gw_cnt: int) -> bytes:
    """LinkCheckAns: margin (dB above the demodulation floor, clamped 0..254) and gateway count."""
    return bytes((0x02, max(0, min(254, margin_db)), max(0, min(255, gw_cnt))))


def dev_status_req() -> bytes:
    return b"\x06"


def device_time_ans(gps_seconds: int, fraction_256: int = 0) -> bytes:
    """DeviceTimeAns: seconds since the GPS epoch (u32 LE) and 1/256 s fractions."""
    return (
        b"\x0d" + (gps_seconds & 0xFFFFFFFF).to_bytes(4, "little") + bytes((fraction_256 & 0xFF,))
    )


def link_adr_req(
    data_rate: int, tx_power: int, ch_mask: int, ch_mask_cntl: int = 0, nb_trans: int = 1
) -> bytes:
    return bytes(
        (
            0x03,
            (data_rate & 0x0F) << 4 | (tx_power & 0x0F),
            ch_mask & 0xFF,
            (ch_mask >> 8) & 0xFF,
            (ch_mask_cntl & 0x07) << 4 | (nb_trans & 0x0F),
        )
    )


def rx_timing_setup_req(delay_s: int) -> bytes:
    return bytes((0x08, delay_s & 0x0F))


def duty_cycle_req(max_duty_cycle: int) -> bytes:
    return bytes((0x04, max_duty_cycle & 0x0F))


def snr_margin_db(snr_db: float, sf: int) -> int:
    """LinkCheckAns margin: SNR above the SX127x demodulation floor for `sf` (-7.5 dB at SF7,
    2.5 dB lower per SF step)."""
    floor = -7.5 - 2.5 * (sf - 7)
    return max(0, min(254, int(snr_db - floor)))
