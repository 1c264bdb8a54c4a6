"""Named evaluation configurations (``pgolf-core eval --preset NAME``).

Plugins contribute presets through the ``pgolf_register_presets`` hook (the seed record's
``pr700`` and ``pr700-legal`` come with the neural plugin, ``pgolf_neural.presets``); this module
defines what a preset is and how it turns into ``evaluate()`` arguments. ``preset_kwargs(name,
...)`` returns them, and anything the user gives explicitly wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional


@dataclass(frozen=True)
class Preset:
    description: str
    experts: tuple
    mixer: str
    mixer_options: dict
    expert_options: dict
    adapters: tuple = ()  # used when registered; a missing one is reported in ``notes``
    adapter_options: dict = field(default_factory=dict)
    invalid_reason: str = ""  # why results of this preset are INVALID (empty: a legal configuration)
    notes: tuple = field(default_factory=tuple)
    # (expert, source): ``expert`` builds its own copy of the expert ``source`` and takes that one's
    # options with the prefix ``<source>_`` (the entropy experts' convention), so options the user
    # gives ``source`` are mirrored to it, unless its ``source`` option names another expert.
    mirror: tuple = ()


def get_preset(name: str, plugins=None) -> Preset:
    """The preset registered as ``name`` (a usage error with a "did you mean" otherwise)."""
    if plugins is None:
        from .plugins import load_plugins

        plugins = load_plugins()
    entry = plugins.presets.get(name)
    preset = entry.factory()
    if not isinstance(preset, Preset):
        from .errors import PluginError

        raise PluginError(f"plugin {entry.plugin!r}: preset {name!r} factory returned {type(preset).__name__}, "
                          f"not a pgolf_core.presets.Preset")
    return preset


def preset_kwargs(name: str, plugins=None, *, experts=None, mixer=None, adapters=None,
                  expert_options: Optional[Mapping] = None, mixer_options: Optional[Mapping] = None,
                  adapter_options: Optional[Mapping] = None) -> dict:
    """``evaluate()`` keyword arguments for a preset, with the user's explicit choices on top.

    ``experts``/``mixer``/``adapters`` given (not None) replace the preset's; option dicts are merged
    per component (user values win). Options given to a mirrored source (``Preset.mirror``, e.g.
    ``neural`` for an entropy expert) are copied to the expert built on it (``neural_<key>``) so
    both run the same checkpoint. Returns the kwargs plus
    ``notes`` (a list of strings to show the user) and ``invalid_reason``; pop those two before
    calling ``evaluate``.
    """
    if plugins is None:
        from .plugins import load_plugins

        plugins = load_plugins()
    p = get_preset(name, plugins)
    notes = list(p.notes)
    if adapters is None:
        adapters = list(p.adapters)
        missing = [a for a in adapters if a not in plugins.adapters.entries]
        adapters = [a for a in adapters if a not in missing]
        notes += [f"adapter {a!r} is not registered: this run lacks that part of the recipe" for a in missing]
    eopts = {k: dict(v) for k, v in p.expert_options.items()}
    for comp, opts in (expert_options or {}).items():
        eopts.setdefault(comp, {}).update(opts)
    for target, source in p.mirror:
        own, prefix = (expert_options or {}).get(target, {}), f"{source.replace('-', '_')}_"
        if target in eopts and eopts[target].get("source", source) != source:  # the user chose another source
            eopts[target] = {k: v for k, v in eopts[target].items() if not k.startswith(prefix) or k in own}
        elif target in eopts:
            for key, value in (expert_options or {}).get(source, {}).items():
                if f"{prefix}{key}" not in own:
                    eopts[target][f"{prefix}{key}"] = value
    names = list(experts) if experts is not None else list(p.experts)
    # the preset's adapter options go to its adapters that run; the user's are merged on top
    aopts = {a: dict(o) for a, o in p.adapter_options.items() if a in adapters}
    for comp, opts in (adapter_options or {}).items():
        aopts.setdefault(comp, {}).update(opts)
    return {
        "experts": names,
        "mixer": mixer if mixer is not None else p.mixer,
        "adapters": adapters,
        "expert_options": {k: v for k, v in eopts.items() if k in names},
        # the preset's mixer options belong to its mixer: a different mixer starts from its own defaults
        "mixer_options": {**(p.mixer_options if mixer is None else {}), **dict(mixer_options or {})},
        "adapter_options": aopts,
        "notes": notes,
        "invalid_reason": p.invalid_reason,
    }
