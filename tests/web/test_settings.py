"""`[web]` loader, users file and token file: what a console may listen on, and with what."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway_agent.errors import ConfigError
from gateway_agent.web import WebSettings, hash_password, load_web_settings, read_credentials
from gateway_agent.web.users import load_users, verify_password


def test_defaults_listen_on_loopback_8080() -> None:
    s = load_web_settings({})
    assert (s.host, s.port, s.auth, s.tls, s.loopback) == ("127.0.0.1", 8080, False, False, True)
    assert load_web_settings(None) == WebSettings()


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.168.1.20:80", "[::]:8080", "gw.lan:443"])
def test_non_loopback_without_auth_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_web_settings({"listen": listen})
    assert e.value.key_path == "web.listen"
    assert "users_file or token_file" in str(e.value)


def test_non_loopback_with_auth_needs_tls() -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load_web_settings({"listen": "0.0.0.0:8443", "users_file": "/etc/ga/users.toml"})
    s = load_web_settings(
        {
            "listen": "0.0.0.0:8443",
            "users_file": "users.toml",
            "tls_cert": "c.pem",
            "tls_key": "k.pem",
        },
        base_dir=Path("/etc/ga"),
    )
    assert s.auth and s.tls and s.users_file == Path("/etc/ga/users.toml")


@pytest.mark.parametrize(
    ("table", "key", "text"),
    [
        ({"listen": "8080"}, "web.listen", "host:port"),
        ({"listen": "127.0.0.1:99999"}, "web.listen", "port 0-65535"),
        ({"listen": 8080}, "web.listen", "host:port"),
        ({"tls_cert": "c.pem"}, "web.tls_key", "go together"),
        ({"token_role": "admin"}, "web.token_role", "viewer | operator"),
        ({"session_idle_min": 0}, "web.session_idle_min", "number"),
        ({"login_failures_per_min": True}, "web.login_failures_per_min", "integer"),
        ({"users_file": ""}, "web.users_file", "file path"),
        ({"listne": "127.0.0.1:1"}, "web.listne", "unknown key"),
    ],
)
def test_bad_values_name_their_key(table: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_web_settings(table)
    assert e.value.key_path == key
    assert text in str(e.value)


def test_password_hash_round_trip_and_never_plain() -> None:
    h = hash_password("correct horse")
    assert h.startswith("scrypt$16384$8$1$") and "correct" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("wrong", h)
    assert not verify_password("x" * 2000, h)  # bounded work
    assert not verify_password("correct horse", "correct horse")
    assert not verify_password(
        "a", "scrypt$1099511627776$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA=="
    )


def test_users_file_refuses_plain_passwords_and_bad_roles() -> None:
    with pytest.raises(ConfigError) as e:
        load_users({"user": [{"name": "ann", "role": "operator", "password": "hunter22"}]})
    assert e.value.key_path == "web.users_file: user[0].password"
    assert "hunter22" not in str(e.value)  # a password typed in clear is never quoted back
    with pytest.raises(ConfigError, match="viewer | operator"):
        load_users({"user": [{"name": "ann", "role": "root", "password": hash_password("x")}]})
    h = hash_password("x")
    with pytest.raises(ConfigError, match="duplicate"):
        load_users({"user": [{"name": "a", "role": "viewer", "password": h}] * 2})


def test_credential_files_must_be_0600(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text(f'[[user]]\nname="ann"\nrole="viewer"\npassword="{hash_password("pw")}"\n')
    token = tmp_path / "token"
    token.write_text("a" * 40)
    s = load_web_settings({"users_file": str(users), "token_file": str(token)})
    for f in (users, token):
        os.chmod(users, 0o600)
        os.chmod(token, 0o600)
        os.chmod(f, 0o640)
        with pytest.raises(ConfigError, match="chmod 600"):
            read_credentials(s)
    os.chmod(users, 0o600)
    os.chmod(token, 0o600)
    creds = read_credentials(s)
    assert list(creds.users) == ["ann"] and creds.users["ann"].role == "viewer"
    assert "a" * 40 not in repr(creds)
    token.write_text("short")
    with pytest.raises(ConfigError, match="32"):
        read_credentials(s)
