"""`doctor`: each check alone (pure inputs, real sockets), then the CLI against a real daemon and
a real mosquitto (plain and TLS): failures carry their fix, passing checks say ok, exit 1 on FAIL."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway_agent import doctor as dr
from gateway_agent.config import GwmpSourceConfig, UpstreamConfig
from gateway_agent.doctor import broker_probe as bp
from hil.broker import Mosquitto
from tests.agentproc import REPO, Agent, Forwarder, free_udp_port

DEV = {
    "dev_eui": "70b3d57ed0000001",
    "name": "P7",
    "class": "co2",
    "codec": "cayenne-lpp",
    "dev_addr": "26011bda",
    "nwk_s_key": "000102030405060708090a0b0c0d0e0f",
    "app_s_key": "101112131415161718191a1b1c1d1e1f",
}


def run_doctor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(config), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def by_name(out: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in out["checks"]}


# --------------------------------------------------------------------------- checks alone


def test_clock_plausibility_and_sync() -> None:
    assert dr.check_clock(86400.0, True).status == "fail"  # 1970: no RTC, no NTP yet
    assert "timedatectl set-ntp true" in dr.check_clock(86400.0, True).fix
    now = time.time()
    assert dr.check_clock(now, True).status == "ok"
    assert dr.check_clock(now, False).status == "warn"
    assert dr.check_clock(now, None).status == "warn"


def test_forwarder_seen_window() -> None:
    src = GwmpSourceConfig(listen=(("0.0.0.0", 1700),))
    now = 1_800_000_000.0
    never = dr.check_forwarder_seen(src, {}, now)
    assert never.status == "fail" and "never heard" in never.detail
    assert 'server_address to "127.0.0.1"' in never.fix and "1700" in never.fix
    stale = dr.check_forwarder_seen(src, {"b827eb": {"last_seen": now - 61}}, now)
    assert stale.status == "fail" and "61s ago" in stale.detail
    fresh = dr.check_forwarder_seen(
        src, {"a": {"last_seen": now - 300}, "b827eb": {"last_seen": now - 5}}, now
    )
    assert fresh.status == "ok" and "b827eb" in fresh.detail


def test_udp_probe_sees_a_bound_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert dr.probe_udp("127.0.0.1", port) == "bound"
        src = GwmpSourceConfig(listen=(("127.0.0.1", port),))
        assert dr.check_gwmp_listen(src, 0, running=True)[0].status == "ok"
        held = dr.check_gwmp_listen(src, 0, running=False)[0]
        assert held.status == "fail" and "ss -ulpn" in held.fix
    assert dr.probe_udp("127.0.0.1", port) == "free"
    assert dr.probe_udp("192.0.2.1", port) == "EADDRNOTAVAIL"  # bind only: no traffic


def test_secret_file_modes(tmp_path: Path) -> None:
    p = tmp_path / "devices.toml"
    p.write_text("")
    for mode, status in ((0o600, "ok"), (0o640, "warn"), (0o644, "fail"), (0o604, "fail")):
        p.chmod(mode)
        r = dr.check_secret_mode("devices file", p)
        assert r is not None and r.status == status, oct(mode)
        if status != "ok":
            assert r.fix == f"sudo chmod 600 {p}"
    assert dr.check_secret_mode("x", tmp_path / "missing") is None


@given(
    client=st.text(min_size=1, max_size=40),
    user=st.none() | st.text(min_size=1, max_size=300),
    pw=st.none() | st.text(max_size=300),
    v5=st.booleans(),
)
def test_connect_packet_remaining_length(
    client: str, user: str | None, pw: str | None, v5: bool
) -> None:
    pkt = bp.mqtt_connect_packet(client, user, pw, v5)
    assert pkt[0] == 0x10
    n, mult, i = 0, 1, 1
    while True:
        b = pkt[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    assert n == len(pkt) - i
    assert pkt[i : i + 6] == b"\x00\x04MQTT"
    assert pkt[i + 6] == (5 if v5 else 4)


def test_broker_checks_against_real_mosquitto(broker: Mosquitto) -> None:
    up = UpstreamConfig(host="127.0.0.1", port=broker.port)
    res = dr.check_broker(up, 5)
    assert [(r.name, r.status) for r in res] == [("broker tcp", "ok"), ("broker mqtt", "ok")]
    v5 = dr.check_broker(UpstreamConfig(host="127.0.0.1", port=broker.port, mqtt_version="5"))
    assert v5[-1].status == "ok" and "MQTT 5" in v5[-1].detail
    broker.stop()
    down = dr.check_broker(up, 2)
    assert len(down) == 1 and down[0].status == "fail" and "unreachable" in down[0].detail
    assert f"nc -vz 127.0.0.1 {broker.port}" in down[0].fix


def test_broker_refuses_anonymous(tmp_path: Path) -> None:
    m = Mosquitto(workdir=tmp_path / "m", allow_anonymous=False)
    m.start()
    try:
        res = dr.check_broker(UpstreamConfig(host="127.0.0.1", port=m.port), 5)
    finally:
        m.stop()
    assert res[-1].name == "broker mqtt" and res[-1].status == "fail"
    assert "not authorised" in res[-1].detail and "password_file" in res[-1].fix


def test_not_an_mqtt_port() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        up = UpstreamConfig(host="127.0.0.1", port=srv.getsockname()[1])
        import threading

        def answer() -> None:
            c, _ = srv.accept()
            c.recv(100)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            c.close()

        t = threading.Thread(target=answer)
        t.start()
        res = dr.check_broker(up, 3)
        t.join()
    assert res[-1].status == "fail" and "no CONNACK" in res[-1].detail


def _cert(tmp: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server cert for 127.0.0.1 signed by it, and an unrelated CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)

    def ca(cn: str) -> tuple[Any, Any]:
        k = ec.generate_private_key(ec.SECP256R1())
        c = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(k, hashes.SHA256())
        )
        return k, c

    ca_key, ca_cert = ca("test ca")
    _, other = ca("other ca")
    sk = ec.generate_private_key(ec.SECP256R1())
    sc = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(sk.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = [tmp / n for n in ("ca.pem", "server.pem", "server.key", "other-ca.pem")]
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(sc.public_bytes(pem))
    paths[2].write_bytes(
        sk.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[3].write_bytes(other.public_bytes(pem))
    return paths[0], paths[1], paths[2], paths[3]


def test_broker_tls_valid_and_wrong_ca(tmp_path: Path) -> None:
    ca, cert, key, other = _cert(tmp_path)
    m = Mosquitto(workdir=tmp_path / "m", extra_conf=f"certfile {cert}\nkeyfile {key}\nuser root")
    m.start()
    try:
        good = dr.check_broker(UpstreamConfig(host="127.0.0.1", port=m.port, tls=True, ca_file=ca))
        bad = dr.check_broker(
            UpstreamConfig(host="127.0.0.1", port=m.port, tls=True, ca_file=other)
        )
    finally:
        m.stop()
    assert [r.status for r in good] == ["ok", "ok", "ok"], good
    assert "valid 8" in good[1].detail or "valid 9" in good[1].detail  # ~90 days left
    assert bad[-1].name == "broker tls" and bad[-1].status == "fail"
    assert "certificate verify failed" in bad[-1].detail and "ca_file" in bad[-1].fix


# --------------------------------------------------------------------------- the CLI, for real


def test_doctor_against_running_daemon_and_broker(tmp_path: Path, broker: Mosquitto) -> None:
    a = Agent(tmp_path, broker_port=broker.port, devices=[DEV])
    a.start()
    try:
        # Break two things an installer meets on site: a world-readable devices file and a
        # packet forwarder that never sent anything.
        a.devices_path.chmod(0o644)
        r = run_doctor(a.config_path, "--json")
        assert r.returncode == 1, r.stderr
        out = json.loads(r.stdout)
        assert out["ok"] is False
        c = by_name(out)
        assert c["daemon"]["status"] == "ok"
        assert c[f"udp 127.0.0.1:{a.udp_port}"]["status"] == "ok"
        assert c["packet forwarder"]["status"] == "fail"
        assert f"serv_port_up and serv_port_down to {a.udp_port}" in c["packet forwarder"]["fix"]
        assert c["broker tcp"]["status"] == "ok"
        assert c["broker mqtt"]["status"] == "ok"
        assert c["database"]["status"] == "ok" and "quick_check ok" in c["database"]["detail"]
        assert c["perm devices file"]["status"] == "fail"
        assert c["perm devices file"]["fix"] == f"sudo chmod 600 {a.devices_path}"
        assert c["perm database"]["status"] == "ok"
        assert c["perm config"]["status"] == "ok"
        assert c["disk"]["status"] in ("ok", "warn")
        assert all(x["fix"] for x in out["checks"] if x["status"] != "ok")

        # The human output: one line per check, FAIL lines followed by their fix.
        r = run_doctor(a.config_path)
        assert r.returncode == 1
        lines = r.stdout.splitlines()
        i = next(i for i, s in enumerate(lines) if s.startswith("FAIL perm devices file"))
        assert f"fix: sudo chmod 600 {a.devices_path}" in lines[i + 1]
        assert any(s.startswith("  ok daemon") for s in lines)

        # Fix both: chmod, and a packet forwarder that says hello (PULL_DATA keepalive).
        a.devices_path.chmod(0o600)
        fwd = Forwarder(a.udp_port)
        try:
            fwd.raw(b"\x02\x12\x34\x02" + fwd.eui)
            time.sleep(0.5)
            c = by_name(json.loads(run_doctor(a.config_path, "--json").stdout))
        finally:
            fwd.close()
        assert c["perm devices file"]["status"] == "ok"
        assert c["packet forwarder"]["status"] == "ok", c["packet forwarder"]
        assert fwd.eui.hex() in c["packet forwarder"]["detail"]

        # The broker goes away: unreachable, with what to check.
        broker.stop()
        c = by_name(json.loads(run_doctor(a.config_path, "--json", "--timeout", "2").stdout))
        assert c["broker tcp"]["status"] == "fail"
        assert "backhaul" in c["broker tcp"]["fix"]
    finally:
        assert a.stop() == 0, a.log()


def test_doctor_with_the_daemon_stopped(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[DEV])
    a.start()
    assert a.stop() == 0  # leaves a database behind
    r = run_doctor(a.config_path, "--json")
    assert r.returncode == 1
    c = by_name(json.loads(r.stdout))
    assert c["daemon"]["status"] == "fail" and "systemctl start gateway-agent" in c["daemon"]["fix"]
    udp = c[f"udp 127.0.0.1:{a.udp_port}"]
    assert udp["status"] == "fail" and udp["detail"] == "nothing is listening"
    assert c["broker"]["status"] == "ok"  # upstream disabled in this config
    assert c["database"]["status"] == "ok"  # quick_check on the file directly


def test_doctor_flags_world_writable_config(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[DEV])
    a.config_path.chmod(0o666)
    r = run_doctor(a.config_path, "--json")
    c = by_name(json.loads(r.stdout))
    assert c["perm config"]["status"] == "fail"
    assert c["perm config"]["fix"] == f"sudo chmod o-w {a.config_path}"
    assert c["database"]["status"] == "warn"  # never started: no DB yet


def test_udp_port_probe_in_use_by_someone_else(tmp_path: Path) -> None:
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
        a = Agent(tmp_path, broker_port=None, devices=[DEV])
        a.cfg["sources"][0]["listen"] = f"127.0.0.1:{port}"
        from tests.agentproc import write_toml

        write_toml(a.config_path, a.cfg)
        c = by_name(json.loads(run_doctor(a.config_path, "--json").stdout))
    assert c[f"udp 127.0.0.1:{port}"]["status"] == "fail"
    assert "held by another process" in c[f"udp 127.0.0.1:{port}"]["detail"]
