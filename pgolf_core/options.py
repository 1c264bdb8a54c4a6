"""Parsing of plugin options, one definition for every plugin.

Options arrive as strings from the command line (``--mixer-opt eta=0.1``) or as Python values from
the API; every parser accepts both and raises a ``UsageError`` naming the component, the option,
what was expected and what was given, so a typo never becomes a wrong number. ``who`` is the
component as users see it, e.g. ``"mixer 'hedge'"``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from .errors import UsageError


def option_error(who: str, option: str, expected: str, value) -> UsageError:
    return UsageError(f"{who}: option {option} must be {expected}, got {value!r}")


def parse_float(value, who: str, option: str, *, low: Optional[float] = None, high: Optional[float] = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A finite float in [low, high] (open ends when asked)."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    expected = "a finite number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, bool):
        raise option_error(who, option, expected, value)
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise option_error(who, option, expected, value) from None
    bad = not math.isfinite(x)
    if low is not None:
        bad |= x <= low if low_open else x < low
    if high is not None:
        bad |= x >= high if high_open else x > high
    if bad:
        raise option_error(who, option, expected, value)
    return x


def parse_int(value, who: str, option: str, *, low: int = 0) -> int:
    """An integer >= low; ``"10000"`` or ``10000``, but not ``"1e4"`` or ``2.5``."""
    expected = f"an integer >= {low}"
    if isinstance(value, bool):
        raise option_error(who, option, expected, value)
    try:
        x = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise option_error(who, option, expected, value) from None
    if (not isinstance(value, str) and x != value) or x < low:
        raise option_error(who, option, expected, value)
    return x


def parse_bool(value, who: str, option: str) -> bool:
    """``1/0``, ``true/false``, ``yes/no``, ``on/off`` or a Python bool."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise option_error(who, option, "a boolean (1/0, true/false)", value)


def parse_choice(value, who: str, option: str, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise option_error(who, option, "one of " + ", ".join(choices), value)
    return text


def parse_names(value, who: str, option: str) -> tuple:
    """A comma-separated list of names (or a list/tuple of names), at least one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if not names:
        raise option_error(who, option, "a comma-separated list of names", value)
    return names
