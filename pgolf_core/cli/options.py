"""Command-line options and their parsing, shared by the commands that build a configuration
(eval, audit, compress, decompress): the command modules import this, never each other."""

from __future__ import annotations

from typing import Optional, Sequence

import click

_PLUGINS = {}


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


def get_plugins(modules: Sequence[str] = ()):
    """Load (once per process and module list) the plugin set."""
    from ..plugins import load_plugins

    key = tuple(modules)
    if key not in _PLUGINS:
        _PLUGINS[key] = load_plugins(modules)
    return _PLUGINS[key]


def parse_assignments(items: Sequence[str], scoped: bool, what: str) -> dict:
    """``k=v`` (or ``NAME.k=v`` when scoped) -> dict (values stay strings; factories convert)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected {'NAME.key=value' if scoped else 'key=value'}, got {item!r}", param_hint=what)
        if scoped:
            name, dot, opt = key.rpartition(".")
            if not dot or not name or not opt:
                raise click.BadParameter(f"expected NAME.key=value, got {item!r}", param_hint=what)
            out.setdefault(name, {})[opt] = value
        else:
            out[key] = value
    return out


def split_names(value: Optional[str], what: str = "--experts") -> list:
    """``a,b,c`` -> names; an empty name in the list (``a,,b``, ``a,``) is a usage error, not dropped."""
    if value is None or not value.strip():
        return []
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r} has an empty name; give comma-separated names, e.g. bigram,trigram",
                                 param_hint=what)
    return names


def given_name(value: Optional[str], what: str) -> Optional[str]:
    """An optional single name (``--mixer``, ``--preset``): None when not given, an error when empty."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("an empty name; give a name or leave the option out", param_hint=what)
    return value.strip()
