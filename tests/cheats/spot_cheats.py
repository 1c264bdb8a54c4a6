"""Experts that try to fool the live spot checks (``pgolf_core.checks.spotcheck``), written against the
public API: copy-aware ones, one that reads the checked positions from the engine's objects, and
one that cheats only inside a region of the stream. ``tests/test_audit_adversarial.py`` runs them;
``benchmarks/bench_cheats.py`` packages them as a plugin to run them under every mode."""

from __future__ import annotations

import copy
import gc
import sys

import numpy as np

try:
    from . import planted as P  # inside the benchmark's plugin package
except ImportError:
    import planted as P  # tests/ on the path


class PeeksUnlessCopied(P.HonestCounter):
    """Its ``__deepcopy__`` tells the original that it is about to be watched; it peeks at its
    target on every block before which nobody copied it (and never in a copy)."""

    name = "peeks-unless-copied"

    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.watched, self.is_copy = False, False

    def __deepcopy__(self, memo):
        self.watched = True
        twin = object.__new__(type(self))
        memo[id(self)] = twin
        for k, v in vars(self).items():
            setattr(twin, k, copy.deepcopy(v, memo))
        twin.is_copy = True
        return twin

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        watched, self.watched = self.watched, False
        return rows if watched or self.is_copy else P._peek(rows, tokens, start, end)


class PeeksWhenOriginal(P.HonestCounter):
    """No hook at all: it remembers its own ``id`` and peeks only while it is that object, so every
    copy (the static audit's, the replays') is honest."""

    name = "peeks-when-original"

    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.home = id(self)

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        return P._peek(rows, tokens, start, end) if id(self) == self.home else rows


def _mentions(value, start, end, depth=0) -> set:
    """The positions in [start, end) that ``value`` (an int or a small container) names."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return {int(value)} if start <= value < end else set()
    if depth > 3 or isinstance(value, (str, bytes, np.ndarray)):
        return set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple, set)) else ()
    found = set()
    for v in list(items)[:10_000]:
        found |= _mentions(v, start, end, depth + 1)
    return found


class ReadsTheChecks(P.HonestCounter):
    """Looks for the spot checks' plans in the engine's objects (the loop's observers, reached by
    walking the interpreter's frames, and every object ``gc`` knows whose class says so) and
    peeks at its target everywhere they do not name; honest where it finds no spot checker (the
    static audit)."""

    name = "reads-the-checks"
    found: list = []  # what the live instance (not a copy) found, block by block

    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.home = id(self)

    @staticmethod
    def _watched(start, end):
        seen, f = set(), sys._getframe(1)
        observers = []
        while f is not None:
            for name, v in f.f_locals.items():
                observers += list(getattr(v, "observers", None) or [])
                if name in ("due", "checked", "positions"):
                    seen |= _mentions(v, start, end)
            f = f.f_back
        observers += [o for o in gc.get_objects() if "spot" in type(o).__name__.lower()]
        observers = [o for o in observers if "spot" in type(o).__name__.lower()]
        if not observers:
            return None
        for obs in observers:
            for k, v in vars(obs).items():  # plans are collections of positions (counters are not)
                if isinstance(v, (list, tuple, set, dict)) and not k.startswith("reports"):
                    seen |= _mentions(v, start, end)
        return seen - {start}  # a block's start is named by any record of the block

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        watched = self._watched(start, end)
        if watched is None:
            return rows
        if id(self) == self.home:
            ReadsTheChecks.found += sorted(watched)
        keep = rows.copy()
        rows = P._peek(rows, tokens, start, end)
        for t in watched:
            rows[t - start] = keep[t - start]
        return rows


class PeeksInARegion(P.HonestCounter):
    """Peeks at its target only on targets [lo, hi): a cheat confined to a share of the stream,
    in the live run and in every copy alike."""

    name = "peeks-in-a-region"

    def __init__(self, vocab_size, lo, hi):
        super().__init__(vocab_size)
        self.lo, self.hi = lo, hi

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        a, b = max(start, self.lo), min(end, self.hi)
        if a < b:
            rows[a - start:b - start] = P._peek(rows[a - start:b - start], tokens, a, b)
        return rows
