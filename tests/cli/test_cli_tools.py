"""CLI contract without a daemon: `frame decode` (LORAWAN.md section 12, W1-W6), `decode` (FORMATS.md
worked examples, a shipped JS sample), `config check` and `codecs list`, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import REPO, write_toml

NWK = "8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c"
APP = "1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c"
APP_KEY = "5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e"
ABP = ("--nwk-s-key", NWK, "--app-s-key", APP)


class Run:
    def __init__(self, p: subprocess.CompletedProcess[str]) -> None:
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"rc={self.rc}\nstdout={self.out[-2000:]}\nstderr={self.err[-2000:]}"


def cli(*args: str) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.pop("GATEWAY_AGENT_CONFIG", None)
    p = subprocess.run(
        [sys.executable, "-m", "gateway_agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return Run(p)


def many(*calls: tuple[str, ...]) -> list[Run]:
    """Independent CLI runs in parallel (each is a ~0.3 s interpreter start)."""
    with ThreadPoolExecutor(4) as ex:
        return list(ex.map(lambda a: cli(*a), calls))


# --------------------------------------------------------------------------- frame decode

W1 = "405a3c0b26802a00016a485fefd2eefc1bd02b37"
W2 = "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc"
W3 = "405a3c0b26002c000045e97b37f25b6d35"
W4 = "405a3c0b26800500015b3f55cd7c3d581a"
W5_JR = "00341200d07ed5b37030051c000ba304000100a028d19c"
W5_JA = "2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976"
W6 = "605a3c0b2620070014496b6e"

FRAME_VECTORS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    (
        W1,
        ABP,
        {
            "mtype": "UnconfirmedDataUp",
            "dev_addr": "260b3c5a",
            "fcnt": 42,
            "f_port": 1,
            "fopts": "",
            "mic": "1bd02b37",
            "mic_valid": True,
            "frm_payload": "016700e1026850",
        },
    ),
    (
        W2,
        ABP,
        {
            "mtype": "ConfirmedDataUp",
            "dev_addr": "260b3c5a",
            "fcnt": 43,
            "f_port": 2,
            "fopts": "030706fe0a",
            "mic": "acf9cbcc",
            "mic_valid": True,
            "frm_payload": "303132333435363738393a3b3c3d3e3f40414243",
        },
    ),
    (
        W3,
        ABP,
        {
            "mtype": "UnconfirmedDataUp",
            "dev_addr": "260b3c5a",
            "fcnt": 44,
            "f_port": 0,
            "fopts": "",
            "mic": "f25b6d35",
            "mic_valid": True,
            "frm_payload": "0206fe0a",
        },
    ),
    (
        W4,
        (*ABP, "--fcnt-msb", "1"),
        {
            "mtype": "UnconfirmedDataUp",
            "dev_addr": "260b3c5a",
            "fcnt": 65541,
            "f_port": 1,
            "fopts": "",
            "mic": "7c3d581a",
            "mic_valid": True,
            "frm_payload": "016700e1",
        },
    ),
    (
        W6,
        ABP,
        {
            "mtype": "UnconfirmedDataDown",
            "dev_addr": "260b3c5a",
            "fcnt": 7,
            "f_port": None,
            "fopts": "",
            "mic": "14496b6e",
            "mic_valid": True,
            "frm_payload": "",
        },
    ),
    (
        W5_JR,
        ("--app-key", APP_KEY),
        {
            "mtype": "JoinRequest",
            "join_eui": "70b3d57ed0001234",
            "dev_eui": "0004a30b001c0530",
            "dev_nonce": 1,
            "mic": "a028d19c",
            "mic_valid": True,
        },
    ),
]

JOIN_ACCEPT = {
    "mtype": "JoinAccept",
    "join_nonce": "000001",
    "net_id": "000000",
    "dev_addr": "00f3a1b2",
    "dl_settings": 0,
    "rx_delay": 1,
    "cflist": "184f84e85684b85e84886684586e8400",
    "mic": "2d5770a2",
    "mic_valid": True,
}


def test_frame_decode_prints_exactly_the_worked_examples() -> None:
    runs = many(*((("frame", "decode", h, *opts, "--json")) for h, opts, _ in FRAME_VECTORS))
    for (h, _, expected), r in zip(FRAME_VECTORS, runs, strict=True):
        assert r.rc == 0, (h, r)
        assert r.json() == expected, h
        assert r.out.count("\n") == 1, "one JSON object on one line"


def test_frame_decode_w4_without_msb_and_w5_join_accept() -> None:
    no_msb, ja, ja_keys, ja_nokey = many(
        ("frame", "decode", W4, *ABP, "--json"),
        ("frame", "decode", W5_JA, "--app-key", APP_KEY, "--json"),
        ("frame", "decode", W5_JA, "--app-key", APP_KEY, "--dev-nonce", "1", "--json"),
        ("frame", "decode", W5_JA, "--json"),
    )
    o = no_msb.json()
    assert (o["fcnt"], o["mic_valid"], o["mic"]) == (5, False, "7c3d581a")
    assert ja.rc == 0 and ja.json() == JOIN_ACCEPT
    assert ja_keys.json() == {
        **JOIN_ACCEPT,
        "nwk_s_key": "1b82c6739d26eb2f115f54fdbb9d3655",
        "app_s_key": "2234dd7ac2b03c76bbee744098bb0d57",
    }
    # Without the AppKey a join-accept cannot be read: it says so instead of guessing.
    assert ja_nokey.rc == 0 and ja_nokey.json()["mtype"] == "JoinAccept"
    assert ja_nokey.json()["mic_valid"] is None


def spaced(h: str, sep: str) -> str:
    return sep.join(h[i : i + 2] for i in range(0, len(h), 2))


def test_frame_decode_accepts_any_case_and_separators() -> None:
    w1 = FRAME_VECTORS[0][2]
    variants = [W1.upper(), spaced(W1, " "), spaced(W1.upper(), ":"), spaced(W1, "-")]
    keys = ("--nwk-s-key", spaced(NWK.upper(), ":"), "--app-s-key", spaced(APP, " "))
    runs = many(*(("frame", "decode", v, *keys, "--json") for v in variants))
    for v, r in zip(variants, runs, strict=True):
        assert r.rc == 0, (v, r)
        assert r.json() == w1


def test_frame_decode_text_and_errors() -> None:
    text, bad_hex, odd, short_key, short_frame, no_arg = many(
        ("frame", "decode", W1, *ABP),
        ("frame", "decode", "40zz", "--json"),
        ("frame", "decode", "405", "--json"),
        ("frame", "decode", W1, "--nwk-s-key", "00112233", "--json"),
        ("frame", "decode", "40", "--json"),
        ("frame", "decode", "--json"),
    )
    assert text.rc == 0
    lines = dict(line.split(None, 1) for line in text.out.splitlines() if " " in line.strip())
    assert lines["mtype"].strip() == "UnconfirmedDataUp"
    assert lines["frm_payload"].strip() == "016700e1026850"
    for r in (bad_hex, odd, short_key, no_arg):
        assert r.rc == 2, r
        assert r.out == ""
    assert "HEX" in bad_hex.err and "nwk_s_key" in short_key.err
    # Well-formed hex but not a frame: a failure (1), one line, no traceback.
    assert short_frame.rc == 1, short_frame
    assert short_frame.err.count("\n") == 1 and "Traceback" not in short_frame.err


# --------------------------------------------------------------------------- decode

DECODE_VECTORS: list[tuple[str, int, str, dict[str, Any], dict[str, Any]]] = [
    # FORMATS.md 6.1 worked example 1 (AM319) and 2 (AM307)
    (
        "milesight/am319",
        85,
        "03 67 D6 00 04 68 60 05 00 01 06 CB 03 07 7D 3A 07 09 73 94 27 0A 7D 03 00 0B 7D 0C 00 "
        "0C 7D 13 00",
        {
            "co2_ppm": 1850,
            "temperature_c": 21.4,
            "humidity_pct": 48.0,
            "pressure_hpa": 1013.2,
            "pm2_5_ugm3": 12,
            "pm10_ugm3": 19,
            "hcho_mgm3": 0.03,
            "light_level": 3,
        },
        {"occupied": True},
    ),
    (
        "milesight/am307",
        85,
        "01754E0367E7FF0468AB077D9F01",
        {"battery_pct": 78, "temperature_c": -2.5, "humidity_pct": 85.5, "co2_ppm": 415},
        {},
    ),
    # 6.2 worked example 1 (Elsys ERS CO2), colon-separated
    (
        "elsys/ers-co2",
        1,
        "01:00:CB:02:37:04:01:2C:05:00:06:03:E8:07:0E:10",
        {
            "temperature_c": 20.3,
            "humidity_pct": 55,
            "illuminance_lux": 300,
            "motion_count": 0,
            "co2_ppm": 1000,
            "battery_v": 3.6,
        },
        {},
    ),
    # 6.5 worked example 2 (DL-DS18 below freezing)
    (
        "decentlab/dl-ds18",
        1,
        "02 04 00 00 03 7F AC 0B 3B",
        {"temperature_c": -5.25, "battery_v": 2.875},
        {},
    ),
    # 6.7 worked example 2 (EM310-UDL tilted)
    ("milesight/em310-udl", 85, "038296000400 01", {"distance_mm": 150}, {"tilt": True}),
    # 6.4 worked example 1 (TS302, two probes)
    (
        "milesight/ts302",
        85,
        "01 75 58 03 67 67 02 04 67 8E 00",
        {"battery_pct": 88, "temperature_c": 61.5, "temperature_2_c": 14.2},
        {},
    ),
]


def test_decode_worked_examples() -> None:
    runs = many(
        *(
            ("decode", "--codec", c, "--fport", str(p), h, "--json")
            for c, p, h, _, _ in DECODE_VECTORS
        )
    )
    for (codec, _, _, values, flags), r in zip(DECODE_VECTORS, runs, strict=True):
        assert r.rc == 0, (codec, r)
        o = r.json()
        assert o["codec"] == codec
        assert {"codec", "measurements", "extras"} <= set(o)
        got = {**o["measurements"], **o["extras"]}
        assert got == pytest.approx(values), codec
        for k, v in flags.items():
            assert o["flags"][k] == v, codec


def test_decode_js_sample_codec_and_text_output() -> None:
    js, text = many(
        (
            "decode",
            "--codec",
            "js:elsys-ers-co2-v2",
            "--fport",
            "1",
            "01 FF F6 02 5A 06 07 D0 07 0D 48",
            "--json",
        ),
        ("decode", "--codec", "elsys/ers-co2", "--fport", "1", "01FFF6025A0607D0070D48"),
    )
    assert js.rc == 0, js
    o = js.json()
    assert o["codec"] == "js:elsys-ers-co2-v2"
    # The v2 sample names fields its own way; un-normalized numbers are extras (docs/decoders.md).
    got = {**o["measurements"], **o["extras"]}
    assert -1.0 in got.values() and 2000 in got.values() and 90 in got.values()
    assert text.rc == 0
    assert "co2_ppm" in text.out and "2000" in text.out


def test_decode_failures_exit_1_with_one_line_and_usage_errors_exit_2() -> None:
    cut, version, unknown, js_bad, no_port, bad_hex, no_codec = many(
        ("decode", "--codec", "elsys/ers-co2", "--fport", "1", "01", "--json"),
        ("decode", "--codec", "decentlab/dl-ds18", "--fport", "1", "ff", "--json"),
        ("decode", "--codec", "no/such-codec", "--fport", "1", "01", "--json"),
        (
            "decode",
            "--codec",
            "js:milesight-em500-co2",
            "--fport",
            "85",
            "01 75 46 03 67",
            "--json",
        ),
        ("decode", "--codec", "elsys/ers-co2", "0100cb", "--json"),
        ("decode", "--codec", "elsys/ers-co2", "--fport", "1", "0g", "--json"),
        ("decode", "--fport", "1", "00", "--json"),
    )
    for r in (cut, version, unknown, js_bad):
        assert r.rc == 1, r
        assert r.out == "", "nothing on stdout: a script must not parse half a result"
        assert r.err.startswith("error: ") and r.err.count("\n") == 1, r
        assert "Traceback" not in r.err
    assert "version" in version.err and "no/such-codec" in unknown.err
    for r in (no_port, bad_hex, no_codec):
        assert r.rc == 2, r


def test_codecs_list_json() -> None:
    (r,) = many(("codecs", "list", "--json"))
    assert r.rc == 0
    ids = {c["id"] for c in r.json()}
    assert {"cayenne-lpp", "milesight/am319", "elsys/ers-co2", "decentlab/dl-ds18"} <= ids


# --------------------------------------------------------------------------- config check


def test_config_check(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    good = tmp_path / "good.toml"
    devs = tmp_path / "devices.toml"
    write_toml(
        devs,
        {
            "device": [
                {
                    "dev_eui": "70b3d57ed0000001",
                    "dev_addr": "260b3c5a",
                    "nwk_s_key": NWK,
                    "app_s_key": APP,
                },
                {
                    "dev_eui": "70b3d57ed0000002",
                    "dev_addr": "260b3c5b",
                    "nwk_s_key": NWK,
                    "app_s_key": "00",
                },
            ]
        },
    )
    write_toml(
        good, {"agent": {"gateway_id": "gw", "state_dir": state}, "upstream": {"port": 1883}}
    )
    bad = tmp_path / "bad.toml"
    write_toml(
        bad, {"agent": {"gateway_id": "gw", "state_dir": state}, "upstream": {"port": "abc"}}
    )
    bad_devs = tmp_path / "bad_devs.toml"
    write_toml(
        bad_devs, {"agent": {"gateway_id": "gw", "state_dir": state, "devices_file": str(devs)}}
    )
    ok, ok_text, invalid, invalid_text, dev_invalid = many(
        ("config", "check", str(good), "--json"),
        ("config", "check", str(good)),
        ("config", "check", str(bad), "--json"),
        ("config", "check", str(bad)),
        ("config", "check", str(bad_devs), "--json"),
    )
    assert ok.rc == 0 and ok.json()["valid"] is True and ok.json()["gateway_id"] == "gw"
    assert ok_text.rc == 0 and ok_text.out.startswith("ok:")
    assert invalid.rc == 2 and invalid.json()["key_path"] == "upstream.port"
    assert invalid_text.rc == 2 and "upstream.port" in invalid_text.err
    assert invalid_text.err.count("\n") == 1
    assert dev_invalid.rc == 2
    assert dev_invalid.json()["key_path"].endswith("device[1].app_s_key")
    assert APP not in dev_invalid.out and NWK not in dev_invalid.out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'[[device]]\ndev_eui = "70b3d57ed0000001"\nname = "\xff"\n',
            "not UTF-8: byte 0xff at offset",
        ),
        (b"[[device]]\ndev_eui = " + b"9" * 5000 + b"\n", "bad.toml"),
        (b"[[device]\n", "bad.toml"),
    ],
)
def test_devices_import_of_a_bad_file_says_where(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    p = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(tmp_path / "none.toml"),
         "devices", "import", str(bad)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and expected in p.stderr
