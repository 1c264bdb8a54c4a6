"""The cheap data checks of the scored stream, recorded in every run's results.

Coverage and bytes of the stream (``datacheck.stream_checks``: vectorized, no decoding, a fraction
of a second on the full split). They inform the results; they never stop a run (``pgolf-core data
check`` is the command that fails on them)."""

from __future__ import annotations

from .base import Check, Finding


class StreamFacts(Check):
    def before(self, run) -> None:
        from ..datacheck import stream_checks
        from ..errors import PgolfError

        try:
            self.facts = stream_checks(run.tokens, run.table, run.tokenizer, run.counter)
        except (PgolfError, OSError, ValueError) as exc:
            self.facts = {"error": f"{type(exc).__name__}: {exc}"}

    def after(self, run, loop, summary: dict) -> Finding:
        return Finding(results={"data_checks": self.facts})
