"""`doctor`: health checks for an installer on site, each failure with the command that fixes it.

Each check takes what it needs (config, the daemon's live status, `now`) and returns
`CheckResult`s; the IO each one does (a UDP bind probe, a TCP/TLS/MQTT probe, stat) is its own.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway_agent.config import Config, GwmpSourceConfig, SerialSourceConfig, UpstreamConfig
from gateway_agent.errors import AgentError

OK, WARN, FAIL = "ok", "warn", "fail"
FORWARDER_FRESH_S = 60.0
PLAUSIBLE_AFTER = 1_672_531_200  # 2023-01-01T00:00:00Z: a Pi without RTC boots in the past
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 500 * 1024 * 1024
CERT_WARN_S = 14 * 86400
SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
UNIT = "gateway-agent"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, FAIL, detail, fix)


# --------------------------------------------------------------------------- daemon & radio


def check_daemon(live: dict[str, Any] | None) -> CheckResult:
    if live is None:
        return fail(
            "daemon",
            "not running (no answer on the control socket)",
            f"sudo systemctl start {UNIT}; why it stopped: journalctl -u {UNIT} -e",
        )
    d = live.get("daemon", {})
    if not d.get("healthy", True):
        return warn(
            "daemon",
            f"running pid {d.get('pid')} but the pipeline is stalled (watchdog withheld)",
            f"journalctl -u {UNIT} -e; systemd restarts it when the watchdog expires",
        )
    return ok("daemon", f"running pid {d.get('pid')}, up {d.get('uptime_s', 0):.0f}s")


def probe_udp(host: str, port: int) -> str:
    """'bound' when something holds host:port, 'free' when nothing does, else an errno name."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            return (
                "bound"
                if e.errno == errno.EADDRINUSE
                else errno.errorcode.get(e.errno or 0, str(e))
            )
    return "free"


def check_gwmp_listen(src: GwmpSourceConfig, index: int, running: bool) -> list[CheckResult]:
    out = []
    for host, port in src.listen:
        name = f"udp {host}:{port}"
        state = probe_udp(host, port)
        if state == "bound" and running:
            out.append(ok(name, "bound (GWMP listener up)"))
        elif state == "bound":
            out.append(
                fail(
                    name,
                    "held by another process while the agent is stopped",
                    f"find it: sudo ss -ulpn 'sport = :{port}'; stop it or change sources[{index}].listen",
                )
            )
        elif state == "free":
            out.append(
                fail(
                    name,
                    "nothing is listening",
                    f"start the agent (sudo systemctl start {UNIT}); check journalctl -u {UNIT}",
                )
            )
        else:
            out.append(
                fail(
                    name,
                    f"cannot bind: {state}",
                    f"set sources[{index}].listen to an address of this host (e.g. 127.0.0.1:{port})",
                )
            )
    return out


def check_forwarder_seen(
    src: GwmpSourceConfig, gateways: dict[str, Any], now: float
) -> CheckResult:
    host, port = src.listen[0]
    fix = (
        f"in the packet forwarder's global_conf.json/local_conf.json set server_address to "
        f'"{"127.0.0.1" if host in ("0.0.0.0", "::") else host}", serv_port_up and serv_port_down '
        f"to {port}, then restart it (e.g. sudo systemctl restart lora-pkt-fwd)"
    )
    if not gateways:
        return fail("packet forwarder", f"never heard on udp {host}:{port}", fix)
    newest_eui, newest = max(gateways.items(), key=lambda kv: kv[1].get("last_seen") or 0)
    last = newest.get("last_seen") or 0
    age = now - last
    if age > FORWARDER_FRESH_S:
        return fail(
            "packet forwarder",
            f"gateway {newest_eui} last heard {age:.0f}s ago (> {FORWARDER_FRESH_S:.0f}s)",
            "is the packet forwarder running? sudo systemctl status lora-pkt-fwd; " + fix,
        )
    return ok("packet forwarder", f"gateway {newest_eui} heard {age:.0f}s ago")


def check_serial(src: SerialSourceConfig) -> CheckResult:
    name = f"serial {src.port}"
    if not os.path.exists(src.port):
        return fail(name, "device not present", "check the USB cable; ls -l /dev/serial/by-id/")
    if not os.access(src.port, os.R_OK | os.W_OK):
        return warn(
            name,
            "not readable/writable by this user (the service user needs group dialout)",
            "sudo usermod -aG dialout gateway-agent (the unit sets SupplementaryGroups=dialout)",
        )
    return ok(name, "present")


# --------------------------------------------------------------------------- broker


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
            from gateway_agent.forwarder import tls_context

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
    from gateway_agent.forwarder import read_password

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


# --------------------------------------------------------------------------- host


def check_database(db_path: Path, quick_check: Callable[[], str] | None) -> CheckResult:
    if not db_path.exists():
        return warn("database", f"{db_path} does not exist yet", f"sudo systemctl start {UNIT}")
    if quick_check is None:
        return warn("database", "quick_check skipped", "run doctor with sudo")
    try:
        res = quick_check()
    except Exception as e:
        return fail("database", f"quick_check failed: {e}", _db_fix(db_path))
    if res != "ok":
        return fail("database", f"quick_check: {res[:120]}", _db_fix(db_path))
    return ok("database", f"quick_check ok ({db_path})")


