"""Contract checks (rules C1-C4 and no hypercompression) for plugin authors' own tests.

Each ``check_*`` function drives a component the way the evaluator does (spans in increasing order,
``tokens[:end]`` only), returns a dict of evidence when the rule holds, and raises ``AssertionError``
with the evidence when it does not::

    from pgolf_core.testing import audit_expert

    def test_my_expert_is_legal():
        audit_expert(lambda: MyExpert(1024), tokens)

A *source* is either a zero-argument callable that builds a fresh component or a component instance
(deep-copied for every run, so the caller's instance is never advanced). Authors import them from
``pgolf_core.testing``, which publishes this module; ``pgolf-core audit`` runs these same functions
(``pgolf_core.checks.audit``), so the audit stands beside them in the checks' wing instead of
reaching up to a public face. The machinery under them (the loop tracer, the recorders, the
comparisons) is ``pgolf_core.checks.audit_engine``, the tolerances ``pgolf_core.tolerances``.
"""

from __future__ import annotations

import copy
import itertools
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ..api import Expert, Mixer
from .audit_engine import (  # noqa: F401 (re-exported: part of the toolkit's public names)
    SCORING_CALLS, MassStats, RecordingExpert, assert_deterministic, compare_fingerprints, cut_points,
    demo_tokenizer, first_difference, perturb_from, random_stream, recording_adapter, run_components, trace)
from ..tolerances import (  # noqa: F401 (re-exported where they were defined before)
    CAUSAL_TOLERANCE, CONSISTENCY_TOLERANCE, DECODE_TOLERANCE, HYPERCOMPRESSION_SLACK_BITS, KERNEL_TOLERANCE,
    MASS_TOLERANCE, MIXER_KERNEL_TOLERANCE, SPARSE_TOLERANCE)

Source = Union[Callable[[], object], Expert, Mixer]


def fresh(source: Source):
    """A new component from a factory callable, or a deep copy of an instance."""
    if isinstance(source, (Expert, Mixer)) or hasattr(source, "after_chunk"):
        return copy.deepcopy(source)
    if callable(source):
        return source()
    raise TypeError(f"expected a component or a zero-argument factory, got {type(source).__name__}")


def audit_spans(n_tokens: int, chunk: int = 512) -> list:
    """Spans that tile targets 1..n-1: one target, seven targets, then ``chunk``-sized spans.

    The short first spans exercise the cases evaluators rarely hit (a span of one target, a span
    that does not end on a round number); every span boundary is a place where a leak can hide.
    """
    spans, start = [], 1
    for size in itertools.chain((1, 7), itertools.repeat(max(1, int(chunk)))):
        if start >= n_tokens:
            return spans
        end = min(start + size, n_tokens)
        spans.append((start, end))
        start = end
    return spans


def as_stream(tokens, vocab_size: int) -> np.ndarray:
    """A read-only 1-D integer copy of ``tokens`` with ids checked against the vocabulary."""
    arr = np.asarray(tokens)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or len(arr) < 2:
        raise ValueError(f"tokens must be a 1-D integer array of at least 2 ids, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), found {arr.min()}..{arr.max()}")
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def trace_expert(expert: Expert, tokens: np.ndarray, spans: Sequence, *, mode: str = "score",
                 stop_at: Optional[int] = None, on_rows: Optional[Callable] = None, keep_rows: int = -1):
    """Drive ``expert`` alone over ``spans`` through the evaluator's loop (score then update).

    Returns (log-probabilities indexed by position, NaN where not scored; fingerprint after each span
    as a list of (end, fingerprint); rows {position: distribution} for positions <= ``keep_rows``).
    ``mode="dist"`` scores from ``distributions`` (strict) instead of ``score``; ``on_rows(start,
    rows)`` sees each span's rows. Spans starting after ``stop_at`` are not run.
    """
    from ..run.loop import Components

    label = getattr(expert, "name", "") or "expert"
    logp, fps, kept, _ = trace(Components([expert], [label]), tokens, spans, strict=mode == "dist",
                               stop_at=stop_at, on_rows=on_rows, keep_rows=keep_rows)
    return logp, [(end, f[0]) for end, f in fps], kept


