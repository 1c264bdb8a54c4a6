"""Building a run's components: one path for ``evaluate``, the audit and the compressor.

A component is asked for by registered name (with options) or handed over as a ready instance;
either way it is type-checked, its vocabulary checked against the stream's, and a component known
to break a rule is named in the returned list of problems.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from ..api import Adapter, BuildContext, Expert, Mixer
from ..errors import DataError, PgolfError, UsageError
from .loop import Components


@dataclass
class ComponentSpec:
    """A requested component: a registered name and its options, or a ready instance."""

    name: str
    options: dict = field(default_factory=dict)
    instance: Any = None
    label: str = ""  # key in results (defaults to name; made unique when a name repeats)


def as_components(items, options_by_name: Optional[Mapping] = None) -> list:
    """``ComponentSpec`` objects with unique labels for names, instances or ``ComponentSpec`` items.

    A repeated name gets the label ``name#2``, ``name#3``, ...; options keyed by a name apply to
    every component of that name, options keyed by a label (``ngram#2``) to that one on top (see
    ``refuse_repeats`` for the same component twice)."""
    options_by_name = dict(options_by_name or {})
    out, seen = [], {}
    for item in items:
        if isinstance(item, ComponentSpec):
            comp = item
        elif isinstance(item, str):
            comp = ComponentSpec(item)
        else:  # an instance built by the caller
            comp = ComponentSpec(getattr(item, "name", "") or type(item).__name__, {}, instance=item)
        base = comp.label or comp.name
        seen[base] = seen.get(base, 0) + 1
        comp.label = base if seen[base] == 1 else f"{base}#{seen[base]}"
        if isinstance(item, str):
            comp.options = {**options_by_name.get(item, {}), **options_by_name.get(comp.label, {})}
        out.append(comp)
    unused = set(options_by_name) - {c.name for c in out} - {c.label for c in out}
    if unused:
        raise UsageError(f"options given for {', '.join(sorted(unused))}, which is not among the requested components")
    for c in out:
        if c.instance is not None and c.options:
            raise UsageError(f"options {sorted(c.options)} given for {c.label!r}, which was passed as a built instance: "
                             f"set them when building it")
    return out


def refuse_repeats(comps: list, same_options: bool = True) -> None:
    """Refuse the same component twice (one name with the same options, or one instance): an expert
    mixed with an identical copy only splits its weight (and doubles the cost), an adapter twice
    trains twice on each chunk, and one instance twice would see every token twice. Experts are
    checked only in a run without adapters: with one, two copies differ once it adapts one of them
    (``neural`` and ``neural#2`` under ``ttt``): ``same_options=False`` then refuses only a repeated
    instance."""
    first: dict = {}
    for c in comps:
        if c.instance is None and not same_options:
            continue
        key = ("instance", id(c.instance)) if c.instance is not None else (c.name, repr(sorted(c.options.items())))
        if key in first:
            how = "the same instance" if c.instance is not None else "the same options"
            hint = "" if c.instance is not None else f", or give the second one other options ({c.label}.KEY=VALUE)"
            raise UsageError(f"{c.name!r} is asked for twice with {how} (as {first[key]!r} and {c.label!r}): the run "
                             f"would compute the same thing twice; drop one{hint}")
        first[key] = c.label


def _build(registry, comp: ComponentSpec, ctx: BuildContext, kind_cls):
    obj = comp.instance if comp.instance is not None else registry.create(comp.name, ctx, **comp.options)
    if not isinstance(obj, kind_cls):
        raise PgolfError(f"{registry.kind} {comp.name!r} factory returned {type(obj).__name__}, not a {kind_cls.__name__}")
    return obj


def mixer_spec(mixer, mixer_options: Optional[dict], n_experts: int) -> Optional[ComponentSpec]:
    """The mixer's ``ComponentSpec`` (``hedge`` by default for several experts), or None for one expert."""
    if mixer is None and n_experts <= 1:
        if mixer_options:
            raise UsageError(f"mixer options {sorted(mixer_options)} given, but one expert and no mixer were asked for")
        return None
    spec = as_components([mixer if mixer is not None else "hedge"])[0]
    if mixer_options:
        if spec.instance is not None:
            raise UsageError(f"mixer options {sorted(mixer_options)} given for a mixer passed as a built instance")
        spec.options.update(mixer_options)
    return spec


def build_components(plugins, ctx: BuildContext, expert_specs: list, mixer: Optional[ComponentSpec],
                     adapter_specs: list) -> tuple:
    """Build experts, mixer and adapters; return (``Components``, problems of known-invalid ones).

    Adapters are not set up here: the caller does it once the configuration has been accepted."""
    if not expert_specs:
        raise UsageError("at least one expert is needed")
    labels = [c.label for c in expert_specs]
    ctx.expert_names = tuple(labels)
    experts = [_build(plugins.experts, c, ctx, Expert) for c in expert_specs]
    for e, label in zip(experts, labels):
        if e.vocab_size != ctx.vocab_size:
            raise DataError(f"expert {label!r} has vocabulary {e.vocab_size}, the tokenizer {ctx.tokenizer_path} "
                            f"has {ctx.vocab_size}")
    mix = _build(plugins.mixers, mixer, ctx, Mixer) if mixer is not None else None
    if mix is not None and (mix.n_experts != len(experts) or mix.vocab_size != ctx.vocab_size):
        raise UsageError(f"mixer {mixer.label!r} was built for {mix.n_experts} experts and vocabulary {mix.vocab_size}; "
                         f"the run has {len(experts)} and {ctx.vocab_size}")
    ads = [_build(plugins.adapters, c, ctx, Adapter) for c in adapter_specs]
    comps = Components(experts, labels, mix, ads, [c.label for c in adapter_specs])
    problems = []
    for kind, objs, names in (("expert", experts, labels), ("mixer", [mix] if mix else [], [getattr(mix, "name", "")]),
                              ("adapter", ads, comps.adapter_labels)):
        for obj, name in zip(objs, names):
            if obj.known_invalid:
                problems.append(f"{kind} {name!r} is known invalid: {obj.invalid_reason}")
    return comps, problems


def build_twin(plugins, ctx: BuildContext, expert_specs: list, mixer: Optional[ComponentSpec], adapter_specs: list) -> tuple:
    """A second build of the same components from their factories, with the same options and context
    (the live spot checks compare it with the run's on the first block: a component that two builds
    make differently, such as one with an unseeded random generator, is nondeterministic). Returns
    (``Components``, rebuilt): components handed over as instances cannot be rebuilt, so they are
    deep-copied instead (call this before the run advances them) and ``rebuilt`` is False."""
    def again(spec):
        return spec if spec is None or spec.instance is None else replace(spec, instance=copy.deepcopy(spec.instance))

    specs = [*expert_specs, *adapter_specs, *([mixer] if mixer is not None else [])]
    rebuilt = all(c.instance is None for c in specs)
    twin, _ = build_components(plugins, ctx, [again(c) for c in expert_specs], again(mixer),
                               [again(c) for c in adapter_specs])
    return twin, rebuilt
