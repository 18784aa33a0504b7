"""Device lists from other network servers -> devices-file tables (`devices import --from`).

Three sources: The Things Stack's end-device JSON (`ttn-lw-cli end-devices list` / `get`: an
array, one object, JSON lines, or the API's `{"end_devices": [...]}`), ChirpStack v4's device
JSON (the API's Device with its DeviceKeys / DeviceActivation, snake_case or camelCase; an array,
`{"result": [...]}` or JSON lines) and CSV (`CSV_COLUMNS`). Every record is checked before anything
is returned; all problems are raised at once in `ImportProblems`, each naming the record and its
field in the source's own terms. Messages never hold key material (`parse_hex` never echoes).
Pure: text in, `Imported` out; the CLI writes them in one transaction.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_agent.config.convert import parse_hex
from gateway_agent.errors import ConfigError

FORMATS = ("tts", "chirpstack", "csv")
CSV_COLUMNS = (
    *("dev_eui", "name", "class", "codec", "join_eui", "app_key"),
    *("dev_addr", "nwk_s_key", "app_s_key", "tags"),
)

# TTN Device Repository brand ids -> the built-in codecs' vendor prefix.
_BRANDS = {"milesight-iot": "milesight", "milesight": "milesight", "elsys": "elsys"}
_BRANDS |= {"decentlab": "decentlab", "dragino": "dragino"}
# Models whose built-in codec serves two classes: the usual one.
_CLASS_OF = {"decentlab/dl-mbx": "gully", "dragino/ldds20": "gully", "dragino/ldds75": "bin"}


@dataclass
class Imported:
    """One device to write: `raw` is a devices-file table (keys included: never print it)."""

    raw: dict[str, Any]
    label: str
    notes: list[str] = field(default_factory=list)
    fcnt_up: int | None = None  # ABP: the last uplink counter the old server saw (carried)

    @property
    def dev_eui(self) -> str:
        return str(self.raw["dev_eui"])


class ImportProblems(ConfigError):
    """Every problem in the file, one line each (record and field named); nothing is written."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__("", f"{problems[0]}{more}")
        self.problems = problems


class _Bad(Exception):
    """One record's problem with a field (`where`) in the source's names."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def parse(text: str, fmt: str, *, ttn_repository: Path | None = None) -> list[Imported]:
    """The file's records as devices-file tables. Raises ImportProblems listing every bad record
    (unreadable JSON/CSV: one problem naming the line)."""
    if fmt not in FORMATS:
        raise ImportProblems([f"--from: expected one of {', '.join(FORMATS)}, got {fmt!r}"])
    if fmt == "csv":
        records = _csv_records(text)
        convert: Callable[[Mapping[str, Any], Path | None], Imported] = _from_csv
    else:
        key = "end_devices" if fmt == "tts" else "result"
        records = _json_records(text, key)
        convert = _from_tts if fmt == "tts" else _from_chirpstack
    out: list[Imported] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for label, rec in records:
        if not isinstance(rec, Mapping):
            problems.append(f"{label}: expected an object, got {type(rec).__name__}")
            continue
        try:
            imp = convert(_snake(rec), ttn_repository)
        except _Bad as e:
            problems.append(f"{label}{_who(rec)}: {e}")
            continue
        imp.label = f"{label}{_who(rec)}"
        if imp.dev_eui in seen:
            problems.append(f"{imp.label}: dev_eui {imp.dev_eui} duplicates {seen[imp.dev_eui]}")
            continue
        seen[imp.dev_eui] = label
        out.append(imp)
    if not out and not problems:
        problems.append("no devices in the file")
    if problems:
        raise ImportProblems(problems)
    return out


def _part(rec: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    """The first of `names` that is an object in `rec`, else {}."""
    for n in names:
        v = rec.get(n)
        if isinstance(v, Mapping):
            return v
    return {}


def _who(rec: Mapping[str, Any]) -> str:
    """`(device_id x)` / `(name x)` for a record's label, when it has one (never keys)."""
    rec = _snake(rec)
    ids = _part(rec, "ids")
    dev = _part(rec, "device") or rec
    for k, v in (("device_id", ids.get("device_id")), ("name", dev.get("name"))):
        if isinstance(v, str) and v:
            return f" ({k} {v[:60]!r})"
    return ""


