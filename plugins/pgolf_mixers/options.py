"""Parsing and validation of mixer options.

Options arrive as strings from the command line (``--mixer-opt eta=0.1``) or as Python values from
the API; every parser accepts both and fails with a ``UsageError`` that names the mixer, the option,
what was expected and what was given.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from pgolf_core.errors import UsageError


def _fail(mixer: str, option: str, expected: str, value) -> UsageError:
    return UsageError(f"mixer {mixer!r}: option {option} must be {expected}, got {value!r}")


def parse_float(value, mixer: str, option: str, *, low: Optional[float] = None, high: Optional[float] = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A finite float in [low, high] (open ends when asked)."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    expected = "a finite number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, bool):
        raise _fail(mixer, option, expected, value)
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _fail(mixer, option, expected, value) from None
    bad = not math.isfinite(x)
    if low is not None:
        bad |= x <= low if low_open else x < low
    if high is not None:
        bad |= x >= high if high_open else x > high
    if bad:
        raise _fail(mixer, option, expected, value)
    return x


def parse_int(value, mixer: str, option: str, *, low: int = 0) -> int:
    """An integer >= low (``"10000"``, ``10000`` or ``1e4``-free: no float strings)."""
    expected = f"an integer >= {low}"
    if isinstance(value, bool):
        raise _fail(mixer, option, expected, value)
    try:
        x = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise _fail(mixer, option, expected, value) from None
    if not isinstance(value, str) and x != value:
        raise _fail(mixer, option, expected, value)
    if x < low:
        raise _fail(mixer, option, expected, value)
    return x


def parse_bool(value, mixer: str, option: str) -> bool:
    """``1/0``, ``true/false``, ``yes/no``, ``on/off`` or a Python bool."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _fail(mixer, option, "a boolean (1/0, true/false)", value)


def parse_choice(value, mixer: str, option: str, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise _fail(mixer, option, "one of " + ", ".join(choices), value)
    return text


def parse_vector(value, mixer: str, option: str, k: int, names: Sequence[str] = (), *,
                 positive: bool = False) -> np.ndarray:
    """K numbers, comma-separated (``"0.5,0.25,0.25"``) or a sequence; one per input of the mixer."""
    what = "positive numbers" if positive else "numbers"
    inputs = f" ({', '.join(names)})" if names else ""
    expected = f"{k} comma-separated {what}, one per input{inputs}"
    items = value.split(",") if isinstance(value, str) else value
    try:
        vec = np.array([float(str(v).strip()) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(mixer, option, expected, value) from None
    if vec.shape != (k,) or not np.all(np.isfinite(vec)) or (positive and np.any(vec <= 0)):
        raise _fail(mixer, option, expected, value)
    return vec


def input_count(ctx, mixer: str) -> int:
    """K, the number of inputs, from ``ctx.expert_names``."""
    k = len(ctx.expert_names)
    if k < 1:
        raise UsageError(f"mixer {mixer!r} needs at least one input (BuildContext.expert_names is empty)")
    return k
