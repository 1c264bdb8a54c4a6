"""The audit behind ``pgolf-core audit``: rules C1-C4 and no hypercompression, per component and for
the whole configuration, with the evidence of each verdict.

Per expert it runs the contract checks (``checks.contract``, published to authors as
``pgolf_core.testing``) on a short stream (the built-in demo by default); per mixer, the mixer
checks on synthetic expert outputs; for the configuration, the evaluator's own loop
(``pgolf_core.run.loop``) instrumented: strict passes with changed futures (C1, C3) and the
mixture's full distributions (C2), every expert and adapter wrapped in a recorder (C4, and adapters
only ever see scored tokens), and a uniform random stream (no hypercompression, for the mixture and
for each expert alone). ``eval --audit`` runs it on deep copies of the run's own components, built
with the run's context, and adds live spot checks inside the pass (``pgolf_core.checks.spotcheck``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from . import audit_engine as E
from . import contract as T  # the contract checks, published to authors as pgolf_core.testing
from ..api import BuildContext
from ..errors import PgolfError
from ..run.loop import Components

DEFAULT_AUDIT_TOKENS = 2048  # the audit stream: long enough for several chunk boundaries, short enough for a neural expert
DEFAULT_AUDIT_CHUNK = 512
DEFAULT_RANDOM_TOKENS = 50_000


@dataclass
class Check:
    component: str  # "expert 'bigram'", "mixer 'hedge'", "adapter 'ttt'" or "configuration"
    rule: str  # "C1 causal", "C2 normalized", ...
    status: str  # "PASS", "FAIL" or "SKIP"
    evidence: str  # one line: what was measured, or why it failed
    seconds: float = 0.0
    data: dict = field(default_factory=dict)


@dataclass
class AuditReport:
    checks: list
    config: dict
    seconds: float

    @property
    def passed(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict:
        from ..run.report import _jsonable

        return _jsonable({"schema": "pgolf-core/audit", "version": 1, "passed": self.passed, "config": self.config,
                          "seconds": self.seconds,
                          "checks": [{"component": c.component, "rule": c.rule, "status": c.status,
                                      "evidence": c.evidence, "seconds": c.seconds, "data": c.data} for c in self.checks]})

    def format_table(self) -> str:
        w = max(len(c.component) for c in self.checks)
        r = max(len(c.rule) for c in self.checks)
        lines = [f"{'component':<{w}}  {'check':<{r}}  status  seconds  evidence"]
        lines += [f"{c.component:<{w}}  {c.rule:<{r}}  {c.status:<6}  {c.seconds:7.1f}  {c.evidence}" for c in self.checks]
        verdict = "PASSED" if self.passed else "FAILED"
        n_fail = sum(c.status == "FAIL" for c in self.checks)
        lines.append(f"audit {verdict}: {len(self.checks)} checks, {n_fail} failed, {self.seconds:.1f} s")
        return "\n".join(lines)


def _run(checks: list, component: str, rule: str, fn: Callable, summary: Callable) -> Optional[dict]:
    t0 = time.perf_counter()
    try:
        evidence = fn()
    except AssertionError as exc:
        checks.append(Check(component, rule, "FAIL", str(exc), time.perf_counter() - t0))
        return None
    except PgolfError as exc:  # a component that breaks the interface fails the check it broke
        checks.append(Check(component, rule, "FAIL", str(exc), time.perf_counter() - t0))
        return None
    except NotImplementedError as exc:
        checks.append(Check(component, rule, "SKIP", f"not checkable: {exc}", time.perf_counter() - t0))
        return None
    checks.append(Check(component, rule, "PASS", summary(evidence), time.perf_counter() - t0, evidence))
    return evidence


def _c1_text(ev):
    return f"cuts at {ev['cuts']} ({'/'.join(ev['modes'])}): max change {ev['max_difference']:.2g}, {ev['rows_compared']} rows identical"


def _c2_text(ev):
    m = ev["worst_mass"]
    return f"{ev['positions']} positions: worst mass {m:.12g} (|1 - mass| = {abs(m - 1):.1e}) at {ev['worst_position']}, min entry {ev['min_entry']:.3g}"


def _c3_text(ev):
    probe = "" if ev["probe_difference"] is None else f", {ev['candidates']} target probes at {ev['probe_position']} match (max {ev['probe_difference']:.2g})"
    return f"state after spans up to {ev['state_cut']} independent of the future ({ev['fingerprints_compared']} fingerprints){probe}"


class _Config:
    """A run's built components (never advanced: every check works on deep copies of them)."""

    def __init__(self, comps: Components, vocab_size: int):
        self.comps, self.vocab_size = comps, vocab_size
        self.labels, self.adapter_labels = list(comps.labels), list(comps.adapter_labels)
        self.experts, self.mixer, self.adapters = comps.experts, comps.mixer, comps.adapters

    def parts(self, setup: bool = True) -> Components:
        """A deep copy of every component at once (so references between them are kept);
        ``setup=False`` leaves the adapters' setup to the evaluator."""
        fresh = copy.deepcopy(self.comps)
        for a in fresh.adapters if setup else ():
            a.setup(dict(zip(fresh.labels, fresh.experts)))
        return fresh

    @property
    def full(self) -> bool:
        return all(e.provides_distributions for e in self.experts)


