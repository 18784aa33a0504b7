"""Issue #17 must-show 3 and "one reading, one id, whichever gateway heard it", with real daemons
(GWMP over UDP, a real mosquitto) and a stand-in for ChirpStack's gRPC API built on the
`chirpstack-api` classes (`DeviceServiceServicer` on a real `grpc.aio.server()` on loopback).

An OTAA device whose session exists only on the stand-in (the agents never saw its join) is
decoded locally; with the API gone and the daemon restarted, decoding goes on from the cache.
Passive mode sends no join-accept, ACK or MAC answer (the packet forwarder gets no PULL_RESP),
rules still raise alerts, a wrong token is one clear log line, and two agents hearing the same
frame publish the same reading id."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from chirpstack_api import api

from gateway_agent.errors import ControlError
from gateway_agent.lorawan.sessionid import reading_id, session_id
from gateway_agent.store.devices import session_source
from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame, build_join_request
from hil.ports import free_port
from tests.agentproc import Agent, Forwarder, Subscriber

TOKEN = "cs-api-token-7f3a9c1e5b"
APP_KEY = bytes.fromhex("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
JOIN_EUI = bytes.fromhex("70b3d57ed0001234")
OTAA_EUI = bytes.fromhex("0004a30b001c0530")
CS_ADDR = bytes.fromhex("01a2b3c4")
CS_NWK = bytes.fromhex("00112233445566778899aabbccddeeff")
CS_APP = bytes.fromhex("ffeeddccbbaa99887766554433221100")


class StandInApi(api.DeviceServiceServicer):  # type: ignore[misc]
    """ChirpStack's DeviceService.GetActivation, as far as passive mode uses it: the bearer
    token is checked, an unknown device is NOT_FOUND, a known one without a session answers an
    empty response (as ChirpStack v4 does). Runs its own event loop in a thread."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.sessions: dict[str, api.DeviceActivation] = {}
        self.devices: set[str] = set()
        self.calls: list[tuple[str, str]] = []  # (dev_eui, outcome)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None

    def set_session(
        self, dev_eui: bytes, addr: bytes, nwk: bytes, app: bytes, f_cnt_up: int = 0
    ) -> None:
        self.devices.add(dev_eui.hex())
        self.sessions[dev_eui.hex()] = api.DeviceActivation(
            dev_eui=dev_eui.hex(),
            dev_addr=addr.hex(),
            app_s_key=app.hex(),
            nwk_s_enc_key=nwk.hex(),
            s_nwk_s_int_key=nwk.hex(),
            f_nwk_s_int_key=nwk.hex(),
            f_cnt_up=f_cnt_up,
        )

    async def GetActivation(self, request: Any, context: Any) -> Any:  # noqa: N802
        meta = dict(context.invocation_metadata())
        if meta.get("authorization") != f"Bearer {self.token}":
            self.calls.append((request.dev_eui, "unauthenticated"))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication failed")
        act = self.sessions.get(request.dev_eui)
        if act is None and request.dev_eui not in self.devices:
            self.calls.append((request.dev_eui, "not_found"))
            await context.abort(grpc.StatusCode.NOT_FOUND, "Object does not exist")
        self.calls.append((request.dev_eui, "ok" if act is not None else "no_session"))
        if act is None:
            return api.GetDeviceActivationResponse()
        return api.GetDeviceActivationResponse(device_activation=act)

    def start(self, tls: Any = None) -> None:
        """Serve on 127.0.0.1:`port`; `tls`: grpc server credentials (None: plaintext)."""

        async def up() -> None:
            self._server = grpc.aio.server()
            api.add_DeviceServiceServicer_to_server(self, self._server)
            where = f"127.0.0.1:{self.port}"
            if tls is None:
                self._server.add_insecure_port(where)
            else:
                self._server.add_secure_port(where, tls)
            await self._server.start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


@pytest.fixture
def standin() -> Iterator[StandInApi]:
    s = StandInApi()
    s.start()
    yield s
    s.stop()


def otaa_device() -> dict[str, Any]:
    return {
        "dev_eui": OTAA_EUI.hex(),
        "name": "classroom 4",
        "class": "co2",
        "codec": "cayenne-lpp",
        "join_eui": JOIN_EUI.hex(),
        "app_key": APP_KEY.hex(),
        "settings": {"field_map": {"temperature_1_c": "temperature_c"}},
    }


def passive_agent(
    tmp: Path, broker_port: int, api_port: int, token: str = TOKEN, gateway_id: str = "test-gw"
) -> Agent:
    tmp.mkdir(parents=True, exist_ok=True)
    token_file = tmp / "cs.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    rules = [{"name": "hot", "kind": "threshold", "measurement": "temperature_c", "above": 25.0}]
    extra = {
        "relay": {
            "topic_prefix": "eu868",
            "api_server": f"127.0.0.1:{api_port}",
            "api_token_file": str(token_file),
            "api_refresh_s": 10,
            "api_lookup_per_min": 60,
        },
        "lorawan": {"mode": "passive"},
        "rules": rules,
    }
    return Agent(tmp, broker_port, [otaa_device()], extra=extra, gateway_id=gateway_id)


