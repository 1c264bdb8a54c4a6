"""Builtin plugin of the engine itself: the uniform expert (the reference every score beats) and the
SentencePiece tokenizer format."""

from __future__ import annotations

import numpy as np

from .api import Expert
from .hookspecs import hookimpl


class UniformExpert(Expert):
    """p(y) = 1/V for every target: C1-C4 hold trivially; the code length is exactly log2(V) bits."""

    def score(self, tokens, start, end):
        return np.full(end - start, -np.log(self.vocab_size), dtype=np.float64)

    def distributions(self, tokens, start, end):
        return np.full((end - start, self.vocab_size), 1.0 / self.vocab_size, dtype=np.float64)

    def predict(self, tokens, t):
        """The same row for every target (stateless: ``observe`` stays the default no-op)."""
        return np.full(self.vocab_size, 1.0 / self.vocab_size, dtype=np.float64)


def make_uniform(ctx):
    return UniformExpert(ctx.vocab_size)


@hookimpl
def pgolf_register_experts(register):
    register("uniform", make_uniform, description="uniform distribution over the vocabulary")


@hookimpl
def pgolf_register_tokenizers(register):
    from .tokenizers import load_sentencepiece_tokenizer

    register("sentencepiece", load_sentencepiece_tokenizer, description="a SentencePiece .model file")