def check_config_causal(cfg: _Config, stream, spans, seed: int = 0, n_cuts: int = 3) -> dict:
    """C1 and C3 for the whole configuration: a different future changes no earlier mixture
    prediction (nor the mixture row for the cut position) and no component's state before it."""
    rng = np.random.default_rng(seed)
    cuts = E.cut_points(spans, n_cuts, rng)
    ref = T.trace(cfg.parts(), stream, spans, strict=cfg.full, keep_rows=max(cuts))
    T.assert_deterministic(ref[0], T.trace(cfg.parts(), stream, spans, strict=cfg.full)[0], "configuration")
    worst, rows, fingerprints = 0.0, 0, 0
    for c in cuts:
        lp, fps, kept, _ = T.trace(cfg.parts(), T.perturb_from(stream, c, cfg.vocab_size, rng), spans,
                                   strict=cfg.full, stop_at=c, keep_rows=c)
        at, d = E.first_difference(ref[0][:c], lp[:c], T.CAUSAL_TOLERANCE)
        assert at is None, f"C1: the mixture's log-probability of target {at} changed by {d:.3g} when only tokens >= {c} changed"
        worst = max(worst, d)
        for t, row in kept.items():
            dr = float(np.max(np.abs(row - ref[2][t])))
            assert dr <= T.CAUSAL_TOLERANCE, f"C1: the mixture's distribution for position {t} changed by {dr:.3g} when only tokens >= {c} changed"
            rows += 1
        fingerprints += E.compare_fingerprints(ref[1], fps, c, "a component of the configuration")
    return {"cuts": cuts, "modes": ["mixture rows" if cfg.full else "mixture log-probabilities"],
            "max_difference": worst, "rows_compared": rows, "fingerprints": fingerprints}


def check_config_normalized(cfg: _Config, stream, spans) -> dict:
    """C2 for the mixture: every mixture distribution (``return_distribution=True``) sums to 1, and
    the mixer's ``mix()`` equals its distribution's entry at every target."""
    if not cfg.full:
        raise NotImplementedError("an expert provides no distributions(), so the mixture's cannot be formed")
    stats = E.MassStats()
    _, _, _, guards = T.trace(cfg.parts(), stream, spans, strict=True, on_rows=stats.add)
    agree = [v for v in guards.violations if "mix()" in v]
    assert not agree, agree[0]
    return stats.assert_ok("the mixture", T.MASS_TOLERANCE)


def check_config_one_pass(cfg: _Config, stream, tokenizer, plugins, chunk: int) -> dict:
    """C4 (and adapters see only scored tokens) under the evaluator's own pass
    (``session.run_pass``), every component recorded."""
    log: list = []
    parts = cfg.parts(setup=False)
    experts = [T.RecordingExpert(e, lb, log) for lb, e in zip(cfg.labels, parts.experts)]
    adapters = [T.recording_adapter(a, lb, log) for lb, a in zip(cfg.adapter_labels, parts.adapters)]
    T.run_components(Components(experts, list(cfg.labels), parts.mixer, adapters, list(cfg.adapter_labels)),
                     stream, tokenizer, chunk, strict=cfg.full)
    return T.check_call_log(log, len(stream), cfg.labels, cfg.adapter_labels)


def check_config_hypercompression(cfg: _Config, tokenizer, plugins, n_tokens: int, seed: int) -> dict:
    """The mixture and every expert alone spend at least T*log2(V) - 20 bits on uniform random tokens."""
    parts = cfg.parts(setup=False)
    stream = T.random_stream(n_tokens, cfg.vocab_size, seed)
    s = T.run_components(Components(parts.experts, list(cfg.labels), parts.mixer, parts.adapters,
                                    list(cfg.adapter_labels)), stream, tokenizer, strict=cfg.full)
    ln2 = np.log(2.0)
    bits = {"mixture": s["loss"] * s["targets"] / ln2} if len(cfg.labels) > 1 or parts.mixer is not None else {}
    bits.update({f"expert {k!r}": v * s["targets"] / ln2 for k, v in s["expert_loss"].items()})
    return T.check_code_lengths(bits, s["targets"], cfg.vocab_size)


