"""hil channel and packet-forwarder emulator: real UDP on loopback against a tiny in-test server."""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import pytest

from hil.channel import Channel, ChannelParams, Position
from hil.forwarder import PacketForwarder, RxMeta
from hil.lorawan_device import AirTx

H = bytes.fromhex
EUI = H("b827ebfffe6c1a2b")
W1 = H("405a3c0b26802a00016a485fefd2eefc1bd02b37")
W6 = H("605a3c0b2620070014496b6e")


def _tx(dev: bytes, start: float, freq: int = 868_100_000, sf: int = 7, ms: float = 60.0) -> AirTx:
    return AirTx(W1, freq, sf, 125, start, ms, dev, 0, "data")


def test_rssi_falls_with_distance_and_several_gateways_hear() -> None:
    ch = Channel(
        [Position(0, 0), Position(500, 0), Position(3000, 0)],
        ChannelParams(shadowing_db=0, fading_db=0),
    )
    ch.place(b"A" * 8, Position(10, 0))
    ch.transmit(_tx(b"A" * 8, 0.0))
    [(tx, recs)] = ch.release(1.0)
    rssi = {r.gateway: r.rssi_dbm for r in recs}
    assert set(rssi) == {0, 1, 2}
    assert rssi[0] > rssi[1] > rssi[2]
    assert all(r.snr_db <= 13.5 for r in recs) and ch.stats.heard == 1


def test_far_device_is_too_weak_at_sf7_but_heard_at_sf12() -> None:
    ch = Channel([Position(0, 0)], ChannelParams(shadowing_db=0, fading_db=0))
    ch.place(b"F" * 8, Position(6000, 0, extra_loss_db=10))
    ch.transmit(_tx(b"F" * 8, 0.0, sf=7))
    ch.transmit(_tx(b"F" * 8, 5.0, sf=12, ms=1500))
    results = ch.release(10.0)
    assert [len(r) for _, r in results] == [0, 1]
    assert ch.stats.too_weak == 1


def test_collisions_same_channel_and_sf_only() -> None:
    ch = Channel([Position(0, 0)], ChannelParams(shadowing_db=0, fading_db=0))
    for i, x in enumerate((100, 110, 120)):
        ch.place(bytes([i]) * 8, Position(x, 0))
    ch.transmit(_tx(b"\x00" * 8, 0.00))
    ch.transmit(_tx(b"\x01" * 8, 0.03))  # overlaps, same channel/SF, similar power: both lost
    ch.transmit(_tx(b"\x02" * 8, 0.04, freq=868_300_000))  # other channel: fine
    out = {tx.dev_eui[0]: recs for tx, recs in ch.release(1.0)}
    assert out[0] == [] and out[1] == [] and len(out[2]) == 1
    assert ch.stats.collided == 2


def test_capture_effect_keeps_the_much_stronger_frame() -> None:
    ch = Channel([Position(0, 0)], ChannelParams(shadowing_db=0, fading_db=0))
    ch.place(b"N" * 8, Position(50, 0))
    ch.place(b"W" * 8, Position(2000, 0))
    ch.transmit(_tx(b"N" * 8, 0.0))
    ch.transmit(_tx(b"W" * 8, 0.01))
    out = {tx.dev_eui: recs for tx, recs in ch.release(1.0)}
    assert len(out[b"N" * 8]) == 1 and out[b"W" * 8] == []


def test_release_waits_for_the_end_of_the_frame() -> None:
    ch = Channel([Position(0, 0)])
    ch.place(b"A" * 8, Position(10, 0))
    ch.transmit(_tx(b"A" * 8, 0.0, ms=500))
    assert ch.release(0.4) == []
    assert len(ch.release(0.6)) == 1


