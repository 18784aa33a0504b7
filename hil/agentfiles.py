"""The agent's files for a hil run: devices.toml from the fleet and agent.toml from the scenario,
written 0600 with tomli-w (they hold keys)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w

from hil.fleet import FleetDevice, devices_file_entries
from hil.scenario import Scenario

TOPIC_PREFIX = "hil"


def write_private(path: Path, text: str) -> None:
    """Create a file 0600 from the start (it holds keys)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def write_devices_file(path: Path, fleet: list[FleetDevice]) -> None:
    write_private(path, tomli_w.dumps({"device": devices_file_entries(fleet)}))


def write_agent_files(
    workdir: Path,
    scn: Scenario,
    fleet: list[FleetDevice],
    gateway_id: str,
    modem_paths: Sequence[Path],
    broker_port: int,
    udp_port: int,
    max_db_mb: float | None = None,
) -> Path:
    """devices.toml and agent.toml in `workdir` (one serial source per modem, in scenario
    order); the scenario's `agent_config` is merged over the defaults. Returns agent.toml."""
    state = workdir / "state"
    devices = workdir / "devices.toml"
    write_devices_file(devices, fleet)
    sources: list[dict[str, Any]] = [{"type": "gwmp", "listen": f"127.0.0.1:{udp_port}"}]
    for i, (spec, port) in enumerate(zip(scn.modems, modem_paths, strict=True)):
        sources.append(
            {
                "type": "serial",
                "name": f"modem{i}",
                "port": str(port),
                "format": spec.format,
                "freq_hz": spec.freq_hz,
                "sf": spec.sf,
                "reopen_max_s": 0.5,
            }
        )
    cfg: dict[str, Any] = {
        "agent": {
            "gateway_id": gateway_id,
            "state_dir": str(state),
            "devices_file": str(devices),
        },
        "sources": sources,
        "upstream": {
            "host": "127.0.0.1",
            "port": broker_port,
            "topic_prefix": TOPIC_PREFIX,
            "format": "json",
            "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0,
        },
        "store": {"commit_interval_ms": 20},
        "lorawan": {"dedup_window_ms": 150},
    }
    for k, v in scn.agent_config.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    if max_db_mb is not None:
        cfg["store"]["max_db_mb"] = max_db_mb
    if scn.rules:
        cfg["rules"] = [dict(r) for r in scn.rules]
    path = workdir / "agent.toml"
    write_private(path, tomli_w.dumps(cfg))
    return path
