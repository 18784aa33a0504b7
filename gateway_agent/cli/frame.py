"""`frame decode`: parse a PHYPayload, and verify and decrypt it when given keys."""

from __future__ import annotations

import click

from gateway_agent.cli.app import emit, fail, hex_arg
from gateway_agent.errors import AgentError


@click.group()
def frame() -> None:
    """LoRaWAN frame tools."""


@frame.command("decode")
@click.argument("hex_payload")
@click.option("--nwk-s-key")
@click.option("--app-s-key")
@click.option("--app-key")
@click.option("--fcnt-msb", type=click.IntRange(0, 0xFFFF))
@click.option("--dev-nonce", type=click.IntRange(0, 0xFFFF))
@click.option("--json", "as_json", is_flag=True)
def frame_decode(
    hex_payload: str,
    nwk_s_key: str | None,
    app_s_key: str | None,
    app_key: str | None,
    fcnt_msb: int | None,
    dev_nonce: int | None,
    as_json: bool,
) -> None:
    """Parse a PHYPayload (and verify/decrypt it with keys)."""
    from gateway_agent.lorawan.inspect import describe_frame

    phy = hex_arg(hex_payload, "HEX")
    keys = {
        k: hex_arg(v, k, 16) if v else None
        for k, v in (("nwk_s_key", nwk_s_key), ("app_s_key", app_s_key), ("app_key", app_key))
    }
    try:
        out = describe_frame(phy, fcnt_msb=fcnt_msb, dev_nonce=dev_nonce, **keys)
    except AgentError as e:
        fail(f"{e.reason}: {e}")
    if as_json:
        emit(out)
    else:
        for k, v in out.items():
            click.echo(f"{k:12} {v}")
