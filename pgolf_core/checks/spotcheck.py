"""Live spot checks: the audit inside the run that produces the score.

The static audit checks deep copies of a run's components on a short stream before the run; a
component that behaves well only there (only on short streams, only in the first targets of a call,
only when it is copied or watched) would pass it. So an audited evaluation also checks the live
pass, in a way that no plugin can steer:

- the state of every component is deep-copied before **every** block, so being copied tells a
  plugin nothing about which block will be checked;
- which targets of a block are checked is drawn only **after** the live block has been scored,
  from ``secrets``, each target independently with probability ``rate``, into a local variable of
  ``on_step``: while a plugin's code for a block runs, the decision does not exist anywhere;
- a checked block is replayed from the copy taken before it, through the same loop code and at the
  run's real stream length, and must reproduce the live log-probabilities and rows of the whole
  block (a component that behaves differently when copied fails here; a second replay tells a
  nondeterministic one apart);
- at each checked target ``p`` (C1/C3) the copy scores the block with every token from ``p`` on
  changed: the predictions before ``p`` and the distribution *for* ``p`` must not move. At the
  first checked target of the run (C2), each expert's ``score()``, called on a copy over a
  multi-target span with another candidate at ``p``, equals that candidate's entry of its
  distribution for ``p``, and the mixer's ``mix()`` without rows equals its rows' entries over
  the block (once: strict scoring never reads these fast paths, and each probe copies the state);
- the components are built a second time from their factories (same options, same context) and
  that twin scores the first block: two builds that differ are nondeterministic (an unseeded
  random generator is copied into every replay alike, so only a second build shows it).

Coverage. A cheat that reads its own target (or a later token) at ``k`` targets is caught when one
of them is checked; the checks are independent and drawn after the fact, so whatever the plugin
knows or guesses, it escapes every check with probability exactly ``(1 - rate) ** k``, contiguous
or not. A cheat that behaves differently in copies is caught at least as often (its whole block is
replayed). ``coverage()`` states it for k = 1, 1% and 10% of the targets.

What no in-process check can stop: a copy that walks the interpreter's frames or ``gc`` to the
live stream, shared state through which copies return the live run's outputs, or a plugin that
patches the engine. Only the compressed round trip (``proven``) stands against those.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Optional

import numpy as np

from ..run.loop import Components, Guards, Loop, NoBytes, sealed_view
from .audit_engine import perturb_from
from ..tolerances import CAUSAL_TOLERANCE, CONSISTENCY_TOLERANCE

PROBE_CANDIDATES = 4  # candidates of target p probed through score() per expert (the target among them)
PROBE_TAIL = 8  # targets after p in a probe call, so that p is not the last target of the call
COVERAGE_SHARES = (0.01, 0.10)  # shares of the targets the verdict states the escape probability for (and k = 1)


def escape_probability(rate: float, k: int) -> float:
    """The probability that a cheat confined to ``k`` targets (any ``k``: the targets are checked
    independently) is never checked when each target is checked with probability ``rate``."""
    return float((1.0 - rate) ** max(0, int(k)))


def draw_checked(start: int, end: int, rate: float) -> list:
    """The checked targets of the block [start, end): each with probability ``rate``, from
    ``secrets``. Called only after the live block is scored; the result lives in the caller's frame."""
    if rate <= 0.0:
        return []
    rng = np.random.default_rng(secrets.randbits(128))
    return [start + int(i) for i in np.flatnonzero(rng.random(end - start) < rate)]


