"""Crash loss (short form of hil/bench/crash.py, #16 item 10): the real daemon at 10 uplinks/s,
kill -9 at random moments; with the default commit policy each kill loses at most one uplink the
agent had PUSH_ACKed (the old 2 s window lost ~19).

The shipped 200 ms dedup window: a frame every active receiver has reported leaves it at once
(early release), so on a single-gateway site it holds nothing; before early release the window
alone held 2 uplinks at 10/s (docs/commit-policy.md)."""

from __future__ import annotations

from pathlib import Path

from gateway_agent.config.sections import StoreConfig
from hil.bench.crash import crash_run


def test_kill9_at_10_per_s_loses_at_most_one_uplink(tmp_path: Path) -> None:
    cfg = {
        "commit_interval_ms": StoreConfig().commit_interval_ms,
        "synchronous": StoreConfig().synchronous,
        "dedup_window_ms": 200,  # the shipped default: early release keeps the window short
    }
    r = crash_run(tmp_path, cfg, rate=10.0, kills=4, seed=16, cycle_s=(1.0, 2.5))
    assert r["acked"] >= 30, r
    assert r["lost_max"] <= 1, r
