"""Plugin discovery: the ``pgolf`` entry-point group, ``--plugin MODULE`` and ``PGOLF_PLUGINS``.

Builtins are found through the same entry-point group as third-party plugins. Setting
``PGOLF_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (only explicitly named modules load), which
is how a run is restricted to a known set of plugins.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from typing import Iterable, Optional

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Registry

ENTRY_POINT_GROUP = "pgolf"
ENV_PLUGINS = "PGOLF_PLUGINS"
ENV_DISABLE_AUTOLOAD = "PGOLF_DISABLE_PLUGIN_AUTOLOAD"


@dataclass
class PluginInfo:
    name: str
    source: str  # "entry point", "--plugin", "PGOLF_PLUGINS" or "object"
    module: str
    version: str = ""
    error: str = ""  # non-empty when the plugin failed to load


@dataclass
class Plugins:
    """A loaded plugin set: the pluggy manager plus the registries of components and presets."""

    pm: pluggy.PluginManager
    experts: Registry = field(default_factory=lambda: Registry("expert"))
    mixers: Registry = field(default_factory=lambda: Registry("mixer"))
    adapters: Registry = field(default_factory=lambda: Registry("adapter"))
    presets: Registry = field(default_factory=lambda: Registry("preset"))
    tokenizers: Registry = field(default_factory=lambda: Registry("tokenizer"))
    info: list = field(default_factory=list)

    def registry(self, kind: str) -> Registry:
        return {"expert": self.experts, "mixer": self.mixers, "adapter": self.adapters, "preset": self.presets,
                "tokenizer": self.tokenizers}[kind]

    def add(self, plugin: object, name: str, source: str = "object", version: str = "") -> None:
        """Register a plugin object or module after loading (tests use this)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self.info.append(PluginInfo(name, source, getattr(plugin, "__name__", type(plugin).__name__), version))
        self._collect(only=plugin, plugin_name=name)

    def remove(self, name: str) -> None:
        """Unregister a plugin and drop what it registered."""
        self.pm.unregister(name=name)
        for reg in (self.experts, self.mixers, self.adapters, self.presets, self.tokenizers):
            for key in [k for k, e in reg.entries.items() if e.plugin == name]:
                entry = reg.entries.pop(key)
                for alias in entry.aliases:
                    reg.aliases.pop(alias, None)
        self.info = [i for i in self.info if i.name != name]

    def summary(self) -> list:
        """One row per loaded (or failed) plugin: name, source, module, version, error (None when it
        loaded) and what it registered, {kind: [names]}; what ``pgolf-core plugins`` and
        ``pgolf-core doctor`` print."""
        kinds = ("expert", "mixer", "adapter", "preset", "tokenizer")
        return [{"name": i.name, "source": i.source, "module": i.module, "version": i.version, "error": i.error or None,
                 "provides": {k: [n for n, e in self.registry(k).entries.items() if e.plugin == i.name] for k in kinds}}
                for i in self.info]

    def _collect(self, only: Optional[object] = None, plugin_name: Optional[str] = None) -> None:
        """Call the registration hooks of every plugin (or of ``only``) with a ``register`` callback."""
        hooks = (
            ("pgolf_register_experts", self.experts),
            ("pgolf_register_mixers", self.mixers),
            ("pgolf_register_adapters", self.adapters),
            ("pgolf_register_presets", self.presets),
            ("pgolf_register_tokenizers", self.tokenizers),
        )
        for hook_name, registry in hooks:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if only is not None and impl.plugin is not only:
                    continue
                pname = impl.plugin_name
                register = partial(registry.register, plugin=pname)
                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:  # a plugin's bug must not look like the engine's
                    raise PluginError(f"plugin {pname!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def builtin_modules() -> list:
    """The plugin modules pgolf-core itself registers (its own entry points)."""
    from importlib import metadata

    eps = metadata.distribution("pgolf-core").entry_points
    return sorted(ep.value for ep in eps if ep.group == ENTRY_POINT_GROUP)


def module_files(name: str) -> tuple:
    """(the ``sys.path`` folder a top-level module is found in, its files without ``__pycache__``),
    found without importing it: every file of a package's folder, or a module's one file."""
    from pathlib import Path

    spec = importlib.util.find_spec(name)
    if spec is None:
        raise PluginError(f"module {name!r} cannot be found")
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        files = [str(f) for r in roots for f in sorted(r.rglob("*"))
                 if f.is_file() and "__pycache__" not in f.parts[len(r.parts):]]
        return str(roots[0].parent), files
    if spec.origin is None or not os.path.isfile(spec.origin):
        raise PluginError(f"module {name!r} has no file to read ({spec.origin})")
    return str(Path(spec.origin).parent), [spec.origin]


def pin_plugin_code(modules) -> dict:
    """``{module: [{"path", "sha256"}]}``: the files of each non-builtin plugin module as they are
    now, found without importing it. A proof's encoder calls this before it loads any plugin, and
    its decoder reads only these files (``pgolf_core.proof.plan``): a file a plugin writes beside
    its code while it runs is not among them."""
    from .digest import sha256_file

    own = {"pgolf_core", *(m.split(".")[0] for m in builtin_modules())}
    out = {}
    for mod in modules:
        if mod.split(".")[0] in own:
            continue
        try:
            _, files = module_files(mod.split(".")[0])
        except PluginError:
            continue  # loading it will fail with its own message
        out[mod] = [{"path": f, "sha256": sha256_file(f)} for f in files]
    return out


def _import_module(name: str, source: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise PluginError(f"plugin module {name!r} (from {source}) failed to import: {type(exc).__name__}: {exc}") from exc


def load_plugins(modules: Iterable[str] = (), env: Optional[dict] = None, autoload: Optional[bool] = None) -> Plugins:
    """Load entry-point plugins plus ``modules`` and ``$PGOLF_PLUGINS``; return the registries.

    An entry-point plugin that fails to import is recorded (``Plugins.info`` and the registries'
    ``failed_plugins``) and reported by name; an explicitly requested module that fails is an error.
    """
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    if autoload is None:
        autoload = env.get(ENV_DISABLE_AUTOLOAD, "") in ("", "0")
    failed = {}
    if autoload:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if pm.has_plugin(ep.name):
                continue
            version = ep.dist.version if ep.dist is not None else ""
            try:
                module = ep.load()
            except Exception as exc:
                msg = f"{type(exc).__name__}: {exc}"
                failed[ep.name] = msg
                plugins.info.append(PluginInfo(ep.name, "entry point", ep.value, version, error=msg))
                print(f"pgolf-core: warning: plugin {ep.name!r} ({ep.value}) failed to load: {msg}", file=sys.stderr)
                continue
            pm.register(module, name=ep.name)
            plugins.info.append(PluginInfo(ep.name, "entry point", ep.value, version))
    requested = [(m, "--plugin") for m in modules]
    requested += [(m.strip(), ENV_PLUGINS) for m in env.get(ENV_PLUGINS, "").split(",") if m.strip()]
    for name, source in requested:
        if pm.has_plugin(name):
            continue
        module = _import_module(name, source)
        if pm.is_registered(module):  # already loaded through its entry point under another name
            continue
        pm.register(module, name=name)
        plugins.info.append(PluginInfo(name, source, name))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin defines an unknown pgolf hook: {exc}") from exc
    for reg in (plugins.experts, plugins.mixers, plugins.adapters, plugins.presets, plugins.tokenizers):
        reg.failed_plugins = failed
    plugins._collect()
    return plugins
