"""Registration of the entropy experts (imports nothing heavy: the experts live in ``experts.py``)."""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.options import Option, declared

SOURCE = Option("text", "neural", "the expert whose distributions are read (options for it: <source>_key=value)")


@declared("expert 'entropy'", source=SOURCE,
          buckets=Option("int", 8, "entropy buckets, each with its own fitted temperature", low=1))
def make_entropy(ctx, source, buckets, **source_options):
    """Legal: the source distribution re-tempered per entropy bucket, temperatures fitted online."""
    from .experts import EntropyTemperedExpert, build_source

    return EntropyTemperedExpert(build_source(ctx, "entropy", source, source_options), buckets=buckets)


@declared("expert 'pr700-entropy'", source=SOURCE)
def make_pr700_entropy(ctx, source, **source_options):
    """PR #700's entropy expert: NLL = H(source) for every token. Known invalid (C2)."""
    from .experts import PR700EntropyExpert, build_source

    return PR700EntropyExpert(build_source(ctx, "pr700-entropy", source, source_options))


@hookimpl
def pgolf_register_experts(register):
    register("entropy", make_entropy,
             description="source distribution re-tempered per entropy bucket (online fit); options prefixed "
                         "<source>_ go to the source, e.g. neural_checkpoint=...")
    register("pr700-entropy", make_pr700_entropy,
             description="INVALID legacy: PR #700's entropy expert, exp(-H) for every token (sums to V*exp(-H))")
