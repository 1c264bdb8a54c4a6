"""The audit's engine: what ``pgolf_core.checks.audit``, ``pgolf_core.checks.spotcheck`` and the contract checks
of ``pgolf_core.testing`` drive components with.

Plugin authors use ``pgolf_core.testing`` (``audit_expert``, ``check_*``); this module holds the
pieces under those checks and the configuration audit: the loop tracer, the perturbed futures and
cut points of the causality checks, the comparisons of traces and fingerprints, the running mass
statistics of rows, and the call recorders of the one-pass check. The tolerances they apply are in
``pgolf_core.tolerances``.
"""

from __future__ import annotations

import abc
from typing import Callable, Optional, Sequence

import numpy as np

from ..api import Adapter, Expert

def perturb_from(tokens: np.ndarray, cut: int, vocab_size: int, rng) -> np.ndarray:
    """A copy of ``tokens`` in which every id at position >= ``cut`` is different (a different future)."""
    out = np.array(tokens, copy=True)
    shift = rng.integers(1, vocab_size, size=len(out) - cut)
    out[cut:] = ((out[cut:].astype(np.int64) + shift) % vocab_size).astype(out.dtype)
    out.flags.writeable = False
    return out


def cut_points(spans: Sequence, n_cuts: int, rng) -> list:
    """Positions where the future is changed: a span boundary, inside a span, near the start."""
    starts = [s for s, _ in spans]
    cuts = {starts[min(len(starts) - 1, len(starts) // 2)], 2}
    long_spans = [(s, e) for s, e in spans if e - s > 2]
    while len(cuts) < n_cuts and long_spans:
        s, e = long_spans[int(rng.integers(len(long_spans)))]
        cuts.add(int(rng.integers(s + 1, e)))
    last = spans[-1][1]
    return sorted(c for c in cuts if 1 <= c < last)[:max(1, n_cuts)]


class Trace:
    """Loop instrument: mixture log-probabilities by position, rows, fingerprints after each chunk."""

    def __init__(self, n_tokens: int, keep_rows: int, on_rows: Optional[Callable]):
        self.logp = np.full(n_tokens, np.nan)
        self.fingerprints, self.kept, self.on_rows, self.keep_rows = [], {}, on_rows, keep_rows

    def on_step(self, loop, start, end, out):
        self.logp[start:end] = out["mixed"]
        rows = out["rows"]
        if rows is None:
            return
        if self.on_rows is not None:
            self.on_rows(start, rows)
        for t in range(start, min(end, self.keep_rows + 1)):
            self.kept[t] = np.array(rows[t - start], dtype=np.float64)

    def on_chunk_end(self, loop, start, end):
        self.fingerprints.append((end, loop.comps.fingerprints()))


def trace(comps, tokens: np.ndarray, spans: Sequence, *, strict: bool, stop_at: Optional[int] = None,
          on_rows: Optional[Callable] = None, keep_rows: int = -1):
    """Drive components through the evaluator's loop (``pgolf_core.run.loop``), one chunk per span.

    ``comps`` is a ``pgolf_core.run.loop.Components``. With ``strict`` every score is read from the
    mixture's full distribution (each expert's rows when there is no mixer). Returns (mixture
    log-probabilities by position, NaN where not scored; [(end, fingerprints of every component)]
    after each span; rows {position: mixture row} for positions <= ``keep_rows``; the loop's guards).
    Spans starting after ``stop_at`` are not run.
    """
    from ..run.loop import Guards, Loop, NoBytes

    obs = Trace(len(tokens), keep_rows, on_rows)
    loop = Loop(comps, NoBytes(), len(tokens), np.asarray(tokens).dtype, strict=strict,
                guards=Guards(raise_nonfinite=False), observers=[obs])
    for start, end in spans:
        if stop_at is not None and start > stop_at:
            break
        loop.step_block(tokens, start, end, final=end == len(tokens))
    return obs.logp, obs.fingerprints, obs.kept, loop.guards


def assert_deterministic(a: np.ndarray, b: np.ndarray, who: str) -> None:
    """Two runs of the same components on the same stream must agree exactly."""
    at, d = first_difference(a, b, 0.0)
    assert at is None, (f"nondeterministic: two runs of the {who} on the same stream differ at target {at} by {d:.3g}; "
                        f"causality cannot be checked (seed its randomness, pin threads)")


def first_difference(a: np.ndarray, b: np.ndarray, tol: float):
    diff = np.abs(np.where(np.isnan(a) & np.isnan(b), 0.0, a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    bad = np.nonzero(diff > tol)[0]
    return (int(bad[0]), float(diff[bad[0]])) if len(bad) else (None, float(diff.max(initial=0.0)))


def compare_fingerprints(fa: list, fb: list, cut: int, who: str) -> int:
    """State after every span that ends at or before ``cut`` must not depend on tokens >= cut."""
    compared = 0
    for (end, a), (_, b) in zip(fa, fb):
        if end > cut:
            break
        assert a == b, (f"C3: {who}: state after the span ending at {end} differs when only tokens >= {cut} "
                        f"change: the state absorbed tokens that were not scored yet")
        compared += a is not None
    return compared


class MassStats:
    """Running worst case over distribution rows: mass, minimum entry, NaN count."""

    def __init__(self):
        self.rows, self.worst_mass, self.worst_at, self.min_entry, self.nans = 0, 1.0, None, np.inf, 0

    def add(self, start: int, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        sums = rows.sum(axis=-1, dtype=np.float64)
        self.nans += int(np.isnan(rows).any(axis=-1).sum())
        if rows.size:
            i = int(np.nanargmax(np.abs(sums - 1.0))) if not np.all(np.isnan(sums)) else 0
            if self.worst_at is None or not abs(sums[i] - 1.0) <= abs(self.worst_mass - 1.0):
                self.worst_mass, self.worst_at = float(sums[i]), start + i
            self.min_entry = min(self.min_entry, float(np.nanmin(rows)) if not np.all(np.isnan(rows)) else np.nan)
        self.rows += len(rows)

    def assert_ok(self, who: str, tol: float) -> dict:
        evidence = {"positions": self.rows, "worst_mass": self.worst_mass, "worst_position": self.worst_at,
                    "min_entry": self.min_entry, "nan_rows": self.nans}
        assert self.nans == 0, f"C2: {who}: {self.nans} distribution rows contain NaN"
        assert self.min_entry >= 0, f"C2: {who}: negative probability {self.min_entry:.3g}"
        assert abs(self.worst_mass - 1.0) <= tol, (
            f"C2: {who}: the distribution for position {self.worst_at} sums to {self.worst_mass:.6g}, not 1 "
            f"(tolerance {tol:g}; {self.rows} positions checked)")
        return evidence


# The interface methods whose calls make the one-pass log (C4 and adapters' C3 read it): a span's
# rows in any form, and the span's update. Target-by-target decoding is forwarded unlogged.
LOGGED_SPAN_CALLS = ("score", "distributions", "log_distributions", "sparse_rows", "update")
SCORING_CALLS = ("score", "distributions", "log_distributions", "sparse_rows")

# set on the recorder itself, never forwarded
_OWN = frozenset({"name", "known_invalid", "invalid_reason"})


def _forwarding(method: str, logged: bool):
    if logged:
        def call(self, tokens, start, end, *args, **kwargs):
            self._log.append((method, self.label, start, end, len(tokens)))
            return getattr(self._inner, method)(tokens, start, end, *args, **kwargs)
    else:
        def call(self, *args, **kwargs):
            return getattr(self._inner, method)(*args, **kwargs)
    call.__name__ = call.__qualname__ = method
    call.__doc__ = f"The wrapped expert's ``{method}``" + (" (logged)." if logged else ".")
    return call


def _forwarded_flag(flag: str):
    return property(lambda self: getattr(self._inner, flag), doc=f"The wrapped expert's ``{flag}``.")


def forward_expert_interface(cls):
    """Class decorator: every member of ``Expert``'s interface (methods and capability properties)
    that ``cls`` does not define goes to ``self._inner``, so a wrapper stays complete when the
    interface grows and reports the wrapped expert's capabilities, hence takes the same path through
    the loop (dense, log or sparse rows; target by target)."""
    for klass in reversed(Expert.__mro__):
        for method, member in vars(klass).items():
            if method.startswith("_") or method in _OWN or method in vars(cls):
                continue
            if isinstance(member, property):
                setattr(cls, method, _forwarded_flag(method))
            elif callable(member):
                setattr(cls, method, _forwarding(method, method in LOGGED_SPAN_CALLS))
    abc.update_abstractmethods(cls)  # ``score`` is defined now
    return cls


@forward_expert_interface
class RecordingExpert(Expert):
    """Delegates every call to an expert and logs the span calls (C4 and adapter checks read the log).

    Nothing is forwarded by hand: the interface is forwarded member by member
    (``forward_expert_interface``) and any other attribute (a plugin's own, such as an n-gram's
    ``order``) is read from the wrapped expert."""

    def __init__(self, inner: Expert, label: str, log: list):
        super().__init__(inner.vocab_size)
        self._inner, self.label, self._log = inner, label, log
        self.name = inner.name or label
        self.known_invalid, self.invalid_reason = inner.known_invalid, inner.invalid_reason

    def __getattr__(self, attr):  # only reached for attributes the recorder does not have
        inner = self.__dict__.get("_inner")
        if inner is None or attr.startswith("__"):  # during copy/unpickling, before __init__'s state
            raise AttributeError(attr)
        return getattr(inner, attr)


def recording_adapter(inner, label: str, log: list):
    """An adapter that logs ``after_chunk`` calls before delegating; everything else is the
    wrapped adapter's."""

    class RecordingAdapter(Adapter):
        def __init__(self):
            self.name = inner.name or label
            self.known_invalid, self.invalid_reason = inner.known_invalid, inner.invalid_reason
            self.decodable, self.decode_refusal = getattr(inner, "decodable", True), getattr(inner, "decode_refusal", "")

        def __getattr__(self, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return getattr(inner, attr)

        def setup(self, experts):
            inner.setup(experts)

        def after_chunk(self, tokens, start, end, final):
            log.append(("after_chunk", label, start, end, len(tokens), bool(final)))
            inner.after_chunk(tokens, start, end, final)

        def state_fingerprint(self):
            return inner.state_fingerprint()

        def describe(self):
            return inner.describe()

        def stats(self):
            return inner.stats()

    return RecordingAdapter()


def demo_tokenizer():
    from ..demo import demo_tokenizer_path

    return demo_tokenizer_path()


def run_components(comps, tokens, tokenizer, chunk_size: Optional[int] = None, *, strict: bool = False) -> dict:
    """The summary (``bpb``, ``loss``, ``targets``, ``expert_loss``, ...) of one pass of the
    evaluator's loop (``session.run_pass``) over built components, bytes counted with ``tokenizer``."""
    from ..run.session import DEFAULT_CHUNK, resolve_stream, run_pass

    stream, _, _, _, counter = resolve_stream(np.asarray(tokens), tokenizer, check_tokenizer=False)
    return run_pass(comps, counter, stream, chunk_size or DEFAULT_CHUNK, strict=strict).summary()


def random_stream(n_tokens: int, vocab_size: int, seed: int = 0) -> np.ndarray:
    """Uniform random ids: no coder can compress them (the no-hypercompression test stream)."""
    return np.random.default_rng(seed).integers(0, vocab_size, size=n_tokens).astype(np.uint16 if vocab_size <= 65536 else np.int64)
