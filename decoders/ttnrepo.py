"""`ttn:VENDOR/MODEL[/FIRMWARE[/BAND]]` resolved against a local copy of the TTN Device Repository
(`vendor/<vendor>/<model>.yaml` -> its codec YAML -> the JS files and the example frames), and
the `[codecs]` config section. Pure apart from reading those files at config time."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decoders.yamlsub import YamlError, loads
from gateway_agent.errors import CodecError, ConfigError

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_YAML_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CodecSettings:
    """The `[codecs]` section: where the TTN Device Repository copy lives (None: no `ttn:`)."""

    ttn_repository: Path | None = None


def load_codec_settings(
    section: Mapping[str, Any] | None, key_path: str = "codecs", base_dir: Path | None = None
) -> CodecSettings:
    """`[codecs]` -> CodecSettings; ConfigError names the key. A relative path is taken from
    `base_dir` (the config file's directory)."""
    if section is None:
        return CodecSettings()
    if not isinstance(section, Mapping):
        raise ConfigError(key_path, "expected a table")
    unknown = sorted(set(section) - {"ttn_repository"})
    if unknown:
        raise ConfigError(f"{key_path}.{unknown[0]}", "unknown key")
    raw = section.get("ttn_repository")
    if raw is None:
        return CodecSettings()
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise ConfigError(f"{key_path}.ttn_repository", "expected a directory path")
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return CodecSettings(ttn_repository=path)


@dataclass(frozen=True, slots=True)
class Example:
    """One example the repository ships: `uplink` (bytes -> data), `downlink-encode`
    (data -> bytes) or `downlink-decode` (bytes -> data)."""

    kind: str
    description: str
    f_port: int | None
    payload: bytes | None
    data: Any
    errors: tuple[str, ...] = ()
    normalized: Any = None


@dataclass(frozen=True, slots=True)
class TtnModel:
    """One device model's codec in the repository."""

    spec: str
    vendor: str
    model: str
    codec_name: str
    uplink_file: Path
    encoder_file: Path | None = None
    examples: tuple[Example, ...] = field(default_factory=tuple)


def _read_yaml(path: Path, spec: str) -> Any:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise CodecError(f"{path}: larger than 1 MiB", codec=spec, reason="codec_js_load")
        return loads(raw.decode("utf-8"))
    except OSError as exc:
        raise CodecError(
            f"ttn repository: cannot read {path}: {exc.strerror}",
            codec=spec,
            reason="unknown_codec",
        ) from None
    except (YamlError, UnicodeDecodeError) as exc:
        raise CodecError(f"{path}: {exc}", codec=spec, reason="codec_js_load") from None


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, list) and all(type(b) is int and 0 <= b <= 255 for b in value):
        return bytes(value)
    return None


def _examples(kind: str, section: Any) -> list[Example]:
    out: list[Example] = []
    raw = section.get("examples") if isinstance(section, Mapping) else None
    for ex in raw if isinstance(raw, list) else []:
        if not isinstance(ex, Mapping):
            continue
        raw_in, raw_out = ex.get("input"), ex.get("output")
        inp = raw_in if isinstance(raw_in, Mapping) else {}
        outp = raw_out if isinstance(raw_out, Mapping) else {}
        norm = ex.get("normalizedOutput")
        data_in, data_out = inp.get("data"), outp.get("data")
        port = inp.get("fPort", outp.get("fPort"))
        payload = _bytes(outp.get("bytes") if kind == "downlink-encode" else inp.get("bytes"))
        errors = outp.get("errors") or []
        out.append(
            Example(
                kind,
                str(ex.get("description", "")),
                port if type(port) is int else None,
                payload,
                data_in if kind == "downlink-encode" else data_out,
                tuple(str(e) for e in errors) if isinstance(errors, list) else (str(errors),),
                norm.get("data") if isinstance(norm, Mapping) else None,
            )
        )
    return out


def resolve(root: Path, spec: str) -> TtnModel:
    """`VENDOR/MODEL[/FIRMWARE[/BAND]]` -> the model's codec files and examples. Without a
    firmware the last listed is used (the repository lists them oldest first); without a band,
    the first profile that names a codec. Errors are CodecError naming what is missing."""
    parts = spec.split("/")
    if not 2 <= len(parts) <= 4 or not all(_SEGMENT.match(p) for p in parts[:2]):
        raise CodecError(
            f"ttn:{spec}: expected ttn:VENDOR/MODEL[/FIRMWARE[/BAND]]",
            codec=f"ttn:{spec}",
            reason="unknown_codec",
        )
    cid = f"ttn:{spec}"
    vendor, model = parts[0], parts[1]
    vdir = root / "vendor" / vendor
    device = _read_yaml(vdir / f"{model}.yaml", cid)
    firmwares = device.get("firmwareVersions") if isinstance(device, Mapping) else None
    if not isinstance(firmwares, list) or not firmwares:
        raise CodecError(f"{cid}: no firmwareVersions", codec=cid, reason="unknown_codec")
    want = parts[2] if len(parts) > 2 else None
    chosen = [f for f in firmwares if isinstance(f, Mapping) and str(f.get("version")) == want]
    if want is not None and not chosen:
        known = ", ".join(str(f.get("version")) for f in firmwares if isinstance(f, Mapping))
        raise CodecError(
            f"{cid}: no firmware {want!r} (known: {known})", codec=cid, reason="unknown_codec"
        )
    firmware = chosen[0] if chosen else firmwares[-1]
    profiles = firmware.get("profiles") if isinstance(firmware, Mapping) else None
    profiles = profiles if isinstance(profiles, Mapping) else {}
    band = parts[3] if len(parts) > 3 else None
    if band is not None and band not in profiles:
        raise CodecError(
            f"{cid}: no band {band!r} (known: {', '.join(profiles)})",
            codec=cid,
            reason="unknown_codec",
        )
    codecs = [
        p.get("codec")
        for b, p in profiles.items()
        if (band is None or b == band) and isinstance(p, Mapping) and p.get("codec")
    ]
    if not codecs or not _SEGMENT.match(str(codecs[0])):
        raise CodecError(f"{cid}: the model names no codec", codec=cid, reason="unknown_codec")
    codec_name = str(codecs[0])
    codec = _read_yaml(vdir / f"{codec_name}.yaml", cid)
    if not isinstance(codec, Mapping):
        raise CodecError(f"{cid}: {codec_name}.yaml is empty", codec=cid, reason="codec_js_load")

    def file_of(key: str) -> Path | None:
        sec = codec.get(key)
        name = sec.get("fileName") if isinstance(sec, Mapping) else None
        if name is None:
            return None
        if not isinstance(name, str) or not all(_SEGMENT.match(p) for p in name.split("/")):
            raise CodecError(f"{cid}: bad {key}.fileName", codec=cid, reason="codec_js_load")
        return vdir / name

    uplink = file_of("uplinkDecoder")
    if uplink is None:
        raise CodecError(
            f"{cid}: {codec_name} has no uplinkDecoder", codec=cid, reason="codec_js_load"
        )
    encoder = file_of("downlinkEncoder")
    examples = (
        _examples("uplink", codec.get("uplinkDecoder"))
        + _examples("downlink-encode", codec.get("downlinkEncoder"))
        + _examples("downlink-decode", codec.get("downlinkDecoder"))
    )
    return TtnModel(spec, vendor, model, codec_name, uplink, encoder, tuple(examples))
