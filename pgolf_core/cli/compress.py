"""``pgolf-core compress`` and ``pgolf-core decompress``: click commands over ``pgolf_core.codec.compress``."""

from __future__ import annotations

import json
import sys

import click

from .options import component_options


@click.command("compress")
@component_options("neural,bigram,trigram")
@click.option("--limit", type=click.IntRange(min=2), help="Code only the first N tokens.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Targets per chunk (adapters run and checksums are taken after each; default: an evaluation's, 8192).")
@click.option("--output", "-o", required=True, type=click.Path(), help="The compressed file to write.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@click.option("--plugin", "-p", "plugin_modules", multiple=True, metavar="MODULE", help="Load a plugin module (repeatable).")
def compress_command(experts, mixer, adapters, data, tokenizer, expert_opt, mixer_opt, adapter_opt, limit, chunk_size,
                     output, device, seed, as_json, progress, plugin_modules):
    """Range-code a token stream from the mixture's distributions into one self-describing file."""
    from .options import get_plugins, parse_assignments, split_names
    from ..codec.compress import DEFAULT_CODE_CHUNK, compress

    report = compress(
        split_names(experts), mixer=mixer or None, adapters=split_names(adapters), tokens=data, tokenizer=tokenizer,
        output=output, expert_options=parse_assignments(expert_opt, True, "--expert-opt"),
        mixer_options=parse_assignments(mixer_opt, False, "--mixer-opt"),
        adapter_options=parse_assignments(adapter_opt, True, "--adapter-opt"), chunk_size=chunk_size or DEFAULT_CODE_CHUNK, limit=limit,
        plugins=get_plugins(plugin_modules), plugin_modules=plugin_modules, device=device, seed=seed,
        progress=progress and sys.stderr.isatty(),
    )
    _echo(report, as_json, "coded")


@click.command("decompress")
@click.argument("file", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Where to write the decoded tokens (.npy).")
@click.option("--plugin", "-p", "plugin_modules", multiple=True, metavar="MODULE",
              help="A plugin module the file needs (repeatable); the decoder loads nothing else but the builtins.")
@click.option("--tokenizer", "-t", type=click.Path(), help="The tokenizer, if it moved (its sha256 must match).")
@click.option("--expert-opt", multiple=True, metavar="NAME.K=PATH", help="A file option that moved, e.g. neural.checkpoint=PATH.")
@click.option("--adapter-opt", multiple=True, metavar="NAME.K=PATH", help="An adapter's file option that moved.")
@click.option("--bytes", "byte_counts", type=click.Path(), help="The byte sidecar of a stream counted by one (sha256 checked).")
@click.option("--reference", type=click.Path(), help="The original tokens: the decoded stream must equal them.")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
@click.option("--progress/--no-progress", default=True, help="(Kept for compatibility: the sandboxed decoder shows none.)")
def decompress_command(file, output, plugin_modules, tokenizer, expert_opt, adapter_opt, byte_counts, reference, as_json,
                       progress):
    """Decode FILE in a sandbox that cannot reach the data, score it from the file without plugins,
    and write the tokens. Exit code 1 when the round trip or the reference check fails."""
    import numpy as np

    from .options import parse_assignments
    from ..codec.container import read_container
    from ..stream.data import load_tokens
    from ..errors import PgolfError
    from ..run.report import describe_line
    from ..proof.prove import prove_file
    from ..run.report import check_output_path

    check_output_path(output)
    header, _ = read_container(file)
    needed = [m for m in header.get("config", {}).get("needed_plugins", []) if m not in plugin_modules]
    if needed:
        raise click.UsageError(f"{file} was coded with components of plugin module(s) {', '.join(needed)}; "
                               f"load them with {' '.join('-p ' + m for m in needed)} (nothing is imported on the file's word)")
    overrides = {**parse_assignments(expert_opt, True, "--expert-opt"), **parse_assignments(adapter_opt, True, "--adapter-opt")}
    tokens, proof = prove_file(file, plugin_modules=plugin_modules, tokenizer=tokenizer, file_overrides=overrides,
                               byte_counts=byte_counts, reference=load_tokens(reference) if reference else None)
    if tokens is not None:
        np.save(output, tokens)
    if as_json:
        click.echo(json.dumps(proof, indent=2, default=str))
    else:
        _echo_proof(proof, describe_line)
    if not proof["ok"]:
        raise PgolfError(f"{file}: {proof.get('error')}")


def _echo_proof(proof: dict, describe_line) -> None:
    box = proof.get("sandbox", {})
    if "score" in proof:
        s, d = proof["score"], proof["decode"]
        click.echo(f"decoded    {s['targets']:,} targets ({s['bytes']:,} bytes) in {d['seconds']:.1f} s, "
                   f"{d['targets_per_second']:,.0f} targets/s")
        click.echo(f"file       {proof['file']}: {s['file_bytes']:,} bytes = {s['payload_bytes']:,} payload + "
                   f"{s['header_bytes']:,} header")
        click.echo(f"BPB        {s['coded_bpb']:.6f} from the file (payload); {s['file_bpb']:.6f} with the header")
    if "description" in proof:
        click.echo("described  " + describe_line(proof["description"]))
    how = (f"sandboxed ({box.get('mechanism')}, Landlock ABI {box.get('abi')})" if box.get("enforced")
           else f"NOT sandboxed: {box.get('reason')}")
    click.echo(f"level      {(proof.get('level') or 'invalid').upper()}: decoder {how}")


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
