"""Clock steps (issue #16 item 8), with an injected wall + monotonic clock through Ingest: a Pi
without a real-time clock runs in 1970 until NTP steps it forward by decades, or a clock is
stepped back by an hour. Silence, stale and `for` rules then raise neither early (falsely) nor
late: elapsed time is the monotonic clock's. Readings keep their stamp and its `time_valid`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from gateway_agent.config import read_config
from gateway_agent.ingest import Ingest
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Alert, Device
from gateway_agent.secret import Secret
from hil.lorawan_crypto import build_data_frame
from tests.e2e.test_e2e_radio import APP, NWK
from tests.ingest.test_ingest_pipeline import ABP_EUI, ADDR, LPP, _direct, _make

NOW = 1_780_000_000.0  # 2026-05: what NTP says
BOOT_1970 = 30.0  # what a Pi without a real-time clock says a little after boot
RULES = f"""
[[rules]]
name = "offline"
kind = "silence"
for = "10m"
severity = "warning"
select = {{ dev_eui = ["{ABP_EUI.hex()}"] }}

[[rules]]
name = "stale"
kind = "stale"
for = "30m"
severity = "warning"
select = {{ dev_eui = ["{ABP_EUI.hex()}"] }}

[[rules]]
name = "warm"
kind = "threshold"
measurement = "temperature_c"
above = 20.0
for = "15m"
severity = "warning"
select = {{ dev_eui = ["{ABP_EUI.hex()}"] }}
"""


@dataclass
class Clock:
    """The agent's two clocks: `mono` only runs forward; `wall` = mono + offset, stepped."""

    mono: float
    offset: float

    @property
    def wall(self) -> float:
        return self.mono + self.offset


def _agent(tmp_path: Path, clk: Clock) -> Ingest:
    ing = _make(tmp_path, _direct)
    ing.store.upsert_devices(
        [
            Device(
                dev_eui=ABP_EUI,
                device_class="legionella",
                codec="cayenne-lpp",
                settings={"field_map": {"temperature_1_c": "temperature_c"}},
                dev_addr=ADDR,
                nwk_s_key=Secret(NWK),
                app_s_key=Secret(APP),
            )
        ]
    )
    ing.load()
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(cfg_file.read_text() + RULES)
    ing.cfg = read_config(cfg_file)
    ing.rules.wall = lambda: clk.wall
    ing.rules.mono = lambda: clk.mono
    return ing


def _uplink(ing: Ingest, clk: Clock, fcnt: int) -> None:
    rx = RxInfo(
        gateway_id="b827ebfffe6c1a2b",
        rx_mono=clk.mono,
        rx_wall=clk.wall,
        freq_hz=868_100_000,
        sf=7,
        bw_khz=125,
        code_rate="4/5",
        tmst=fcnt,
    )
    phy = build_data_frame(2, ADDR, fcnt, NWK, APP, f_port=1, payload=LPP)  # 22.5 C, flat
    ing.handle_group(FrameGroup(phy, (rx,), clk.mono))


def _raised(ing: Ingest) -> dict[str, Alert]:
    return {a.rule: a for a in ing.batch.alerts if a.state == "raised"}


def _run(ing: Ingest, clk: Clock, until_mono: float, fcnt: int, every: float = 60.0) -> int:
    """Uplinks every `every` s (and a rule tick before each) until `until_mono`."""
    while clk.mono < until_mono:
        ing.tick_rules(clk.wall)
        _uplink(ing, clk, fcnt)
        fcnt += 1
        clk.mono += every
    return fcnt


def _tick_at(ing: Ingest, clk: Clock, mono: float) -> dict[str, Alert]:
    clk.mono = mono
    ing.tick_rules(clk.wall)
    return _raised(ing)


def _timers_run_on_elapsed_time(ing: Ingest, clk: Clock, step_at: float, step: float) -> None:
    """Uplinks from mono 100 (warm from the first: `for` 15m is due at 1000) to 400; the clock
    steps by `step` at `step_at`; the device is then silent (silence due at 400 + 600 = 1000,
    stale at 100 + 1800 = 1900). Nothing may raise before its time, everything at it."""
    clk.mono = 100.0
    _run(ing, clk, 401.0, 0)
    assert _raised(ing) == {}
    clk.mono, clk.offset = step_at, clk.offset + step  # the step (NTP, or by hand)
    for m in (step_at, step_at + 2.0, 999.0):
        assert _tick_at(ing, clk, m) == {}, f"false alert at mono {m} after a {step:+.0f}s step"
    got = _tick_at(ing, clk, 1000.0)
    assert set(got) == {"offline", "warm"}, f"late: {set(got)} at mono 1000"
    assert got["offline"].message.startswith("no uplink for 10m"), got["offline"].message
    assert got["offline"].time == clk.wall
    assert _tick_at(ing, clk, 1899.0).keys() == {"offline", "warm"}
    assert _tick_at(ing, clk, 1900.0).keys() == {"offline", "warm", "stale"}, "stale late"
    assert "for 30m" in _raised(ing)["stale"].message, _raised(ing)["stale"].message


