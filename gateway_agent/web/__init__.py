"""The local web console (issue #19): aiohttp on the daemon's loop, pages and a JSON API over
the same control commands and read models as the CLI. Wired by the daemon (daemon/supervisor.py)."""

from gateway_agent.web.host import Command, Commands, WebHost
from gateway_agent.web.settings import WebSettings, load_web_settings
from gateway_agent.web.users import Credentials, hash_password, read_credentials

__all__ = [
    "Command",
    "Commands",
    "Credentials",
    "WebHost",
    "WebSettings",
    "hash_password",
    "load_web_settings",
    "read_credentials",
]