def uplink(fcnt: int, temp_c: float, confirmed: bool = False, fopts: bytes = b"") -> bytes:
    t = round(temp_c * 10) & 0xFFFF
    return build_data_frame(
        4 if confirmed else 2,
        CS_ADDR,
        fcnt,
        CS_NWK,
        CS_APP,
        f_port=1,
        payload=bytes([1, 0x67, t >> 8, t & 0xFF]),
        fopts=fopts,
    )


def cs_id(fcnt: int, addr: bytes = CS_ADDR, nwk: bytes = CS_NWK) -> str:
    return reading_id(OTAA_EUI, session_id(addr, nwk, CS_APP), fcnt)


def wait(cond: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for a in made:
        a.kill()
        print(f"--- agent log {a.tmp}:\n{a.log()[-6000:]}")


def test_session_only_on_the_api_decodes_locally_then_from_the_cache(
    broker: Mosquitto, standin: StandInApi, agents: list[Agent], tmp_path: Path
) -> None:
    standin.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, f_cnt_up=0)
    agent = passive_agent(tmp_path / "a", broker.port, standin.port)
    agents.append(agent)
    agent.start()
    wait(lambda: agent.counter("session_fetch{outcome=new") >= 1, what="the session fetched")
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    fw.open_downlink()  # the agent could transmit: passive mode must choose not to
    # Confirmed, with a LinkCheckReq: edge mode would ACK and answer it.
    fw.push(uplink(0, 21.0, confirmed=True, fopts=b"\x02"))
    fw.push(uplink(1, 22.0))
    fw.push(uplink(2, 30.0))  # above the rule's threshold
    msgs = {m["id"]: m for m in sub.wait_for(3)}
    assert set(msgs) == {cs_id(0), cs_id(1), cs_id(2)}
    assert msgs[cs_id(2)]["measurements"]["temperature_c"] == 30.0
    assert msgs[cs_id(0)]["devEui"] == OTAA_EUI.hex()
    alerts = sub.wait_for(1, "/alert")
    assert [(a["rule"], a["state"]) for a in alerts] == [("hot", "raised")]
    assert fw.pull_resp(timeout_s=2.0) is None, "no ACK / MAC answer in passive mode"
    assert agent.counter("downlinks_sent") == 0
    # A local downlink would never be sent: refused, saying where to queue it instead.
    with pytest.raises(ControlError, match="passive.*ChirpStack"):
        agent.ask("downlink", dev_eui=OTAA_EUI.hex(), f_port=10, payload="0102")
    # The API goes away, the daemon restarts: the session comes from SQLite.
    standin.stop()
    assert agent.stop() == 0
    agent.start()
    wait(lambda: "chirpstack_api_unreachable" in agent.log(), what="the outage logged")
    fw.push(uplink(3, 23.0))
    fw.push(uplink(20_003, 24.0))  # 20,000 frames other gateways heard: still this session
    got = {m["id"] for m in sub.wait_for(5)}
    assert {cs_id(3), cs_id(20_003)} <= got
    assert agent.ask("counters").get("internal_error", 0) == 0
    with sqlite3.connect(agent.state / "agent.db") as db:
        row = db.execute(
            "SELECT dev_addr, fcnt_up FROM devices WHERE dev_eui=?", (OTAA_EUI.hex(),)
        ).fetchone()
        note = session_source(db, OTAA_EUI)  # what `devices show` can say
    assert row == (CS_ADDR.hex(), 20_003)
    assert note is not None and note["source"] == "chirpstack" and note["devAddr"] == "01a2b3c4"
    # ... and `devices show` (the devices read model) says so, with no key in it
    run = agent.cli("devices", "show", OTAA_EUI.hex(), "--json")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert json.loads(out)["session"]["source"] == "chirpstack"
    assert CS_NWK.hex() not in out and CS_APP.hex() not in out
    log = agent.log()
    assert log.count("chirpstack_api_unreachable") == 1, "one line per outage"
    for secret in (TOKEN, CS_NWK.hex(), CS_APP.hex(), APP_KEY.hex()):
        assert secret not in log
    assert agent.stop() == 0
    sub.close()