# -- reading the file ------------------------------------------------------------------------


def _json_records(text: str, list_key: str) -> list[tuple[str, Any]]:
    stripped = text.lstrip()
    if not stripped:
        raise ImportProblems(["the file is empty"])
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as first:
        if stripped[0] != "{":
            raise ImportProblems([f"not JSON: line {first.lineno}: {first.msg}"]) from None
        # JSON lines: one object per line.
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((f"line {n}", json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as e:
                msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                raise ImportProblems([f"line {n}: not JSON: {msg}"]) from None
        return out
    except RecursionError:
        raise ImportProblems(["not JSON: nested too deeply"]) from None
    if isinstance(doc, Mapping) and isinstance(doc.get(list_key), list):
        doc = doc[list_key]
    if isinstance(doc, list):
        return [(f"record {i + 1}", r) for i, r in enumerate(doc)]
    return [("record 1", doc)]


def _csv_records(text: str) -> list[tuple[str, Any]]:
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    if not rows:
        raise ImportProblems(["the file is empty"])
    head = [h.strip().lower() for h in rows[0]]
    unknown = [h for h in head if h not in CSV_COLUMNS]
    if unknown:
        raise ImportProblems(
            [f"line 1: unknown column {unknown[0]!r} (columns: {', '.join(CSV_COLUMNS)})"]
        )
    if "dev_eui" not in head:
        raise ImportProblems(["line 1: a header row with a dev_eui column is required"])
    out = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(head):
            raise ImportProblems([f"line {n}: {len(row)} fields, the header has {len(head)}"])
        out.append((f"line {n}", {h: c.strip() for h, c in zip(head, row, strict=True) if c}))
    return out


_CAMEL = re.compile(r"(?<!^)([A-Z])")  # appSKey -> app_s_key, nFCntDown -> n_f_cnt_down


def _snake(v: Any) -> Any:
    """camelCase keys (protojson, ChirpStack's REST API) -> snake_case, recursively; tags,
    attributes and variables keep their own keys."""
    if isinstance(v, Mapping):
        return {
            (k2 := _CAMEL.sub(r"_\1", k).lower() if isinstance(k, str) else k): (
                dict(x)
                if k2 in ("tags", "attributes", "variables") and isinstance(x, Mapping)
                else _snake(x)
            )
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [_snake(x) for x in v]
    return v


# -- field checks (source names in every message) --------------------------------------------


def _hex(v: Any, where: str, n: int) -> str:
    try:
        b = parse_hex(v, where)
    except ConfigError as e:
        raise _Bad(where, e.detail) from None
    if len(b) != n:
        raise _Bad(where, f"expected {n} bytes of hex ({2 * n} digits), got {len(b)} bytes")
    return b.hex()


def _get(rec: Mapping[str, Any], path: str) -> Any:
    v: Any = rec
    for part in path.split("."):
        if not isinstance(v, Mapping):
            return None
        v = v.get(part)
    return None if v in ("", None) else v


def _key(rec: Mapping[str, Any], path: str) -> str | None:
    """A 16-byte key at `path` (`…​.key`), None when absent; a wrapped (encrypted) key is an
    error: the agent needs it in the clear, and only in its database."""
    v = _get(rec, path)
    if v is None:
        parent = _get(rec, path.rsplit(".", 1)[0]) if path.endswith(".key") else None
        if isinstance(parent, Mapping) and parent.get("encrypted_key"):
            raise _Bad(path, "wrapped by a KEK (encrypted_key): export the key unwrapped")
        return None
    key = _hex(v, path, 16)
    return None if key == "00" * 16 else key


def _text(rec: Mapping[str, Any], path: str) -> str:
    v = _get(rec, path)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _Bad(path, f"expected text, got {type(v).__name__}")
    return v


def _tags(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, Mapping):
        return [f"{k}={x}" if x not in ("", None) else str(k) for k, x in sorted(v.items())]
    raise _Bad(where, f"expected an object of names and values, got {type(v).__name__}")


def _model_codec(brand: str, model: str, repo: Path | None, notes: list[str]) -> tuple[str, str]:
    """(codec, class) for a vendor/model: the TTN repository's codec when configured and it has
    the model, else a built-in codec of that model; ("", "") and a note when neither."""
    import decoders

    brand, model = brand.lower(), model.lower()
    vendor = _BRANDS.get(brand, brand)
    builtin = decoders.CODECS.get(f"{vendor}/{model}")
    cls = ""
    if builtin is not None:
        cls = _CLASS_OF.get(builtin.id, builtin.device_class[0])
    if repo is not None:
        from decoders.ttnrepo import resolve

        try:
            resolve(repo, f"{brand}/{model}")
            return f"ttn:{brand}/{model}", cls
        except decoders.CodecError:
            used = f"; built-in {builtin.id} used" if builtin is not None else ""
            notes.append(f"codec: ttn:{brand}/{model} is not in the TTN repository{used}")
    if builtin is not None:
        return builtin.id, cls
    hint = (
        ""
        if repo is not None
        else " ([codecs] ttn_repository would offer the TTN Device Repository's)"
    )
    notes.append(f"codec: no codec for {brand}/{model}{hint}; set one with devices add --codec")
    return "", ""


def _class_note(raw: dict[str, Any], cls: str, what: str, notes: list[str]) -> None:
    raw["class"] = cls or "other"
    if not cls:
        notes.append(
            f"class: none known for {what}; 'other' used (presets need co2/legionella/...)"
        )


def _otaa_or_abp(raw: dict[str, Any], otaa: dict[str, Any], abp: dict[str, Any], how: str) -> None:
    """OTAA when there is an AppKey, else a whole ABP session, else `_Bad` saying how to
    export the keys."""
    if otaa.get("app_key"):
        if not otaa.get("join_eui"):
            raise _Bad("join_eui", "missing: an OTAA device needs the JoinEUI its joins carry")
        raw.update(otaa)
        return
    if abp.get("dev_addr") and abp.get("nwk_s_key") and abp.get("app_s_key"):
        raw.update(abp)
        return
    missing = [k for k in ("dev_addr", "nwk_s_key", "app_s_key") if not abp.get(k)]
    raise _Bad(
        "",
        f"no keys: neither an OTAA AppKey nor an ABP session ({', '.join(missing)} missing); {how}",
    )


# -- the three sources ------------------------------------------------------------------------


def _from_tts(rec: Mapping[str, Any], repo: Path | None) -> Imported:
    notes: list[str] = []
    if _get(rec, "ids.dev_eui") is None:
        cs = " (this looks like ChirpStack's JSON: --from chirpstack)" if "ids" not in rec else ""
        raise _Bad("ids.dev_eui", f"missing{cs}")
    eui = _hex(_get(rec, "ids.dev_eui"), "ids.dev_eui", 8)
    version = str(_get(rec, "lorawan_version") or "")
    if version.startswith("MAC_V1_1"):
        raise _Bad("lorawan_version", f"{version}: the agent speaks LoRaWAN 1.0.x only")
    raw: dict[str, Any] = {
        "dev_eui": eui,
        "name": _text(rec, "name") or _text(rec, "ids.device_id"),
    }
    brand, model = _get(rec, "version_ids.brand_id"), _get(rec, "version_ids.model_id")
    codec, cls = ("", "")
    if isinstance(brand, str) and isinstance(model, str):
        codec, cls = _model_codec(brand, model, repo, notes)
    else:
        notes.append("codec: no version_ids (brand/model) to pick a codec by")
    if codec:
        raw["codec"] = codec
    _class_note(raw, cls, f"{brand}/{model}" if brand else "a device without a model", notes)
    raw["tags"] = _tags(_get(rec, "attributes"), "attributes")
    otaa = {
        "join_eui": _get(rec, "ids.join_eui")
        and _hex(_get(rec, "ids.join_eui"), "ids.join_eui", 8),
        "app_key": _key(rec, "root_keys.app_key.key"),
    }
    addr = _get(rec, "session.dev_addr") or _get(rec, "ids.dev_addr")
    abp = {
        "dev_addr": addr and _hex(addr, "session.dev_addr", 4),
        "nwk_s_key": _key(rec, "session.keys.f_nwk_s_int_key.key"),
        "app_s_key": _key(rec, "session.keys.app_s_key.key"),
    }
    joins = _get(rec, "supports_join")
    if joins is True and not otaa["app_key"]:
        raise _Bad(
            "root_keys.app_key.key",
            "missing for an OTAA device (supports_join): export with `ttn-lw-cli end-devices "
            "get APP DEV --root-keys` (needs the application's root-key rights)",
        )
    if joins is False:  # ABP: a root key the record may carry is not used
        otaa = {}
    _otaa_or_abp(raw, otaa, abp, "export with `ttn-lw-cli end-devices get APP DEV --session`")
    if "app_key" in raw and addr:
        notes.append("session: the OTAA session is not carried; the device joins again")
    last = None
    if "dev_addr" in raw:  # TTS: the last counter it received
        last = _fcnt(_get(rec, "session.last_f_cnt_up"), "session.last_f_cnt_up", 0, notes)
    plan = _get(rec, "frequency_plan_id")
    if isinstance(plan, str) and not plan.startswith("EU_863_870"):
        notes.append(f"frequency_plan_id {plan}: check it matches [lorawan] region")
    return Imported(raw, "", notes, last)


def _from_chirpstack(rec: Mapping[str, Any], repo: Path | None) -> Imported:
    notes: list[str] = []
    dev = _part(rec, "device") or rec
    keys = _part(rec, "device_keys", "keys")
    act = _part(rec, "device_activation", "activation")
    if _get(dev, "dev_eui") is None:
        tts = " (this looks like The Things Stack's JSON: --from tts)" if "ids" in rec else ""
        raise _Bad("dev_eui", f"missing{tts}")
    eui = _hex(_get(dev, "dev_eui"), "dev_eui", 8)
    raw: dict[str, Any] = {"dev_eui": eui, "name": _text(dev, "name")}
    raw["tags"] = _tags(_get(dev, "tags"), "tags")
    variables = _get(dev, "variables")
    if variables:  # ChirpStack's device variables: a JS codec's `variables`
        if not isinstance(variables, Mapping):
            raise _Bad("variables", "expected an object of names and values")
        raw["settings"] = {"variables": {str(k): str(v) for k, v in variables.items()}}
    profile = (
        _text(dev, "device_profile_name")
        or _text(rec, "device_profile_name")
        or _text(rec, "device_profile.name")
    )
    codec, cls = _profile_codec(profile, notes)
    if codec:
        raw["codec"] = codec
    _class_note(
        raw, cls, f"profile {profile!r}" if profile else "a device without a profile", notes
    )
    # LoRaWAN 1.0.x: ChirpStack keeps the AppKey in nwk_key (app_key is 1.1's).
    app_key = _key(keys, "nwk_key") or _key(keys, "app_key")
    join = _get(dev, "join_eui") or _get(keys, "join_eui")
    otaa = {"join_eui": join and _hex(join, "join_eui", 8), "app_key": app_key}
    abp = {
        "dev_addr": _get(act, "dev_addr") and _hex(_get(act, "dev_addr"), "activation.dev_addr", 4),
        "nwk_s_key": _key(act, "nwk_s_enc_key") or _key(act, "f_nwk_s_int_key"),
        "app_s_key": _key(act, "app_s_key"),
    }
    who = "export the device with its keys (DeviceKeys) or activation (DeviceActivation)"
    _otaa_or_abp(raw, otaa, abp, who)
    if "app_key" in raw and abp["dev_addr"]:
        notes.append("activation: the OTAA session is not carried; the device joins again")
    last = None
    if "dev_addr" in raw:  # ChirpStack: the next counter it expects
        last = _fcnt(_get(act, "f_cnt_up"), "activation.f_cnt_up", 1, notes)
    if raw.get("join_eui") == "00" * 8:
        notes.append("join_eui 0000000000000000: the device's join-requests must carry it")
    return Imported(raw, "", notes, last)


def _fcnt(fcnt: Any, where: str, ahead: int, notes: list[str]) -> int | None:
    """An ABP session's uplink counter, carried so that the agent widens the 16 bits on air to
    the 32 the MIC covers from where the old server was (past 65535 it could not otherwise).
    `ahead`: 1 when the export gives the next counter expected rather than the last seen."""
    if not isinstance(fcnt, int) or isinstance(fcnt, bool) or not 0 <= fcnt <= 0xFFFFFFFF:
        return None
    last = fcnt - ahead
    if last < 0:
        return None
    notes.append(f"{where} {fcnt}: carried (the device's next frame counts above {last})")
    return last


def _profile_codec(profile: str, notes: list[str]) -> tuple[str, str]:
    """A ChirpStack device-profile name that names a model a built-in codec serves."""
    import decoders

    if not profile:
        notes.append("codec: no device profile name to pick a codec by")
        return "", ""
    words = set(re.split(r"[^a-z0-9-]+", profile.lower()))
    for cid, c in sorted(decoders.CODECS.items()):
        if cid.split("/")[-1] in words:
            return cid, _CLASS_OF.get(c.id, c.device_class[0])
    notes.append(f"codec: no codec known for device profile {profile!r}")
    return "", ""


def _from_csv(rec: Mapping[str, Any], repo: Path | None) -> Imported:
    from gateway_agent.model import DEVICE_CLASSES

    if "dev_eui" not in rec:
        raise _Bad("dev_eui", "missing")
    raw: dict[str, Any] = {
        "dev_eui": _hex(rec["dev_eui"], "dev_eui", 8),
        "name": rec.get("name", ""),
    }
    cls = rec.get("class", "other").lower()
    if cls not in DEVICE_CLASSES:
        raise _Bad("class", f"expected one of {', '.join(DEVICE_CLASSES)}, got {cls!r}")
    raw["class"] = cls
    if rec.get("codec"):
        raw["codec"] = rec["codec"]
    raw["tags"] = [t.strip() for t in rec.get("tags", "").split(";") if t.strip()]
    otaa = {
        "join_eui": rec.get("join_eui") and _hex(rec["join_eui"], "join_eui", 8),
        "app_key": rec.get("app_key") and _hex(rec["app_key"], "app_key", 16),
    }
    abp = {
        "dev_addr": rec.get("dev_addr") and _hex(rec["dev_addr"], "dev_addr", 4),
        "nwk_s_key": rec.get("nwk_s_key") and _hex(rec["nwk_s_key"], "nwk_s_key", 16),
        "app_s_key": rec.get("app_s_key") and _hex(rec["app_s_key"], "app_s_key", 16),
    }
    if any(otaa.values()) and any(abp.values()):
        raise _Bad("app_key", "a device is either OTAA (join_eui, app_key) or ABP, not both")
    _otaa_or_abp(raw, otaa, abp, "give join_eui + app_key (OTAA) or all three ABP columns")
    return Imported(raw, "", [])
