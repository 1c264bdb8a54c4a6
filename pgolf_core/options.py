"""Parsing of plugin options, one definition for every plugin.

Options arrive as strings from the command line (``--mixer-opt eta=0.1``) or as Python values from
the API; every parser accepts both and raises a ``UsageError`` naming the component, the option,
what was expected and what was given, so a typo never becomes a wrong number. ``who`` is the
component as users see it, e.g. ``"mixer 'hedge'"``.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .errors import PluginError, UsageError


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


def parse_int(value, who: str, option: str, *, low: int = 0, high: Optional[int] = None) -> int:
    """An integer in [low, high]; ``"10000"`` or ``10000``, but not ``"1e4"`` or ``2.5``."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    if isinstance(value, (bool, float)):
        raise option_error(who, option, expected, value)
    try:
        x = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise option_error(who, option, expected, value) from None
    if (not isinstance(value, str) and x != value) or x < low or (high is not None and x > high):
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


# ----------------------------------------------------------------------------- declared options

KINDS = ("float", "int", "bool", "choice", "text")


@dataclass(frozen=True)
class Option:
    """One option of a plugin factory, declared once: its type, range, default and help.

    ``kind`` is ``float``, ``int``, ``bool``, ``choice`` (one of ``choices``) or ``text`` (any
    string, checked by the factory itself). ``low``/``high`` bound numbers (``low_open``/``high_open``
    exclude the bound).
    """

    kind: str
    default: Any
    help: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:  # caught when the plugin is imported, not when a user sets it
            raise PluginError(f"option kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def parse(self, value, who: str, name: str):
        """The typed value of ``value`` (a string from the command line or a Python value)."""
        if self.kind == "float":
            return parse_float(value, who, name, low=self.low, high=self.high, low_open=self.low_open,
                               high_open=self.high_open)
        if self.kind == "int":
            return parse_int(value, who, name, low=int(self.low) if self.low is not None else -(1 << 62),
                             high=None if self.high is None else int(self.high))
        if self.kind == "bool":
            return parse_bool(value, who, name)
        if self.kind == "choice":
            return parse_choice(value, who, name, self.choices)
        return value if not isinstance(value, str) else value.strip()  # text

    def describe(self) -> str:
        """One line for listings: kind, range, default and help."""
        what = {"choice": "|".join(self.choices)}.get(self.kind, self.kind)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        rng = f" {' and '.join(bounds)}" if bounds else ""
        return f"{what}{rng}, default {self.default!r}" + (f": {self.help}" if self.help else "")


def declared(who: str, **options: Option) -> Callable:
    """Decorator for a plugin factory ``factory(ctx, **options)``: its options, declared once.

    The wrapped factory parses every option it is given (command-line strings and Python values
    alike) before the factory runs, fills in the declared defaults, and leaves undeclared keyword
    parameters as they are. ``who`` names the component in messages (``"mixer 'hedge'"``). The
    registry lists the declarations (``pgolf-core experts|mixers|adapters``) and refuses an
    undeclared name with a "did you mean"."""

    def wrap(factory: Callable) -> Callable:
        params = inspect.signature(factory).parameters
        missing = [k for k in options if k not in params]
        if missing:
            raise PluginError(f"{who}: declared options {', '.join(missing)} are not parameters of "
                              f"{factory.__qualname__}")

        @functools.wraps(factory)
        def build(ctx, **given):
            typed = {k: (opt.parse(given[k], who, k) if k in given else opt.default) for k, opt in options.items()}
            rest = {k: v for k, v in given.items() if k not in options}
            return factory(ctx, **typed, **rest)

        build.__pgolf_options__ = dict(options)
        return build

    return wrap
