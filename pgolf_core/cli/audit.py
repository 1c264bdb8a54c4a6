"""``pgolf-core audit``: the click command over ``pgolf_core.checks.audit.audit`` (wired into the CLI group
by ``cli.add_command(audit_command)``). Exit code 0 when every check passes, 1 when one fails."""

from __future__ import annotations

import json
import sys

import click

from .options import component_options


@click.command("audit")
@component_options("bigram,trigram")
@click.option("--limit", type=int, default=2048, show_default=True, help="Tokens of the stream used for C1-C4.")
@click.option("--chunk-size", type=int, default=512, show_default=True, help="Targets per span in the checks.")
@click.option("--random-tokens", type=int, default=50_000, show_default=True,
              help="Length of the uniform random stream of the no-hypercompression check (0 skips it).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.option("--plugin", "-p", "plugin_modules", multiple=True, metavar="MODULE", help="Load a plugin module (repeatable).")
def audit_command(experts, mixer, adapters, data, tokenizer, expert_opt, mixer_opt, adapter_opt, limit, chunk_size,
                  random_tokens, device, seed, as_json, plugin_modules):
    """Check rules C1-C4 and no hypercompression on a configuration; exit 1 if any check fails."""
    from ..checks.audit import audit
    from .options import get_plugins, parse_assignments, split_names

    names = split_names(experts)
    if not names:
        raise click.BadParameter("give at least one expert", param_hint="--experts")
    if limit < 3 or chunk_size < 1 or random_tokens < 0:
        raise click.BadParameter("--limit must be >= 3, --chunk-size >= 1 and --random-tokens >= 0")
    report = audit(
        names, mixer=mixer or None, adapters=split_names(adapters), tokens=data, tokenizer=tokenizer,
        expert_options=parse_assignments(expert_opt, True, "--expert-opt"),
        mixer_options=parse_assignments(mixer_opt, False, "--mixer-opt"),
        adapter_options=parse_assignments(adapter_opt, True, "--adapter-opt"),
        plugins=get_plugins(plugin_modules), limit=limit, chunk=chunk_size, random_tokens=random_tokens,
        seed=seed, device=device,
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format_table())
    if not report.passed:
        sys.exit(1)
