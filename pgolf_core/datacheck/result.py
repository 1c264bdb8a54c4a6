"""What a data check found: one ``CheckResult`` per check, gathered in a ``DataCheckResult``."""

from __future__ import annotations

from dataclasses import dataclass, field

OK, PROBLEM, PARTIAL, SKIPPED = "OK", "PROBLEM", "PARTIAL", "SKIPPED"


@dataclass
class CheckResult:
    """One check: its name, a status and a one-line summary of the figures, and the figures."""

    name: str
    status: str  # OK, PROBLEM, PARTIAL (coverage of a deliberately partial stream) or SKIPPED
    summary: str
    figures: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.name:<9} {self.status:<8} {self.summary}"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "summary": self.summary, "figures": self.figures}


@dataclass
class DataCheckResult:
    """Every check that ran, in order. ``exit_code``: 0 clean, 1 a problem was found."""

    checks: list
    inputs: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status != PROBLEM for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def __getitem__(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def lines(self) -> list:
        return [c.line() for c in self.checks]

    def to_dict(self) -> dict:
        return {"schema": "pgolf-core/data-check", "version": 1, "ok": self.ok, "inputs": self.inputs,
                "checks": {c.name: c.to_dict() for c in self.checks}}
