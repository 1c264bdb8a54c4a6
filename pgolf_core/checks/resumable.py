"""``--resume FILE``: the loop driven so that a long run can stop and continue to the same BPB
(``pgolf_core.checks.resume``): a resume point every ``every`` targets and at Ctrl-C."""

from __future__ import annotations

from ..errors import UsageError
from .base import Check, Finding


class Resumable(Check):
    drives = True

    def __init__(self, path, every=None):
        if every is not None and every < 1:
            raise UsageError("checkpoint_every needs a positive number of targets and resume=FILE (--resume) to write to")
        self.path, self.every = path, every

    def open(self, spec, checks) -> None:
        if any(c.needs_strict for c in checks):
            raise UsageError("a resumable run cannot also be audited or proven in the same pass; audit or prove it "
                             "separately")

    def drive(self, run, loop) -> None:
        from .resume import run_digest, run_resumable

        digest = run_digest(run.describe(), run.tokens)
        run_resumable(loop, run.tokens, run.spec.chunk_size, self.path, self.every or 0, digest,
                      run.spec.progress and run.is_main, run.plugins)

    def after(self, run, loop, summary: dict) -> Finding:
        return Finding()
