"""Checks attached to a run (``base.Check``): each verification is one object in its own module.

``compose`` turns the keyword flags of ``evaluate`` (and the CLI's) into a ``RunSpec`` and the
checks they ask for; ``ALWAYS`` are the checks every run carries.
"""

from __future__ import annotations

from .audited import Audited
from .base import Check, Finding
from .proven import Proven
from .resumable import Resumable
from .stream_facts import StreamFacts
from .tampering import Tampering

ALWAYS = (StreamFacts, Tampering)  # every run: the stream's facts, and changes a plugin made to the engine


def compose(experts=(), *, audit: bool = False, spot_checks=None, prove: bool = False, proof_path=None, resume=None,
            checkpoint_every=None, **spec_options) -> tuple:
    """(``RunSpec``, checks) for ``evaluate``'s keyword form and the CLI's flags: ``audit`` (with
    ``spot_checks``), ``prove`` (keeping the file at ``proof_path``), ``resume`` (every
    ``checkpoint_every`` targets); every other keyword is a ``RunSpec`` field."""
    from ..errors import UsageError
    from ..run.spine import RunSpec
    from ..run.verdict import DEFAULT_SPOT_CHECKS

    spec = RunSpec(experts, **spec_options)
    if checkpoint_every is not None and resume is None:
        raise UsageError("checkpoint_every needs a positive number of targets and resume=FILE (--resume) to write to")
    checks = []
    if audit:
        checks.append(Audited(DEFAULT_SPOT_CHECKS if spot_checks is None else spot_checks))
    if prove:
        checks.append(Proven(proof_path))
    if resume is not None:
        checks.append(Resumable(resume, checkpoint_every))
    return spec, tuple(checks)


__all__ = ["ALWAYS", "Audited", "Check", "Finding", "Proven", "Resumable", "StreamFacts", "Tampering", "compose"]
