"""Command-line options shared by the commands that build a configuration (eval, audit, compress)."""

from __future__ import annotations

import click


def component_options(default_experts: str):
    """--experts/--mixer/--adapters, --data/--tokenizer and the --*-opt options, defined once."""
    options = [
        click.option("--experts", "-e", default=default_experts, show_default=True, help="Comma-separated expert names."),
        click.option("--mixer", "-m", default=None, help="Mixer name (default: hedge when there are several experts)."),
        click.option("--adapters", "-a", default="", help="Comma-separated test-time-training adapters."),
        click.option("--data", "-d", type=click.Path(),
                     help="Tokens: .npy, a shard, a shard directory or a glob. Default: the built-in demo."),
        click.option("--tokenizer", "-t", type=click.Path(), help="SentencePiece model of the data (needed with --data)."),
        click.option("--expert-opt", multiple=True, metavar="NAME.K=V",
                     help="Expert option, e.g. ngram.order=5 (repeatable)."),
        click.option("--mixer-opt", multiple=True, metavar="K=V", help="Mixer option, e.g. eta=0.1 (repeatable)."),
        click.option("--adapter-opt", multiple=True, metavar="NAME.K=V", help="Adapter option (repeatable)."),
    ]

    def apply(func):
        for opt in reversed(options):
            func = opt(func)
        return func

    return apply
