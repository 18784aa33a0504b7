"""Mutual TLS against a real mosquitto (`require_certificate true`), username + password file,
MQTT 5; a client certificate from the wrong CA is refused with a clear log line, nothing lost."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hil.broker import Mosquitto
from tests.agentproc import write_toml
from tests.durability_kit import db_query, fleet, frame, make_agent, send_all, wait_accepted


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return key, b.sign(ca[0], hashes.SHA256())


def write_pem(d: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp = d / f"{name}.key"
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    kp.chmod(0o644 if name == "server" else 0o600)  # mosquitto drops root: it must read its key


def test_mutual_tls_password_mqtt5_and_wrong_client_cert(tmp_path: Path) -> None:
    # mosquitto drops root for its own user, which cannot enter pytest's 0700 tmp tree.
    shared = Path(tempfile.mkdtemp(prefix="ga-tls-"))
    os.chmod(shared, 0o755)  # noqa: S103
    pki = shared / "pki"
    pki.mkdir()
    os.chmod(pki, 0o755)
    ca = make_ca("test-ca")
    other_ca = make_ca("rogue-ca")
    (pki / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    write_pem(pki, "server", *issue(ca, "localhost", True))
    write_pem(pki, "client", *issue(ca, "fife-ps-017", False))
    write_pem(pki, "rogue", *issue(other_ca, "fife-ps-017", False))
    pw = pki / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "gw", "s3cret-pw"], check=True)
    pw.chmod(0o644)
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "pw").chmod(0o600)
    mdir = shared / "mq"
    mdir.mkdir()
    os.chmod(mdir, 0o777)  # noqa: S103 - throwaway broker dir, mosquitto drops to its own user
    broker = Mosquitto(
        workdir=mdir,
        allow_anonymous=False,
        extra_conf="\n".join(
            [
                f"cafile {pki / 'ca.crt'}",
                f"certfile {pki / 'server.crt'}",
                f"keyfile {pki / 'server.key'}",
                "require_certificate true",
                f"password_file {pw}",
            ]
        ),
    )
    broker.start()
    devs = fleet(2)
    upstream = {
        "host": "localhost",
        "tls": True,
        "ca_file": str(pki / "ca.crt"),
        "cert_file": str(pki / "rogue.crt"),
        "key_file": str(pki / "rogue.key"),
        "username": "gw",
        "password_file": str(tmp_path / "pw"),
        "mqtt_version": "5",
    }
    agent = make_agent(tmp_path / "a", broker.port, devs, upstream=upstream)
    try:
        # 1. Wrong client certificate: refused, a clear line, nothing leaves the outbox.
        agent.start()
        send_all(agent, [frame(d, f) for f in range(20) for d in devs])
        assert wait_accepted(agent, 40) == 40
        deadline = time.monotonic() + 10
        while "upstream_tls_failed" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        line = next(x for x in agent.log().splitlines() if "upstream_tls_failed" in x)
        assert "reason=client_certificate_refused" in line, line
        assert agent.ask("outbox")["depth"] == 40, "no data lost or deleted without a PUBACK"
        assert "s3cret-pw" not in agent.log()
        agent.stop()
        # 2. The right certificate: everything that waited is delivered over mutual TLS + MQTT 5.
        agent.cfg["upstream"].update(
            cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key")
        )
        write_toml(agent.config_path, agent.cfg)
        agent.start()
        deadline = time.monotonic() + 15
        while agent.ask("outbox")["depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.ask("outbox")["depth"] == 0
        assert "upstream_connected" in agent.log() and "tls=True" in agent.log()
        assert len(db_query(agent, "SELECT id FROM readings")) == 40
        # The broker saw a certificate-authenticated, password-authenticated client.
        assert "u'gw'" in broker.tail_log(200) or "u'gw'" in (mdir / "mosquitto.log").read_text()
        assert agent.stop() == 0
    finally:
        agent.kill()
        broker.stop()
        shutil.rmtree(shared, ignore_errors=True)
