"""Parsing and validation of mixer options.

Options arrive as strings from the command line (``--mixer-opt eta=0.1``) or as Python values from
the API; every parser accepts both and fails with a ``UsageError`` that names the mixer, the option,
what was expected and what was given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pgolf_core.errors import UsageError
from pgolf_core.options import Option, option_error, parse_bool, parse_choice, parse_float, parse_int  # noqa: F401

# Hedge's options, declared once: the registered factory parses them (``@declared``) and a
# ``HedgeMixer`` built directly takes its defaults from here, so no default is written twice.
HEDGE_OPTIONS = dict(
    eta=Option("float", 1.0, "learning rate: 1 is the Bayes mixture", low=0.0, low_open=True),
    prior=Option("list", "uniform", "starting weights: uniform, or K comma-separated positive numbers",
                 item="float", choices=("uniform",)),
    update=Option("choice", "token", "move the weights after every target or once per batch",
                  choices=("token", "batch")),
    share=Option("float", 0.0, "fixed share: after each update w <- (1 - share) w + share / K", low=0.0, high=1.0,
                 high_open=True),
    bias=Option("float", 0.0, "extra log-weight on the first input at the start"),
    batch_loss=Option("choice", "sum", "batch mode: the batch's summed or mean loss, or the seed's window loss",
                      choices=("sum", "mean", "window")),
    solo_first=Option("int", 0, "the first N targets are scored by the first input alone", low=0),
    # the seed's 32 windows x 64 scored targets
    batch=Option("int", 2048, "targets per batch update", low=1),
    window=Option("int", 2048, "batch_loss=window: positions per window", low=1),
    stride=Option("int", 64, "batch_loss=window: scored targets per window", low=1),
)


def parse_vector(value, who: str, option: str, k: int, names: Sequence[str] = (), *,
                 positive: bool = False) -> np.ndarray:
    """K numbers, comma-separated (``"0.5,0.25,0.25"``) or a sequence; one per input of the mixer."""
    what = "positive numbers" if positive else "numbers"
    inputs = f" ({', '.join(names)})" if names else ""
    expected = f"{k} comma-separated {what}, one per input{inputs}"
    if isinstance(value, str):  # a list option arrives parsed (a tuple); a caller may still hand text
        value = value.split(",")
    try:
        vec = np.array([float(str(v).strip()) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise option_error(who, option, expected, value) from None
    if vec.shape != (k,) or not np.all(np.isfinite(vec)) or (positive and np.any(vec <= 0)):
        raise option_error(who, option, expected, ",".join(str(v) for v in value) if isinstance(value, tuple) else value)
    return vec


def input_count(ctx, who: str) -> int:
    """K, the number of inputs, from ``ctx.expert_names``."""
    k = len(ctx.expert_names)
    if k < 1:
        raise UsageError(f"{who} needs at least one input (BuildContext.expert_names is empty)")
    return k
