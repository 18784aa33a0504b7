"""The broker connection's TLS and password: the SSL context from config, and naming what went
wrong in a handshake (also used by `doctor`)."""

from __future__ import annotations

import socket
import ssl

from gateway_agent.config import UpstreamConfig
from gateway_agent.errors import UpstreamError


def tls_hint(e: BaseException) -> str | None:
    """Name what went wrong in a TLS handshake so the log line says what to fix."""
    text = f"{type(e).__name__} {e} {e.__cause__ or ''}".lower()
    if isinstance(e, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        return "server_certificate_not_trusted"
    if any(
        k in text
        for k in (
            "certificate required",
            "bad certificate",
            "unknown ca",
            "certificate unknown",
            "alert_certificate",
            "decrypt error",
            "access denied",
        )
    ):
        return "client_certificate_refused"
    if isinstance(e, ssl.SSLError) or "ssl" in text:
        return "tls_handshake_failed"
    return None


def read_password(cfg: UpstreamConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        return cfg.password_file.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UpstreamError(f"cannot read upstream.password_file: {e.strerror}") from e
    except UnicodeDecodeError as e:  # changed under a running daemon: an error, not a crash
        raise UpstreamError(
            f"upstream.password_file: not UTF-8 (byte offset {e.start}); save it as UTF-8"
        ) from e


def tls_context(cfg: UpstreamConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    except (OSError, ssl.SSLError) as e:
        raise UpstreamError(f"TLS setup failed: {e}") from e
    if cfg.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def probe_tls(cfg: UpstreamConfig) -> str | None:
    """One TLS handshake plus a 1 s read: returns a `tls_hint` token if the broker refuses us."""
    try:
        ctx = tls_context(cfg)
        if ctx is None:
            return None
        with (
            socket.create_connection((cfg.host, cfg.port), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname=cfg.host) as s,
        ):
            s.settimeout(1.0)
            try:
                data = s.recv(1)
            except TimeoutError:
                return None  # the broker waits for CONNECT: the certificate was accepted
            return "client_certificate_refused" if data == b"" else None
    except (ssl.SSLError, UpstreamError) as e:
        return tls_hint(e) or "tls_handshake_failed"
    except OSError:
        return None
