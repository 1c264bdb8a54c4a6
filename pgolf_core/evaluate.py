"""``evaluate(...)``: the Python API behind ``pgolf-core eval``.

The plain path: open the run (``pgolf_core.run.spine``: the stream, the built components), run the
one loop (``pgolf_core.run.loop``: chunks tile the targets ``1 .. N-1`` exactly once, the tail
included) and return the results. Every verification is a check attached to the run
(``pgolf_core.checks``); the verdict combines what the guards and the checks found
(``pgolf_core.run.verdict``).
"""

from __future__ import annotations

import time
from typing import Sequence

from .errors import UsageError

from .checks import ALWAYS, Check, compose
from .run.report import Results, collect_versions
from .run.spine import Run, RunSpec, open_run
from .run.session import DEFAULT_CHUNK, resolve_stream, run_context
from .run.verdict import combine

__all__ = ["DEFAULT_CHUNK", "RunSpec", "evaluate", "resolve_stream", "run_context"]


def evaluate(spec=(), checks: Sequence[Check] = (), **options) -> Results:
    """Score a token stream and return a ``Results`` (``bpb``, ``loss``, ``targets``, ``bytes``,
    ``expert_bpb``, ``weights``, ``level``, ...).

    ``spec`` is a ``RunSpec`` (what to run) and ``checks`` the verifications attached to the run
    (``pgolf_core.checks``). The keyword form ``evaluate(["bigram", "trigram"], mixer="hedge",
    audit=True, ...)`` takes the ``RunSpec`` fields and the flags ``audit``/``spot_checks``,
    ``prove``/``proof_path`` and ``resume``/``checkpoint_every``, and composes the same spec and
    checks as the CLI (``checks.compose``):

    - ``audit=True`` (strict by default) audits this run's own components with this run's context
      before the pass and spot-checks the live pass at secret positions (``spot_checks`` expected;
      ``pgolf_core.checks.spotcheck``): AUDITED when both pass, INVALID when one fails; ``spot_checks=0``
      leaves it UNCHECKED.
    - ``prove=True`` also codes the stream into a file (``proof_path``, or a temporary one) and
      decodes it back from the file alone in a sandbox (``pgolf_core.proof``): PROVEN when the tokens
      come back identical and the file's score agrees with this one.
    - ``resume=FILE`` writes a resume point of the whole loop state every ``checkpoint_every``
      targets and at Ctrl-C (which raises ``Interrupted``), and continues from FILE when it holds
      one of the same configuration and stream, to exactly the BPB of an uninterrupted run.

    Without checks the result is UNCHECKED: only the runtime guards ran. ``strict=True`` reads every
    score from the mixture's full distribution; ``sparse_rows`` (default) mixes the n-grams' sparse
    rows over groups of tokens outside strict scoring, to the same score (``pgolf_core.run.loop``).
    """
    if not isinstance(spec, RunSpec):
        if "experts" in options and spec:
            raise TypeError("evaluate() got the experts both positionally and as experts=")
        spec, checks = compose(options.pop("experts", spec), **options)
    elif options:
        raise TypeError(f"evaluate(RunSpec, checks) takes no other options, got {sorted(options)}")
    checks = [*(make() for make in ALWAYS), *checks]
    if sum(c.drives for c in checks) > 1:
        raise UsageError("only one check may drive the loop")
    for c in checks:
        c.open(spec, checks)
    run = open_run(spec, strict=any(c.needs_strict for c in checks))
    for c in checks:
        c.before(run)
    loop = run.loop([o for c in checks for o in c.loop_observers(run)])
    driver = next((c for c in checks if c.drives), None)
    if driver is not None:
        driver.drive(run, loop)
    else:
        loop.run(run.tokens, spec.chunk_size, spec.progress and run.is_main)
    summary = loop.summary()
    findings = [c.after(run, loop, summary) for c in checks]
    return _results(run, loop, summary, findings)


def _results(run: Run, loop, summary: dict, findings: list) -> Results:
    """The results of a finished run: the loop's sums, the verdict of its checks, its configuration."""
    comps, spec = loop.comps, run.spec  # the loop's: a resumed run restored its components into it
    extra = {k: v for f in findings for k, v in f.results.items()}
    return Results(
        **summary,
        validity=combine(loop.guards, strict=run.strict, findings=findings),
        config={
            "experts": [{"name": c.name, "label": c.label, "options": c.options, "resolved": e.describe()}
                        for c, e in zip(run.experts, comps.experts)],
            "mixer": None if comps.mixer is None else {"name": comps.mixer.name, "resolved": comps.mixer.describe()},
            "adapters": [{"name": c.name, "options": c.options, "resolved": a.describe()}
                         for c, a in zip(run.adapters, comps.adapters)],
            "data": run.dataset, "tokenizer": run.tokenizer, "bytes": run.counter.describe(),
            "chunk_size": spec.chunk_size, "limit": spec.limit, "trim_seq_len": spec.trim_seq_len, "device": spec.device,
            "seed": spec.seed, "allow_invalid": spec.allow_invalid, "world_size": run.ctx.world_size,
            "strict": run.strict, "grouped_rows": loop.grouped,
        },
        versions=collect_versions(run.plugins),
        timings={"total_seconds": time.perf_counter() - run.t_start, "build_seconds": run.build_seconds,
                 "loop_seconds": loop.loop_seconds, "components": loop.timers,
                 "expert_stats": {lb: e.stats() for lb, e in zip(comps.labels, comps.experts) if e.stats()},
                 "targets_per_second": loop.n_targets / max(loop.loop_seconds, 1e-12),
                 **{k: v for f in findings for k, v in f.timings.items()}},
        adapters={a.name: a.stats() for a in comps.adapters},
        **extra,
    )
