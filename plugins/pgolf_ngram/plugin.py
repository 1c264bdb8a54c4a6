"""Registration of the builtin n-gram experts: unigram, bigram, trigram and ngram (any order 1-16).

Every one takes ``dtype=float64|float32``, the precision of its full distributions (default float64;
see ``NgramExpert``).

This module must import quickly: numba and the kernels are imported inside the factories.
"""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.errors import UsageError
from pgolf_core.options import parse_choice

MAX_ORDER = 16  # also enforced by pgolf_ngram.expert.NgramExpert


def parse_order(value, expert: str = "ngram") -> int:
    """Validate the ``order`` option (an int, or a string from the command line)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, bool):
        text = None  # True/False are not orders
    try:
        order = int(text) if isinstance(text, (int, str)) else None
    except ValueError:
        order = None
    if order is None or not 1 <= order <= MAX_ORDER:
        raise UsageError(
            f"expert {expert!r}: option order must be an integer from 1 to {MAX_ORDER} "
            f"(1 = unigram, 3 = trigram), got {value!r}"
        )
    return order


DTYPES = ("float64", "float32")


def parse_dtype(value, expert: str = "ngram") -> str:
    """Validate the ``dtype`` option (the precision of full distributions)."""
    return parse_choice(value, f"expert {expert!r}", "dtype", DTYPES)


def _build(ctx, order: int, dtype, expert: str):
    from .expert import NgramExpert

    return NgramExpert(ctx.vocab_size, order, dtype=parse_dtype(dtype, expert))


def make_unigram(ctx, dtype="float64"):
    return _build(ctx, 1, dtype, "unigram")


def make_bigram(ctx, dtype="float64"):
    return _build(ctx, 2, dtype, "bigram")


def make_trigram(ctx, dtype="float64"):
    return _build(ctx, 3, dtype, "trigram")


def make_ngram(ctx, order=3, dtype="float64"):
    # Default 3: with Witten-Bell, order 3 has the best BPB both on the validation head (131K tokens)
    # and on 4M FineWeb-sample tokens; higher orders spread mass over too many sparse contexts.
    return _build(ctx, parse_order(order), dtype, "ngram")


def _seed(ctx, order, expert, alpha, chunk, buckets=None, empty="seed"):
    from pgolf_core.options import parse_float, parse_int

    from .seed import EMPTY, SEED_BUCKETS, SeedNgramExpert

    who = f"expert {expert!r}"
    return SeedNgramExpert(ctx.vocab_size, order, alpha=parse_float(alpha, who, "alpha", low=0, low_open=True),
                           chunk=parse_int(chunk, who, "chunk", low=1),
                           buckets=SEED_BUCKETS if buckets is None else parse_int(buckets, who, "buckets", low=1),
                           empty=parse_choice(empty, who, "empty", EMPTY))


def make_pr700_unigram(ctx, alpha="0.1", chunk="131072"):
    return _seed(ctx, 1, "pr700-unigram", alpha, chunk)


def make_pr700_bigram(ctx, alpha="0.1", chunk="131072"):
    return _seed(ctx, 2, "pr700-bigram", alpha, chunk)


def make_pr700_trigram(ctx, alpha="0.01", chunk="131072", buckets="65536", empty="seed"):
    return _seed(ctx, 3, "pr700-trigram", alpha, chunk, buckets, empty)


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
