"""`doctor`'s broker probe: TCP connect, TLS handshake with the configured CA/cert (the same
context the forwarder builds), then a raw MQTT CONNECT/CONNACK and DISCONNECT."""

from __future__ import annotations

import os
import socket
import ssl
import time

from gateway_agent.config import UpstreamConfig
from gateway_agent.doctor.check_result import CheckResult, fail, ok, warn
from gateway_agent.errors import AgentError

CERT_WARN_S = 14 * 86400


def mqtt_connect_packet(
    client_id: str, username: str | None, password: str | None, v5: bool
) -> bytes:
    """MQTT CONNECT (3.1.1 section 3.1 / 5.0 section 3.1), clean session, keepalive 10 s."""

    def s(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    flags = 0x02 | (0x80 if username else 0) | (0x40 if username and password is not None else 0)
    var = s(b"MQTT") + bytes([5 if v5 else 4, flags]) + (10).to_bytes(2, "big")
    if v5:
        var += b"\x00"  # no properties
    payload = s(client_id.encode())
    if username:
        payload += s(username.encode())
        if password is not None:
            payload += s(password.encode())
    body = var + payload
    n, rl = len(body), b""
    while True:
        n, d = divmod(n, 128)
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return b"\x10" + rl + body


CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
    0x84: "unsupported protocol version",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x88: "server unavailable",
}


def parse_connack(data: bytes) -> int:
    """Return code of a CONNACK (the byte after the session-present flags). Raises ValueError."""
    if len(data) < 4 or data[0] != 0x20:
        raise ValueError(f"not a CONNACK: {data[:8].hex()}")
    return data[3]


def check_broker(up: UpstreamConfig, timeout_s: float = 5.0) -> list[CheckResult]:
    if not up.enabled:
        return [ok("broker", "upstream disabled in config")]
    where = f"{up.host}:{up.port}"
    try:
        sock = socket.create_connection((up.host, up.port), timeout=timeout_s)
    except OSError as e:
        return [
            fail(
                "broker tcp",
                f"{where} unreachable: {e.strerror or e}",
                "check upstream.host/port, the backhaul (ping, 4G signal) and the council "
                f"firewall; data waits in the outbox meanwhile: nc -vz {up.host} {up.port}",
            )
        ]
    out = [ok("broker tcp", f"{where} reachable")]
    conn: socket.socket = sock
    try:
        if up.tls:
            from gateway_agent.upstream.forwarder import tls_context

            try:
                ctx = tls_context(up)
                assert ctx is not None
                conn = ctx.wrap_socket(sock, server_hostname=up.host)
            except (AgentError, ssl.SSLError, OSError) as e:
                out.append(
                    fail(
                        "broker tls",
                        f"handshake failed: {e}",
                        "check upstream.ca_file (the CA that signed the broker), cert_file/key_file "
                        "and the clock; openssl s_client -connect "
                        f"{where} -CAfile <ca_file>",
                    )
                )
                return out
            out.append(_cert_result(conn))
        out.append(_mqtt_probe(conn, up, timeout_s))
    finally:
        conn.close()
    return out


def _cert_result(conn: socket.socket) -> CheckResult:
    cert = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
    if not cert or "notAfter" not in cert:
        return ok("broker tls", "handshake ok (certificate not verified: tls_insecure)")
    left = ssl.cert_time_to_seconds(str(cert["notAfter"])) - time.time()
    if left < CERT_WARN_S:
        return warn(
            "broker tls",
            f"certificate expires in {left / 86400:.0f} days",
            "ask the broker operator to renew the server certificate",
        )
    return ok("broker tls", f"handshake ok, certificate valid {left / 86400:.0f} more days")


def _mqtt_probe(conn: socket.socket, up: UpstreamConfig, timeout_s: float) -> CheckResult:
    from gateway_agent.upstream.forwarder import read_password

    try:
        password = read_password(up)
    except AgentError as e:
        return warn("broker mqtt", str(e), "run doctor with sudo (the file is 0600)")
    pkt = mqtt_connect_packet(
        f"gateway-agent-doctor-{os.getpid()}", up.username, password, up.mqtt_version == "5"
    )
    try:
        conn.settimeout(timeout_s)
        conn.sendall(pkt)
        data = b""
        while len(data) < 4:
            chunk = conn.recv(64)
            if not chunk:
                break
            data += chunk
        rc = parse_connack(data)
        conn.sendall(b"\xe0\x00")  # DISCONNECT
    except (OSError, ValueError) as e:
        return fail(
            "broker mqtt",
            f"no CONNACK: {e}",
            "is it an MQTT port (1883 plain, 8883 TLS)? check upstream.port and upstream.tls",
        )
    if rc != 0:
        return fail(
            "broker mqtt",
            f"CONNECT refused: {CONNACK_REASONS.get(rc, f'code {rc}')}",
            "check upstream.username / password_file and the broker's ACL for this gateway",
        )
    return ok("broker mqtt", f"CONNECT accepted (MQTT {up.mqtt_version})")
