"""Stacking: a top mixer over the outputs of several sub-mixers, each of which sees the K experts.

Command-line syntax (values are strings, as every ``--mixer-opt``)::

    --mixer stack \\
      --mixer-opt "inputs=hedge:share=0.01;logistic:lr=0.02;hedge:update=batch:eta=0.1" \\
      --mixer-opt top=hedge --mixer-opt "top_opts=eta=1:share=0.001"

- ``inputs``: sub-mixers separated by ``;``; each is ``NAME`` followed by ``:key=value`` options
  (``:`` rather than ``,`` between options because option values such as ``prior=0.5,0.25,0.25``
  contain commas). From Python, a sequence of such strings or of ``(name, {options})`` pairs.
- ``top``: the top mixer, ``NAME[:key=value...]`` (default ``hedge``); ``top_opts`` adds options to
  it in the same ``key=value:key=value`` form.

Sub-mixer m's log-probability of each target (and its full distribution, when the top mixer needs
distributions or the caller asks for one) is input m of the top mixer; the top mixer's inputs are
named by the sub-mixers' names (``hedge``, ``hedge#2``, ...). Every part sees a target only after
scoring it, so the stack is causal and score-first whenever its parts are; it is normalized because
the top mixer mixes normalized distributions.

``weights`` is the top mixer's weight vector (M,), one weight per sub-mixer, in ``inputs`` order:
that is the question a stack answers (which mixing rule to trust). ``describe()`` holds every
part's own description, sub-mixer weights included.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from pgolf_core.api import Mixer
from pgolf_core.errors import UsageError

from .hedge import check_inputs, check_rows

EXAMPLE = "inputs='hedge:share=0.01;logistic:lr=0.02'"


def parse_options(text: str, where: str) -> dict:
    """``"key=value:key=value"`` -> dict of strings."""
    out = {}
    for item in (p.strip() for p in text.split(":")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"mixer 'stack': {where}: expected key=value, got {item!r} (separate options with ':')")
        out[key.strip()] = value.strip()
    return out


def parse_spec(spec, where: str):
    """``"NAME:key=value:..."`` or ``(name, {options})`` -> (name, options)."""
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
        return str(spec[0]), dict(spec[1])
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"mixer 'stack': {where}: expected NAME[:key=value...], got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    if not name.strip() or "=" in name:
        raise UsageError(f"mixer 'stack': {where}: expected NAME[:key=value...], got {spec!r}")
    return name.strip(), parse_options(rest, f"{where} {name.strip()!r}")


def parse_inputs(inputs) -> list:
    """The ``inputs`` option -> [(name, options), ...]."""
    items = [s for s in inputs.split(";") if s.strip()] if isinstance(inputs, str) else list(inputs or ())
    if not items:
        raise UsageError(f"mixer 'stack': option inputs must name at least one sub-mixer, e.g. {EXAMPLE}")
    return [parse_spec(s, f"inputs[{i}]") for i, s in enumerate(items)]


def unique_labels(names: Sequence[str]) -> list:
    seen: dict = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


class StackMixer(Mixer):
    """A top mixer over sub-mixers' outputs; see the module docstring."""

    def __init__(self, n_experts: int, vocab_size: int, subs: Sequence[Mixer], labels: Sequence[str], top: Mixer):
        super().__init__(n_experts, vocab_size)
        self.subs, self.labels, self.top = list(subs), list(labels), top
        self.needs_distributions = bool(top.needs_distributions or any(s.needs_distributions for s in self.subs))

    def mix(self, logp, targets, dists=None, return_distribution=False):
        logp, dists = check_inputs(self, logp, targets, dists, return_distribution)
        want_sub_dists = return_distribution or self.top.needs_distributions
        sub_logp = np.empty((len(self.subs), logp.shape[1]))
        sub_dists = np.empty((len(self.subs), logp.shape[1], self.vocab_size)) if want_sub_dists else None
        for m, sub in enumerate(self.subs):
            if want_sub_dists:
                sub_logp[m], sub_dists[m] = sub.mix(logp, targets, dists, return_distribution=True)
            else:
                sub_logp[m] = sub.mix(logp, targets, dists)
        return self.top.mix(sub_logp, targets, sub_dists, return_distribution=return_distribution)

    def predict(self, dists):
        """The next target's row: the top mixer's ``predict`` over the sub-mixers' predicted rows
        (float64, as ``mix`` hands them to the top mixer); nothing moves."""
        dists = check_rows(self, dists)
        rows = np.stack([np.asarray(sub.predict(dists), dtype=np.float64) for sub in self.subs])
        return self.top.predict(rows)

    @property
    def weights(self) -> np.ndarray:
        """The top mixer's weights: one per sub-mixer, in ``inputs`` order."""
        return np.asarray(self.top.weights, dtype=np.float64)

    def reset(self) -> None:
        for part in (*self.subs, self.top):
            part.reset()

    def state_fingerprint(self):
        parts = [p.state_fingerprint() or b"" for p in (*self.subs, self.top)]
        return b"|".join(parts)

    def describe(self) -> dict:
        return {"top": {"name": self.top.name, **self.top.describe()},
                "inputs": [{"name": s.name, "label": lab, **s.describe()} for s, lab in zip(self.subs, self.labels)],
                "weights": self.weights.tolist()}


def build_stack(ctx, inputs, top, top_opts) -> StackMixer:
    """Build the sub-mixers and the top mixer from the registry in ``ctx.plugins``
    (loaded from the entry points when absent, for direct Python use)."""
    plugins = ctx.plugins
    if plugins is None:
        from pgolf_core.plugins import load_plugins

        plugins = load_plugins()
    specs = parse_inputs(inputs)
    top_name, top_options = parse_spec(top, "top")
    extra = parse_options(top_opts, "top_opts") if isinstance(top_opts, str) else dict(top_opts or {})
    top_options.update(extra)
    subs = [plugins.mixers.create(name, ctx, **opts) for name, opts in specs]
    labels = unique_labels([s.name for s in subs])
    top_ctx = dataclasses.replace(ctx, expert_names=tuple(labels))
    top_mixer = plugins.mixers.create(top_name, top_ctx, **top_options)
    return StackMixer(len(ctx.expert_names), ctx.vocab_size, subs, labels, top_mixer)
