"""Registration of the builtin n-gram experts: unigram, bigram, trigram and ngram (any order 1-16).

Every one takes ``dtype=float64|float32``, the precision of its full distributions (default float64;
see ``NgramExpert``).

This module must import quickly: numba and the kernels are imported inside the factories.
"""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.options import Option, declared

MAX_ORDER = 16  # also enforced by pgolf_ngram.expert.NgramExpert


DTYPES = ("float64", "float32")


def _build(ctx, order: int, dtype: str):
    from .expert import NgramExpert

    return NgramExpert(ctx.vocab_size, order, dtype=dtype)


DTYPE = Option("choice", "float64", "precision of full distributions (float32: half the memory traffic)",
               choices=DTYPES)


@declared("expert 'unigram'", dtype=DTYPE)
def make_unigram(ctx, dtype):
    return _build(ctx, 1, dtype)


@declared("expert 'bigram'", dtype=DTYPE)
def make_bigram(ctx, dtype):
    return _build(ctx, 2, dtype)


@declared("expert 'trigram'", dtype=DTYPE)
def make_trigram(ctx, dtype):
    return _build(ctx, 3, dtype)


# Default 3: with Witten-Bell, order 3 has the best BPB both on the validation head (131K tokens) and
# on 4M FineWeb-sample tokens; higher orders spread mass over too many sparse contexts.
@declared("expert 'ngram'", order=Option("int", 3, "1 = unigram, 3 = trigram", low=1, high=MAX_ORDER), dtype=DTYPE)
def make_ngram(ctx, order, dtype):
    return _build(ctx, order, dtype)


def _seed(ctx, order, alpha, chunk, buckets=None, empty="seed"):
    from .seed import SEED_BUCKETS, SeedNgramExpert

    return SeedNgramExpert(ctx.vocab_size, order, alpha=alpha, chunk=chunk,
                           buckets=SEED_BUCKETS if buckets is None else buckets, empty=empty)


CHUNK = Option("int", 131072, "targets between table updates (the seed's TTT chunk)", low=1)


@declared("expert 'pr700-unigram'", alpha=Option("float", 0.1, "additive smoothing", low=0.0, low_open=True),
          chunk=CHUNK)
def make_pr700_unigram(ctx, alpha, chunk):
    return _seed(ctx, 1, alpha, chunk)


@declared("expert 'pr700-bigram'", alpha=Option("float", 0.1, "additive smoothing", low=0.0, low_open=True),
          chunk=CHUNK)
def make_pr700_bigram(ctx, alpha, chunk):
    return _seed(ctx, 2, alpha, chunk)


@declared("expert 'pr700-trigram'", alpha=Option("float", 0.01, "additive smoothing", low=0.0, low_open=True),
          chunk=CHUNK, buckets=Option("int", 65536, "hash buckets of the (a, b) context", low=1),
          empty=Option("choice", "seed", "an empty bucket's row: the seed's clamp (sub-normalized, INVALID) or "
                       "uniform (legal)", choices=("seed", "uniform")))
def make_pr700_trigram(ctx, alpha, chunk, buckets, empty):
    return _seed(ctx, 3, alpha, chunk, buckets, empty)


@hookimpl
def pgolf_register_experts(register):
    wb = "online interpolated Witten-Bell"
    register("unigram", make_unigram, description=f"{wb} unigram (token frequencies)")
    register("bigram", make_bigram, description=f"{wb} bigram")
    register("trigram", make_trigram, description=f"{wb} trigram")
    register("ngram", make_ngram, description=f"{wb} n-gram of any order (option order=1..16, default 3)")
    # (all four: option dtype=float64|float32 for full distributions, default float64)
    seed = "PR #700's {}, updated once per chunk=131072 targets (pgolf_ngram.seed)"
    register("pr700-unigram", make_pr700_unigram, description=seed.format("add-0.1 unigram"))
    register("pr700-bigram", make_pr700_bigram, description=seed.format("add-0.1 bigram"))
    register("pr700-trigram", make_pr700_trigram,
             description=seed.format("hashed add-0.01 trigram (65,536 buckets)") +
             "; INVALID with the seed's empty=seed (sub-normalized), legal with empty=uniform")
