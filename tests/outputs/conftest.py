"""Fixtures of the outputs' tests: a private influxd (its database made), a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outputs.kit import Influxd, WebhookReceiver, find_influxd

DB = "agent"


def _need_influxd() -> None:
    if find_influxd() is None:
        pytest.fail("influxd is required: scripts/bootstrap.sh installs Debian's influxdb")


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private influxd 1.x (no auth) on free loopback ports with database `agent`."""
    _need_influxd()
    server = Influxd(tmp_path / "influxd")
    server.start()
    try:
        server.create_db(DB)
        yield server
    finally:
        server.stop()


@pytest.fixture
def influxd_auth(tmp_path: Path) -> Iterator[Influxd]:
    """influxd with auth-enabled, an admin `admin` / `s3cret-admin` and database `agent`."""
    _need_influxd()
    server = Influxd(tmp_path / "influxd-auth", auth=True)
    server.start()
    try:
        # With no user yet, influxd takes exactly this one statement without credentials.
        server.query(
            "CREATE USER admin WITH PASSWORD 's3cret-admin' WITH ALL PRIVILEGES", method="POST"
        )
        server.user = ("admin", "s3cret-admin")
        server.create_db(DB)
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint on 127.0.0.1 checking signatures made with b"hook-secret"."""
    r = WebhookReceiver(secret=b"hook-secret").start()
    try:
        yield r
    finally:
        r.close()
