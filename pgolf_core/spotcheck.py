"""Live spot checks: the audit inside the run that produces the score.

The static audit checks deep copies of a run's components on a short stream before the run; a
component that behaves well only there (only on short streams, only in the first targets of a call,
only when nobody copied it) would pass it. So during an audited evaluation, at a few positions drawn
from a secret seed (``secrets``, not the run's seed: no plugin can know them), the loop's state is
deep-copied just before the block that holds the position ``p`` and three things are checked
through the same loop code, at the run's real stream length and position:

- replay: the copy, scoring the same block, reproduces the live log-probabilities and the live
  distributions at ``p``. If it does not, a second replay tells a nondeterministic component (the
  two replays differ) from one that behaves differently in the live run;
- C1/C3: the copy, scoring the block with every token from ``p`` on changed, gives the same
  predictions for the targets before ``p`` and the same distribution *for* ``p``;
- C2: each expert's ``score()`` fast path, called on a copy over a multi-target span with a
  different candidate at ``p`` (``p`` is in the middle of the call), equals the candidate's entry
  of the distribution the expert gave for ``p``; the mixer's ``mix()`` without rows, on a copy,
  equals the entries of its rows over the block. (Row masses, and ``mix()`` against its rows in
  the same call, are checked at every target of a strict run by the loop's guards.)
"""

from __future__ import annotations

import copy
import secrets
import time

import numpy as np

from .loop import Components, Guards, Loop, NoBytes
from .testing import CAUSAL_TOLERANCE, CONSISTENCY_TOLERANCE, perturb_from

PROBE_CANDIDATES = 4  # candidates of target p probed through score() per expert (the target among them)
PROBE_TAIL = 8  # targets after p in a probe call, so that p is not the last target of the call


class SpotChecks:
    """A loop observer (``pgolf_core.loop.Loop``) that spot-checks ``count`` secret positions."""

    def __init__(self, comps: Components, n_tokens: int, count: int, candidates: int = PROBE_CANDIDATES):
        self._rng = np.random.default_rng(secrets.randbits(64))
        n = max(0, int(count))
        self.positions = sorted({int(p) for p in self._rng.integers(1, n_tokens, size=n)}) if n_tokens > 1 else []
        self.candidates = int(candidates)
        self.reports: list = []
        self.violations: list = []
        self.seconds = 0.0
        self._snap = None

    def before_step(self, loop: Loop, source, start: int, end: int) -> None:
        due = [p for p in self.positions if start <= p < end]
        if due:
            t0 = time.perf_counter()
            self._snap = (start, end, due, copy.deepcopy(loop.comps))
            self.seconds += time.perf_counter() - t0

    def on_step(self, loop: Loop, start: int, end: int, out: dict) -> None:
        if self._snap is None or self._snap[0] != start:
            return
        t0 = time.perf_counter()
        _, _, due, snap = self._snap
        self._snap = None
        tokens = loop.stream.copy()  # the live block's tokens, up to its end
        for p in due:
            report = self._check(loop, snap, tokens, start, end, p, out)
            self.reports.append(report)
            self.violations += [f"position {p}: {v}" for v in report["violations"]]
        self.seconds += time.perf_counter() - t0

    def to_dict(self) -> dict:
        return {"positions": len(self.reports), "violations": list(self.violations), "seconds": self.seconds,
                "reports": self.reports}

    # ------------------------------------------------------------------ the checks

    def _check(self, loop: Loop, snap: Components, tokens: np.ndarray, start: int, end: int, p: int, live: dict) -> dict:
        violations, i = [], p - start
        ref = _replay(snap, loop, tokens, start, end)
        if not _same(ref, live, i):
            again = _replay(snap, loop, tokens, start, end)
            if not _same(ref, again, i):
                violations.append(f"nondeterministic: two replays of the block [{start}, {end}) from the same state "
                                  f"differ, so no check can vouch for it")
            else:
                violations.append(f"the live run differs from a replay of its own state over [{start}, {end}): a "
                                  f"component behaves differently when it is watched or copied")
            return _report(p, start, end, violations)
        other = perturb_from(tokens, p, loop.comps.experts[0].vocab_size, self._rng)
        changed = _replay(snap, loop, other, start, end)
        d_before = float(np.max(np.abs(changed["mixed"][:i] - ref["mixed"][:i]), initial=0.0))
        d_row = float(np.max(np.abs(changed["rows"][i] - ref["rows"][i])))
        d_experts = float(np.max(np.abs(changed["dists"][:, i] - ref["dists"][:, i])))
        if d_before > CAUSAL_TOLERANCE:
            violations.append(f"C1: changing the tokens from {p} on moved an earlier prediction by {d_before:.3g} nats")
        if max(d_row, d_experts) > CAUSAL_TOLERANCE:
            violations.append(f"C1: changing the tokens from {p} on moved the distribution for {p} by "
                              f"{max(d_row, d_experts):.3g}: a prediction looked at its target or later")
        violations += self._probe(snap, tokens, start, end, p, ref)
        violations += _mixer_fast_path(snap, ref, tokens, start, end)
        return _report(p, start, end, violations, max_change=max(d_before, d_row, d_experts))

    def _probe(self, snap: Components, tokens, start: int, end: int, p: int, ref: dict) -> list:
        out, i = [], p - start
        pe = min(end, p + 1 + PROBE_TAIL)
        vocab = snap.experts[0].vocab_size
        cands = np.unique(np.concatenate([[int(tokens[p])], self._rng.integers(0, vocab, self.candidates - 1)]))
        for k, (e, label) in enumerate(zip(snap.experts, snap.labels)):
            row = np.asarray(ref["dists"][k, i], dtype=np.float64)
            for v in cands:
                probe = np.array(tokens[:pe], copy=True)
                probe[p] = v
                probe.flags.writeable = False
                got = float(np.asarray(copy.deepcopy(e).score(probe, start, pe), dtype=np.float64)[i])
                want = float(np.log(row[v])) if row[v] > 0 else -np.inf
                if not abs(got - want) <= CONSISTENCY_TOLERANCE:
                    out.append(f"C2: expert {label!r} scored candidate {int(v)} of target {p} (inside the call "
                               f"[{start}, {pe})) at log p = {got:.6g}, its distribution gives {want:.6g}")
                    break
        return out


