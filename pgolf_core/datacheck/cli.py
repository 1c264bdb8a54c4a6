"""``pgolf-core data check``: one line per check, or one JSON document; exit 0 clean, 1 a problem
found, 2 a usage error (a bad path or an unreadable file, reported before any work)."""

from __future__ import annotations

import json

import click

from . import CHECKS


@click.command("check")
@click.option("--val", required=True, type=click.Path(), help="Validation stream: .npy, fineweb_val_*.bin shard, folder or glob.")
@click.option("--train", multiple=True, type=click.Path(),
              help="Training shards (fineweb_train_*.bin: a file, folder or glob; repeatable), streamed for overlap.")
@click.option("--docs", type=click.Path(), help="JSONL of the validation documents' original texts, in stream order.")
@click.option("--tokenizer", type=click.Path(), help="SentencePiece .model that wrote the stream.")
@click.option("--bytes", "byte_counts", type=click.Path(),
              help="Byte sidecar (fineweb_val_bytes_*.bin or an .npy of counts); default: the sidecars beside --val.")
@click.option("--full-val", is_flag=True, help="The stream must be the whole validation split: a partial one is a problem.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.8, show_default=True,
              help="Jaccard similarity of shingle sets from which a training document is a near copy.")
@click.option("--shingle", type=click.IntRange(min=1), default=5, show_default=True, help="Tokens per shingle.")
@click.option("--num-perm", type=click.IntRange(min=8), default=128, show_default=True, help="MinHash bins (signature length).")
@click.option("--seq-len", type=click.IntRange(min=1), default=2048, show_default=True, help="Sequence length of the official cut.")
@click.option("--only", "only", help=f"Comma-separated checks to run (default all: {','.join(CHECKS)}).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def check_command(val, train, docs, tokenizer, byte_counts, full_val, threshold, shingle, num_perm, seq_len, only,
                  as_json):
    """Check validation data: train/val overlap, byte denominators, lossless decoding, coverage."""
    from . import check_data

    names = [x.strip() for x in only.split(",") if x.strip()] if only else None
    res = check_data(val, train, docs, tokenizer, byte_counts, full_val=full_val, threshold=threshold, shingle=shingle,
                     num_perm=num_perm, checks=names, seq_len=seq_len)
    if as_json:
        from ..run.report import _jsonable

        click.echo(json.dumps(_jsonable(res.to_dict()), indent=2))
    else:
        for line in res.lines():
            click.echo(line)
    raise SystemExit(res.exit_code)