class SpotChecks:
    """A loop observer (``pgolf_core.run.loop.Loop``) that checks each target of an audited pass with
    probability ``count / targets`` (``count`` checks expected), and compares a second build of the
    components (``twin``, with ``rebuilt`` False when it is a deep copy of instances given by the
    caller) with the live ones on the first block."""

    def __init__(self, n_tokens: int, count: int, twin: Optional[Components] = None, rebuilt: bool = True,
                 candidates: int = PROBE_CANDIDATES):
        self.targets = max(0, int(n_tokens) - 1)
        self.expected = max(0, int(count))
        self.rate = min(1.0, self.expected / self.targets) if self.targets else 0.0
        self.candidates = int(candidates)
        self.reports: list = []
        self.violations: list = []
        self.seconds = 0.0
        self.snapshot_seconds = 0.0
        self.blocks = self.blocks_replayed = self.targets_replayed = 0
        self.twin_rebuilt = bool(rebuilt) if twin is not None else None
        self.twin_compared = False
        self.probed = False  # the fast-path probes run at the first checked position of the run
        self._twin = twin
        self._snap = None

    def before_step(self, loop: Loop, source, start: int, end: int) -> None:
        # Every block, whether it will be checked or not: nothing about the copy is a signal.
        if self.rate > 0.0 or self._twin is not None:
            t0 = time.perf_counter()
            self._snap = (start, copy.deepcopy(loop.comps))
            self.snapshot_seconds += time.perf_counter() - t0

    def on_step(self, loop: Loop, start: int, end: int, out: dict) -> None:
        self.blocks += 1
        snap, self._snap = self._snap, None
        if snap is None or snap[0] != start:
            return
        t0 = time.perf_counter()
        checked = draw_checked(start, end, self.rate)  # drawn now: the live block is already scored
        twin, self._twin = self._twin, None
        if checked or twin is not None:
            self._check_block(loop, snap[1], twin, start, end, out, checked)
        self.seconds += time.perf_counter() - t0

    def coverage(self) -> dict:
        """What the checks covered and the probability that a cheat on k targets escapes them all."""
        ks = {"1": 1, **{f"{share:.0%}": max(1, int(round(share * self.targets))) for share in COVERAGE_SHARES}}
        return {"rate": self.rate, "expected": self.expected, "targets": self.targets, "blocks": self.blocks,
                "blocks_replayed": self.blocks_replayed, "targets_replayed": self.targets_replayed,
                "positions": len(self.reports),
                "escape": {label: {"k": k, "p": escape_probability(self.rate, k)} for label, k in ks.items()}}

    def to_dict(self) -> dict:
        return {**self.coverage(), "violations": list(self.violations), "seconds": self.seconds,
                "snapshot_seconds": self.snapshot_seconds, "twin_rebuilt": self.twin_rebuilt,
                "twin_compared": self.twin_compared, "reports": self.reports}

    # ------------------------------------------------------------------ the checks

    def _check_block(self, loop: Loop, snap: Components, twin, start: int, end: int, live: dict, checked: list) -> None:
        tokens = loop.stream.copy()  # the live block's tokens, up to its end
        ref = _replay(snap, loop, tokens, start, end)
        self.blocks_replayed += 1
        self.targets_replayed += end - start
        block = []
        if not _same_block(ref, live):
            block.append(_replay_mismatch(snap, loop, tokens, start, end, ref))
        elif twin is not None:
            self.twin_compared = True
            if not _same_block(_replay(twin, loop, tokens, start, end, keep=False), live):
                how = "two builds from the same factories" if self.twin_rebuilt else "the run's components and a copy made before the run"
                block.append(f"nondeterministic: {how}, with the same options and context, score the first block "
                             f"[{start}, {end}) differently (an unseeded random generator, the clock, ...), so no "
                             f"replay can vouch for the run")
        if block:
            self._add(_report(checked[0] if checked else start, start, end, block))
            return
        fast = []
        if checked and not self.probed:  # score() and mix() fast paths: strict scoring never reads them
            self.probed = True
            fast = self._probe(loop, snap, tokens, start, end, checked[0], ref)
            fast += _mixer_fast_path(snap, ref, tokens, start, end)
        for j, p in enumerate(checked):  # the last replay may advance the snapshot itself
            report = self._check_position(loop, snap, tokens, start, end, p, ref, keep=j + 1 < len(checked))
            if j == 0 and fast:
                report["violations"] += fast
                report["status"] = "FAIL"
            self._add(report)

    def _add(self, report: dict) -> None:
        self.reports.append(report)
        self.violations += [f"position {report['position']}: {v}" for v in report["violations"]]

    def _check_position(self, loop, snap, tokens, start, end, p, ref, keep: bool) -> dict:
        violations, i = [], p - start
        rng = np.random.default_rng(secrets.randbits(128))
        other = perturb_from(tokens, p, loop.comps.experts[0].vocab_size, rng)
        changed = _replay(snap, loop, other, start, end, keep=keep)
        d_before = float(np.max(np.abs(changed["mixed"][:i] - ref["mixed"][:i]), initial=0.0))
        d_row = float(np.max(np.abs(changed["rows"][i] - ref["rows"][i])))
        d_experts = float(np.max(np.abs(changed["dists"][:, i] - ref["dists"][:, i])))
        if d_before > CAUSAL_TOLERANCE:
            violations.append(f"C1: changing the tokens from {p} on moved an earlier prediction by {d_before:.3g} nats")
        if max(d_row, d_experts) > CAUSAL_TOLERANCE:
            violations.append(f"C1: changing the tokens from {p} on moved the distribution for {p} by "
                              f"{max(d_row, d_experts):.3g}: a prediction looked at its target or later")
        return _report(p, start, end, violations, max_change=max(d_before, d_row, d_experts))

    def _probe(self, loop, snap: Components, tokens, start: int, end: int, p: int, ref: dict) -> list:
        out, i = [], p - start
        rng = np.random.default_rng(secrets.randbits(128))
        pe = min(end, p + 1 + PROBE_TAIL)
        vocab = snap.experts[0].vocab_size
        cands = np.unique(np.concatenate([[int(tokens[p])], rng.integers(0, vocab, self.candidates - 1)]))
        for k, (e, label) in enumerate(zip(snap.experts, snap.labels)):
            row = np.asarray(ref["dists"][k, i], dtype=np.float64)
            for v in cands:
                probe = np.array(tokens[:pe], copy=True)
                probe[p] = v
                view = sealed_view(probe, pe, loop.n_tokens)  # the live run's kind of view
                got = float(np.asarray(copy.deepcopy(e).score(view, start, pe), dtype=np.float64)[i])
                want = float(np.log(row[v])) if row[v] > 0 else -np.inf
                if not abs(got - want) <= CONSISTENCY_TOLERANCE:
                    out.append(f"C2: expert {label!r} scored candidate {int(v)} of target {p} (inside the call "
                               f"[{start}, {pe})) at log p = {got:.6g}, its distribution gives {want:.6g}")
                    break
        return out