def _replay(snap: Components, loop: Loop, tokens: np.ndarray, start: int, end: int) -> dict:
    """A deep copy of ``snap`` scores the block [start, end) of ``tokens`` through the loop, strictly,
    without ending the chunk (no update, no adapter: only the predictions are compared)."""
    comps = copy.deepcopy(snap)
    replay = Loop(comps, NoBytes(), loop.n_tokens, tokens.dtype, strict=True, guards=Guards(raise_nonfinite=False))
    replay.next_target = start
    full = np.zeros(loop.n_tokens, dtype=tokens.dtype)
    full[:len(tokens)] = tokens
    out = replay.step_block(full, start, end, final=False, chunk_start=start, chunk_end=-1)
    return {"mixed": np.asarray(out["mixed"], dtype=np.float64), "rows": np.asarray(out["rows"], dtype=np.float64),
            "dists": np.asarray(out["dists"], dtype=np.float64)}


def _mixer_fast_path(snap: Components, ref: dict, tokens, start: int, end: int) -> list:
    """The mixer's ``mix()`` without rows, on a copy and the replay's own inputs, must give the
    entries of the rows it gives when asked for them (a fast path that scores otherwise is a lie)."""
    mixer = snap.mixer
    if mixer is None:
        return []
    targets = np.asarray(tokens[start:end], dtype=np.int64)
    dists = ref["dists"]
    with np.errstate(divide="ignore"):
        logp = np.log(dists[:, np.arange(end - start), targets])
    fast = np.asarray(copy.deepcopy(mixer).mix(logp, targets, dists if mixer.needs_distributions else None), dtype=np.float64)
    diff = np.abs(fast - ref["mixed"])
    if not np.all(diff <= CONSISTENCY_TOLERANCE):
        i = int(np.argmax(~(diff <= CONSISTENCY_TOLERANCE)))
        return [f"C2: mixer {mixer.name!r}'s mix() gave log p = {fast[i]:.6g} for target {start + i}, its distribution "
                f"gives {ref['mixed'][i]:.6g}: the fast path is not the mixture"]
    return []


def _same(a: dict, b: dict, i: int) -> bool:
    if not np.allclose(a["mixed"], b["mixed"], rtol=0.0, atol=CAUSAL_TOLERANCE):
        return False
    rows_b = np.asarray(b["rows"], dtype=np.float64)
    return float(np.max(np.abs(a["rows"][i] - rows_b[i]))) <= CAUSAL_TOLERANCE


def _report(p, start, end, violations, **extra) -> dict:
    return {"position": int(p), "block": [int(start), int(end)], "status": "FAIL" if violations else "PASS",
            "violations": violations, **extra}
