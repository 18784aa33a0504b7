"""Codec registry: `CODECS` dict, the `@codec` decorator, out-of-tree plugins. Pure but for
the one lazy entry-point scan (`gateway_agent.codecs`), whose failures are collected, not logged."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any

from decoders.types import Decoded

DecodeFn = Callable[[int, bytes, Mapping[str, Any]], Decoded]
PLUGIN_GROUP = "gateway_agent.codecs"


@dataclass(frozen=True, slots=True)
class Codec:
    """One registered codec: `fn(f_port, payload, settings) -> Decoded`."""

    id: str
    fn: DecodeFn
    vendor: str = ""
    models: tuple[str, ...] = ()
    device_class: tuple[str, ...] = ("other",)
    f_ports: tuple[int, ...] | None = None  # None: the codec ignores the port
    source: str = "builtin"  # builtin | plugin | js
    alias_of: str | None = None

    def __call__(self, f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
        return self.fn(f_port, payload, settings)

    def describe(self) -> dict[str, Any]:
        """The row `gateway-agent codecs list` prints."""
        return {
            "id": self.id,
            "vendor": self.vendor,
            "models": list(self.models),
            "class": list(self.device_class),
            "f_ports": None if self.f_ports is None else list(self.f_ports),
            "source": self.source,
            "alias_of": self.alias_of,
        }


CODECS: dict[str, Codec] = {}
_plugin_errors: list[str] = []
_plugins_loaded = False
_loading_plugins = False


def register(entry: Codec) -> Codec:
    """Add one codec; a duplicate id is a programming error (ValueError)."""
    if entry.id in CODECS:
        raise ValueError(f"duplicate codec id {entry.id!r}")
    if _loading_plugins and entry.source == "builtin":
        entry = replace(entry, source="plugin")
    CODECS[entry.id] = entry
    return entry


def codec(
    codec_id: str,
    *,
    vendor: str,
    models: tuple[str, ...] = (),
    device_class: str | tuple[str, ...] = "other",
    f_ports: tuple[int, ...] | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[DecodeFn], DecodeFn]:
    """Register the decorated function as codec `codec_id` (and each alias id)."""
    classes = (device_class,) if isinstance(device_class, str) else tuple(device_class)

    def wrap(fn: DecodeFn) -> DecodeFn:
        main = Codec(codec_id, fn, vendor, models, classes, f_ports)
        register(main)
        for alias in aliases:
            register(replace(main, id=alias, alias_of=codec_id))
        return fn

    return wrap


def _adopt(obj: Any) -> None:
    if isinstance(obj, Codec):
        if CODECS.get(obj.id) is not obj:
            register(replace(obj, source="plugin"))
    elif isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        for item in obj:
            _adopt(item)
    elif not callable(obj):
        raise TypeError(f"entry point gave {type(obj).__name__}, expected a Codec")
    # A plain callable (a module's decorated function) registered itself on import.


def load_plugins() -> None:
    """Import every `gateway_agent.codecs` entry point once; failures go to `plugin_errors()`."""
    global _plugins_loaded, _loading_plugins
    if _plugins_loaded:
        return
    _plugins_loaded = True
    _loading_plugins = True
    try:
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                _adopt(ep.load())
            except Exception as exc:  # a broken plugin must not take the built-ins down
                _plugin_errors.append(f"{ep.name}: {type(exc).__name__}: {exc}")
    finally:
        _loading_plugins = False


def plugin_errors() -> list[str]:
    """One line per plugin that failed to load, for the shell to log."""
    load_plugins()
    return list(_plugin_errors)
