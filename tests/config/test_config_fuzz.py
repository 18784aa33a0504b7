"""Issue #16 must-show 3: mutated config and devices files (bytes, not only TOML values) give
0 tracebacks, and every refusal names the file and the key path or the byte offset / line.
The fuzzer is hil/bench/config_fuzz.py (`python -m hil.bench.config_fuzz` runs 10,000 of each)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway_agent.config import read_config, read_devices
from gateway_agent.errors import ConfigError
from hil.bench import config_fuzz as fz
from tests.agentproc import REPO

CASES = 1500  # per file kind; about 3 s on the shared 2-core machine


def test_fuzz_in_process_no_traceback_every_refusal_names_file_and_where(tmp_path: Path) -> None:
    res = fz.fuzz(tmp_path, CASES, seed=16)
    for kind, out in res.items():
        assert out.tracebacks == [], f"{kind}: {len(out.tracebacks)}\n" + "\n".join(
            out.tracebacks[:3]
        )
        assert out.bad_messages == [], f"{kind}: " + "\n".join(out.bad_messages[:5])
        assert out.ok + out.refused == CASES
        # The fuzzer reaches both sides: mutations that still load, and refusals.
        assert out.ok > CASES // 50 and out.refused > CASES // 2, out.as_dict()
        assert set(out.mutations) == {m.__name__ for m in fz.MUTATIONS}


def _cli_case(base: Path, i: int) -> tuple[str, subprocess.CompletedProcess[str]]:
    rnd = random.Random(1000 + i)
    cfg, devs = fz.setup(base / f"case{i}")
    target, valid = (cfg, fz.CONFIG) if i % 2 == 0 else (devs, fz.DEVICES)
    data = valid
    while data == valid:
        data, _ = fz.mutate(data, rnd)
    target.write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "config", "check", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return str(target), p


def test_fuzz_through_the_real_config_check(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as ex:
        runs = list(ex.map(lambda i: _cli_case(tmp_path, i), range(20)))
    refused = 0
    for target, p in runs:
        assert "Traceback" not in p.stderr, p.stderr
        assert p.returncode in (0, 2), (target, p.returncode, p.stderr)
        if p.returncode == 2:
            refused += 1
            assert p.stderr.startswith("invalid: ") and p.stderr.count("\n") == 1, p.stderr
            assert "/" in p.stderr, "names the file"
        else:
            assert p.stdout.startswith("ok: "), p.stdout
    assert refused >= 10


# What the fuzzer found, kept as plain cases.


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    p.chmod(0o600)
    return p


def test_a_400_digit_integer_is_refused_with_its_key_path(tmp_path: Path) -> None:
    # Before: rules/duration.py raised OverflowError (math.isfinite of a huge int) - a traceback
    # from `config check`, and a daemon exit on SIGHUP.
    big = "1" + "0" * 400
    p = write(
        tmp_path,
        "agent.toml",
        f'[agent]\ngateway_id = "g"\n[[rules]]\nname = "s"\nkind = "silence"\nfor = {big}\n',
    )
    with pytest.raises(ConfigError) as ei:
        read_config(p)
    assert str(ei.value).startswith(f"{p}: rules[0].for: an integer of 1329 bits")


def test_a_key_typed_under_another_name_is_never_quoted_back(tmp_path: Path) -> None:
    key = "2b7e151628aed2a6abf7158809cf4f3c"
    p = write(
        tmp_path,
        "devices.toml",
        f'[[device]]\ndev_eui = "70b3d57ed0000001"\njoin_eui = "70b3d57ed0001234"\n'
        f'app_key = "{key}"\nrelaxed_fcnt = "{key.upper()}"\n',
    )
    with pytest.raises(ConfigError) as ei:
        read_devices(p)
    assert "device[0].relaxed_fcnt" in str(ei.value) and key not in str(ei.value).lower()


def test_control_characters_in_a_key_path_stay_on_one_line(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "agent.toml",
        '[agent]\ngateway_id = "g"\n[[rules]]\nname = "a\\nb"\nkind = "silence"\nfor = "1h"\n',
    )
    with pytest.raises(ConfigError) as ei:
        read_config(p)
    assert "\n" not in str(ei.value) and "\n" not in ei.value.key_path
    assert str(ei.value).startswith(f"{p}: rules[0]")


def test_syntax_error_position_survives_a_long_message(tmp_path: Path) -> None:
    table = ".".join(f"t{i}" for i in range(200))
    p = write(tmp_path, "agent.toml", f"[{table}]\nx = 1\n[{table}]\nx = 2\n")
    with pytest.raises(ConfigError) as ei:
        read_config(p)
    assert f"{p}: not valid TOML at line 3, column" in str(ei.value)
    assert len(str(ei.value)) < 500