def _db_fix(db_path: Path) -> str:
    return (
        f"sudo systemctl restart {UNIT} (a corrupt DB is moved aside to {db_path.name}.corrupt-* "
        "and a fresh one started); unsent data stays in the moved file"
    )


def check_disk(path: Path, max_db_bytes: int, db_bytes: int) -> CheckResult:
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
    except OSError as e:
        return warn("disk", f"cannot stat {path}: {e.strerror}", f"sudo mkdir -p {path}")
    room = max_db_bytes - db_bytes
    detail = f"{free / 1e9:.2f} GB free on {path}"
    fix = "free space: sudo journalctl --vacuum-size=50M; sudo apt-get clean; lower store.max_db_mb"
    if free < DISK_FAIL_BYTES:
        return fail("disk", detail, fix)
    if free < DISK_WARN_BYTES or free < room:
        return warn("disk", detail + f" (< {max(room, DISK_WARN_BYTES) / 1e6:.0f} MB needed)", fix)
    return ok("disk", detail)


def clock_synchronized() -> bool | None:
    """timesyncd's flag file, else timedatectl's NTPSynchronized; None when neither tells."""
    if SYNC_FLAG.exists():
        return True
    try:
        r = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    v = r.stdout.strip()
    return {"yes": True, "no": False}.get(v) if r.returncode == 0 else None


def check_clock(now: float, synchronized: bool | None) -> CheckResult:
    fix = "sudo timedatectl set-ntp true; check NTP reachability (timedatectl timesync-status)"
    if now < PLAUSIBLE_AFTER:
        return fail("clock", f"implausible time {time.strftime('%Y-%m-%d', time.gmtime(now))}", fix)
    if synchronized is None:
        return warn("clock", "synchronisation state unknown", fix)
    if not synchronized:
        return warn("clock", "not synchronised (readings may carry a wrong time)", fix)
    return ok("clock", "synchronised")


def _mode(p: Path) -> int | None:
    try:
        return stat.S_IMODE(p.stat().st_mode)
    except OSError:
        return None


def check_secret_mode(what: str, p: Path) -> CheckResult | None:
    """Files with keys or passwords must be 0600 (world-readable: the daemon refuses to start)."""
    mode = _mode(p)
    if mode is None:
        return None
    name = f"perm {what}"
    fix = f"sudo chmod 600 {p}"
    if mode & 0o004:
        return fail(name, f"{p} is world-readable ({mode:o})", fix)
    if mode & 0o077:
        return warn(name, f"{p} is {mode:o}, expected 600", fix)
    return ok(name, f"{p} {mode:o}")


def check_permissions(cfg: Config) -> list[CheckResult]:
    out: list[CheckResult] = []
    secrets: list[tuple[str, Path | None]] = [
        ("devices file", cfg.agent.devices_file),
        ("upstream.password_file", cfg.upstream.password_file),
        ("upstream.key_file", cfg.upstream.key_file),
        ("database", cfg.agent.db_path),
    ]
    for what, p in secrets:
        r = check_secret_mode(what, p) if p is not None else None
        if r is not None:
            out.append(r)
    if cfg.path is not None:
        for p in (cfg.path, cfg.path.parent):
            mode = _mode(p)
            if mode is not None and mode & 0o002:
                out.append(
                    fail("perm config", f"{p} is world-writable ({mode:o})", f"sudo chmod o-w {p}")
                )
                break
        else:
            out.append(ok("perm config", f"{cfg.path} not world-writable"))
    return out


# --------------------------------------------------------------------------- all


def run_checks(
    cfg: Config,
    live: dict[str, Any] | None,
    quick_check: Callable[[], str] | None,
    now: float | None = None,
    broker_timeout_s: float = 5.0,
) -> list[CheckResult]:
    """Every check, in the order an installer fixes things: process, radio, backhaul, host."""
    now = time.time() if now is None else now
    out = [check_daemon(live)]
    gateways = (live or {}).get("gateways") or {}
    for i, src in enumerate(cfg.sources):
        if isinstance(src, GwmpSourceConfig):
            out.extend(check_gwmp_listen(src, i, live is not None))
            out.append(check_forwarder_seen(src, gateways, now))
        elif isinstance(src, SerialSourceConfig):
            out.append(check_serial(src))
    out.extend(check_broker(cfg.upstream, broker_timeout_s))
    up = (live or {}).get("upstream")
    if up and cfg.upstream.enabled and not up.get("connected"):
        out.append(
            warn(
                "upstream",
                f"the daemon is not connected: {up.get('last_error') or 'connecting'}",
                "gateway-agent outbox retry (reconnect now)",
            )
        )
    out.append(check_database(cfg.agent.db_path, quick_check))
    db_bytes = (live or {}).get("db", {}).get("size_bytes", 0)
    out.append(check_disk(cfg.agent.state_dir, int(cfg.store.max_db_mb * 1024 * 1024), db_bytes))
    out.append(check_clock(now, clock_synchronized()))
    out.extend(check_permissions(cfg))
    return out