def test_passive_join_request_gets_no_answer_and_the_new_session_is_fetched(
    broker: Mosquitto, standin: StandInApi, agents: list[Agent], tmp_path: Path
) -> None:
    standin.devices.add(OTAA_EUI.hex())  # known to ChirpStack, not joined yet
    agent = passive_agent(tmp_path / "a", broker.port, standin.port)
    agents.append(agent)
    agent.start()
    wait(lambda: (OTAA_EUI.hex(), "no_session") in standin.calls, what="the start fetch")
    fw = Forwarder(agent.udp_port)
    fw.open_downlink()
    fw.push(build_join_request(JOIN_EUI, OTAA_EUI, 9, APP_KEY))
    # The central server accepts it (through this gateway's relay or another's).
    standin.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP)
    assert fw.pull_resp(timeout_s=2.0) is None, "no join-accept from a passive agent"
    wait(
        lambda: agent.counter("session_fetch{outcome=new") >= 1,
        timeout_s=15,
        what="the session fetched after the join was heard",
    )
    with sqlite3.connect(agent.state / "agent.db") as db:
        assert db.execute("SELECT count(*) FROM dev_nonces").fetchone()[0] == 0
    sub = Subscriber(broker.port, "ga/#")
    fw.push(uplink(0, 20.5))
    assert [m["id"] for m in sub.wait_for(1)] == [cs_id(0)]
    assert agent.stop() == 0
    sub.close()


def test_unknown_devaddr_asks_the_api_and_its_frame_is_decoded(
    broker: Mosquitto, standin: StandInApi, agents: list[Agent], tmp_path: Path
) -> None:
    """A rejoin through another gateway: the first frame of the new DevAddr waits for the
    lookup it triggers, then decodes (the periodic refresh is 10 s away)."""
    standin.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, f_cnt_up=5)
    agent = passive_agent(tmp_path / "a", broker.port, standin.port)
    agents.append(agent)
    agent.start()
    wait(lambda: agent.counter("session_fetch{outcome=new") >= 1, what="the first session")
    new_addr, new_nwk = bytes.fromhex("01a2b3d9"), bytes(range(16))
    standin.set_session(OTAA_EUI, new_addr, new_nwk, CS_APP, f_cnt_up=1)
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    t = round(21.0 * 10)
    fw.push(
        build_data_frame(2, new_addr, 0, new_nwk, CS_APP, f_port=1, payload=bytes([1, 0x67, 0, t]))
    )
    msgs = sub.wait_for(1, timeout_s=8)
    assert [m["id"] for m in msgs] == [cs_id(0, new_addr, new_nwk)]
    assert agent.counter("session_lookup{found=yes") == 1
    assert agent.stop() == 0
    sub.close()


def test_wrong_token_is_one_clear_line_and_no_crash(
    broker: Mosquitto, standin: StandInApi, agents: list[Agent], tmp_path: Path
) -> None:
    standin.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP)
    agent = passive_agent(tmp_path / "a", broker.port, standin.port, token="not-the-token")
    agents.append(agent)
    agent.start()
    wait(lambda: "chirpstack_api_refused" in agent.log(), what="the refusal logged")
    line = next(x for x in agent.log().splitlines() if "chirpstack_api_refused" in x)
    assert "reason=unauthenticated" in line and "api_token_file" in line
    fw = Forwarder(agent.udp_port)
    fw.push(uplink(0, 21.0))
    wait(lambda: agent.counter("bad_input{reason=unknown_device") >= 1, what="frame counted")
    assert agent.ask("counters").get("internal_error", 0) == 0
    assert "not-the-token" not in agent.log()
    assert agent.stop() == 0


def test_two_agents_hearing_one_frame_publish_one_id(
    broker: Mosquitto, standin: StandInApi, agents: list[Agent], tmp_path: Path
) -> None:
    standin.set_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, f_cnt_up=70_000)
    a = passive_agent(tmp_path / "a", broker.port, standin.port, gateway_id="gw-north")
    b = passive_agent(tmp_path / "b", broker.port, standin.port, gateway_id="gw-south")
    agents.extend((a, b))
    a.start()
    b.start()
    wait(
        lambda: all(x.counter("session_fetch{outcome=new") >= 1 for x in (a, b)),
        what="both sessions fetched",
    )
    sub = Subscriber(broker.port, "ga/#")
    fa = Forwarder(a.udp_port, eui="b827ebfffe6c1a2b")
    fb = Forwarder(b.udp_port, eui="b827ebfffe000002")
    # Counter 70,001 is 16 bits 4,465 on air: both rebuild it from ChirpStack's counter.
    for fcnt in (70_001, 70_002):
        phy = uplink(fcnt, 22.0)
        fa.push(phy)
        fb.push(phy)
    fa.push(uplink(70_003, 22.5))  # heard by one gateway only
    msgs = sub.wait_for(5)
    by_gw: dict[str, set[str]] = {}
    for m in msgs:
        by_gw.setdefault(m["gatewayId"], set()).add(m["id"])
    assert by_gw["gw-north"] == {cs_id(70_001), cs_id(70_002), cs_id(70_003)}
    assert by_gw["gw-south"] == {cs_id(70_001), cs_id(70_002)}
    merged = {m["id"] for m in msgs}
    assert len(merged) == 3, "a merge by id shows every uplink once"
    for x in (a, b):
        with sqlite3.connect(x.state / "agent.db") as db:
            ids = {r[0] for r in db.execute("SELECT id FROM readings")}
        assert ids == by_gw[x.gateway_id]
    assert a.stop() == 0 and b.stop() == 0
    sub.close()
