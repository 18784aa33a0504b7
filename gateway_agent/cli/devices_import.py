"""`devices import FILE --from tts|chirpstack|csv`: another network server's device list, checked
whole, shown (never keys), then written all or nothing: one control request while the daemon
runs (one transaction on its store thread), one transaction on the database when it is stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway_agent.cli.app import Ctx, config_error_text, emit, fail
from gateway_agent.config import load_devices
from gateway_agent.config.importers import Imported, ImportProblems, parse
from gateway_agent.errors import AgentError, ConfigError
from gateway_agent.store import views

MAX_FILE = 64 << 20  # bytes; a 10,000-device TTS export is about 30 MB
# What `--dry-run` compares with the device already provisioned (keys are never read back).
COMPARED = ("name", "class", "codec", "tags", "activation", "dev_addr", "join_eui", "settings")


def read_text(file: str) -> str:
    p = Path(file)
    if p.stat().st_size > MAX_FILE:
        fail(f"{file}: larger than {MAX_FILE >> 20} MiB", 2)
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        fail(f"{file}: not UTF-8 at byte {e.start}", 2)


def check(c: Ctx, file: str, fmt: str) -> list[Imported]:
    """Parse and validate every record (fields, keys, duplicates, codecs): any problem exits 2
    listing them all, before anything is written."""
    import decoders

    text = read_text(file)
    repo = c.cfg.codecs.ttn_repository
    decoders.configure_codecs(c.cfg.codecs)
    try:
        imps = parse(text, fmt, ttn_repository=repo)
    except ImportProblems as e:
        _problems(file, e.problems)
    problems = []
    try:
        load_devices({"device": [i.raw for i in imps]})
    except ConfigError as e:  # device[N].key -> the record's label
        i = int(e.key_path.split("[", 1)[1].split("]", 1)[0]) if "[" in e.key_path else 0
        field = e.key_path.split(".", 1)[1] if "." in e.key_path else ""
        problems.append(f"{imps[i].label}: {field}: {config_error_text(e, True)}")
    for imp in imps:
        codec = imp.raw.get("codec")
        if codec:
            try:
                decoders.get_codec(codec)
            except AgentError as e:
                problems.append(f"{imp.label}: codec: {e}")
    if problems:
        _problems(file, problems)
    return imps


def _problems(file: str, problems: list[str]) -> None:
    for p in problems[:50]:
        click.echo(f"error: {file}: {p}", err=True)
    if len(problems) > 50:
        click.echo(f"error: ... {len(problems) - 50} more", err=True)
    fail(f"{file}: {len(problems)} problem(s); nothing imported", 2)


def plan(c: Ctx, imps: list[Imported]) -> list[dict[str, Any]]:
    """Each device with `action` (add / update / unchanged), `changes` and `notes`; no keys."""
    have: dict[str, dict[str, Any]] = {}
    if c.online or c.cfg.agent.db_path.exists():
        rows = c.ask("devices") if c.online else _offline_devices(c)
        have = {r["dev_eui"]: r for r in rows}
    out = []
    for dev, imp in zip(load_devices({"device": [i.raw for i in imps]}), imps, strict=True):
        new = views.device_view(dev, {})
        new = {k: new[k] for k in ("dev_eui", *COMPARED)}
        old = have.get(new["dev_eui"])
        changes = []
        if old is not None:
            for k in COMPARED:
                if k == "dev_addr" and new["activation"] == "otaa":
                    continue  # a joined OTAA device's address is its session's
                if old.get(k) != new[k]:
                    changes.append(f"{k}: {_show(old.get(k))} -> {_show(new[k])}")
        action = "add" if old is None else ("update" if changes else "unchanged")
        out.append({**new, "action": action, "changes": changes, "notes": imp.notes})
    return out


def _offline_devices(c: Ctx) -> list[dict[str, Any]]:
    store = c.store()
    try:
        return views.devices_view(store)
    finally:
        store.close()


def _show(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if v not in (None, "", [], {}) else "-"


def write(c: Ctx, imps: list[Imported]) -> int:
    """All devices in one transaction; a control request too large for the socket is refused
    before anything is sent."""
    from gateway_agent.control import MAX_REQUEST

    raw = [i.raw for i in imps]
    fcnt = {i.dev_eui.lower(): i.fcnt_up for i in imps if i.fcnt_up is not None}
    if c.online:
        size = len(json.dumps({"cmd": "devices_put", "devices": raw, "origin": "import"}))
        if size > MAX_REQUEST - 1024:
            fail(
                f"{len(raw)} devices are too many for one control request while the daemon runs "
                "(all or nothing): stop it (the import then writes the database directly) or "
                "split the file",
            )
        return int(c.act("devices_put", devices=raw, origin="import", fcnt_up=fcnt)["upserted"])
    from gateway_agent.store import Store

    c.cfg.agent.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(c.cfg.agent.db_path, c.cfg.store.synchronous)
    try:
        return int(store.upsert_devices(load_devices({"device": raw}), "import", fcnt))
    finally:
        store.close()


def show(rows: list[dict[str, Any]], dry_run: bool, as_json: bool, written: int) -> None:
    counts = {a: sum(r["action"] == a for r in rows) for a in ("add", "update", "unchanged")}
    if as_json:
        emit({"dry_run": dry_run, "written": written, **counts, "devices": rows})
        return
    for r in rows:
        what = " ".join(
            str(x) for x in (r["name"] or "-", r["class"], r["codec"] or "-", r["activation"])
        )
        click.echo(f"{r['action']:9} {r['dev_eui']}  {what}")
        for ch in r["changes"]:
            click.echo(f"            {ch}")
        for n in r["notes"]:
            click.echo(f"            note: {n}")
    summary = (
        f"{counts['add']} to add, {counts['update']} to update, {counts['unchanged']} unchanged"
    )
    if dry_run:
        click.echo(f"dry run: {summary}; nothing written")
    else:
        click.echo(f"imported {written} devices ({summary.replace(' to ', ' ')})")
