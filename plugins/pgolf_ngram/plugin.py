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


@hookimpl
def pgolf_register_experts(register):
    wb = "online interpolated Witten-Bell"
    register("unigram", make_unigram, description=f"{wb} unigram (token frequencies)")
    register("bigram", make_bigram, description=f"{wb} bigram")
    register("trigram", make_trigram, description=f"{wb} trigram")
    register("ngram", make_ngram, description=f"{wb} n-gram of any order (option order=1..16, default 3)")
    # (all four: option dtype=float64|float32 for full distributions, default float64)
