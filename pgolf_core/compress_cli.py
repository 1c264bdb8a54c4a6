"""``pgolf-core compress`` and ``pgolf-core decompress``: click commands over ``pgolf_core.compress``."""

from __future__ import annotations

import json
import sys

import click

from .cli_options import component_options


@click.command("compress")
@component_options("neural,bigram,trigram")
@click.option("--limit", type=click.IntRange(min=2), help="Code only the first N tokens.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=8192, show_default=True,
              help="Targets per chunk (adapters run and checksums are taken after each).")
@click.option("--output", "-o", required=True, type=click.Path(), help="The compressed file to write.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@click.option("--plugin", "-p", "plugin_modules", multiple=True, metavar="MODULE", help="Load a plugin module (repeatable).")
def compress_command(experts, mixer, adapters, data, tokenizer, expert_opt, mixer_opt, adapter_opt, limit, chunk_size,
                     output, device, seed, as_json, progress, plugin_modules):
    """Range-code a token stream from the mixture's distributions into one self-describing file."""
    from .cli_options import get_plugins, parse_assignments, split_names
    from .compress import compress

    report = compress(
        split_names(experts), mixer=mixer or None, adapters=split_names(adapters), tokens=data, tokenizer=tokenizer,
        output=output, expert_options=parse_assignments(expert_opt, True, "--expert-opt"),
        mixer_options=parse_assignments(mixer_opt, False, "--mixer-opt"),
        adapter_options=parse_assignments(adapter_opt, True, "--adapter-opt"), chunk_size=chunk_size, limit=limit,
        plugins=get_plugins(plugin_modules), plugin_modules=plugin_modules, device=device, seed=seed,
        progress=progress and sys.stderr.isatty(),
    )
    _echo(report, as_json, "coded")


@click.command("decompress")
@click.argument("file", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Where to write the decoded tokens (.npy).")
@click.option("--tokenizer", "-t", type=click.Path(), help="The tokenizer, if it moved (its sha256 must match).")
@click.option("--expert-opt", multiple=True, metavar="NAME.K=PATH", help="A file option that moved, e.g. neural.checkpoint=PATH.")
@click.option("--adapter-opt", multiple=True, metavar="NAME.K=PATH", help="An adapter's file option that moved.")
@click.option("--reference", type=click.Path(), help="The original tokens, only to name the first diverging position on failure.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def decompress_command(file, output, tokenizer, expert_opt, adapter_opt, reference, as_json, progress):
    """Decode FILE from its header and payload alone (no data argument) and write the tokens."""
    import numpy as np

    from .cli_options import parse_assignments
    from .compress import decompress
    from .data import load_tokens
    from .report import check_output_path

    check_output_path(output)
    tokens, report = decompress(
        file, tokenizer=tokenizer, expert_options=parse_assignments(expert_opt, True, "--expert-opt"),
        adapter_options=parse_assignments(adapter_opt, True, "--adapter-opt"),
        reference=load_tokens(reference) if reference else None, progress=progress and sys.stderr.isatty(),
    )
    np.save(output, tokens)
    _echo(report, as_json, "decoded")


def _echo(report, as_json: bool, verb: str) -> None:
    d = report.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"{verb}      {d['targets']:,} targets ({d['bytes']:,} bytes) in {d['seconds']:.1f} s, "
               f"{d['targets_per_second']:,.0f} targets/s")
    click.echo(f"file       {d['file']}: {d['file_bytes']:,} bytes = {d['payload_bytes']:,} payload + "
               f"{d['header_bytes']:,} header")
    click.echo(f"BPB        coded {d['coded_bpb']:.6f} (payload)  ideal {d['ideal_bpb']:.6f}  "
               f"file {d['file_bpb']:.6f} (header included)")