def _replay(snap: Components, loop: Loop, tokens: np.ndarray, start: int, end: int, keep: bool = True) -> dict:
    """A deep copy of ``snap`` (``snap`` itself when ``keep`` is False: its last use) scores the block
    [start, end) of ``tokens`` through the loop, strictly, without ending the chunk (no update, no
    adapter: only the predictions are compared)."""
    comps = copy.deepcopy(snap) if keep else snap
    replay = Loop(comps, NoBytes(), loop.n_tokens, tokens.dtype, strict=True, guards=Guards(raise_nonfinite=False))
    replay.next_target = start
    full = np.zeros(loop.n_tokens, dtype=tokens.dtype)
    full[:len(tokens)] = tokens
    out = replay.step_block(full, start, end, final=False, chunk_start=start, chunk_end=-1)
    return {"mixed": np.asarray(out["mixed"], dtype=np.float64), "rows": np.asarray(out["rows"], dtype=np.float64),
            "dists": np.asarray(out["dists"], dtype=np.float64)}


def _replay_mismatch(snap, loop, tokens, start, end, ref) -> str:
    """Why a replay differs from the live block: a second replay tells nondeterminism apart."""
    if not _same_block(ref, _replay(snap, loop, tokens, start, end)):
        return (f"nondeterministic: two replays of the block [{start}, {end}) from the same state differ, so no "
                f"check can vouch for it")
    return (f"the live run differs from a replay of its own state over [{start}, {end}): a component behaves "
            f"differently when it is watched or copied")


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


def _same_block(a: dict, b: dict) -> bool:
    """The mixture's log-probabilities and rows, and every expert's rows, agree over the whole block."""
    for key in ("mixed", "rows", "dists"):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return False
        if not np.array_equal(x, y) and not np.allclose(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                                                        rtol=0.0, atol=CAUSAL_TOLERANCE):
            return False
    return True


def _report(p, start, end, violations, **extra) -> dict:
    return {"position": int(p), "block": [int(start), int(end)], "status": "FAIL" if violations else "PASS",
            "violations": violations, **extra}
