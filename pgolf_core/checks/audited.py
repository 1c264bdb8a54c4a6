"""``--audit``: the C1-C4 audit of the run's own components before the pass, and live spot checks
inside it (``pgolf_core.checks.audit``, ``pgolf_core.checks.spotcheck``). Both passing makes the run AUDITED."""

from __future__ import annotations

from ..errors import UsageError
from ..run.verdict import DEFAULT_SPOT_CHECKS, spot_check_lines, spot_reasons
from .base import Check, Finding


class Audited(Check):
    needs_strict = True

    def __init__(self, spot_checks: int = DEFAULT_SPOT_CHECKS):
        self.spot_checks = spot_checks

    def open(self, spec, checks) -> None:
        if spec.strict is False:
            raise UsageError("an audited result needs strict scoring: drop strict=False (--no-strict)")

    def before(self, run) -> None:
        from .audit import audit_components
        from ..run.session import setup_adapters
        from .spotcheck import SpotChecks

        twin, rebuilt = run.twin()  # before anything advances the run's components
        setup_adapters(twin)
        self.report = audit_components(run.comps, run.ctx, run.tokens, run.tokenizer, run.plugins, seed=run.spec.seed)
        self.spot = SpotChecks(run.n_tokens, self.spot_checks, twin=twin, rebuilt=rebuilt)

    def loop_observers(self, run) -> list:
        return [self.spot]

    def after(self, run, loop, summary: dict) -> Finding:
        report, spot = self.report, self.spot
        return Finding(
            checks=[f"C1-C4 and no hypercompression: audit of this run's components ({len(report.checks)} checks)",
                    *spot_check_lines(spot)],
            violations=[f"audit: {c.component} {c.rule}: {c.evidence}" for c in report.checks if c.status == "FAIL"]
            + [f"spot check: {v}" for v in spot.violations],
            reasons=spot_reasons(spot), level="audited",
            sections={"audit": report.to_dict(), "spot_checks": {**spot.to_dict(), "summary": spot_check_lines(spot)}},
            timings={"audit_seconds": report.seconds, "spot_check_seconds": spot.seconds,
                     "snapshot_seconds": spot.snapshot_seconds})
