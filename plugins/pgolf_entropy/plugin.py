"""Registration of the entropy experts (imports nothing heavy: the experts live in ``experts.py``)."""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.options import parse_int


def make_entropy(ctx, source: str = "neural", buckets: int = 8, **source_options):
    """Legal: the source distribution re-tempered per entropy bucket, temperatures fitted online."""
    from .experts import EntropyTemperedExpert, build_source

    src = build_source(ctx, "entropy", source, source_options)
    return EntropyTemperedExpert(src, buckets=parse_int(buckets, "expert 'entropy'", "buckets", low=1))


def make_pr700_entropy(ctx, source: str = "neural", **source_options):
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