def test_ntp_stepping_a_1970_clock_to_now_raises_nothing_early_or_late(tmp_path: Path) -> None:
    clk = Clock(mono=0.0, offset=BOOT_1970)
    ing = _agent(tmp_path, clk)
    _timers_run_on_elapsed_time(ing, clk, step_at=430.0, step=NOW - BOOT_1970)
    stamps = ing.batch.readings
    assert stamps and all(r[5] == 0 for r in stamps), "readings stamped in 1970: time_valid 0"
    assert all(r[4] < 1_000_000 for r in stamps), "readings keep the stamp they were taken with"


def test_a_step_back_by_an_hour_raises_nothing_early_or_late(tmp_path: Path) -> None:
    clk = Clock(mono=0.0, offset=NOW)
    ing = _agent(tmp_path, clk)
    _timers_run_on_elapsed_time(ing, clk, step_at=430.0, step=-3600.0)


def test_a_step_forward_by_an_hour_raises_nothing_early(tmp_path: Path) -> None:
    clk = Clock(mono=0.0, offset=NOW)
    ing = _agent(tmp_path, clk)
    _timers_run_on_elapsed_time(ing, clk, step_at=430.0, step=3600.0)


def test_a_reading_stamped_before_a_step_is_timed_in_the_new_frame(tmp_path: Path) -> None:
    """A reading received just before NTP stepped, evaluated after the step was seen: the rules
    re-time it (its own stamp stays), so it neither raises `for` at once nor resets silence."""
    clk = Clock(mono=100.0, offset=BOOT_1970)
    ing = _agent(tmp_path, clk)
    _run(ing, clk, 401.0, 0)
    old = Clock(mono=clk.mono, offset=clk.offset)  # stamped now, in 1970
    clk.mono, clk.offset = clk.mono + 1.0, NOW
    ing.tick_rules(clk.wall)  # the step is seen
    _uplink(ing, old, 10)
    assert ing.batch.readings[-1][4] == old.wall, "the reading keeps its 1970 stamp"
    assert _tick_at(ing, clk, 999.0) == {}
    assert set(_tick_at(ing, clk, 1000.0)) == {"warm"}, "`for` runs from mono 100"
    assert set(_tick_at(ing, clk, 1061.0)) == {"warm", "offline"}, "silence from the last uplink"


def test_a_restart_into_1970_and_the_step_after_it_raise_nothing_early_or_late(
    tmp_path: Path,
) -> None:
    """States committed at the real time; the Pi reboots without a real-time clock (1970), runs,
    then NTP steps it to now: no false alert on either change, and the `for` / silence timers
    count the time the agent ran."""
    clk = Clock(mono=100.0, offset=NOW)
    ing = _agent(tmp_path, clk)
    _run(ing, clk, 401.0, 0)  # warm since mono 100 (of the first boot)
    asyncio.run(ing.flush())
    boot = Clock(mono=5.0, offset=BOOT_1970)  # the reboot: monotonic starts again
    again = Ingest(ing.cfg, ing.store, _direct, ing.counters, lambda tx: True, lambda: None)
    again.rules.wall = lambda: boot.wall
    again.rules.mono = lambda: boot.mono
    again.load()
    assert _tick_at(again, boot, 5.0) == {}
    # Ran 345 s before the reboot (100 .. 445); warm raises after 900 s of running, i.e. at boot
    # mono 5 + 555 = 560 (downtime is not counted: no clock measured it); silence at 5 + 600.
    assert _tick_at(again, boot, 559.0) == {}
    boot.offset = NOW + 3600.0  # NTP: an hour after the last commit
    assert _tick_at(again, boot, 561.0) == {}, "the forward step raised a false alert"
    got = _tick_at(again, boot, 606.0)
    assert set(got) == {"warm", "offline"}, set(got)
