"""The audit behind ``pgolf-core audit``: rules C1-C4 and no hypercompression, per component and for
the whole configuration, with the evidence of each verdict.

Per expert it runs ``pgolf_core.testing``'s checks on a short stream (the built-in demo by default);
per mixer, the mixer checks on synthetic expert outputs; for the configuration, a score-first pass
that mirrors the evaluator (experts -> mixer -> update -> adapters) with the mixture's full
distributions, the real evaluator with every expert and adapter wrapped in a recorder (C4, and
adapters only ever see scored tokens), and the real evaluator on a uniform random stream (no
hypercompression, for the mixture and for each expert alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from . import testing as T
from .api import BuildContext

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
        from .report import _jsonable

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


@dataclass
class _Config:
    """Built components (never advanced: every run works on deep copies) and what they came from."""

    labels: list
    experts: list
    mixer: object
    adapter_labels: list
    adapters: list
    vocab_size: int

    def parts(self, setup: bool = True):
        """Fresh copies; ``setup=False`` leaves the adapters' setup to the evaluator."""
        experts = [T.fresh(e) for e in self.experts]
        adapters = [T.fresh(a) for a in self.adapters]
        for a in adapters if setup else ():
            a.setup(dict(zip(self.labels, experts)))
        return experts, (T.fresh(self.mixer) if self.mixer is not None else None), adapters

    @property
    def full(self) -> bool:
        return all(e.provides_distributions for e in self.experts)


def trace_config(parts, tokens: np.ndarray, spans, *, rows: bool, stop_at=None, on_rows=None, keep_rows: int = -1):
    """The evaluator's loop (score, mix, update, adapt) with the mixture's distribution when ``rows``.

    Returns (mixture log-probabilities by position, fingerprints of every component after each span,
    kept mixture rows {position: row} for positions <= ``keep_rows``).
    """
    experts, mixer, adapters = parts
    logp, fps, kept = np.full(len(tokens), np.nan), [], {}
    need_full = rows or (mixer is not None and mixer.needs_distributions)
    for s, e in spans:
        if stop_at is not None and s > stop_at:
            break
        view, tg, n = tokens[:e], np.asarray(tokens[s:e], dtype=np.int64), e - s
        dists = np.stack([np.asarray(x.distributions(view, s, e), dtype=np.float64) for x in experts]) if need_full else None
        with np.errstate(divide="ignore"):
            lp = np.log(dists[:, np.arange(n), tg]) if need_full else np.stack([np.asarray(x.score(view, s, e), dtype=np.float64) for x in experts])
        mix_rows = None
        if mixer is None:
            out, mix_rows = lp[0], (dists[0] if rows else None)
        elif rows:
            out, mix_rows = mixer.mix(lp, tg, dists, return_distribution=True)
        else:
            out = mixer.mix(lp, tg, dists)
        logp[s:e] = np.asarray(out, dtype=np.float64)
        if mix_rows is not None:
            mix_rows = np.asarray(mix_rows, dtype=np.float64)
            if on_rows is not None:
                on_rows(s, mix_rows)
            for t in range(s, min(e, keep_rows + 1)):
                kept[t] = mix_rows[t - s].copy()
        for x in experts:
            x.update(view, s, e)
        for a in adapters:
            a.after_chunk(view, s, e, e == len(tokens))
        comps = [*experts, *([mixer] if mixer is not None else []), *adapters]
        fps.append((e, tuple(c.state_fingerprint() for c in comps)))
    return logp, fps, kept


def check_config_causal(cfg: _Config, stream, spans, seed: int = 0, n_cuts: int = 3) -> dict:
    """C1 and C3 for the whole configuration: a different future changes no earlier mixture
    prediction (nor the mixture row for the cut position) and no component's state before it."""
    rng = np.random.default_rng(seed)
    cuts = T._cut_points(spans, n_cuts, rng)
    ref = trace_config(cfg.parts(), stream, spans, rows=cfg.full, keep_rows=max(cuts))
    worst, rows, fingerprints = 0.0, 0, 0
    for c in cuts:
        lp, fps, kept = trace_config(cfg.parts(), T.perturb_from(stream, c, cfg.vocab_size, rng), spans,
                                     rows=cfg.full, stop_at=c, keep_rows=c)
        at, d = T._first_difference(ref[0][:c], lp[:c], T.CAUSAL_TOLERANCE)
        assert at is None, f"C1: the mixture's log-probability of target {at} changed by {d:.3g} when only tokens >= {c} changed"
        worst = max(worst, d)
        for t, row in kept.items():
            dr = float(np.max(np.abs(row - ref[2][t])))
            assert dr <= T.CAUSAL_TOLERANCE, f"C1: the mixture's distribution for position {t} changed by {dr:.3g} when only tokens >= {c} changed"
            rows += 1
        fingerprints += T._compare_fingerprints(ref[1], fps, c, "a component of the configuration")
    return {"cuts": cuts, "modes": ["mixture rows" if cfg.full else "mixture log-probabilities"],
            "max_difference": worst, "rows_compared": rows, "fingerprints": fingerprints}


def check_config_normalized(cfg: _Config, stream, spans) -> dict:
    """C2 for the mixture: every mixture distribution (``return_distribution=True``) sums to 1."""
    if not cfg.full:
        raise NotImplementedError("an expert provides no distributions(), so the mixture's cannot be formed")
    stats = T._MassStats()
    trace_config(cfg.parts(), stream, spans, rows=True, on_rows=stats.add)
    return stats.assert_ok("the mixture", T.MASS_TOLERANCE)


