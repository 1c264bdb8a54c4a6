"""Hook specifications of the ``pgolf`` plugin namespace.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names are the hooks
below. It is found through the ``pgolf`` entry-point group, or loaded by ``--plugin MODULE`` /
``PGOLF_PLUGINS=mod1,mod2``. Registration hooks receive a ``register`` callback::

    from pgolf_core import hookimpl

    @hookimpl
    def pgolf_register_experts(register):
        register("cache", make_cache_expert, description="recency cache", aliases=["recency"])

``register(name, factory, *, description="", aliases=())``: ``factory(ctx, **options)`` builds the
component; ``ctx`` is a ``pgolf_core.api.BuildContext``. Import heavy libraries (torch, numba)
inside the factory so that listing plugins stays instant.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("pgolf")
hookimpl = pluggy.HookimplMarker("pgolf")


@hookspec
def pgolf_register_experts(register: Callable) -> None:
    """Register expert factories: ``register(name, factory, description=..., aliases=...)``.

    Each factory is called as ``factory(ctx, **options)`` and returns a ``pgolf_core.api.Expert``.
    """


@hookspec
def pgolf_register_mixers(register: Callable) -> None:
    """Register mixer factories: ``register(name, factory, description=..., aliases=...)``.

    Each factory is called as ``factory(ctx, **options)`` (``ctx.expert_names`` lists the K inputs)
    and returns a ``pgolf_core.api.Mixer``.
    """


@hookspec
def pgolf_register_adapters(register: Callable) -> None:
    """Register test-time-training adapter factories: ``register(name, factory, ...)``.

    Each factory is called as ``factory(ctx, **options)`` and returns a ``pgolf_core.api.Adapter``.
    """


@hookspec
def pgolf_register_tokenizers(register: Callable) -> None:
    """Register tokenizer formats: ``register(name, loader, description=...)``.

    ``loader(path)`` returns a ``pgolf_core.tokenizers.Tokenizer`` for a file of its format and
    None for any other file (the builtin SentencePiece loader is asked last).
    """


@hookspec
def pgolf_register_presets(register: Callable) -> None:
    """Register named evaluation configurations: ``register(name, factory, description=...)``.

    Each factory is called with no argument and returns a ``pgolf_core.presets.Preset``
    (``pgolf-core eval --preset NAME``).
    """


@hookspec
def pgolf_register_commands(cli) -> None:
    """Add subcommands to the ``pgolf-core`` click group ``cli`` (e.g. ``cli.add_command(cmd)``)."""