class Server:
    """A minimal GWMP server: acks PUSH_DATA/PULL_DATA and remembers the PULL_DATA address."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.pull_addr: tuple[str, int] | None = None

    async def pump(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            self.received.append((data, addr))
            if data[3] == 0:
                self.sock.sendto(data[:3] + b"\x01", addr)
            elif data[3] == 2:
                self.pull_addr = addr
                self.sock.sendto(data[:3] + b"\x04", addr)

    def pull_resp(self, token: bytes, txpk: dict, version: int = 2) -> None:
        assert self.pull_addr is not None
        body = json.dumps({"txpk": txpk}).encode()
        self.sock.sendto(bytes([version]) + token + b"\x03" + body, self.pull_addr)


async def test_push_pull_and_two_source_ports() -> None:
    srv = Server()
    fwd = PacketForwarder(EUI, srv.addr, keepalive_s=0.2, stat_interval_s=0.3)
    await fwd.start()
    try:
        meta = RxMeta(868_500_000, 7, 125, -71, 9.2, chan=2)
        seq = fwd.push([fwd.rxpk(W1, meta), fwd.rxpk(W6, meta)])
        await srv.pump(0.5)
        assert seq is not None and seq in fwd.acked_seqs
    finally:
        await fwd.close()
    pushes = [(d, a) for d, a in srv.received if d[3] == 0]
    pulls = [(d, a) for d, a in srv.received if d[3] == 2]
    assert pulls and pushes and len(pulls[0][0]) == 12 and pulls[0][0][4:] == EUI
    assert pushes[0][1] != pulls[0][1]  # PUSH_DATA and PULL_DATA come from different ports
    body = json.loads(pushes[0][0][12:])
    assert [base64.b64decode(p["data"]) for p in body["rxpk"]] == [W1, W6]
    pk = body["rxpk"][0]
    assert (pk["freq"], pk["datr"], pk["rssi"], pk["lsnr"], pk["size"], pk["stat"]) == (
        868.5,
        "SF7BW125",
        -71,
        9.2,
        20,
        1,
    )
    assert 0 <= pk["tmst"] <= 0xFFFFFFFF and pk["time"].endswith("Z")
    stats = [json.loads(d[12:])["stat"] for d, _ in pushes if b'"stat":{' in d]
    assert stats and stats[0]["rxnb"] == 2 and stats[0]["time"].endswith(" GMT")
    assert fwd.stats.push_acked >= 1 and fwd.stats.pull_acked >= 1


def _txpk(tmst: int, phy: bytes = W6, **kw: object) -> dict:
    d = {
        "imme": False,
        "tmst": tmst,
        "freq": 868.5,
        "rfch": 0,
        "powe": 14,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "ipol": True,
        "ncrc": True,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }
    d.update(kw)
    return d


@pytest.mark.parametrize("start", [None, 0xFFFFFFFF - 100_000])  # the second crosses the wrap
async def test_pull_resp_tx_ack_and_delivery_at_tmst(start: int | None) -> None:
    srv = Server()
    got = []
    fwd = PacketForwarder(EUI, srv.addr, keepalive_s=5, tmst_start=start, on_downlink=got.append)
    await fwd.start()
    try:
        await srv.pump(0.1)
        srv.pull_resp(b"\x55\xaa", _txpk((fwd.tmst_now() + 300_000) & 0xFFFFFFFF))
        srv.pull_resp(b"\x55\xab", _txpk((fwd.tmst_now() - 10_000) & 0xFFFFFFFF))
        await srv.pump(0.2)
        assert got == []  # not yet: it goes out at its tmst
        await srv.pump(0.3)
    finally:
        await fwd.close()
    acks = {d[1:3]: d for d, _ in srv.received if d[3] == 5}
    assert acks[b"\x55\xaa"][4:12] == EUI
    assert json.loads(acks[b"\x55\xaa"][12:]) == {"txpk_ack": {"error": "NONE"}}
    assert json.loads(acks[b"\x55\xab"][12:]) == {"txpk_ack": {"error": "TOO_LATE"}}
    assert [g.phy for g in got] == [W6] and got[0].freq_hz == 868_500_000
    assert fwd.stats.tx_ok == 1 and fwd.stats.tx_too_late == 1


async def test_bad_txpk_and_wrong_version_are_not_delivered() -> None:
    srv = Server()
    got = []
    fwd = PacketForwarder(EUI, srv.addr, on_downlink=got.append)
    await fwd.start()
    try:
        await srv.pump(0.1)
        now = fwd.tmst_now()
        srv.pull_resp(b"\x00\x01", _txpk(now + 100_000, size=99))
        srv.pull_resp(b"\x00\x02", _txpk(now + 100_000, ipol=False))
        srv.pull_resp(b"\x00\x03", _txpk(now + 100_000), version=1)
        await srv.pump(0.3)
    finally:
        await fwd.close()
    assert got == [] and fwd.stats.tx_bad == 2 and fwd.stats.stray == 1


async def test_v1_forwarder_sends_no_tx_ack() -> None:
    srv = Server()
    got = []
    fwd = PacketForwarder(EUI, srv.addr, version=1, on_downlink=got.append)
    await fwd.start()
    try:
        await srv.pump(0.1)
        assert srv.received[0][0][0] == 1
        srv.pull_resp(b"\x00\x00", _txpk(fwd.tmst_now() + 50_000), version=1)
        await srv.pump(0.2)
    finally:
        await fwd.close()
    assert not [d for d, _ in srv.received if d[3] == 5] and len(got) == 1