def check_causal(source: Source, tokens, *, spans=None, chunk: int = 512, n_cuts: int = 3, seed: int = 0,
                 tol: float = CAUSAL_TOLERANCE) -> dict:
    """C1: changing the tokens at and after a position c changes no prediction before c.

    Log-probabilities of targets < c must be identical. With full distributions the check is
    stricter: the distribution *for* c (formed before c is seen) must be identical too, which catches
    an expert that reads its own target.
    """
    base = fresh(source)
    stream = as_stream(tokens, base.vocab_size)
    spans = spans or audit_spans(len(stream), chunk)
    rng = np.random.default_rng(seed)
    cuts = cut_points(spans, n_cuts, rng)
    modes = ["score"] + (["dist"] if base.provides_distributions else [])
    ref = {m: trace_expert(fresh(source), stream, spans, mode=m, keep_rows=max(cuts)) for m in modes}
    for m in modes:  # a component that differs from itself would otherwise be reported as looking ahead
        again = trace_expert(fresh(source), stream, spans, mode=m, keep_rows=max(cuts))
        assert_deterministic(ref[m][0], again[0], f"expert ({m} mode)")
    worst, rows = 0.0, 0
    for c in cuts:
        other = perturb_from(stream, c, base.vocab_size, rng)
        for m in modes:
            lp, _, kept = trace_expert(fresh(source), other, spans, mode=m, stop_at=c, keep_rows=c)
            at, d = first_difference(ref[m][0][:c], lp[:c], tol)
            assert at is None, (f"C1: the log-probability of target {at} changed by {d:.3g} nats when only "
                                f"tokens >= {c} changed ({m} mode): the expert looks ahead")
            worst = max(worst, d)
            for t, row in kept.items():
                dr = float(np.max(np.abs(row - ref[m][2][t])))
                assert dr <= tol, (f"C1: the distribution for position {t} changed by {dr:.3g} when only tokens "
                                   f">= {c} changed: the prediction for {t} depends on token {t} or later")
                rows += 1
    return {"cuts": cuts, "modes": modes, "max_difference": worst, "rows_compared": rows}


def probe_distribution(expert: Expert, tokens: np.ndarray, t: int, candidates, start: Optional[int] = None,
                       tail: int = 0) -> np.ndarray:
    """p(v) for each candidate v of target ``t``, from ``score`` alone: a fresh copy of the state
    scores the span ``[start, t + 1 + tail)`` of a stream whose token ``t`` is v (``start`` defaults
    to ``t``; with ``start < t`` and a ``tail``, ``t`` is in the middle of a multi-target call).

    ``expert`` must have absorbed exactly the targets < ``start``. If the score of v depends on v
    beyond "the entry of a distribution fixed before the target is seen", the probes show it.
    """
    from ..run.loop import sealed_view

    start = t if start is None else start
    end = min(len(tokens), t + 1 + tail)
    out = np.empty(len(candidates))
    for i, v in enumerate(candidates):
        probe = np.array(tokens[:end], copy=True)
        probe[t] = v
        view = sealed_view(probe, end, len(tokens))  # the loop's kind of view: nothing past ``end``
        out[i] = float(np.asarray(copy.deepcopy(expert).score(view, start, end))[t - start])
    return np.exp(out)


def _spans_through(spans: Sequence, t: int) -> list:
    """The spans before ``t``, the span containing ``t`` cut so that it ends at ``t``."""
    out = []
    for s, e in spans:
        if s >= t:
            break
        out.append((s, min(e, t)))
    return out