def audit(experts: Sequence, mixer=None, adapters: Sequence = (), tokens=None, tokenizer=None, *,
          expert_options: Optional[Mapping] = None, mixer_options: Optional[dict] = None,
          adapter_options: Optional[Mapping] = None, plugins=None, plugin_modules: Sequence = (),
          limit: int = DEFAULT_AUDIT_TOKENS, chunk: int = DEFAULT_AUDIT_CHUNK,
          random_tokens: int = DEFAULT_RANDOM_TOKENS, seed: int = 0, device: str = "cpu") -> AuditReport:
    """Audit a configuration (same arguments as ``evaluate``); ``report.passed`` is the verdict.

    The components are built exactly as ``evaluate`` builds them for this stream (the same
    ``BuildContext``, stream length included). ``limit`` keeps the first tokens of the stream
    (default: the built-in demo stream) for C1-C4; ``random_tokens`` is the length of the uniform
    random stream of the hypercompression check.
    """
    from ..run.spine import RunSpec, open_run

    run = open_run(RunSpec(experts, mixer, adapters, tokens, tokenizer, expert_options=expert_options,
                           mixer_options=mixer_options, adapter_options=adapter_options, plugins=plugins,
                           plugin_modules=plugin_modules, device=device, seed=seed,
                           allow_invalid=True), distributed=False)
    return audit_components(run.comps, run.ctx, run.tokens, run.tokenizer, run.plugins, limit=limit, chunk=chunk,
                            random_tokens=random_tokens, seed=seed, dataset=run.dataset)


def audit_components(comps: Components, ctx: BuildContext, stream: np.ndarray, tokenizer, plugins, *,
                     limit: int = DEFAULT_AUDIT_TOKENS, chunk: int = DEFAULT_AUDIT_CHUNK,
                     random_tokens: int = DEFAULT_RANDOM_TOKENS, seed: int = 0, dataset=None) -> AuditReport:
    """Audit built components (deep copies of them; ``comps`` is never advanced) on the first
    ``limit`` tokens of ``stream``; ``ctx`` is the context they were built with."""
    t0 = time.perf_counter()
    cfg = _Config(comps, ctx.vocab_size)
    stream = stream[:limit] if limit else stream
    spans = T.audit_spans(len(stream), chunk)
    checks: list = []
    for label, e in zip(cfg.labels, cfg.experts):
        who = f"expert {label!r}"
        if e.known_invalid:
            checks.append(Check(who, "declared", "FAIL", f"known invalid: {e.invalid_reason}"))
        _run(checks, who, "C1 causal", lambda: T.check_causal(e, stream, spans=spans, seed=seed), _c1_text)
        _run(checks, who, "C2 normalized", lambda: T.check_normalized(e, stream, spans=spans), _c2_text)
        _run(checks, who, "C3 score first", lambda: T.check_score_first(e, stream, spans=spans, seed=seed), _c3_text)
    if cfg.mixer is not None:
        _audit_mixer(checks, cfg, seed)
    for label, a in zip(cfg.adapter_labels, cfg.adapters):
        if a.known_invalid:
            checks.append(Check(f"adapter {label!r}", "declared", "FAIL", f"known invalid: {a.invalid_reason}"))
    _audit_configuration(checks, cfg, stream, spans, tokenizer, plugins, chunk, random_tokens, seed)
    config = {"experts": cfg.labels, "mixer": getattr(cfg.mixer, "name", None), "adapters": cfg.adapter_labels,
              "data": dataset, "tokens": int(len(stream)), "stream_targets": ctx.stream_targets,
              "chunk": chunk, "random_tokens": random_tokens, "seed": seed}
    return AuditReport(checks, config, time.perf_counter() - t0)


def _audit_mixer(checks: list, cfg: _Config, seed: int) -> None:
    who = f"mixer {cfg.mixer.name!r}"
    if cfg.mixer.known_invalid:
        checks.append(Check(who, "declared", "FAIL", f"known invalid: {cfg.mixer.invalid_reason}"))
    _run(checks, who, "C1-C3 synthetic",
         lambda: T.check_mixer(cfg.mixer, n_experts=len(cfg.labels), vocab_size=cfg.vocab_size, seed=seed),
         lambda ev: f"{_c2_text(ev['C2'])}; cuts {ev['C1_C3']['cuts']} change nothing before them")


def _audit_configuration(checks, cfg, stream, spans, tok_path, plugins, chunk, random_tokens, seed) -> None:
    who = "configuration"
    _run(checks, who, "C1+C3 causal", lambda: check_config_causal(cfg, stream, spans, seed),
         lambda ev: _c1_text(ev) + f", {ev['fingerprints']} state fingerprints identical")
    _run(checks, who, "C2 mixture", lambda: check_config_normalized(cfg, stream, spans), _c2_text)
    _run(checks, who, "C4 one pass", lambda: check_config_one_pass(cfg, stream, tok_path, plugins, chunk),
         lambda ev: f"{ev['targets']} targets scored once in order by every expert ({ev['spans']} spans); "
                    f"{ev['adapter_calls']} adapter calls on scored tokens only")
    if random_tokens:
        _run(checks, who, "no hypercompression",
             lambda: check_config_hypercompression(cfg, tok_path, plugins, random_tokens, seed),
             lambda ev: f"bound {ev['bound_bits']:,.0f} bits; smallest margin "
                        f"{min(ev['margin_bits'].values()):,.1f} bits ({min(ev['margin_bits'], key=ev['margin_bits'].get)})")
