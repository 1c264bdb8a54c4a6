"""Verdict levels: how much a printed BPB can be trusted, weakest to strongest.

- ``invalid``: a runtime guard fired (a log-probability above 0, a row whose mass is off), a
  component is known to break a rule, the audit or a live spot check failed, or a round trip failed.
- ``unchecked``: only the runtime guards ran. Nothing says the predictions were causal.
- ``audited``: strict scoring, and the C1-C4 audit passed on this run's own components built with
  this run's context, and the live spot checks inside the pass found nothing.
- ``decoded``: the stream was coded into a file and decoded back token for token, but the decoder
  could not be sandboxed on this machine (no Landlock, or no seccomp table): a plugin in it could
  have read the data. The reason is stated.
- ``proven``: the stream was coded from the mixture's distributions into a file and decoded back
  from that file alone by a sandboxed process that could not reach the data (``pgolf_core.proof``),
  and the score computed from the file without any plugin agrees with the printed one: the file's
  size is the score.
"""

from __future__ import annotations

from typing import Optional

LEVELS = ("invalid", "unchecked", "audited", "decoded", "proven")


def make_verdict(guards, *, strict: bool, audit=None, spot=None, proof: Optional[dict] = None) -> dict:
    """The ``validity`` section of a result: level, violations, the checks that ran and their reports."""
    violations = list(guards.violations)
    checks = list(guards.checks)
    if audit is not None:
        checks.append(f"C1-C4 and no hypercompression: audit of this run's components ({len(audit.checks)} checks)")
        violations += [f"audit: {c.component} {c.rule}: {c.evidence}" for c in audit.checks if c.status == "FAIL"]
    if spot is not None:
        checks.append(f"C1-C3 live spot checks at {len(spot.reports)} secret positions")
        violations += [f"spot check: {v}" for v in spot.violations]
    if proof is not None:
        box = proof.get("sandbox", {})
        how = (f"in a sandbox ({box.get('mechanism')}, Landlock ABI {box.get('abi')})" if box.get("enforced")
               else f"without a sandbox ({box.get('reason') or 'not available'})")
        checks.append(f"round trip: decoded from the compressed file alone, {how}; scored from the file without plugins")
        if not proof.get("ok"):
            violations.append(f"round trip failed: {proof.get('error')}")
    if violations:
        level = "invalid"
    elif proof is not None:
        level = proof.get("level") or "decoded"
    elif audit is not None and spot is not None and strict:
        level = "audited"
    else:
        level = "unchecked"
    return {"level": level, "valid": not violations, "violations": violations, "checks": checks, "strict": bool(strict),
            "audit": None if audit is None else audit.to_dict(),
            "spot_checks": None if spot is None else spot.to_dict(),
            "proof": proof}
