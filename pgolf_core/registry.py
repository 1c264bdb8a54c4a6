"""Name -> factory registries for experts, mixers and adapters."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .errors import PluginError, UsageError


@dataclass(frozen=True)
class Entry:
    """One registered component: its factory, never an instance."""

    name: str
    factory: Callable
    kind: str  # "expert", "mixer" or "adapter"
    plugin: str  # name of the plugin that registered it
    description: str = ""
    aliases: tuple = ()

    def options(self) -> dict:
        """Keyword options the factory accepts, with their defaults (``inspect.Parameter.empty``)."""
        params = list(inspect.signature(self.factory).parameters.values())[1:]  # skip ctx
        out = {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        out.update({k: opt.default for k, opt in self.declared().items()})
        return out

    def declared(self) -> dict:
        """``{name: pgolf_core.options.Option}`` for a factory declared with ``options.declared``."""
        return dict(getattr(self.factory, "__pgolf_options__", {}))

    def accepts_any_option(self) -> bool:
        params = inspect.signature(self.factory).parameters.values()
        return any(p.kind is p.VAR_KEYWORD for p in params)


@dataclass
class Registry:
    kind: str
    entries: dict = field(default_factory=dict)  # canonical name -> Entry
    aliases: dict = field(default_factory=dict)  # alias -> canonical name
    failed_plugins: dict = field(default_factory=dict)  # plugin name -> error message

    def register(self, name: str, factory: Callable, *, plugin: str = "?", description: str = "",
                 aliases: Sequence[str] = ()) -> None:
        if not callable(factory):
            raise PluginError(f"plugin {plugin!r}: {self.kind} {name!r} factory is not callable")
        for key in (name, *aliases):
            if key in self.entries or key in self.aliases:
                owner = self.get(key).plugin
                raise PluginError(
                    f"plugin {plugin!r}: {self.kind} name {key!r} is already registered by plugin {owner!r}"
                )
        self.entries[name] = Entry(name, factory, self.kind, plugin, description, tuple(aliases))
        for alias in aliases:
            self.aliases[alias] = name

    def names(self) -> list:
        return sorted(self.entries)

    def get(self, name: str) -> Entry:
        canonical = self.aliases.get(name, name)
        if canonical in self.entries:
            return self.entries[canonical]
        known = sorted(set(self.entries) | set(self.aliases))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        broken = ""
        if self.failed_plugins:
            broken = " (plugins that failed to load: " + ", ".join(sorted(self.failed_plugins)) + ")"
        raise UsageError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(known) or 'none'}{broken}"
        )

    def create(self, name: str, ctx: Any, **options) -> Any:
        """Build a component, rejecting options its factory does not accept."""
        entry = self.get(name)
        if not entry.accepts_any_option():
            known = entry.options()
            for key in options:
                if key not in known:
                    close = difflib.get_close_matches(key, list(known), n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise UsageError(
                        f"{self.kind} {entry.name!r} has no option {key!r}.{hint} "
                        f"Options: {', '.join(sorted(known)) or 'none'}"
                    )
        component = entry.factory(ctx, **options)
        component.name = entry.name
        return component
