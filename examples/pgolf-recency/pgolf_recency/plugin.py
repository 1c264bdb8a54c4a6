"""Registration: pgolf-core calls these hooks; the declared options turn CLI strings into numbers."""

from pgolf_core import hookimpl
from pgolf_core.options import Option, declared


# Each option's type, default and range are stated here once: the factory receives parsed, checked
# values, `pgolf-core experts` lists them, and a bad value is refused before any work starts.
@declared(
    "expert 'recency'",
    decay=Option("float", 0.995, "per-token decay of the counts (memory ~ 1 / (1 - decay) tokens)",
                 low=0.0, high=1.0, low_open=True, high_open=True),
    alpha=Option("float", 8.0, "pseudo-count spread uniformly over the vocabulary", low=0.0, low_open=True),
)
def make_recency(ctx, decay, alpha):
    from .expert import RecencyExpert  # heavy imports go inside the factory

    return RecencyExpert(ctx.vocab_size, decay=decay, alpha=alpha)


@hookimpl
def pgolf_register_experts(register):
    register("recency", make_recency, description="exponentially decayed cache of recent tokens",
             aliases=["cache"])
