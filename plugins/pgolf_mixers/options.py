"""Parsing and validation of mixer options.

Options arrive as strings from the command line (``--mixer-opt eta=0.1``) or as Python values from
the API; every parser accepts both and fails with a ``UsageError`` that names the mixer, the option,
what was expected and what was given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pgolf_core.errors import UsageError
from pgolf_core.options import option_error, parse_bool, parse_choice, parse_float, parse_int  # noqa: F401


def parse_vector(value, who: str, option: str, k: int, names: Sequence[str] = (), *,
                 positive: bool = False) -> np.ndarray:
    """K numbers, comma-separated (``"0.5,0.25,0.25"``) or a sequence; one per input of the mixer."""
    what = "positive numbers" if positive else "numbers"
    inputs = f" ({', '.join(names)})" if names else ""
    expected = f"{k} comma-separated {what}, one per input{inputs}"
    items = value.split(",") if isinstance(value, str) else value
    try:
        vec = np.array([float(str(v).strip()) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        raise option_error(who, option, expected, value) from None
    if vec.shape != (k,) or not np.all(np.isfinite(vec)) or (positive and np.any(vec <= 0)):
        raise option_error(who, option, expected, value)
    return vec


def input_count(ctx, who: str) -> int:
    """K, the number of inputs, from ``ctx.expert_names``."""
    k = len(ctx.expert_names)
    if k < 1:
        raise UsageError(f"{who} needs at least one input (BuildContext.expert_names is empty)")
    return k
