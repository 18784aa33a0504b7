"""The session fetch in one process (issue #17): `ActivationClient` over real gRPC (plaintext and
TLS with the configured CA) against the stand-in DeviceService, the activations passive mode
cannot use, the per-minute budget of unknown-DevAddr lookups, and backoff with one log line per
outage. The whole daemon is in test_passive_api.py."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from chirpstack_api import api

from gateway_agent.ingest import Ingest
from gateway_agent.relay.api import ActivationClient, ApiError, Unusable, activation_from
from gateway_agent.relay.sessions import SessionFetch
from gateway_agent.secret import Secret
from tests.relay.test_passive import CS_ADDR, CS_APP, CS_NWK, OTAA_EUI, make_ingest
from tests.relay.test_passive_api import TOKEN, StandInApi
from tests.upstream.test_tls import issue, make_ca, write_pem


async def _direct(fn: Any, *a: Any) -> Any:
    return fn(*a)


def host_for(tmp_path: Path, port: int, per_min: int = 30) -> tuple[Any, Ingest]:
    relay = (
        f'[relay]\napi_server = "127.0.0.1:{port}"\napi_token_file = "{tmp_path}/t"\n'
        f"api_lookup_per_min = {per_min}\n"
    )
    ing, store, _ = make_ingest(tmp_path, extra_toml=relay)
    host = SimpleNamespace(
        cfg=ing.cfg,
        ingest=ing,
        store=store,
        st=SimpleNamespace(call=_direct),
        counters=ing.counters,
        stop=asyncio.Event(),
    )
    return host, ing


def test_tls_channel_with_the_configured_ca(tmp_path: Path) -> None:
    ca = make_ca("council ca")
    key, cert = issue(ca, "chirpstack", server=True)
    write_pem(tmp_path, "server", key, cert)
    write_pem(tmp_path, "ca", *ca)
    other = make_ca("someone else")
    write_pem(tmp_path, "other", *other)
    creds = grpc.ssl_server_credentials(
        [((tmp_path / "server.key").read_bytes(), (tmp_path / "server.crt").read_bytes())]
    )
    s = StandInApi()
    s.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, f_cnt_up=12)
    s.start(tls=creds)
    try:

        async def fetch(ca_file: Path) -> Any:
            c = ActivationClient(f"127.0.0.1:{s.port}", Secret(TOKEN), True, ca_file, timeout_s=3.0)
            try:
                return await c.activation(OTAA_EUI)
            finally:
                await c.close()

        act = asyncio.run(fetch(tmp_path / "ca.crt"))
        assert act is not None and act.dev_addr == CS_ADDR and act.f_cnt_up == 12
        assert act.nwk_s_key == CS_NWK and act.app_s_key == CS_APP
        assert CS_NWK.hex() not in repr(act)
        with pytest.raises(ApiError) as e:  # a server this CA did not sign: not trusted
            asyncio.run(fetch(tmp_path / "other.crt"))
        assert e.value.reason == "unreachable"
    finally:
        s.stop()


def test_activations_passive_mode_cannot_use() -> None:
    def resp(**kw: Any) -> Any:
        base = dict(
            dev_eui=OTAA_EUI.hex(),
            dev_addr=CS_ADDR.hex(),
            app_s_key=CS_APP.hex(),
            nwk_s_enc_key=CS_NWK.hex(),
            s_nwk_s_int_key=CS_NWK.hex(),
            f_nwk_s_int_key=CS_NWK.hex(),
        )
        base.update(kw)
        return api.GetDeviceActivationResponse(device_activation=api.DeviceActivation(**base))

    assert activation_from(api.GetDeviceActivationResponse(), OTAA_EUI) is None
    assert activation_from(resp(), OTAA_EUI) is not None
    for kw, reason in (
        ({"s_nwk_s_int_key": "11" * 16}, "lorawan_1_1"),
        ({"app_s_key": ""}, "no_app_s_key"),
        ({"dev_addr": "zz"}, "bad_hex"),
        ({"app_s_key": "00" * 8}, "bad_length"),
    ):
        with pytest.raises(Unusable) as e:
            activation_from(resp(**kw), OTAA_EUI)
        assert e.value.reason == reason


def test_unknown_devaddr_lookups_keep_to_the_budget_and_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = StandInApi()
    s.devices.add(OTAA_EUI.hex())  # known there, no session yet
    s.start()
    host, ing = host_for(tmp_path, s.port, per_min=3)

    async def main() -> None:
        fetch = SessionFetch(host, ActivationClient(f"127.0.0.1:{s.port}", Secret(TOKEN)))
        await fetch._round()  # the start refresh: one call, no session
        assert s.calls == [(OTAA_EUI.hex(), "no_session")]
        for i in range(10):  # ten foreign DevAddrs at once
            fetch.on_unknown_addr(bytes([0x26, 0, 0, i]))
        fetch.on_unknown_addr(bytes([0x26, 0, 0, 0]))  # again: not queued twice
        assert len(fetch.unknown) == 10
        await fetch._round()
        assert len(s.calls) == 1 + 3, "three lookups: this minute's budget"
        assert len(fetch.unknown) == 7, "the rest wait for the next tokens"
        # The API goes away: the cache stays, one line, backoff.
        s.stop()
        fetch.next_refresh = 0.0
        await fetch._round()
        await fetch._round()  # inside the backoff: not even tried
        assert fetch.state == "unreachable" and fetch.retry_at > time.monotonic()
        assert host.counters.get("session_api_errors", reason="unreachable") == 1
        await fetch.client.close()

    with caplog.at_level(logging.INFO, logger="gateway_agent.relay"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "chirpstack_api" in r.getMessage()]
    assert len(lines) == 1 and "chirpstack_api_unreachable" in lines[0]
    assert TOKEN not in caplog.text
