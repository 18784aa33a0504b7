"""Shared fixtures: a private mosquitto per test (stop/kill/restart on the same port), agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.broker import Mosquitto, find_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto on a free loopback port; tests may stop/kill/restart it."""
    if find_mosquitto() is None:
        pytest.fail(
            "mosquitto is required: run scripts/test.sh (installs it) or apt-get install mosquitto"
        )
    m = Mosquitto(workdir=tmp_path / "mosquitto")
    m.start()
    try:
        yield m
    finally:
        m.stop()
