"""What a check is: an object attached to a run, with a small interface the spine calls in order.

``open(spec, checks)`` before any plugin is imported (refuse a combination, pin files);
``before(run)`` once the components are built and before the loop (copy them, audit them);
``loop_observers(run)`` the loop observers it adds (``before_step``/``on_step`` per block);
``drive(run, loop)`` for the one check that drives the loop itself (resume), else the loop runs
plainly; ``after(run, loop, summary)`` returns its ``Finding``: what it checked, what it found and
the level it vouches for. A new verification is a new module in this package, not a branch in
``evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Finding:
    """One check's part of the verdict (``pgolf_core.run.verdict.combine``)."""

    checks: list = field(default_factory=list)  # what ran, in words
    violations: list = field(default_factory=list)  # what broke a rule: any one makes the run INVALID
    reasons: list = field(default_factory=list)  # why the check, finding nothing, still vouches for nothing
    level: Optional[str] = None  # the level it vouches for when nothing was violated ("audited", "proven", ...)
    sections: dict = field(default_factory=dict)  # its report in the validity section ("audit", "proof", ...)
    timings: dict = field(default_factory=dict)  # seconds it spent, for the results' timings
    results: dict = field(default_factory=dict)  # fields of the results it fills (e.g. data_checks)


class Check:
    """A check with every hook doing nothing: subclasses override what they need."""

    needs_strict = False  # scores read from the mixture's full distributions (the audit, the proof)
    drives = False  # drives the loop itself (at most one check of a run may)

    def open(self, spec, checks) -> None:
        pass

    def before(self, run) -> None:
        pass

    def loop_observers(self, run) -> list:
        return []

    def drive(self, run, loop) -> None:
        raise NotImplementedError

    def after(self, run, loop, summary: dict) -> Finding:
        return Finding()
