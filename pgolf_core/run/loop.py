"""The chunk step: the one place where experts score, the mixer mixes, sums accumulate, experts
update and adapters run. ``evaluate``, the audit, ``pgolf_core.testing`` and the compressor all drive
this code; none of them has a copy of the step.

Two granularities share the accumulators and the guards:

- ``step_block(start, end, final)``: every expert scores the span at once (``score``, or
  ``distributions`` when the mixer needs them or scoring is *strict*), the mixer mixes the span.
- ``step_targets(start, end, final, choose)``: target by target (``predict``/``observe``, see
  ``api.Expert``), the mixture's row handed to ``choose(t, row)``, which codes the known token
  (compressor) or decodes it (decompressor) and returns it. The stream then holds only tokens that
  are already decided: decoding cannot use a token before it exists.

Both end a chunk the same way: ``update`` on every expert, then the adapters.

Strict scoring (``strict=True``): every expert hands over full distributions, the mixer its mixture
rows (``return_distribution=True``), and the score of a target is read from the mixture's row at the
target; ``score()``/``mix()`` fast paths are not trusted. The mixer's own log-probability must agree
with its row (``MIX_AGREEMENT_TOLERANCE``), or the result is invalid.

The log path (outside strict scoring, for a mixer with ``mix_log``): the experts' rows reach a
geometric mixer as float32 logs, from ``Expert.log_distributions`` when an expert has them (a
network's log-softmax, first row checked) or from one log of its ``distributions`` (every row
checked first). The mixture renormalizes over the whole vocabulary, so its rows are distributions
whatever the inputs' rounding.

The grouped path (the log path at O(support) per target instead of O(V)): when every expert gives
its rows as ``Expert.sparse_rows`` (a support over a background affine in the stream's token counts,
as an interpolated n-gram's rows are) and the mixer has ``mix_log_grouped``, the loop joins the
experts' rows target by target into groups of tokens that every expert gives the same value
(``grouping``) and the mixer sums over the groups. The groups' values are the dense rows' values bit
for bit, so the result is the log path's to float64 summation order; every row's mass is checked.

The sealed stream. Plugins never see the caller's token array: they get read-only views of a
buffer (``SealedStream``) into which the loop copies each token only when the step that may see it
starts. At any time that buffer holds no token at or after the end of the current span, so nothing
reachable from a plugin's arguments holds an unscored token. What in-process Python cannot stop
(walking the interpreter's frames to the caller's array, ``gc.get_objects()``, reading the data
file) is stopped only by the compressed round trip: a decoder has no such array to find.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import PgolfError, UsageError
from ..tolerances import LOGP_TOLERANCE, MASS_TOLERANCE, MIX_AGREEMENT_TOLERANCE  # noqa: F401 (re-exported)

# Caps on the (K, n, V) block when full distributions are needed. The block's rows should stay in
# the last-level cache: at 4,096 targets (V = 1024, three inputs) they did not, and a small
# network's forward between blocks ran 14% slower for it; at 1,024 it ran as fast as alone.
FULL_BLOCK_BYTES = 32 << 20
FULL_BLOCK_TARGETS = 1024
TRAJECTORY_POINTS = 1000  # how many points of the weight / running-BPB curves a result keeps
LOG_FLOOR32 = np.float32(np.finfo(np.float32).tiny)  # probabilities are floored here before a float32 log


class SealedStream:
    """The tokens plugins may see: a read-only buffer filled up to ``revealed`` and zero after it.

    ``view(end)`` is a read-only view of the first ``end`` tokens; its base is this buffer, never the
    caller's array (``np.shares_memory`` with it is False), and the buffer holds nothing past the
    tokens revealed so far, which the loop keeps at the end of the span being scored.
    """

    def __init__(self, n_tokens: int, dtype):
        self._buf = np.zeros(int(n_tokens), dtype=dtype)
        self._buf.flags.writeable = False  # views of a read-only base cannot be made writeable
        self.revealed = 0

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def dtype(self):
        return self._buf.dtype

    def reveal(self, tokens: np.ndarray, start: int) -> None:
        """Copy ``tokens`` in at ``start`` (they must continue the revealed prefix)."""
        if start != self.revealed:
            raise PgolfError(f"internal: tokens revealed at {start}, the stream is revealed up to {self.revealed}")
        self._buf.flags.writeable = True
        try:
            self._buf[start:start + len(tokens)] = tokens
        finally:
            self._buf.flags.writeable = False
        self.revealed = start + len(tokens)

    def reveal_to(self, source: np.ndarray, end: int) -> None:
        """Reveal ``source[revealed:end]`` (nothing when already revealed)."""
        if end > self.revealed:
            self.reveal(source[self.revealed:end], self.revealed)

    def view(self, end: int) -> np.ndarray:
        if end > self.revealed:
            raise PgolfError(f"internal: a view up to {end} of a stream revealed up to {self.revealed}")
        return self._buf[:end]

    def copy(self) -> np.ndarray:
        """The revealed tokens as an array of their own (for the caller, never for plugins)."""
        return np.array(self._buf[:self.revealed], copy=True)


def sealed_view(tokens: np.ndarray, end: int, n_tokens: Optional[int] = None) -> np.ndarray:
    """``tokens[:end]`` as the loop hands it to plugins: a read-only view of a ``SealedStream`` of
    ``n_tokens`` (default ``len(tokens)``) that holds nothing after ``end``. For the checks that call
    a plugin directly, so that no view they hand over differs from the run's."""
    stream = SealedStream(len(tokens) if n_tokens is None else n_tokens, np.asarray(tokens).dtype)
    stream.reveal(np.asarray(tokens[:end]), 0)
    return stream.view(end)