def check_normalized(source: Source, tokens, *, spans=None, chunk: int = 512, tol: float = MASS_TOLERANCE,
                     probe_positions: int = 3) -> dict:
    """C2: every distribution sums to 1 (no NaN, no negative entry), and ``score`` agrees with it.

    Every target position of the stream is checked (first positions and span boundaries included).
    An expert without ``distributions`` is probed instead: at a few positions its distribution is
    rebuilt from V one-target ``score`` calls on copies of its state (see ``probe_distribution``).
    """
    expert = fresh(source)
    stream = as_stream(tokens, expert.vocab_size)
    spans = spans or audit_spans(len(stream), chunk)
    who = f"expert {getattr(expert, 'name', '') or type(expert).__name__!r}"
    if not expert.provides_distributions:
        return _check_normalized_by_probes(source, stream, spans, who, tol, probe_positions)
    stats = MassStats()
    lp_dist, _, _ = trace_expert(expert, stream, spans, mode="dist", on_rows=stats.add)
    evidence = stats.assert_ok(who, tol)
    lp_score, _, _ = trace_expert(fresh(source), stream, spans, mode="score")
    at, d = first_difference(lp_dist[1:], lp_score[1:], CONSISTENCY_TOLERANCE)
    assert at is None, (f"C2: {who}: score() of target {at + 1} is {lp_score[at + 1]:.6g} but its distribution "
                        f"gives log p = {lp_dist[at + 1]:.6g}: the score is not the distribution's entry")
    evidence.update(score_vs_distribution=d, method="distributions() at every position")
    return evidence


