"""Registration of the ``train`` and ``artifact`` commands (imports torch only when they run)."""

from __future__ import annotations

import json
import sys

import click

from pgolf_core import hookimpl
from pgolf_core.errors import PgolfError


def _fail(exc: PgolfError):
    err = click.ClickException(str(exc))
    err.exit_code = exc.exit_code
    return err


@click.group("artifact")
def artifact_group():
    """Inspect neural-expert checkpoints and artifacts."""


@artifact_group.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def artifact_info_cmd(path, as_json):
    """Tensor counts by kind, compressed bytes, code bytes and the submission size of PATH."""
    from ..artifact import artifact_info

    try:
        info = artifact_info(path)
    except PgolfError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    t = info["tensors"]
    click.echo(f"{info['path']} ({info['format']})")
    click.echo(f"  tensors: int5 {t['int5']}, int8 {t['int8']}, fp16 {t['fp16']}, fp32 {t['fp32']}")
    click.echo(f"  compressed bytes: {info['compressed_bytes']:,}")
    click.echo(f"  code bytes:       {info['code_bytes']:,}")
    verdict = "fits" if info["fits"] else "OVER the limit"
    click.echo(f"  submission bytes: {info['submission_bytes']:,} / {info['limit_bytes']:,} ({verdict})")
    tok = info.get("tokenizer")
    click.echo(f"  tokenizer:        {tok['file']} ({tok['vocab_size']} pieces, sha256 {tok['sha256'][:16]}...)" if tok
               else "  tokenizer:        not recorded (any tokenizer with its vocabulary size is accepted)")


def _train_command():
    from .cli import train_cmd

    return train_cmd


@hookimpl
def pgolf_register_commands(cli) -> None:
    cli.add_command(artifact_group)
    cli.add_command(_train_command())