class NoBytes:
    """A byte count of zero for every target: for traces that compare predictions, not BPB."""

    def target_bytes(self, tokens, start: int, end: int) -> np.ndarray:
        return np.zeros(end - start, dtype=np.int64)


class Guards:
    """Runtime guards on every value the loop reads, and the violations they found.

    A log-probability above 0, a non-finite value or a row whose mass is off by more than
    ``MASS_TOLERANCE`` makes the result invalid; the first position of each kind is kept.
    """

    def __init__(self, raise_nonfinite: bool = True):
        self.raise_nonfinite = raise_nonfinite  # False for the audit's traces: record, keep the values
        self.checks = ["C1: plugins see a sealed stream: only tokens up to the end of the span being scored",
                       "C4: chunks tile the targets exactly once (construction)",
                       "C2: every log-probability finite and <= 0 (runtime)"]
        self.violations: list = []
        self._seen: set = set()

    def add_check(self, text: str) -> None:
        if text not in self.checks:
            self.checks.append(text)

    def violation(self, key: str, message: str) -> None:
        """Record ``message`` once per ``key`` (the first position of a kind of fault is enough)."""
        if key not in self._seen:
            self._seen.add(key)
            self.violations.append(message)

    def logp(self, logp, n: int, who: str, start: int) -> np.ndarray:
        logp = np.asarray(logp, dtype=np.float64)
        if logp.shape != (n,):
            raise PgolfError(f"{who} returned log-probabilities of shape {logp.shape}, expected ({n},)")
        finite = np.isfinite(logp)
        if not finite.all():
            bad = int(np.argmin(finite))
            msg = f"{who} returned a non-finite log-probability ({logp[bad]}) for target {start + bad}"
            if self.raise_nonfinite:
                raise PgolfError(msg)
            self.violation(f"nonfinite {who}", "C2: " + msg)
            return logp
        worst = int(np.argmax(logp)) if n else 0
        if n and logp[worst] > LOGP_TOLERANCE:
            self.violation(f"mass>1 {who}", f"C2: {who} gave probability {np.exp(logp[worst]):.6g} > 1 to target {start + worst}")
        return logp

    def rows(self, rows: np.ndarray, who: str, start: int) -> None:
        if not rows.size:
            return
        self.masses(rows.sum(axis=-1, dtype=np.float64), rows.min(axis=-1), who, start)

    def masses(self, sums: np.ndarray, lows: np.ndarray, who: str, start: int) -> None:
        """The check of ``rows`` from each row's sum and smallest entry (rows given in another form)."""
        off = np.abs(sums - 1.0)
        bad = ~(off <= MASS_TOLERANCE) | (lows < 0)
        if bad.any():
            i = int(np.argmax(bad))
            self.violation(f"rows {who}", f"C2: {who}'s distribution for target {start + i} sums to {sums[i]:.9g} "
                                          f"(tolerance {MASS_TOLERANCE:g}) or has a negative entry")

    def agreement(self, fast: np.ndarray, strict: np.ndarray, who: str, start: int) -> None:
        diff = np.abs(fast - strict)
        bad = ~(diff <= MIX_AGREEMENT_TOLERANCE)
        if bad.any():
            i = int(np.argmax(bad))
            self.violation(f"agree {who}", f"C2: {who}'s mix() gave log p = {fast[i]:.9g} for target {start + i} but its "
                                           f"distribution gives {strict[i]:.9g}: the score is not the mixture's entry")


