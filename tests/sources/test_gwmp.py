"""GWMP server over real UDP sockets on 127.0.0.1: ACK routing, downlinks, TX_ACK, floods."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway_agent.config import GwmpSourceConfig
from gateway_agent.errors import FrameError
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.metrics import Counters
from gateway_agent.sources import SOURCE_TYPES, Source
from gateway_agent.sources.gwmp import GwmpSource
from gateway_agent.sources.gwmp_wire import parse_datagram

W1_B64 = "QFo8CyaAKgABakhf79Lu/BvQKzc="
W1 = base64.b64decode(W1_B64)
W6 = base64.b64decode("YFo8CyYgBwAUSWtu")
TIMEOUT = 3.0


def rxpk(tmst: int = 3512348611, **over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "tmst": tmst,
        "chan": 2,
        "rfch": 0,
        "freq": 868.5,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -71,
        "lsnr": 9.2,
        "size": 20,
        "data": W1_B64,
    }
    d.update(over)
    return d


class Forwarder:
    """A fake packet forwarder: two sockets, as lora_pkt_fwd has (PUSH from one, PULL from other)."""

    def __init__(self, server: tuple[str, int], eui: str, version: int = 2) -> None:
        self.server = server
        self.eui = bytes.fromhex(eui)
        self.version = version
        self.up = self._sock()
        self.down = self._sock()

    @staticmethod
    def _sock() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        return s

    def close(self) -> None:
        self.up.close()
        self.down.close()

    def push(self, body: object, token: bytes = b"\x1c\x7a") -> None:
        hdr = bytes([self.version]) + token + b"\x00" + self.eui
        self.up.sendto(hdr + json.dumps(body).encode(), self.server)

    def pull(self, token: bytes = b"\x3e\x01") -> None:
        self.down.sendto(bytes([self.version]) + token + b"\x02" + self.eui, self.server)

    def tx_ack(self, token: bytes, body: bytes = b"") -> None:
        self.down.sendto(bytes([self.version]) + token + b"\x05" + self.eui + body, self.server)

    @staticmethod
    async def recv(sock: socket.socket, timeout: float = TIMEOUT) -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), timeout)


@dataclass
class Running:
    src: GwmpSource
    out: asyncio.Queue[RadioFrame]
    counters: Counters
    addr: tuple[str, int]


async def start(
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 0),), qsize: int = 1000, **kw: object
) -> tuple[Running, asyncio.Event, asyncio.Task[None]]:
    counters = Counters()
    src = GwmpSource(GwmpSourceConfig(listen=listen, name="gw-test", **kw), counters)  # type: ignore[arg-type]
    out: asyncio.Queue[RadioFrame] = asyncio.Queue(maxsize=qsize)
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(out, stop))
    await asyncio.wait_for(src.ready.wait(), TIMEOUT)
    return Running(src, out, counters, src.addresses[0]), stop, task


@pytest.fixture
async def srv() -> AsyncIterator[Running]:
    r, stop, task = await start()
    yield r
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)


async def until(cond: object, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def test_registered_factory() -> None:
    src = SOURCE_TYPES["gwmp"](GwmpSourceConfig(listen=(("127.0.0.1", 0),)), Counters())
    assert isinstance(src, Source)
    assert src.name == "gwmp:127.0.0.1:0"


async def test_push_ack_to_push_port_and_frame_out(srv: Running) -> None:
    fwd = Forwarder(srv.addr, "b827ebfffe6c1a2b")
    try:
        fwd.push({"rxpk": [rxpk()]}, token=b"\x1c\x7a")
        data, frm = await fwd.recv(fwd.up)
        assert data == bytes.fromhex("021c7a01")
        assert frm == srv.addr  # answered from the socket the datagram came in on
        frame = await asyncio.wait_for(srv.out.get(), TIMEOUT)
        assert frame.phy_payload == W1
        assert frame.rx.gateway_id == "b827ebfffe6c1a2b"
        assert frame.rx.tmst == 3512348611
        assert frame.rx.source == "gw-test"
        assert frame.rx.rx_wall > 1.7e9
        assert srv.counters.get("frames_received", source="gw-test") == 1
        gw = srv.src.stats()["gateways"]["b827ebfffe6c1a2b"]
        assert (gw["rx_ok"], gw["rx_bad"], gw["protocol_version"]) == (1, 0, 2)
    finally:
        fwd.close()


async def test_pull_ack_route_and_pull_resp_to_pull_port(srv: Running) -> None:
    eui = "b827ebfffe6c1a2b"
    fwd = Forwarder(srv.addr, eui)
    try:
        assert not srv.src.can_downlink(eui)
        tx = DownlinkTx(eui, W6, 868_500_000, 7, 125, tmst=3513348611, purpose="ack")
        assert srv.src.send_downlink(tx) is False
        fwd.pull(token=b"\x3e\x01")
        data, _ = await fwd.recv(fwd.down)
        assert data == bytes.fromhex("023e0104")
        assert srv.src.can_downlink(eui)
        assert srv.src.downlink_gateways() == [eui]
        assert srv.src.last_route_seen(eui) is not None
        assert srv.src.send_downlink(tx) is True
        resp, _ = await fwd.recv(fwd.down)
        assert resp[0] == 2
        assert resp[3] == 3
        assert json.loads(resp[4:])["txpk"] == {
            "imme": False,
            "tmst": 3513348611,
            "freq": 868.5,
            "rfch": 0,
            "powe": 14,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "ipol": True,
            "ncrc": True,
            "size": 12,
            "data": "YFo8CyYgBwAUSWtu",
        }
        # Nothing went to the uplink socket (the classic bug, GWMP.md section 1).
        with pytest.raises(TimeoutError):
            await fwd.recv(fwd.up, timeout=0.1)
        # TX_ACK success, then a refused one, then an unknown token.
        fwd.tx_ack(resp[1:3])
        await until(lambda: srv.counters.get("downlink_tx", result="ok") == 1)
        assert srv.src.send_downlink(tx)
        resp2, _ = await fwd.recv(fwd.down)
        fwd.tx_ack(resp2[1:3], b'{"txpk_ack":{"error":"TOO_LATE"}}')
        await until(lambda: srv.counters.get("downlink_tx", result="failed") == 1)
        assert srv.counters.get("downlink_tx", error="TOO_LATE") == 1
        fwd.tx_ack(resp2[1:3])  # already answered -> unknown now
        await until(lambda: srv.counters.get("tx_ack_unknown") == 1)
        gw = srv.src.stats()["gateways"][eui]
        assert (gw["tx_sent"], gw["tx_ok"], gw["tx_failed"]) == (2, 1, 1)
        assert gw["tx_errors"] == {"TOO_LATE": 1}
        assert gw["route_fresh"] is True
        assert gw["last_pull_data"] is not None
        json.dumps(srv.src.stats())  # JSON-able
    finally:
        fwd.close()


async def test_v1_gateway_gets_v1_replies_and_zero_token(srv: Running) -> None:
    eui = "0102030405060708"
    fwd = Forwarder(srv.addr, eui, version=1)
    try:
        fwd.push({"rxpk": [rxpk()]}, token=b"\xab\xcd")
        assert (await fwd.recv(fwd.up))[0] == bytes.fromhex("01abcd01")
        fwd.pull(token=b"\x00\x07")
        assert (await fwd.recv(fwd.down))[0] == bytes.fromhex("01000704")
        assert srv.src.send_downlink(DownlinkTx(eui, W6, 869_525_000, 12, 125, tmst=5))
        resp, _ = await fwd.recv(fwd.down)
        assert resp[:4] == b"\x01\x00\x00\x03"
        assert srv.src.stats()["pending_downlinks"] == 0  # v1 never sends TX_ACK
    finally:
        fwd.close()


async def test_route_goes_stale() -> None:
    r, stop, task = await start(route_stale_s=1.0)
    fwd = Forwarder(r.addr, "1111111111111111")
    try:
        fwd.pull()
        await fwd.recv(fwd.down)
        assert r.src.can_downlink("1111111111111111")
        await asyncio.sleep(1.1)
        assert not r.src.can_downlink("1111111111111111")
        tx = DownlinkTx("1111111111111111", W6, 868_100_000, 7, 125, tmst=1)
        assert not r.src.send_downlink(tx)
        assert r.counters.get("downlink_no_route") == 1
    finally:
        fwd.close()
        stop.set()
        await task


async def test_downlink_disabled_by_config() -> None:
    r, stop, task = await start(downlink=False)
    fwd = Forwarder(r.addr, "1111111111111111")
    try:
        fwd.pull()
        await fwd.recv(fwd.down)
        assert not r.src.can_downlink("1111111111111111")
    finally:
        fwd.close()
        stop.set()
        await task


async def test_several_forwarders_and_several_rxpk(srv: Running) -> None:
    fwds = [Forwarder(srv.addr, f"00000000000000{i:02x}") for i in range(5)]
    try:
        for i, f in enumerate(fwds):
            f.push({"rxpk": [rxpk(tmst=i * 10 + k) for k in range(3)] + [rxpk(stat=-1)]})
            f.pull(token=bytes([i, i]))
        for i, f in enumerate(fwds):
            assert (await f.recv(f.up))[0][3] == 1
            assert (await f.recv(f.down))[0] == bytes([2, i, i, 4])
        frames = [await asyncio.wait_for(srv.out.get(), TIMEOUT) for _ in range(15)]
        assert sorted(fr.rx.tmst or 0 for fr in frames) == sorted(
            i * 10 + k for i in range(5) for k in range(3)
        )
        assert srv.counters.get("bad_input", reason="crc_bad") == 5
        # Each downlink goes to its own forwarder's PULL socket.
        for i, f in enumerate(fwds):
            assert srv.src.send_downlink(DownlinkTx(f.eui.hex(), W6, 868_100_000, 7, 125, tmst=i))
        for i, f in enumerate(fwds):
            resp, _ = await f.recv(f.down)
            assert json.loads(resp[4:])["txpk"]["tmst"] == i
    finally:
        for f in fwds:
            f.close()


async def test_two_listen_addresses_answer_from_their_own_socket() -> None:
    r, stop, task = await start(listen=(("127.0.0.1", 0), ("127.0.0.1", 0)))
    up_addr, down_addr = r.src.addresses
    assert up_addr != down_addr
    fwd = Forwarder(up_addr, "2222222222222222")
    try:
        fwd.push({"rxpk": [rxpk()]})
        assert (await fwd.recv(fwd.up))[1] == up_addr
        fwd.server = down_addr
        fwd.pull()
        assert (await fwd.recv(fwd.down))[1] == down_addr
        assert r.src.send_downlink(DownlinkTx("2222222222222222", W6, 868_100_000, 7, 125, tmst=9))
        _, frm = await fwd.recv(fwd.down)
        assert frm == down_addr
    finally:
        fwd.close()
        stop.set()
        await task


async def test_nat_rebinding_then_shared_eui_warning(
    srv: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent.sources.gwmp")
    eui = "aa555a0000000000"
    a, b = Forwarder(srv.addr, eui), Forwarder(srv.addr, eui)
    try:
        a.pull()
        await a.recv(a.down)
        b.pull()
        await b.recv(b.down)
        assert "gateway_route_changed" in caplog.text
        assert "gateway_eui_shared" not in caplog.text
        tx = DownlinkTx(eui, W6, 868_100_000, 7, 125, tmst=1)
        assert srv.src.send_downlink(tx)
        await b.recv(b.down)  # the latest PULL_DATA address wins
        for _ in range(3):
            a.pull()
            await a.recv(a.down)
            b.pull()
            await b.recv(b.down)
        assert "gateway_eui_shared" in caplog.text
        assert srv.counters.get("gateway_eui_shared") >= 1
        assert srv.src.stats()["gateways"][eui]["shared_eui_suspected"] is True
    finally:
        a.close()
        b.close()


async def test_bad_json_still_acked_and_counted(srv: Running) -> None:
    fwd = Forwarder(srv.addr, "3333333333333333")
    try:
        hdr = b"\x02\x44\x55\x00" + fwd.eui
        fwd.up.sendto(hdr + b'{"rxpk":[{"rssi":NaN}]}', srv.addr)
        assert (await fwd.recv(fwd.up))[0] == b"\x02\x44\x55\x01"
        fwd.push({"rxpk": [rxpk(data="QFo8CyaAKgABakhf79Lu-BvQKzc=")], "stat": {"rxnb": 3}})
        await fwd.recv(fwd.up)
        await until(lambda: srv.counters.get("bad_input", reason="bad_base64") == 1)
        assert srv.counters.get("bad_input", reason="bad_json", source="gw-test") == 1
        gw = srv.src.stats()["gateways"]["3333333333333333"]
        assert gw["rx_bad"] == 2
        assert gw["stat"] == {"rxnb": 3}
    finally:
        fwd.close()


async def test_reply_types_are_never_answered(srv: Running) -> None:
    s = Forwarder._sock()
    try:
        for dgram in (b"\x02\x00\x01\x01", b"\x02\x00\x01\x04", b'\x02\x00\x01\x03{"txpk":{}}'):
            s.sendto(dgram, srv.addr)
        await until(lambda: srv.counters.get("bad_input", reason="server_type") == 3)
        with pytest.raises(TimeoutError):
            await Forwarder.recv(s, timeout=0.2)
    finally:
        s.close()


async def test_garbage_flood_then_good_frame(srv: Running) -> None:
    rnd = random.Random(1234)
    s = Forwarder._sock()
    fwd = Forwarder(srv.addr, "4444444444444444")
    expected_bad = 0
    try:
        for i in range(1000):
            n = rnd.randrange(0, 80)
            junk = bytes(rnd.randrange(256) for _ in range(n))
            if i % 3 == 0 and n >= 12:  # keep a share of valid-looking headers
                junk = bytes([2, 0, 0, rnd.choice([0, 2, 5])]) + junk[4:]
            try:
                parse_datagram(junk)
            except FrameError:
                expected_bad += 1
            s.sendto(junk, srv.addr)
            if i % 50 == 49:  # pace it: loopback UDP drops when the receive buffer fills
                want = expected_bad
                await until(lambda want=want: srv.counters.get("bad_input") == want)
        assert expected_bad > 900
        fwd.push({"rxpk": [rxpk()]})
        frame = await asyncio.wait_for(srv.out.get(), TIMEOUT)
        assert frame.rx.gateway_id == "4444444444444444"
        assert frame.phy_payload == W1
        assert srv.counters.get("internal_error") == 0
    finally:
        s.close()
        fwd.close()


async def test_full_queue_drops_and_counts() -> None:
    r, stop, task = await start(qsize=2)
    fwd = Forwarder(r.addr, "5555555555555555")
    try:
        fwd.push({"rxpk": [rxpk(tmst=k) for k in range(5)]})
        await fwd.recv(fwd.up)
        await until(lambda: r.counters.get("frames_dropped", reason="queue_full") == 3)
        assert r.out.qsize() == 2
        assert r.counters.get("frames_received") == 2
    finally:
        fwd.close()
        stop.set()
        await task


async def test_stop_closes_sockets() -> None:
    r, stop, task = await start()
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)
    await asyncio.sleep(0)  # transports close their socket on the next loop iteration
    # The port is free again: bind to it ourselves.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(r.addr)
    finally:
        s.close()


async def test_big_push_data_with_255_rxpk() -> None:
    r, stop, task = await start(qsize=1000)
    fwd = Forwarder(r.addr, "6666666666666666")
    try:
        body = {"rxpk": [rxpk(tmst=k) for k in range(255)]}
        assert len(json.dumps(body)) > 40_000
        fwd.push(body)
        await fwd.recv(fwd.up)
        await until(lambda: r.out.qsize() == 255)
        assert r.src.stats()["gateways"]["6666666666666666"]["rx_ok"] == 255
    finally:
        fwd.close()
        stop.set()
        await task


async def test_burst_is_read_in_few_wakeups_and_every_datagram_acked(srv: Running) -> None:
    """Datagrams that queued up while the loop was busy are all read and acknowledged, up to
    READ_BURST per wake-up of the socket (not one loop round per datagram)."""
    from gateway_agent.sources import gwmp

    ep = srv.src._endpoints[0]
    calls = 0
    real = ep.on_readable

    def counting() -> None:
        nonlocal calls
        calls += 1
        real()

    loop = asyncio.get_running_loop()
    assert ep.sock is not None
    loop.remove_reader(ep.sock.fileno())
    loop.add_reader(ep.sock.fileno(), counting)
    fwd = Forwarder(srv.addr, "7777777777777777")
    n = 3 * gwmp.READ_BURST + 5
    try:
        for k in range(n):  # all queued in the kernel before the loop runs again
            fwd.push({"rxpk": [rxpk(tmst=k)]}, token=k.to_bytes(2, "big"))
        tokens = {(await fwd.recv(fwd.up))[0][1:3] for _ in range(n)}
        assert tokens == {k.to_bytes(2, "big") for k in range(n)}
        await until(lambda: srv.out.qsize() == n)
        assert calls <= 2 * (n // gwmp.READ_BURST + 1), calls
    finally:
        fwd.close()


async def test_ipv6_loopback_listen_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")  # pragma: no cover
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("::1 not configured on this host")  # pragma: no cover
    r, stop, task = await start(listen=(("::1", 0),))
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        s.sendto(b"\x02\x12\x34\x00" + bytes(8) + b'{"rxpk":[]}', r.addr)
        data, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(s, 64), TIMEOUT)
        assert data == bytes.fromhex("02123401")
    finally:
        s.close()
        stop.set()
        await task
