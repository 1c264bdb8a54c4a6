"""Registers the decodable planted experts by name (the compressor rebuilds components by name)."""

from pgolf_core import hookimpl

import planted


@hookimpl
def pgolf_register_experts(register):
    register("decodable-counter", lambda ctx: planted.DecodableCounter(ctx.vocab_size), description="test: honest")
    register("noisy-decodable", lambda ctx: planted.NoisyDecodable(ctx.vocab_size), description="test: nondeterministic")
    register("seeded-at-build", lambda ctx: planted.SeededAtBuild(ctx.vocab_size),
             description="test: noise from a generator seeded, unseeded, at build time")
    register("honest", lambda ctx: planted.HonestCounter(ctx.vocab_size), description="test: the honest control")
    register("kernel-counter", lambda ctx, mode="honest": planted.KernelCounter(ctx.vocab_size, mode),
             description="test: the counter with a compiled step (mode honest, spy or heavy)")
