"""Registration of the ``train`` and ``artifact`` commands (imports torch only when they run)."""

from __future__ import annotations

import json
from pathlib import Path

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
@click.option("--code", "code_file", type=click.Path(dir_okay=False), default=None,
              help="The script the artifact belongs to (e.g. a record's train_gpt.py): its bytes are the code "
                   "bytes. Default: pgolf-core's scoring code.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def artifact_info_cmd(path, code_file, as_json):
    """Tensor counts by kind, compressed bytes, code bytes and the submission size of PATH."""
    from ..artifact import artifact_info

    try:
        info = artifact_info(path, code_file)
    except PgolfError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    t = info["tensors"]
    click.echo(f"{info['path']} ({info['format']})")
    v = info["values"]
    click.echo(f"  tensors: int5 {t['int5']}, int8 {t['int8']}, fp16 {t['fp16']}, fp32 {t['fp32']}")
    click.echo(f"  values:  int5 {v['int5']:,}, int8 {v['int8']:,}, fp16 {v['fp16']:,}, fp32 {v['fp32']:,} "
               f"({sum(v.values()):,} in all)")
    click.echo(f"  compressed bytes: {info['compressed_bytes']:,}")
    click.echo(f"  code bytes:       {info['code_bytes']:,}"
               f"{' (' + info['code_file'] + ')' if info.get('code_file') else ' (pgolf-core scoring code)'}")
    verdict = "fits" if info["fits"] else "OVER the limit"
    click.echo(f"  submission bytes: {info['submission_bytes']:,} / {info['limit_bytes']:,} ({verdict})")
    tok = info.get("tokenizer")
    click.echo(f"  tokenizer:        {tok['file']} ({tok['vocab_size']} pieces, sha256 {tok['sha256'][:16]}...)" if tok
               else "  tokenizer:        not recorded (any tokenizer with its vocabulary size is accepted)")


@artifact_group.command("export")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["pr700"]), default="pr700", show_default=True,
              help="pr700: the seed record's own meta format, loadable by its train_gpt.py.")
def artifact_export_cmd(src, dst, fmt):
    """Write artifact SRC in another program's format as DST, and print the settings it needs."""
    from ..artifact import export_seed_artifact

    if Path(dst).exists():
        raise _fail(PgolfError(f"output {dst} exists; remove it or pick another name"))
    try:
        env = export_seed_artifact(src, dst)
    except PgolfError as exc:
        raise _fail(exc) from exc
    click.echo(f"wrote {dst} ({fmt}); the seed's script builds this model with:")
    click.echo("  " + " ".join(f"{k}={v}" for k, v in env.items()))


@click.command("accounting")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="The neural model.")
@click.option("--config", default=None, help="neural.config for a checkpoint without one (e.g. seed).")
@click.option("--data", "-d", required=True, type=click.Path(), help="Tokens (.npy, shard, directory).")
@click.option("--tokenizer", "-t", required=True, type=click.Path(), help="SentencePiece model of the data.")
@click.option("--limit", type=int, default=None, help="Only the first N tokens.")
@click.option("--seq-len", type=int, default=None, help="Window length (default: the model's).")
@click.option("--stride", type=int, default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def accounting_cmd(checkpoint, config, data, tokenizer, limit, seq_len, stride, as_json):
    """The seed's window-loop accounting (its tail re-scored) next to one-pass accounting, for the
    neural model alone: what part of a published number is counted more than once."""
    from pgolf_core.run.session import resolve_stream

    from ..accounting import compare
    from ..config import resolve_config
    from ..expert import load_model
    from ..scoring import check_geometry

    try:
        tokens, _, _, _, counter = resolve_stream(data, tokenizer, limit)
        model = load_model(checkpoint, resolve_config(config) if config else None).eval()
        seq_len = seq_len or model.config.train_seq_len
        try:
            check_geometry(seq_len, stride)
        except ValueError as exc:
            raise PgolfError(str(exc)) from None
        res = compare(model, tokens, counter, seq_len=seq_len, stride=stride)
    except PgolfError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    one, seed = res["one_pass"], res["seed"]
    click.echo(f"one pass (pgolf-core):   BPB {one['bpb']:.6f}  {one['targets']:,} targets, {one['bytes']:,} bytes")
    click.echo(f"the seed's window loop:  BPB {seed['bpb']:.6f}  {seed['targets']:,} targets, {seed['bytes']:,} bytes "
               f"({seed['rescored_targets']:,} targets / {seed['rescored_bytes']:,} bytes of the tail scored again)")


def _train_command():
    from .cli import train_cmd

    return train_cmd


@hookimpl
def pgolf_register_commands(cli) -> None:
    cli.add_command(artifact_group)
    cli.add_command(accounting_cmd)
    cli.add_command(_train_command())
