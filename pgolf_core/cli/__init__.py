"""The ``pgolf-core`` command line: a thin layer over the Python API.

Exit codes: 0 success; 1 a failure (bad file, broken plugin, invalid configuration, a failed
audit); 2 a usage error (unknown option or name, bad value); 130 interrupted (Ctrl-C) after
saving a resume point (``eval --resume``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from .options import component_options, get_plugins, given_name, parse_assignments, split_names
from ..errors import PgolfError, UsageError
from ..run.verdict import DEFAULT_SPOT_CHECKS

plugin_option = click.option(
    "--plugin", "-p", "plugin_modules", multiple=True, metavar="MODULE",
    help="Load a plugin module by import name (repeatable); also PGOLF_PLUGINS=mod1,mod2.",
)


class _Error(click.ClickException):
    """A PgolfError shown as one line, with its exit code."""

    def __init__(self, exc: PgolfError):
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


class _Group(click.Group):
    """The pgolf-core group: PgolfErrors become one-line messages, and the subcommands that plugins
    register (the engine's own audit and compress among them) are added before the first lookup,
    however the group is invoked (``main``, or a test's ``CliRunner``)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PgolfError as exc:
            raise _Error(exc) from exc

    def get_command(self, ctx, name):
        _add_plugin_commands(())
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        _add_plugin_commands(())
        return super().list_commands(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgolf-core", prog_name="pgolf-core")  # the installed distribution's version
def cli():
    """pgolf-core: score tiny language models by compression (bits per byte), legally."""


@cli.command("eval")
@component_options("neural,bigram,trigram")
@click.option("--preset", default=None, help="A named configuration (pgolf-core presets lists them: pr700, pr1855, ...); explicit options win.")
@click.option("--limit", type=int, help="Score only the first N tokens of the stream (N-1 targets).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Targets per evaluator chunk.")
@click.option("--trim-seq-len", type=int, help="Apply the official cut ((N-1)//L)*L+1 for parity with published logs.")
@click.option("--allow-invalid", is_flag=True, help="Run components known to break C1-C4; the BPB is reported as INVALID.")
@click.option("--audit", "run_audit", is_flag=True,
              help="Audit this run's own components (C1-C4) and spot-check the live pass; AUDITED if all pass, INVALID if not.")
@click.option("--strict/--no-strict", default=None,
              help="Read every score from the mixture's full distribution (default: on with --audit, off otherwise).")
@click.option("--sparse-rows/--dense-rows", default=True, show_default=True,
              help="Outside strict scoring, mix experts that give sparse rows (the n-grams) over groups of tokens: "
                   "the same score at O(support) per target instead of O(V).")
@click.option("--spot-checks", type=click.IntRange(min=0), default=DEFAULT_SPOT_CHECKS, show_default=True,
              help="Live spot checks expected in an audited run: each target is checked with probability "
                   "N / targets, drawn after its block is scored. 0: no live check, so at most UNCHECKED.")
@click.option("--bytes", "byte_counts", type=click.Path(),
              help="Per-token byte sidecar (fineweb_val_bytes_*.bin); default: the sidecars beside the shards, if any.")
@click.option("--tokenizer-check/--no-tokenizer-check", default=True, show_default=True,
              help="Decode and re-encode a few documents of --data to make sure the tokenizer wrote them.")
@click.option("--resume", "resume_path", type=click.Path(),
              help="Resume file: continue from it when it holds a resume point of this run; save to it at Ctrl-C (exit 130).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Also save a resume point every N targets.")
@click.option("--prove", is_flag=True,
              help="Also code the stream into a file and decode it back from the file alone; PROVEN if it round-trips.")
@click.option("--proof", "proof_path", type=click.Path(), help="Keep the compressed file of --prove here.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON results document to stdout.")
@click.option("--output", "-o", type=click.Path(), help="Also write the JSON results to this file.")
@click.option("--save-logprobs", type=click.Path(), help="Write per-target log-probabilities and bytes to an .npz.")
@click.option("--plot", "plot_path", type=click.Path(), help="Plot weights and running BPB to this PNG (needs matplotlib).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@plugin_option
def eval_cmd(experts, mixer, adapters, preset, data, tokenizer, expert_opt, mixer_opt, adapter_opt, limit, chunk_size,
             trim_seq_len, allow_invalid, run_audit, strict, sparse_rows, spot_checks, byte_counts, tokenizer_check, resume_path,
             checkpoint_every, prove, proof_path, device, seed, as_json, output, save_logprobs, plot_path,
             progress, plugin_modules):
    """Score a token stream with experts, a mixer and adapters; print BPB."""
    from ..checks import compose
    from ..evaluate import DEFAULT_CHUNK, evaluate
    from ..run.report import format_table

    names = split_names(experts)
    if not names:
        raise click.BadParameter("give at least one expert", param_hint="--experts")
    preset = given_name(preset, "--preset")
    components = dict(
        experts=names, mixer=given_name(mixer, "--mixer"), adapters=split_names(adapters, "--adapters"),
        expert_options=parse_assignments(expert_opt, True, "--expert-opt"),
        mixer_options=parse_assignments(mixer_opt, False, "--mixer-opt"),
        adapter_options=parse_assignments(adapter_opt, True, "--adapter-opt"),
    )
    _check_outputs(output, save_logprobs, plot_path, proof_path, resume_path)
    if preset:
        components = _apply_preset(preset, components, get_plugins(plugin_modules))
    spec, checks = compose(  # the run the flags describe, and the checks they attach to it
        tokens=data, tokenizer=tokenizer, **components,
        chunk_size=chunk_size or DEFAULT_CHUNK, limit=limit, trim_seq_len=trim_seq_len,
        allow_invalid=allow_invalid, plugins=get_plugins(plugin_modules), device=device, seed=seed,
        keep_logprobs=bool(save_logprobs), progress=progress and sys.stderr.isatty(), audit=run_audit,
        strict=strict, spot_checks=spot_checks, prove=prove, proof_path=proof_path,
        check_tokenizer=None if tokenizer_check else False, byte_counts=byte_counts, resume=resume_path,
        checkpoint_every=checkpoint_every, sparse_rows=sparse_rows,
    )
    res = evaluate(spec, checks)
    from ..run.distributed import dist_info_from_env

    if not dist_info_from_env().is_main:  # under torchrun every rank has the same results; one prints
        return
    click.echo(res.to_json() if as_json else format_table(res))  # the result first: outputs come after it
    _write_outputs(res, output, save_logprobs, plot_path)


def _write_outputs(res, output, save_logprobs, plot_path) -> None:
    """The optional outputs, once the result is printed. Their paths were tried before the run
    (``check_output_path``); a write that fails now anyway (a full disk) is one line, exit 1."""
    from ..run.report import writing

    if output:
        with writing(output, "-o"):
            Path(output).write_text(res.to_json())
    if save_logprobs:
        with writing(save_logprobs, "--save-logprobs"):
            res.save_npz(save_logprobs)
    if plot_path:
        from .plot import plot_results

        with writing(plot_path, "--plot"):
            plot_results(json.loads(res.to_json()), plot_path)


def _check_outputs(output, save_logprobs, plot_path, proof_path, resume_path=None) -> None:
    """Every output path writable, and what writes it installed, before the run starts."""
    from ..run.report import check_output_path

    for p in (output, save_logprobs, plot_path, proof_path, resume_path):
        if p:
            check_output_path(p)
    if save_logprobs and not str(save_logprobs).endswith(".npz"):
        raise click.BadParameter(f"{save_logprobs!r}: the log-probabilities are an .npz archive; name it *.npz",
                                 param_hint="--save-logprobs")
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib (pip install 'pgolf-core[plot]')") from None


def _apply_preset(name: str, given: dict, plugins) -> dict:
    """The preset's components, with whatever the user set explicitly on top."""
    from click.core import ParameterSource

    from ..presets import preset_kwargs

    ctx = click.get_current_context()
    explicit = {key: ctx.get_parameter_source(key) is not ParameterSource.DEFAULT for key in ("experts", "adapters")}
    kw = preset_kwargs(name, plugins, experts=given["experts"] if explicit["experts"] else None,
                       mixer=given["mixer"], adapters=given["adapters"] if explicit["adapters"] else None,
                       expert_options=given["expert_options"], mixer_options=given["mixer_options"],
                       adapter_options=given["adapter_options"])
    for note in kw.pop("notes"):
        click.echo(f"preset {name}: {note}", err=True)
    reason = kw.pop("invalid_reason")
    if reason:
        click.echo(f"preset {name} is INVALID: {reason}", err=True)
    return kw


def _show_default(value):
    import inspect

    if value is inspect.Parameter.empty:
        return "required"
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def _list_command(kind: str):
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @plugin_option
    def command(as_json, plugin_modules):
        reg = get_plugins(plugin_modules).registry(kind)
        rows = []
        for name in reg.names():
            e = reg.entries[name]
            opts = {k: _show_default(v) for k, v in e.options().items()}
            typed = {k: o.describe() for k, o in e.declared().items()}
            rows.append({"name": name, "plugin": e.plugin, "aliases": list(e.aliases), "description": e.description,
                         "options": opts, "declared": typed})
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            alias = f" (aliases: {', '.join(r['aliases'])})" if r["aliases"] else ""
            click.echo(f"{r['name']:<16} [{r['plugin']}] {r['description']}{alias}")
            if r["declared"]:  # declared once with their type, range and help (pgolf_core.options.declared)
                for k, text in r["declared"].items():
                    click.echo(" " * 17 + f"{k}: {text}")
            if r["options"].keys() - r["declared"].keys():
                click.echo(" " * 17 + "options: " + ", ".join(f"{k}={v}" for k, v in r["options"].items()
                                                               if k not in r["declared"]))

    command.__doc__ = f"List the registered {kind}s."
    return command


for _kind in ("expert", "mixer", "adapter", "preset", "tokenizer"):
    cli.command(f"{_kind}s")(_list_command(_kind))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@plugin_option
def plugins_cmd(as_json, plugin_modules):
    """List the loaded plugins and what each registered."""
    rows = get_plugins(plugin_modules).summary()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        what = "; ".join(f"{k}s: {', '.join(v)}" for k, v in r["provides"].items() if v) or "-"
        status = f"FAILED: {r['error']}" if r["error"] else what
        click.echo(f"{r['name']:<14} {r['source']:<12} {r['module']:<28} {status}")


@cli.command("doctor")
@click.option("--data", "-d", "data", multiple=True, type=click.Path(),
              help="Also describe this data (.npy, shard, shard folder or glob; repeatable).")
@click.option("--tokenizer", "-t", "tokenizers", multiple=True, type=click.Path(),
              help="Also describe this tokenizer (repeatable); with --data, check that it wrote the data.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema pgolf-core/doctor).")
@plugin_option
def doctor_cmd(data, tokenizers, as_json, plugin_modules):
    """Print what a bug report needs: versions, threads, CUDA, the proof sandbox, plugins, data and tokenizers."""
    from .doctor import collect, format_report

    report = collect(data, tokenizers, plugin_modules)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command("plot")
@click.argument("results", type=click.Path())
@click.option("--out", "-o", type=click.Path(), help="PNG to write (default: RESULTS with .png).")
def plot_cmd(results, out):
    """Plot a results JSON: running BPB per expert and mixture, and the mixer weights."""
    from .plot import load_results, plot_results
    from ..run.report import check_output_path, writing

    doc, out = load_results(results), out or Path(results).with_suffix(".png")
    check_output_path(out)
    with writing(out, "--out"):
        path = plot_results(doc, out)
    click.echo(str(path))




@cli.group("data", cls=_Group)
def data_group():
    """Prepare and inspect token data."""


@data_group.command("prepare")
@click.option("--docs", required=True, type=click.Path(), help="JSONL file with one {'text': ...} document per line.")
@click.option("--tokenizer", required=True, type=click.Path(), help="SentencePiece model.")
@click.option("--out", required=True, type=click.Path(), help="Output directory for fineweb_{val,train}_*.bin.")
@click.option("--val-docs", type=int, default=0, show_default=True, help="The first N documents form the validation split.")
@click.option("--exclude-source", multiple=True, help="Skip documents whose 'source' field has this value.")
@click.option("--shard-tokens", type=int, default=100_000_000, show_default=True)
@click.option("--caseops", is_flag=True,
              help="Apply the lossless case transform (tokenizer: a CaseOps model) and write the validation byte sidecar.")
def data_prepare(docs, tokenizer, out, val_docs, exclude_source, shard_tokens, caseops):
    """Tokenize documents into parameter-golf shards (BOS before each document, val docs first)."""
    from ..stream.data import prepare_shards

    if val_docs < 0 or shard_tokens < 1:
        raise click.BadParameter("--val-docs must be >= 0 and --shard-tokens >= 1")
    summary = prepare_shards(docs, tokenizer, out, val_docs=val_docs, shard_tokens=shard_tokens,
                             exclude_sources=exclude_source, caseops=caseops)
    click.echo(json.dumps(summary, indent=2))


@data_group.command("info")
@click.argument("path", type=click.Path())
@click.option("--tokenizer", type=click.Path(), help="Also count bytes with this SentencePiece model.")
def data_info(path, tokenizer):
    """Tokens, documents (BOS count) and, with a tokenizer, bytes of a token stream."""
    from ..stream.bytes import byte_table_from_sentencepiece
    from ..stream.data import BOS_ID, load_tokens, shard_split

    table = byte_table_from_sentencepiece(tokenizer) if tokenizer else None
    split = (shard_split(path) if Path(path).is_file() else None) or "val"  # a file is described whatever its split
    tokens = load_tokens(path, vocab_size=table.vocab_size if table else None, split=split)
    info = {"path": path, "tokens": int(len(tokens)), "targets": max(0, len(tokens) - 1),
            "documents": int((tokens == BOS_ID).sum()), "max_id": int(tokens.max(initial=0))}
    if table is not None and len(tokens) > 1:
        info["bytes"] = int(table.target_bytes(tokens).sum())
    click.echo(json.dumps(info, indent=2))


def _add_data_check() -> None:
    from ..datacheck.cli import check_command

    data_group.add_command(check_command)


_add_data_check()

_COMMANDS_ADDED: list = []  # set once plugins have added their subcommands


def _add_plugin_commands(argv: Sequence[str]) -> None:
    """Let plugins add subcommands (``pgolf_register_commands``), honouring --plugin in argv; once."""
    if _COMMANDS_ADDED:
        return
    _COMMANDS_ADDED.append(True)
    modules, it = [], iter(argv)
    for arg in it:
        if arg in ("--plugin", "-p"):
            modules.append(next(it, ""))
        elif arg.startswith("--plugin="):
            modules.append(arg.split("=", 1)[1])
    plugins = get_plugins([m for m in modules if m])
    for impl in plugins.pm.hook.pgolf_register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a broken plugin loses its commands, not the whole CLI
            click.echo(f"pgolf-core: warning: plugin {impl.plugin_name!r} failed to add its commands: "
                       f"{type(exc).__name__}: {exc}", err=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _add_plugin_commands(argv)
    except PgolfError as exc:
        # A built-in command loads the plugins itself and reports this failure in its own terms
        # (`doctor` lists it as a finding); only a command that a plugin would have added cannot run.
        if not any(arg in cli.commands for arg in argv if not arg.startswith("-")):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
    cli.main(args=argv, prog_name="pgolf-core")


if __name__ == "__main__":
    main()