def _check_normalized_by_probes(source, stream, spans, who, tol, n_positions) -> dict:
    """Rebuild whole distributions from V ``score()`` probes at positions inside multi-target calls
    (the middle of a span, with targets after it), not only at a call's first target."""
    vocab = fresh(source).vocab_size
    long_spans = [(s, e) for s, e in spans if e - s > 2] or list(spans)
    picks = [long_spans[0], long_spans[len(long_spans) // 2], long_spans[-1]][:max(1, n_positions)]
    stats, positions = MassStats(), []
    for s, e in picks:
        t = s + (e - s) // 2
        expert = fresh(source)
        trace_expert(expert, stream, _spans_through(spans, s))
        stats.add(t, probe_distribution(expert, stream, t, np.arange(vocab), start=s, tail=min(8, e - t - 1))[None, :])
        positions.append(t)
    evidence = stats.assert_ok(who, tol)
    evidence["method"] = (f"rebuilt from {vocab} score() probes at positions {positions}, each in the middle of a "
                          f"multi-target call (no distributions())")
    return evidence


def check_score_first(source: Source, tokens, *, spans=None, chunk: int = 512, seed: int = 0,
                      n_candidates: int = 16) -> dict:
    """C3: state changes only with scored tokens, and a target's score does not look at the target.

    1. The state after each span depends only on tokens < end (fingerprints equal when the future
       after a span boundary is different).
    2. Scoring is a function of the state: two copies score the same span identically and end in
       the same state.
    3. At a span start t, copies of the state score ``n_candidates`` different values of token t;
       each score must be the entry of the distribution the expert gives before seeing t.
    """
    first = fresh(source)
    stream = as_stream(tokens, first.vocab_size)
    spans = spans or audit_spans(len(stream), chunk)
    rng = np.random.default_rng(seed)
    who = f"expert {getattr(first, 'name', '') or type(first).__name__!r}"
    k = min(len(spans) - 1, max(1, len(spans) // 2))
    cut = spans[k][0]
    _, fa, _ = trace_expert(first, stream, spans, stop_at=cut)
    _, fb, _ = trace_expert(fresh(source), perturb_from(stream, cut, first.vocab_size, rng), spans, stop_at=cut)
    compared = compare_fingerprints(fa, fb, cut, who)
    state = fresh(source)
    trace_expert(state, stream, spans[:k])
    s, e = spans[k]
    from ..run.loop import sealed_view

    a, b = copy.deepcopy(state), copy.deepcopy(state)
    la, lb = np.asarray(a.score(sealed_view(stream, e), s, e)), np.asarray(b.score(sealed_view(stream, e), s, e))
    assert np.array_equal(la, lb), f"C3: {who}: two copies of one state scored span [{s}, {e}) differently"
    assert a.state_fingerprint() == b.state_fingerprint(), f"C3: {who}: two copies ended in different states"
    candidates = np.unique(np.concatenate([[stream[s]], rng.integers(0, first.vocab_size, n_candidates - 1)]))
    probed = probe_distribution(state, stream, s, candidates)
    if state.provides_distributions:
        row = np.asarray(copy.deepcopy(state).distributions(sealed_view(stream, s + 1), s, s + 1))[0]
        with np.errstate(divide="ignore"):
            diff = np.abs(np.log(probed) - np.log(row[candidates]))
        worst = float(np.nanmax(np.where(np.isnan(diff), np.inf, diff)))
        assert worst <= CONSISTENCY_TOLERANCE, (
            f"C3: {who}: at position {s} the score of a candidate target differs from the distribution "
            f"given before the target was seen by {worst:.3g} nats: the score looks at the target")
    else:
        worst = None
    return {"fingerprints_compared": compared, "state_cut": cut, "probe_position": int(s),
            "candidates": int(len(candidates)), "probe_difference": worst}


def check_call_log(log: list, n_tokens: int, expert_labels: Sequence, adapter_labels: Sequence = ()) -> dict:
    """C4 (and C3 for adapters) from a call log: each expert's scored spans tile targets 1..n-1 once,
    in order, each followed by its update; adapters only ever see scored tokens."""
    scored = {lb: 1 for lb in expert_labels}  # next unscored target per expert (targets start at 1)
    spans = {lb: [] for lb in expert_labels}
    adapter_calls = 0
    for entry in log:
        kind, label = entry[0], entry[1]
        if kind in SCORING_CALLS:  # a span's rows in whichever form the loop asked for
            _, _, s, e, n_view = entry
            assert s == scored[label], (f"C4: expert {label!r} was asked for targets [{s}, {e}) but the next unscored "
                                        f"target is {scored[label]}: a target is {'skipped' if s > scored[label] else 'scored twice'}")
            assert n_view == e, f"C1: expert {label!r} received {n_view} tokens to score [{s}, {e}); expected exactly {e}"
            scored[label] = e
            spans[label].append((s, e))
        elif kind == "update":
            assert spans[label] and spans[label][-1] == (entry[2], entry[3]), \
                f"C3: expert {label!r} was updated on [{entry[2]}, {entry[3]}) before scoring it"
        elif kind == "after_chunk":
            _, _, s, e, n_view, final = entry
            adapter_calls += 1
            assert n_view == e, f"C3: adapter {label!r} received {n_view} tokens after chunk [{s}, {e}); only {e} are scored"
            behind = [lb for lb in expert_labels if scored[lb] < e]
            assert not behind, f"C3: adapter {label!r} ran on [{s}, {e}) before expert(s) {behind} scored it"
            assert final == (e == n_tokens), f"C4: adapter {label!r} was told final={final} at end {e} of {n_tokens}"
    for lb in expert_labels:
        assert scored[lb] == n_tokens, f"C4: expert {lb!r} scored targets up to {scored[lb]}, the stream has {n_tokens - 1}"
    return {"targets": n_tokens - 1, "spans": {lb: len(v) for lb, v in spans.items()}, "adapter_calls": adapter_calls}


def check_one_pass(source: Source, tokens, *, tokenizer=None, chunk_size: int = 512) -> dict:
    """C4: under the evaluator's loop, every target is asked for exactly once, in order, each span
    scored before it is absorbed (the expert is wrapped in a recorder)."""
    from ..run.loop import Components

    log: list = []
    expert = fresh(source)
    stream = as_stream(tokens, expert.vocab_size)
    run_components(Components([RecordingExpert(expert, "expert", log)], ["expert"]), stream,
                   tokenizer or demo_tokenizer(), chunk_size)
    return check_call_log(log, len(stream), ["expert"])


def code_length_bound(n_targets: int, vocab_size: int, slack_bits: float = HYPERCOMPRESSION_SLACK_BITS) -> float:
    """The fewest bits a legal coder may plausibly spend on n uniform random targets: n*log2(V) - slack.

    For any normalized sequential predictor q, P(-log2 q(x) <= n*log2(V) - s) <= 2^-s under the
    uniform source (Markov/Barron), so falling below the bound means the "probabilities" are not ones.
    """
    return n_targets * np.log2(vocab_size) - slack_bits


def check_code_lengths(bits: dict, n_targets: int, vocab_size: int, slack_bits: float = HYPERCOMPRESSION_SLACK_BITS) -> dict:
    """Assert every code length in ``{who: bits}`` is at least ``code_length_bound``."""
    bound = code_length_bound(n_targets, vocab_size, slack_bits)
    evidence = {"targets": n_targets, "bound_bits": bound, "bits": dict(bits),
                "margin_bits": {k: v - bound for k, v in bits.items()}}
    cheats = {k: v for k, v in bits.items() if v < bound}
    assert not cheats, "no hypercompression: " + "; ".join(
        f"{k} coded {n_targets} uniform random tokens in {v:,.1f} bits, {bound - v:,.1f} bits below "
        f"the bound {bound:,.1f} = T*log2(V) - {slack_bits:g}" for k, v in cheats.items())
    return evidence


def check_no_hypercompression(source: Source, *, n_tokens: int = 50_000, seed: int = 0, tokenizer=None,
                              slack_bits: float = HYPERCOMPRESSION_SLACK_BITS) -> dict:
    """On ``n_tokens`` uniform random tokens the expert spends at least T*log2(V) - slack bits."""
    from ..run.loop import Components

    expert = fresh(source)
    stream = random_stream(n_tokens, expert.vocab_size, seed)
    s = run_components(Components([expert], ["expert"]), stream, tokenizer or demo_tokenizer())
    bits = s["loss"] * s["targets"] / np.log(2.0)
    return check_code_lengths({"expert": bits}, s["targets"], expert.vocab_size, slack_bits)


def check_sparse_rows(source: Source, tokens, *, chunk: int = 512, tol: float = SPARSE_TOLERANCE) -> dict:
    """``Expert.sparse_rows`` describes the rows ``distributions()`` gives (to ``tol``), span after
    span, and advances the state alike (the fingerprints agree after every span): what lets a plain
    run mix grouped rows and score as strict scoring would."""
    from ..run.loop import chunk_spans, sealed_view

    dense, sparse = fresh(source), fresh(source)
    who = dense.name or type(dense).__name__
    assert sparse.provides_sparse_rows, f"expert {who!r} has no sparse_rows()"
    stream = as_stream(tokens, dense.vocab_size)
    worst = 0.0
    for start, end, _ in chunk_spans(len(stream), chunk):
        view = sealed_view(stream, end)
        rows = np.asarray(dense.distributions(view, start, end), dtype=np.float64)
        sp = sparse.sparse_rows(view, start, end)
        diff = float(np.max(np.abs(sp.dense(view, start, dense.vocab_size) - rows)))
        worst = max(worst, diff)
        assert diff <= tol, (f"expert {who!r}: sparse_rows() over [{start}, {end}) differs from distributions() by "
                             f"{diff:.3g} (tolerance {tol:g})")
        assert dense.state_fingerprint() == sparse.state_fingerprint(), (
            f"expert {who!r}: sparse_rows() over [{start}, {end}) left another state than distributions()")
    return {"targets": len(stream) - 1, "max_vs_distributions": worst}


def audit_expert(source: Source, tokens, *, chunk: int = 512, seed: int = 0, random_tokens: int = 50_000,
                 tokenizer=None, n_cuts: int = 3, n_candidates: int = 16) -> dict:
    """Run every check on an expert; the first failure raises AssertionError. Returns the evidence.

    ``n_cuts`` (C1) and ``n_candidates`` (C3) trade thoroughness for time on slow experts. An expert
    with ``sparse_rows`` also has them checked against its rows (``check_sparse_rows``).
    """
    out = {
        "C1": check_causal(source, tokens, chunk=chunk, seed=seed, n_cuts=n_cuts),
        "C2": check_normalized(source, tokens, chunk=chunk),
        "C3": check_score_first(source, tokens, chunk=chunk, seed=seed, n_candidates=n_candidates),
        "C4": check_one_pass(source, tokens, tokenizer=tokenizer, chunk_size=chunk),
        "no hypercompression": check_no_hypercompression(source, n_tokens=random_tokens, seed=seed, tokenizer=tokenizer),
    }
    if fresh(source).provides_sparse_rows:
        out["sparse rows"] = check_sparse_rows(source, tokens, chunk=chunk)
    return out


def synthetic_expert_outputs(n_experts: int, vocab_size: int, n_targets: int, seed: int = 0):
    """Random but consistent mixer inputs: distributions (K, n, V), targets (n,), logp (K, n)."""
    rng = np.random.default_rng(seed)
    dists = rng.dirichlet(np.full(vocab_size, 0.5), size=(n_experts, n_targets))
    targets = rng.integers(0, vocab_size, size=n_targets)
    logp = np.log(dists[:, np.arange(n_targets), targets])
    return dists, targets, logp


class _FixedRows(Expert):
    """Serves precomputed rows (row ``t - 1`` for target ``t``): synthetic mixer inputs that go
    through the evaluator's loop like any expert's."""

    def __init__(self, rows: np.ndarray):
        super().__init__(rows.shape[-1])
        self.rows = rows

    def score(self, tokens, start, end):
        return np.log(self.rows[np.arange(start - 1, end - 1), np.asarray(tokens[start:end], dtype=np.int64)])

    def distributions(self, tokens, start, end):
        return self.rows[start - 1:end - 1]


def trace_mixer(mixer: Mixer, dists, targets, logp, spans, stop_at: Optional[int] = None):
    """Drive a mixer over spans of synthetic inputs through the evaluator's loop, strictly.

    Returns (mixture log-probabilities read from its rows, mixture rows (n, V), weight fingerprints
    after each span). Spans are 0-based offsets into the inputs here. A ``mix()`` that disagrees
    with its own rows fails (``AssertionError``), as it makes a live run invalid.
    """
    from ..run.loop import Components

    n, k = len(targets), dists.shape[0]
    stream = np.concatenate([[0], np.asarray(targets, dtype=np.int64)])
    comps = Components([_FixedRows(dists[i]) for i in range(k)], [f"input{i}" for i in range(k)], mixer)
    lp, fps, kept, guards = trace(comps, stream, [(s + 1, e + 1) for s, e in spans], strict=True,
                                  stop_at=None if stop_at is None else stop_at + 1, keep_rows=n)
    agree = [v for v in guards.violations if "mix()" in v]
    assert not agree, agree[0]
    rows = np.full((n, dists.shape[-1]), np.nan)
    for t, row in kept.items():
        rows[t - 1] = row
    return lp[1:], rows, [(e - 1, f[k]) for e, f in fps]


def _trace_mixer_fast(mixer: Mixer, targets, logp, dists, spans) -> np.ndarray:
    """The mixer's fast path (``mix()`` without rows) over the same spans, through the loop."""
    from ..run.loop import Components

    k = dists.shape[0]
    stream = np.concatenate([[0], np.asarray(targets, dtype=np.int64)])
    comps = Components([_FixedRows(dists[i]) for i in range(k)], [f"input{i}" for i in range(k)], mixer)
    lp, _, _, _ = trace(comps, stream, [(s + 1, e + 1) for s, e in spans], strict=False)
    return lp[1:]


def check_mixer(source: Source, *, n_experts: int = 3, vocab_size: int = 1024, n_targets: int = 600,
                chunk: int = 128, seed: int = 0, tol: float = MASS_TOLERANCE) -> dict:
    """C1-C3 for a mixer on synthetic expert outputs.

    C2: mixture rows sum to 1 and the returned log-probability is the row's entry for the target.
    C1/C3: when the targets (and expert outputs) from offset c on change, nothing before c changes:
    not the mixture's log-probabilities, not its row *for* c (weights may not look at the target),
    not its weights after spans ending at or before c.
    """
    dists, targets, logp = synthetic_expert_outputs(n_experts, vocab_size, n_targets, seed)
    spans = [(s - 1, e - 1) for s, e in audit_spans(n_targets + 1, chunk)]
    who = "the mixer"
    lp, rows, fps = trace_mixer(fresh(source), dists, targets, logp, spans)
    fast = _trace_mixer_fast(fresh(source), targets, logp, dists, spans)
    at, d = first_difference(fast, lp, CONSISTENCY_TOLERANCE)
    assert at is None, (f"C2: {who}'s mix() without return_distribution gave log p = {fast[at]:.6g} for target {at} but "
                        f"its distribution path gives {lp[at]:.6g}: the fast path is not the mixture it claims")
    stats = MassStats()
    stats.add(0, rows)
    c2 = stats.assert_ok(who, tol)
    with np.errstate(divide="ignore"):
        at, d = first_difference(lp, np.log(rows[np.arange(n_targets), targets]), CONSISTENCY_TOLERANCE)
    assert at is None, f"C2: {who} returned log p = {lp[at]:.6g} for target {at} but its distribution gives {np.log(rows[at, targets[at]]):.6g}"
    rng = np.random.default_rng(seed + 1)
    cuts = cut_points([(s + 1, e + 1) for s, e in spans], 3, rng)
    for c in (x - 1 for x in cuts):
        d2, t2, l2 = synthetic_expert_outputs(n_experts, vocab_size, n_targets, seed + 7 + c)
        d2[:, :c + 1], t2[:c] = dists[:, :c + 1], targets[:c]  # same inputs before c, same experts' row at c
        t2[c:] = np.where(t2[c:] == targets[c:], (t2[c:] + 1) % vocab_size, t2[c:])
        l2 = np.log(d2[:, np.arange(n_targets), t2])
        lq, rq, fq = trace_mixer(fresh(source), d2, t2, l2, spans, stop_at=c)
        at, diff = first_difference(lp[:c], lq[:c], CAUSAL_TOLERANCE)
        assert at is None, f"C1: {who}'s log-probability at offset {at} changed by {diff:.3g} when only targets >= {c} changed"
        dr = float(np.max(np.abs(rows[:c + 1] - rq[:c + 1])))
        assert dr <= CAUSAL_TOLERANCE, (f"C3: {who}'s distribution for offset {c} (or before) changed by {dr:.3g} when "
                                        f"only targets >= {c} changed: its weights looked at the target")
        compare_fingerprints(fps, fq, c, who)
    out = {"C2": c2, "C1_C3": {"cuts": cuts, "spans": len(spans)}}
    mixer = fresh(source)
    if mixer.step_kernel() is not None:  # the compiled coding loop's step must be this mixture
        krows = np.empty_like(rows)
        for i in range(n_targets):
            k = mixer.step_kernel()
            d = np.ascontiguousarray(dists[:, i], dtype=np.float64)
            k.predict(k.state, d, krows[i])
            k.observe(k.state, np.ascontiguousarray(logp[:, i]), int(targets[i]), d)
            if k.done is not None:
                k.done(i + 1)
        gap = float(np.max(np.abs(krows - rows)))
        assert gap <= MIXER_KERNEL_TOLERANCE, (f"{who}'s step kernel gives rows that differ from mix()'s by up to "
                                               f"{gap:.3g} (tolerance {MIXER_KERNEL_TOLERANCE:g})")
        out["max_kernel_vs_mix"] = gap
    return out


def trace_targets(comps, tokens: np.ndarray, chunk: int = 512, probe_fingerprints: bool = False):
    """Drive components target by target (``predict``/``observe``: the compressor's path) through the
    loop; returns the mixture row of every target (n - 1, V) and the number of fingerprint probes.

    With ``probe_fingerprints``, every component's fingerprint is taken before and after each
    ``predict`` of the first targets of every chunk (``predict`` must not change the state)."""
    from ..run.loop import Guards, Loop, NoBytes

    stream = as_stream(tokens, comps.experts[0].vocab_size)
    loop = Loop(comps, NoBytes(), len(stream), stream.dtype, strict=True, guards=Guards(raise_nonfinite=False))
    loop.stream.reveal(stream[:1], 0)
    rows, probes = np.empty((len(stream) - 1, comps.experts[0].vocab_size)), [0]

    def choose(t, row):
        rows[t - 1] = row
        return int(stream[t])

    for start, end, final in loop.chunk_spans(chunk):
        if probe_fingerprints:
            before = comps.fingerprints()
            for e in comps.experts:
                e.predict(loop.stream.view(start), start)
            assert comps.fingerprints() == before, f"predict() at target {start} changed a component's state"
            probes[0] += 1
        loop.step_targets(start, end, final=final, choose=choose)
    return rows, probes[0]


def check_decodable(source: Source, tokens, *, chunk: int = 512, tol: float = DECODE_TOLERANCE) -> dict:
    """The compressor's contract for an expert (``pgolf_core.api.Expert``, "Bit-exact prediction"):
    ``predict`` never changes the state, two fresh copies driven target by target give bitwise
    identical rows (what makes the decoder reproduce the encoder), and those rows equal the ones
    ``distributions()`` gives in blocks (to ``tol``)."""
    from ..run.loop import Components

    first = fresh(source)
    assert first.decodable, f"expert {first.name or type(first).__name__!r} has no predict(): it cannot be decoded"
    stream = as_stream(tokens, first.vocab_size)
    a, probes = trace_targets(Components([first], ["expert"]), stream, chunk, probe_fingerprints=True)
    b, _ = trace_targets(Components([fresh(source)], ["expert"]), stream, chunk)
    same = np.array_equal(a, b)
    assert same, (f"two runs of predict() on the same stream differ (first at target "
                  f"{int(np.argmax(np.any(a != b, axis=1))) + 1}): the decoder could not reproduce the encoder's rows")
    from ..run.loop import chunk_spans

    spans = [(s, e) for s, e, _ in chunk_spans(len(stream), chunk)]
    ref = {}
    trace_expert(fresh(source), stream, spans, mode="dist", on_rows=lambda s, r: ref.__setitem__(s, np.array(r)))
    block = np.concatenate([ref[s] for s, _ in spans])
    worst = float(np.max(np.abs(block - a)))
    assert worst <= tol, f"predict() rows differ from distributions() rows by up to {worst:.3g} (tolerance {tol:g})"
    out = {"targets": len(stream) - 1, "bitwise_repeatable": same, "max_vs_distributions": worst,
           "predict_fingerprint_probes": probes}
    kernel = kernel_rows(fresh(source), stream, chunk)
    if kernel is not None:
        gap = float(np.max(np.abs(kernel - a)))
        assert gap <= KERNEL_TOLERANCE, (f"the step kernel's rows differ from predict()'s by up to {gap:.3g} "
                                         f"(tolerance {KERNEL_TOLERANCE:g}): it is not the same expert")
        out["max_kernel_vs_predict"] = gap
    return out


def kernel_rows(expert: Expert, stream: np.ndarray, chunk: int = 512) -> Optional[np.ndarray]:
    """The rows an expert's ``step_kernel`` gives target by target over ``stream`` (as the compiled
    coding loop drives it: a buffer of coded tokens only, ``room``/``grow``, ``done`` and ``update``
    at chunk ends), or None when it offers no kernel."""
    from ..run.loop import chunk_spans, sealed_view

    if expert.step_kernel() is None:
        return None
    buf = np.zeros(len(stream), dtype=np.int64)
    buf[0] = int(stream[0])
    rows = np.empty((len(stream) - 1, expert.vocab_size))
    for start, end, _ in chunk_spans(len(stream), chunk):
        for t in range(start, end):
            k = expert.step_kernel()
            if k.room is not None and not k.room(k.state):
                k.grow()
                k = expert.step_kernel()
            k.predict(k.state, buf, t, rows[t - 1])
            buf[t] = int(stream[t])
            k.observe(k.state, buf, t)
            if k.done is not None:
                k.done(t + 1)
        expert.update(sealed_view(stream, end), start, end)
    return rows

