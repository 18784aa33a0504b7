"""`doctor`: health checks for an installer on site, each failure with the command that fixes it.

Each check takes what it needs (config, the daemon's live status, `now`) and returns
`CheckResult`s; the IO each one does (a UDP bind probe, a TCP/TLS/MQTT probe, stat) is its own.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_agent.config import Config, GwmpSourceConfig, SerialSourceConfig
from gateway_agent.doctor.broker_probe import check_broker
from gateway_agent.doctor.check_result import CheckResult, fail, ok, warn

FORWARDER_FRESH_S = 60.0
PLAUSIBLE_AFTER = 1_672_531_200  # 2023-01-01T00:00:00Z: a Pi without RTC boots in the past
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 500 * 1024 * 1024
SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
UNIT = "gateway-agent"


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


def check_store_space(live: dict[str, Any] | None) -> CheckResult | None:
    """What the running daemon says of its room: a full disk sets the cap (rows are evicted by
    the eviction order), commits refused, the reserve file given up, rows set aside."""
    st = (live or {}).get("store")
    if not st:
        return None
    fix = "free space on the state dir's filesystem (sudo journalctl --vacuum-size=50M; sudo apt-get clean) or lower store.max_db_mb"
    if st.get("disk_full_s") is not None:
        return fail("store space", f"disk full for {st['disk_full_s']:.0f}s: commits refused", fix)
    damaged = sum((st.get("damaged") or {}).values())
    note = f"; {damaged} damaged rows set aside" if damaged else ""
    if st.get("limited_by") == "filesystem":
        cap = st.get("cap_bytes") or 0
        reserve = "" if st.get("reserve") else ", reserve file given up"
        return warn(
            "store space",
            f"the filesystem limits the DB to {cap / 1e6:.1f} MB (below store.max_db_mb): the "
            f"oldest data is evicted to fit{reserve}{note}",
            fix,
        )
    if damaged:
        return warn("store space", f"room ok{note}", "see `gateway-agent outbox` and the log")
    return ok("store space", "room ok")


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


def plan_checks(
    cfg: Config,
    live: dict[str, Any] | None,
    quick_check: Callable[[], str] | None,
    now: float | None = None,
    broker_timeout_s: float = 5.0,
) -> list[tuple[str, Callable[[], list[CheckResult]]]]:
    """Every check as (label, thunk), in the order an installer fixes things: process, radio,
    backhaul, host. The CLI runs them one by one under a progress bar."""
    t = time.time() if now is None else now
    gateways = (live or {}).get("gateways") or {}
    plan: list[tuple[str, Callable[[], list[CheckResult]]]] = [
        ("daemon", lambda: [check_daemon(live)])
    ]
    for i, src in enumerate(cfg.sources):
        if isinstance(src, GwmpSourceConfig):
            plan.append(
                (
                    f"radio {src.name}",
                    lambda src=src, i=i: [  # type: ignore[misc]
                        *check_gwmp_listen(src, i, live is not None),
                        check_forwarder_seen(src, gateways, t),
                    ],
                )
            )
        elif isinstance(src, SerialSourceConfig):
            plan.append((f"serial {src.port}", lambda src=src: [check_serial(src)]))  # type: ignore[misc]
    plan.append(("broker", lambda: check_broker(cfg.upstream, broker_timeout_s)))
    up = (live or {}).get("upstream")
    if up and cfg.upstream.enabled and not up.get("connected"):
        detail = f"the daemon is not connected: {up.get('last_error') or 'connecting'}"
        plan.append(("upstream", lambda: [warn("upstream", detail, "gateway-agent outbox retry")]))
    db_bytes = (live or {}).get("db", {}).get("size_bytes", 0)
    cap = int(cfg.store.max_db_mb * 1024 * 1024)
    plan += [
        ("database", lambda: [check_database(cfg.agent.db_path, quick_check)]),
        ("disk", lambda: [check_disk(cfg.agent.state_dir, cap, db_bytes)]),
        ("store space", lambda: [r for r in [check_store_space(live)] if r is not None]),
        ("clock", lambda: [check_clock(t, clock_synchronized())]),
        ("permissions", lambda: check_permissions(cfg)),
    ]
    return plan


def run_checks(
    cfg: Config,
    live: dict[str, Any] | None,
    quick_check: Callable[[], str] | None,
    now: float | None = None,
    broker_timeout_s: float = 5.0,
) -> list[CheckResult]:
    return [r for _, fn in plan_checks(cfg, live, quick_check, now, broker_timeout_s) for r in fn()]
