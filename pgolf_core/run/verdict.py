"""Verdict levels: how much a printed BPB can be trusted, weakest to strongest.

- ``invalid``: a runtime guard fired (a log-probability above 0, a row whose mass is off), a
  component is known to break a rule, the audit or a live spot check failed, or a round trip failed.
- ``unchecked``: only the runtime guards ran. Nothing says the predictions were causal.
- ``audited``: strict scoring, and the C1-C4 audit passed on this run's own components built with
  this run's context, and the live spot checks inside the pass (at least one target checked) found
  nothing. The verdict states their coverage: the targets replayed and the probability that a
  cheat confined to k targets escapes them (``pgolf_core.checks.spotcheck``). Without live spot checks
  (``spot_checks=0``) a run is at most ``unchecked``, with the reason in ``reasons``.
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
DEFAULT_SPOT_CHECKS = 32  # live spot checks expected in an audited run: a cheat on 10% of the targets escapes w.p. ~e^-3.2


SECTIONS = ("audit", "spot_checks", "proof")  # the reports a verdict carries (None when that check did not run)


def combine(guards, *, strict: bool, findings=()) -> dict:
    """The ``validity`` section of a result from the runtime guards and every check's ``Finding``
    (``pgolf_core.checks``): INVALID when anything was violated, else the highest level a check
    vouches for without a reason against it, else UNCHECKED (with the reasons)."""
    violations, checks, reasons, sections, levels = list(guards.violations), list(guards.checks), [], {}, []
    for f in findings:
        checks += f.checks
        violations += f.violations
        reasons += f.reasons
        sections.update(f.sections)
        if f.level and not f.reasons and (strict or f.level != "audited"):
            levels.append(f.level)
    level = "invalid" if violations else max(levels, key=LEVELS.index, default="unchecked")
    return {"level": level, "violations": violations, "checks": checks, "strict": bool(strict),
            "reasons": reasons if level == "unchecked" else [], **{k: sections.get(k) for k in SECTIONS}}


def spot_check_lines(spot) -> list:
    """What the live spot checks covered, in words (the verdict's checks and the printed table)."""
    c = spot.coverage()
    if not c["rate"]:
        return []
    share = c["targets_replayed"] / max(c["targets"], 1)
    escape = ", ".join(f"k = {e['k']:,}{'' if label == '1' else f' ({label})'}: {_probability(e['p'])}"
                       for label, e in c["escape"].items())
    twin = {True: "a second build from the factories", False: "a copy made before the run (components given as "
            "instances cannot be rebuilt)", None: "no second build"}[spot.twin_rebuilt]
    return [f"C1-C3 live spot checks: each target checked with probability {c['rate']:.3g} ({c['expected']} expected), "
            f"drawn after its block was scored; {c['positions']} positions checked, {c['blocks_replayed']} of "
            f"{c['blocks']} blocks replayed ({c['targets_replayed']:,} of {c['targets']:,} targets, {share:.1%})",
            f"a cheat confined to k targets escapes every spot check with probability {escape}",
            f"nondeterminism: the first block compared with {twin}"]


def spot_reasons(spot) -> list:
    """Why live spot checks that found nothing still do not make a run audited."""
    c = spot.coverage()
    if not c["rate"]:
        return ["no live spot check: --spot-checks 0 (spot_checks=0) leaves the live pass unchecked, and the audit "
                "of copies before the run cannot vouch for it"]
    if not c["positions"]:
        return [f"no live spot check fell on this run's {c['targets']:,} targets ({c['expected']} expected); "
                f"raise --spot-checks"]
    return []


def _probability(p: float) -> str:
    """A probability in three significant figures, or as 1 - x when it rounds to 1."""
    return f"{p:.3g}" if p < 0.9995 else f"1 - {1.0 - p:.3g}"
