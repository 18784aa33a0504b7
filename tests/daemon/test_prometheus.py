"""Prometheus: counter families from `Counters` (label sets padded), and the real daemon serving
/metrics on loopback ([metrics] listen); a busy port is logged, never fatal."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from gateway_agent.daemon.prometheus import counter_families, metric_name
from gateway_agent.metrics import Counters
from hil.broker import free_port
from tests.agentproc import Agent, Forwarder


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counter_families_pad_differing_label_sets() -> None:
    c = Counters()
    c.inc("bad_input", reason="mic", source="gwmp0")
    c.inc("bad_input", 2, reason="replay")
    c.inc("dropped", 5, kind="history")
    c.inc("internal-error")
    fams = {f.name: f for f in counter_families(c)}
    assert set(fams) == {
        "gateway_agent_bad_input",
        "gateway_agent_dropped",
        "gateway_agent_internal_error",
    }
    samples = {
        tuple(sorted(s.labels.items())): s.value
        for s in fams["gateway_agent_bad_input"].samples
        if s.name.endswith("_total")
    }
    assert samples == {
        (("reason", "mic"), ("source", "gwmp0")): 1,
        (("reason", "replay"), ("source", "")): 2,
    }


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=30))
def test_metric_names_are_valid(name: str) -> None:
    import re

    assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric_name(name))


def test_daemon_serves_metrics_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    a = Agent(
        tmp_path, broker_port=None, devices=[], extra={"metrics": {"listen": f"127.0.0.1:{port}"}}
    )
    a.start()
    fwd = Forwarder(a.udp_port)
    try:
        fwd.raw(b"\x09garbage")  # a malformed datagram: counted as bad input
        deadline = time.monotonic() + 10
        m = scrape(port)
        while time.monotonic() < deadline:
            m = scrape(port)
            if (
                any(k[0] == "gateway_agent_bad_input_total" for k in m)
                and (
                    "gateway_agent_outbox_depth",
                    (("kind", "up"),),
                )
                in m
            ):
                break
            time.sleep(0.2)
        bad = {k: v for k, v in m.items() if k[0] == "gateway_agent_bad_input_total"}
        assert sum(bad.values()) == 1, m
        assert a.counter("bad_input") == 1  # the same figure the CLI shows
        assert m[("gateway_agent_outbox_depth", (("kind", "up"),))] == 0
        assert m[("gateway_agent_db_size_bytes", ())] > 0
        assert m[("gateway_agent_uptime_seconds", ())] > 0
        assert m[("gateway_agent_healthy", ())] == 1
        assert m[("gateway_agent_upstream_connected", ())] == 0
        assert (
            m[("gateway_agent_build_info", (("gateway_id", "test-gw"), ("version", "0.1.0")))] == 1
        )
        assert m[("gateway_agent_process_resident_memory_bytes", ())] > 0
        with socket.socket() as s:  # loopback only
            assert s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        fwd.close()
        assert a.stop() == 0, a.log()
    with socket.socket() as s:  # stopped with the daemon
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_busy_metrics_port_is_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as hog:
        hog.bind(("127.0.0.1", 0))
        hog.listen(1)
        port = hog.getsockname()[1]
        a = Agent(
            tmp_path,
            broker_port=None,
            devices=[],
            extra={"metrics": {"listen": f"127.0.0.1:{port}"}},
        )
        a.start()
        try:
            assert a.ask("ping")["pong"] is True
            deadline = time.monotonic() + 5
            while "metrics_failed" not in a.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "metrics_failed" in a.log() and "retry_s=30" in a.log()
        finally:
            assert a.stop() == 0, a.log()
