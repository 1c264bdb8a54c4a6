"""Registration: pgolf-core calls these hooks; the factory turns CLI strings into numbers."""

from pgolf_core import hookimpl


def make_recency(ctx, decay=0.995, alpha=8.0):
    from .expert import RecencyExpert  # heavy imports go inside the factory

    return RecencyExpert(ctx.vocab_size, decay=float(decay), alpha=float(alpha))


@hookimpl
def pgolf_register_experts(register):
    register("recency", make_recency, description="exponentially decayed cache of recent tokens",
             aliases=["cache"])