@dataclass
class Components:
    """The built components of one run, in the order the loop calls them."""

    experts: list
    labels: list
    mixer: object = None
    adapters: list = field(default_factory=list)
    adapter_labels: list = field(default_factory=list)

    def all(self) -> list:
        return [*self.experts, *([self.mixer] if self.mixer is not None else []), *self.adapters]

    def fingerprints(self) -> tuple:
        return tuple(c.state_fingerprint() for c in self.all())


def chunk_spans(n_tokens: int, chunk: int):
    """(start, end, final) of each chunk of ``chunk`` targets, tiling targets 1..N-1 once, the tail included."""
    start = 1
    while start < n_tokens:
        end = min(start + int(chunk), n_tokens)
        yield start, end, end == n_tokens
        start = end


class Loop:
    """The accumulators of one pass and the step that feeds them (see the module docstring).

    ``table`` counts the bytes of each target (``target_bytes(tokens, start, end)``). ``observers``
    are the audit's instruments; each may define ``before_step(loop, source, start, end)`` (before
    anything of a block is scored), ``on_step(loop, start, end, out)`` where ``out`` holds the
    step's ``logp`` (K, n), ``mixed`` (n,), ``targets`` and, when computed, ``dists`` (K, n, V) and
    ``rows`` (n, V) (the mixture's), and ``on_chunk_end(loop, start, end)`` (after the updates and
    adapters of a chunk). Target-by-target chunks (``step_targets``) call ``on_step`` once for the
    chunk, without ``dists`` and ``rows``.
    """

    def __init__(self, comps: Components, table, n_tokens: int, dtype=np.int64, *, strict: bool = False,
                 guards: Optional[Guards] = None, keep_logprobs: bool = False, observers: Sequence[Callable] = (),
                 sparse_rows: bool = True):
        self.comps, self.table, self.n_tokens = comps, table, int(n_tokens)
        self.stream = SealedStream(n_tokens, dtype)
        self.strict = bool(strict)
        mixer = comps.mixer
        self.need_full = self.strict or bool(mixer is not None and mixer.needs_distributions)
        # Outside strict scoring a log-space mixer gets the inputs' log rows (float32), taken from
        # experts that have them (a network's log-softmax) or from one log of their rows here.
        self.log_rows = bool(self.need_full and not self.strict and mixer is not None and mixer.mixes_log_rows)
        self._log_buf = None  # (K, n, V) float32, reused block after block
        # The grouped path (module docstring): the log path from the experts' sparse rows, when every
        # expert has them and the mixer sums over groups; ``sparse_rows=False`` keeps the dense rows.
        self.grouped = bool(self.log_rows and sparse_rows and mixer.mixes_grouped_rows
                            and all(e.provides_sparse_rows for e in comps.experts))
        self._stream_counts = None  # grouping.StreamCounts, built at the first grouped block
        # Grouped blocks: their memory is K * groups * 12 bytes (float64 values and float32 logs)
        # plus 16 bytes per support entry, far below the dense (K, n, V) while supports are small.
        # The size of the next block follows the last one's (it changes no score: every component
        # works target by target), starting from the dense bound.
        self._grouped_block = self._dense_block_size() if self.grouped else 1
        self.guards = guards if guards is not None else Guards()
        self.keep = keep_logprobs
        self.observers = list(observers)
        k = len(comps.experts)
        self.nll = 0.0
        self.expert_nll = np.zeros(k, dtype=np.float64)
        self.n_bytes = 0
        self.n_targets = 0
        self.next_target = 1
        self.timers: dict = {}
        self.trajectory_pos: list = []
        self.trajectory_w: list = []
        self.cum: list = []  # [bytes, mixture nll, expert nll...] at each trajectory position
        self.saved = {"mixture": [], "experts": [], "bytes": []}
        self.last_recorded = 0
        self.loop_seconds = 0.0
        from .. import api

        api.refuse_missing_capabilities(comps, self.strict)
        if self.strict:
            self.guards.add_check("C2: strict scoring: every score read from a full normalized mixture distribution")

    # ------------------------------------------------------------------ spans

    def block_size(self) -> int:
        """Targets per block when full distributions are formed (bounds the (K, n, V) block); on the
        grouped path, the groups' memory per target measured on the last block bounds it instead."""
        if not self.need_full:
            return 1 << 62
        return self._grouped_block if self.grouped else self._dense_block_size()

    def _dense_block_size(self) -> int:
        v = self.comps.experts[0].vocab_size
        return max(1, min(FULL_BLOCK_TARGETS, FULL_BLOCK_BYTES // (8 * v * len(self.comps.experts))))

    def chunk_spans(self, chunk: int):
        """(start, end, final) of each chunk of this stream (``chunk_spans`` below)."""
        return chunk_spans(self.n_tokens, chunk)

    def run(self, source: np.ndarray, chunk: int, progress: bool = False) -> None:
        """Score ``source`` block by block in chunks of ``chunk`` targets."""
        from .report import progress_bar

        t0 = time.perf_counter()
        with progress_bar(self.n_tokens - 1, enabled=progress) as advance:
            for start, end, final in self.chunk_spans(chunk):
                self.score_chunk(source, start, end, final)
                advance(end - start)
        self.loop_seconds += time.perf_counter() - t0

    def score_chunk(self, source: np.ndarray, start: int, end: int, final: bool) -> None:
        """One chunk in blocks (full distributions are formed at most ``block_size`` at a time)."""
        s = start
        while s < end:  # (the size is asked per block: the grouped path's follows its groups)
            e = min(s + self.block_size(), end)
            self.step_block(source, s, e, final=final and e == end, chunk_start=start, chunk_end=end)
            s = e

    # ------------------------------------------------------------------ the step

    def _timed(self, key: str, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.timers[key] = self.timers.get(key, 0.0) + time.perf_counter() - t0
        return out

    def _check_order(self, start: int, end: int) -> None:
        if start != self.next_target or not start < end <= self.n_tokens:
            raise PgolfError(f"internal: step [{start}, {end}) after target {self.next_target - 1} of {self.n_tokens - 1}")

    def step_block(self, source: np.ndarray, start: int, end: int, *, final: bool, chunk_start: Optional[int] = None,
                   chunk_end: Optional[int] = None) -> dict:
        """Score targets [start, end) at once; end the chunk when ``end == chunk_end``."""
        self._check_order(start, end)
        self._notify("before_step", source, start, end)
        chunk_start = start if chunk_start is None else chunk_start
        chunk_end = end if chunk_end is None else chunk_end
        self.stream.reveal_to(source, end)
        view = self.stream.view(end)
        targets = np.asarray(view[start:end], dtype=np.int64)
        n, comps = end - start, self.comps
        logp = np.empty((len(comps.experts), n), dtype=np.float64)
        dists = None
        if self.log_rows:  # a geometric mixer fed float32 log rows, dense or grouped (module docstring)
            mixer = comps.mixer
            if self.grouped:
                fn, rows = mixer.mix_log_grouped, self._expert_grouped_rows(view, start, end, targets, logp)
            else:
                fn, rows = mixer.mix_log, self._expert_log_rows(view, start, end, targets, logp)
            mixed = self.guards.logp(self._timed("mixer", fn, logp, targets, rows), n,
                                     f"mixer {mixer.name or type(mixer).__name__!r}", start)
            out = {"logp": logp, "targets": targets, "dists": None, "mixed": mixed, "rows": None}
        else:
            if self.need_full:
                dists = self._expert_rows(view, start, end, targets, logp)
            else:
                for k, (e, label) in enumerate(zip(comps.experts, comps.labels)):
                    logp[k] = self.guards.logp(self._timed(label, e.score, view, start, end), n,
                                               f"expert {label!r}", start)
            out = {"logp": logp, "targets": targets, "dists": dists}
            out["mixed"], out["rows"] = self._mix(logp, targets, dists, start)
        self._accumulate(out, view, start, end)
        if end == chunk_end:
            self._end_chunk(view, chunk_start, chunk_end, final)
        return out

    def _expert_rows(self, view, start, end, targets, logp) -> np.ndarray:
        n, comps = end - start, self.comps
        rows = []
        for k, (e, label) in enumerate(zip(comps.experts, comps.labels)):
            d = np.asarray(self._timed(label, e.distributions, view, start, end))
            if d.shape != (n, e.vocab_size):
                raise PgolfError(f"expert {label!r} returned distributions of shape {d.shape}, expected {(n, e.vocab_size)}")
            t0 = time.perf_counter()
            self.guards.rows(d, f"expert {label!r}", start)
            with np.errstate(divide="ignore"):
                logp[k] = np.log(d[np.arange(n), targets])
            self.timers["rows"] = self.timers.get("rows", 0.0) + time.perf_counter() - t0
            self.guards.logp(logp[k], n, f"expert {label!r}", start)
            rows.append(d)
        t0 = time.perf_counter()
        # float32 when any expert works in float32: the mixer's inputs then cost half the memory
        # traffic. Each expert's own log-probabilities above came from its rows at its precision.
        dtype = np.float32 if any(d.dtype == np.float32 for d in rows) else np.float64
        dists = np.empty((len(rows), n, rows[0].shape[1]), dtype=dtype)
        for k, d in enumerate(rows):
            dists[k] = d
        self.timers["rows"] = self.timers.get("rows", 0.0) + time.perf_counter() - t0
        return dists

    def _expert_log_rows(self, view, start, end, targets, logp) -> np.ndarray:
        """The experts' log rows (K, n, V) float32 for ``Mixer.mix_log``, in a buffer kept across
        blocks; ``logp`` gets each expert's log-probability of the targets. Rows given as
        probabilities are checked whole (C2) on their float32 copy before the log; log rows from
        ``log_distributions`` (a log-softmax, normalized by construction) have their first row
        checked, so a gross error still shows in a plain run; strict scoring checks every row."""
        n, comps = end - start, self.comps
        k_inputs, vocab = len(comps.experts), comps.experts[0].vocab_size
        if self._log_buf is None or self._log_buf.shape[1] < n:
            self._log_buf = np.empty((k_inputs, n, vocab), dtype=np.float32)
        buf = self._log_buf[:, :n]
        idx = np.arange(n)
        for k, (e, label) in enumerate(zip(comps.experts, comps.labels)):
            who = f"expert {label!r}"
            fn = e.log_distributions if e.provides_log_distributions else e.distributions
            d = np.asarray(self._timed(label, fn, view, start, end))
            if d.shape != (n, e.vocab_size):
                raise PgolfError(f"{who} returned distributions of shape {d.shape}, expected {(n, e.vocab_size)}")
            t0 = time.perf_counter()
            row = buf[k]
            np.copyto(row, d, casting="same_kind")
            if e.provides_log_distributions:
                logp[k] = d[idx, targets]
                self.guards.rows(np.exp(np.asarray(d[:1], dtype=np.float64)), who, start)
            else:
                with np.errstate(divide="ignore"):
                    logp[k] = np.log(np.asarray(d[idx, targets], dtype=np.float64))
                self.guards.rows(row, who, start)
                np.maximum(row, LOG_FLOOR32, out=row)
                np.log(row, out=row)
            self.timers["rows"] = self.timers.get("rows", 0.0) + time.perf_counter() - t0
            self.guards.logp(logp[k], n, who, start)
        return buf

    def _expert_grouped_rows(self, view, start, end, targets, logp):
        """The experts' rows of the block as ``GroupedLogRows`` (``grouping``) for
        ``Mixer.mix_log_grouped``, from their ``sparse_rows``: the groups' values get the log path's
        float32 cast, floor and log (``StreamCounts.group``), and ``logp`` each expert's
        log-probability of the targets as the log path reads it
        (from its float32 log row when it gives log rows, else the log of its float64 entry). Every
        row's mass and sign are checked (C2)."""
        from .grouping import StreamCounts

        n, comps = end - start, self.comps
        if self._stream_counts is None:
            self._stream_counts = StreamCounts(comps.experts[0].vocab_size)
        counts = self._stream_counts
        counts.sync(view, start)
        sparse = []
        for e, label in zip(comps.experts, comps.labels):
            sp = self._timed(label, e.sparse_rows, view, start, end)
            off = np.asarray(sp.offsets)
            if off.shape != (n + 1,) or off[0] != 0 or np.any(off[1:] < off[:-1]) or np.shape(sp.ids) != (off[-1],) \
                    or np.shape(sp.values) != (off[-1],) or np.shape(sp.base) != (n,) or np.shape(sp.slope) != (n,):
                raise PgolfError(f"expert {label!r} returned sparse rows of the wrong shape for {n} targets")
            sparse.append(sp)
        t0 = time.perf_counter()
        grouped, values, mass, low = counts.group(sparse, targets, comps.labels, LOG_FLOOR32)
        per_target = (12 * len(comps.experts) * values.shape[1] + 16 * sum(len(sp.ids) for sp in sparse)) / n
        self._grouped_block = max(1, min(FULL_BLOCK_TARGETS, int(FULL_BLOCK_BYTES // max(2.0 * per_target, 1.0))))
        for k, (e, label) in enumerate(zip(comps.experts, comps.labels)):
            who = f"expert {label!r}"
            self.guards.masses(mass[k], low[k], who, start)
            if e.provides_log_distributions:
                logp[k] = grouped.log_values[k, grouped.target_group]
            else:
                with np.errstate(divide="ignore"):
                    logp[k] = np.log(values[k, grouped.target_group])
            self.guards.logp(logp[k], n, who, start)
        self.timers["rows"] = self.timers.get("rows", 0.0) + time.perf_counter() - t0
        return grouped

    def _mix(self, logp, targets, dists, start):
        """(mixture log-probabilities, mixture rows or None) of a block."""
        n, mixer = len(targets), self.comps.mixer
        if mixer is None:
            rows = dists[0] if self.strict else None
            return logp[0], rows
        who = f"mixer {mixer.name!r}"
        if not self.strict:
            return self.guards.logp(self._timed("mixer", mixer.mix, logp, targets, dists), n, who, start), None
        res = self._timed("mixer", mixer.mix, logp, targets, dists, True)
        if not (isinstance(res, tuple) and len(res) == 2):
            raise PgolfError(f"{who}: mix(..., return_distribution=True) must return (logp, rows)")
        fast = self.guards.logp(res[0], n, who, start)
        rows = np.asarray(res[1])
        if rows.shape != (n, mixer.vocab_size):
            raise PgolfError(f"{who} returned mixture rows of shape {rows.shape}, expected {(n, mixer.vocab_size)}")
        self.guards.rows(rows, "the mixture", start)
        with np.errstate(divide="ignore"):
            strict = np.log(np.asarray(rows[np.arange(n), targets], dtype=np.float64))
        self.guards.agreement(fast, strict, who, start)
        return self.guards.logp(strict, n, "the mixture", start), rows

    def step_targets(self, start: int, end: int, *, final: bool, choose: Callable[[int, np.ndarray], int]) -> None:
        """A chunk target by target: predict, ``choose`` the token from the mixture's row, observe.

        The decoder's inner loop, so it does per target only what each target needs: the guards'
        checks run on plain floats and fall back to the full guard (which words the violation) only
        when a value is out of bounds; the sums, byte counts and observers' ``on_step`` are done once
        for the chunk."""
        self._check_order(start, end)
        comps, timers, clock = self.comps, self.timers, time.perf_counter
        experts, labels, mixer = comps.experts, comps.labels, comps.mixer
        k, vocab = len(experts), experts[0].vocab_size
        for key in (*labels, "mixer", "coder"):
            timers.setdefault(key, 0.0)
        n = end - start
        logp_all, mixed_all = np.empty((k, n)), np.empty(n)
        for i, t in enumerate(range(start, end)):
            ctx = self.stream.view(t)  # exactly the tokens before target t
            dists = np.empty((k, vocab))
            for j, e in enumerate(experts):
                t0 = clock()
                r = np.asarray(e.predict(ctx, t))
                timers[labels[j]] += clock() - t0
                if r.shape != (vocab,):
                    raise PgolfError(f"expert {labels[j]!r}'s predict() returned a row of shape {r.shape}, "
                                     f"expected ({vocab},)")
                dists[j] = r
            t0 = clock()
            row = dists[0] if mixer is None else np.asarray(mixer.predict(dists), dtype=np.float64)
            t1 = clock()
            timers["mixer"] += t1 - t0
            total, low = float(row.sum()), float(row.min())
            if not (abs(total - 1.0) <= MASS_TOLERANCE and low >= 0.0):
                self.guards.rows(row[None, :], "the mixture", t)
            token = int(choose(t, row))
            timers["coder"] += clock() - t1
            self.stream.reveal(np.array([token]), t)
            view = self.stream.view(t + 1)
            ps = [float(x) for x in dists[:, token]]
            lps = [math.log(x) if x > 0.0 else -math.inf for x in ps]
            pm = float(row[token])
            lm = math.log(pm) if pm > 0.0 else -math.inf
            if not all(-math.inf < x <= LOGP_TOLERANCE for x in (*lps, lm)):  # NaN fails too
                for j, label in enumerate(labels):
                    self.guards.logp(np.array([lps[j]]), 1, f"expert {label!r}", t)
                self.guards.logp(np.array([lm]), 1, "the mixture", t)
            logp_all[:, i], mixed_all[i] = lps, lm
            for j, e in enumerate(experts):
                t0 = clock()
                e.observe(view, t)
                timers[labels[j]] += clock() - t0
            if mixer is not None:
                t0 = clock()
                mixer.observe(np.array(lps), token, dists if mixer.needs_distributions else None)
                timers["mixer"] += clock() - t0
        view = self.stream.view(end)
        out = {"logp": logp_all, "targets": np.asarray(view[start:end], dtype=np.int64), "mixed": mixed_all,
               "dists": None, "rows": None}
        self._accumulate(out, view, start, end)
        self._end_chunk(view, start, end, final)

    def step_compiled(self, start: int, end: int, *, final: bool, coding) -> None:
        """A chunk through the compiled coding loop (``pgolf_core.codec.compiled.CompiledCoding``): the
        per-target steps of ``step_targets`` in one numba function, then the same chunk end."""
        self._check_order(start, end)
        t0 = time.perf_counter()
        tokens, logp_all, mixed_all = coding.run(start, end)
        self.timers["compiled"] = self.timers.get("compiled", 0.0) + time.perf_counter() - t0
        self.stream.reveal(tokens.astype(self.stream.dtype), start)
        view = self.stream.view(end)
        out = {"logp": logp_all, "targets": np.asarray(view[start:end], dtype=np.int64), "mixed": mixed_all,
               "dists": None, "rows": None}
        self._accumulate(out, view, start, end)
        self._end_chunk(view, start, end, final)

    def _accumulate(self, out: dict, view, start: int, end: int) -> None:
        t0 = time.perf_counter()
        nbytes = self.table.target_bytes(view, start, end)
        self.nll -= float(out["mixed"].sum())
        self.expert_nll -= out["logp"].sum(axis=1)
        self.n_bytes += int(nbytes.sum())
        self.n_targets += end - start
        self.next_target = end
        if self.keep:
            self.saved["mixture"].append(np.array(out["mixed"], dtype=np.float64))
            self.saved["experts"].append(np.array(out["logp"]))
            self.saved["bytes"].append(nbytes)
        self.timers["bookkeeping"] = self.timers.get("bookkeeping", 0.0) + time.perf_counter() - t0
        self._notify("on_step", start, end, out)

    def _notify(self, hook: str, *args) -> None:
        for obs in self.observers:
            fn = getattr(obs, hook, None)
            if fn is not None:
                fn(self, *args)

    def _end_chunk(self, view, start: int, end: int, final: bool) -> None:
        comps = self.comps
        for e, label in zip(comps.experts, comps.labels):
            self._timed(label, e.update, view, start, end)
        for a, label in zip(comps.adapters, comps.adapter_labels or [a.name for a in comps.adapters]):
            self._timed(f"adapter:{label}", a.after_chunk, view, start, end, final)
        self._record(end, final)
        self._notify("on_chunk_end", start, end)

    def _record(self, end: int, final: bool) -> None:
        """Sample the weights and running sums along the stream (at most ~TRAJECTORY_POINTS points)."""
        if not final and end - self.last_recorded < self.n_tokens / TRAJECTORY_POINTS:
            return
        self.last_recorded = end
        self.trajectory_pos.append(end)
        self.cum.append([self.n_bytes, self.nll, *self.expert_nll.tolist()])
        if self.comps.mixer is not None:
            self.trajectory_w.append(np.array(self.comps.mixer.weights, dtype=np.float64))

    # ------------------------------------------------------------------ results

    def finished(self) -> bool:
        return self.n_targets == self.n_tokens - 1

    def summary(self) -> dict:
        """Sums, per-expert figures, weights and trajectories (the fields of ``Results`` the loop owns)."""
        from ..stream.bytes import bits_per_byte

        if not self.finished():
            raise PgolfError(f"internal: {self.n_targets} of {self.n_tokens - 1} targets scored")
        labels, mixer = self.comps.labels, self.comps.mixer
        weights = None
        if mixer is not None:
            w = np.asarray(mixer.weights, dtype=np.float64)
            names = labels if len(w) == len(labels) else [f"w{i}" for i in range(len(w))]
            weights = {k: float(v) for k, v in zip(names, w)}
        logprobs = None
        if self.keep:
            logprobs = {"mixture": np.concatenate(self.saved["mixture"]),
                        "experts": np.concatenate(self.saved["experts"], axis=1),
                        "bytes": np.concatenate(self.saved["bytes"]), "expert_names": list(labels)}
        return dict(
            bpb=bits_per_byte(self.nll, self.n_bytes), loss=self.nll / self.n_targets, targets=self.n_targets,
            bytes=self.n_bytes,
            expert_bpb={l: bits_per_byte(v, self.n_bytes) for l, v in zip(labels, self.expert_nll)},
            expert_loss={l: float(v) / self.n_targets for l, v in zip(labels, self.expert_nll)},
            weights=weights,
            trajectory={"positions": self.trajectory_pos, "weights": [w.tolist() for w in self.trajectory_w],
                        "cumulative": {"bytes": [c[0] for c in self.cum], "mixture_nll": [c[1] for c in self.cum],
                                       "expert_nll": [c[2:] for c in self.cum]}},
            logprobs=logprobs,
        )