def check_config_one_pass(cfg: _Config, stream, tokenizer, plugins, chunk: int) -> dict:
    """C4 (and adapters see only scored tokens) under the real evaluator, every component recorded."""
    from .evaluate import Component, evaluate

    log: list = []
    experts, mixer, adapters = cfg.parts(setup=False)
    wrapped = [Component(lb, instance=T.RecordingExpert(e, lb, log), label=lb) for lb, e in zip(cfg.labels, experts)]
    ads = [Component(lb, instance=T.recording_adapter(a, lb, log), label=lb) for lb, a in zip(cfg.adapter_labels, adapters)]
    evaluate(wrapped, mixer=mixer, adapters=ads, tokens=stream, tokenizer=tokenizer, plugins=plugins,
             chunk_size=chunk, allow_invalid=True)
    return T.check_call_log(log, len(stream), cfg.labels, cfg.adapter_labels)


def check_config_hypercompression(cfg: _Config, tokenizer, plugins, n_tokens: int, seed: int) -> dict:
    """The mixture and every expert alone spend at least T*log2(V) - 20 bits on uniform random tokens."""
    from .evaluate import Component, evaluate

    experts, mixer, adapters = cfg.parts(setup=False)
    stream = T.random_stream(n_tokens, cfg.vocab_size, seed)
    res = evaluate([Component(lb, instance=e, label=lb) for lb, e in zip(cfg.labels, experts)], mixer=mixer,
                   adapters=[Component(lb, instance=a, label=lb) for lb, a in zip(cfg.adapter_labels, adapters)],
                   tokens=stream, tokenizer=tokenizer, plugins=plugins, allow_invalid=True)
    ln2 = np.log(2.0)
    bits = {"mixture": res.loss * res.targets / ln2} if len(cfg.labels) > 1 or mixer is not None else {}
    bits.update({f"expert {k!r}": v * res.targets / ln2 for k, v in res.expert_loss.items()})
    return T.check_code_lengths(bits, res.targets, cfg.vocab_size)


def build_config(experts: Sequence, mixer, adapters: Sequence, ctx: BuildContext, plugins, *,
                 expert_options=None, mixer_options=None, adapter_options=None) -> _Config:
    """Build each component once through the registries (the audit deep-copies them for every run)."""
    from .evaluate import _as_components
    from .errors import UsageError

    especs = _as_components(experts, expert_options)
    if not especs:
        raise UsageError("at least one expert is needed")
    labels = [c.label for c in especs]
    ctx.expert_names = tuple(labels)
    built = [c.instance if c.instance is not None else plugins.experts.create(c.name, ctx, **c.options) for c in especs]
    mix = None
    if mixer is not None or len(built) > 1:
        mspec = _as_components([mixer if mixer is not None else "hedge"])[0]
        mspec.options.update(mixer_options or {})
        mix = mspec.instance if mspec.instance is not None else plugins.mixers.create(mspec.name, ctx, **mspec.options)
    aspecs = _as_components(adapters, adapter_options)
    ads = [c.instance if c.instance is not None else plugins.adapters.create(c.name, ctx, **c.options) for c in aspecs]
    return _Config(labels, built, mix, [c.label for c in aspecs], ads, ctx.vocab_size)


def audit(experts: Sequence, mixer=None, adapters: Sequence = (), tokens=None, tokenizer=None, *,
          expert_options: Optional[Mapping] = None, mixer_options: Optional[dict] = None,
          adapter_options: Optional[Mapping] = None, plugins=None, plugin_modules: Sequence = (),
          limit: int = DEFAULT_AUDIT_TOKENS, chunk: int = DEFAULT_AUDIT_CHUNK,
          random_tokens: int = DEFAULT_RANDOM_TOKENS, seed: int = 0, device: str = "cpu") -> AuditReport:
    """Audit a configuration (same arguments as ``evaluate``); ``report.passed`` is the verdict.

    ``limit`` keeps the first tokens of the stream (default: the built-in demo stream) for C1-C4;
    ``random_tokens`` is the length of the uniform random stream of the hypercompression check.
    """
    from .evaluate import resolve_stream
    from .plugins import load_plugins

    t0 = time.perf_counter()
    plugins = plugins if plugins is not None else load_plugins(plugin_modules)
    stream, table, tok_path, dataset = resolve_stream(tokens, tokenizer, limit)
    ctx = BuildContext(vocab_size=table.vocab_size, byte_counts=table, tokenizer_path=tok_path, device=device,
                       seed=seed, extra={"plugins": plugins, "dataset": dataset})
    cfg = build_config(experts, mixer, adapters, ctx, plugins, expert_options=expert_options,
                       mixer_options=mixer_options, adapter_options=adapter_options)
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
    _audit_configuration(checks, cfg, stream, spans, tok_path, plugins, chunk, random_tokens, seed)
    config = {"experts": cfg.labels, "mixer": getattr(cfg.mixer, "name", None), "adapters": cfg.adapter_labels,
              "data": dataset, "tokens": int(len(stream)), "chunk": chunk, "random_tokens": random_tokens, "seed": seed}
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
