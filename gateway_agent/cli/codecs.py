"""`decode` (run a codec on a payload) and `codecs list` (the codec registry)."""

from __future__ import annotations

import click
from rich.table import Table

from gateway_agent.cli.app import console, emit, fail, hex_arg
from gateway_agent.errors import AgentError


@click.command("decode")
@click.option("--codec", "codec_id", required=True)
@click.option("--fport", type=click.IntRange(0, 255), required=True)
@click.argument("hex_payload")
@click.option("--json", "as_json", is_flag=True)
def decode_cmd(codec_id: str, fport: int, hex_payload: str, as_json: bool) -> None:
    """Run a codec on a payload."""
    import decoders

    payload = hex_arg(hex_payload, "HEX")
    try:
        d = decoders.decode(codec_id, fport, payload)
    except AgentError as e:
        fail(str(e).splitlines()[0] if str(e) else e.reason)
    out = decoders.decode_result_json(codec_id, d)
    if as_json:
        emit(out)
    else:
        for k, v in out.get("measurements", {}).items():
            click.echo(f"{k:24} {v}")
        for k, v in out.get("extras", {}).items():
            click.echo(f"{k:24} {v}  (extra)")


@click.group()
def codecs() -> None:
    """Codec registry."""


@codecs.command("list")
@click.option("--json", "as_json", is_flag=True)
def codecs_list(as_json: bool) -> None:
    import decoders

    rows = decoders.list_codecs()
    if as_json:
        emit(rows)
        return
    t = Table("codec", "vendor", "models", "class")
    for r in rows:
        t.add_row(
            r["id"],
            str(r.get("vendor", "")),
            ", ".join(r.get("models", [])),
            str(r.get("class", "")),
        )
    console.print(t)
