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


def parse_list(value, who: str, option: str, parse_item: Callable, expected: str, *, min_items: int = 1,
               words: Sequence[str] = (), expect: str = ""):
    """A comma-separated list (``"a,b,c"``) or a list/tuple, each element parsed by
    ``parse_item(element)``; returns a tuple, or the word itself when the whole value is one of
    ``words`` (``"uniform"``, ``"none"``). A bad element is named with its position; fewer than
    ``min_items`` elements (an empty value) is refused when ``min_items`` > 0. ``expect`` replaces
    "a comma-separated list of <expected>" in messages."""
    if isinstance(value, str) and value.strip().lower() in words:
        return value.strip().lower()
    what = (expect or f"a comma-separated list of {expected}") + (f" (or {', '.join(words)})" if words else "")
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise option_error(who, option, what, value)
    out = []
    for i, item in enumerate(items, 1):
        if isinstance(item, str) and not item:
            raise UsageError(f"{who}: option {option} must be {what}, got {value!r} (element {i} is empty)")
        try:
            out.append(parse_item(item))
        except UsageError:
            raise UsageError(f"{who}: option {option} must be {what}, got {value!r} "
                             f"(element {i}, {item!r}, is not one)") from None
    if len(out) < min_items:
        least = "at least one element" if min_items == 1 else f"at least {min_items} elements"
        raise UsageError(f"{who}: option {option} must be {what} with {least}, got {value!r}")
    return tuple(out)


# ----------------------------------------------------------------------------- declared options

KINDS = ("float", "int", "bool", "choice", "text", "list")
ITEM_KINDS = ("float", "int", "text")  # what the elements of a list option may be


@dataclass(frozen=True)
class Option:
    """One option of a plugin factory, declared once: its type, range, default and help.

    ``kind`` is ``float``, ``int``, ``bool``, ``choice`` (one of ``choices``), ``text`` (any
    string, checked by the factory itself) or ``list``: comma-separated elements of kind ``item``
    (``float``, ``int`` or ``text``), parsed to a tuple, at least ``min_items`` of them; for a list,
    ``choices`` are whole-value words passed through as they are (``"uniform"``). ``low``/``high``
    bound numbers, a list's elements included (``low_open``/``high_open`` exclude the bound).

    The factory receives the parsed value (the default when the option is not given), so defaults
    and ranges are stated here once and the component does not check them again.
    """

    kind: str
    default: Any
    help: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    item: str = ""  # list: the kind of each element
    min_items: int = 1  # list: fewest elements (0 lets an empty value through as ())
    expect: str = ""  # list: what messages say is expected, when "a comma-separated list of ..." is too little

    def __post_init__(self):
        if self.kind not in KINDS:  # caught when the plugin is imported, not when a user sets it
            raise PluginError(f"option kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "list" and self.item not in ITEM_KINDS:
            raise PluginError(f"a list option's item kind must be one of {', '.join(ITEM_KINDS)}, got {self.item!r}")
        if self.kind != "list" and self.item:
            raise PluginError(f"item={self.item!r} is for list options, not {self.kind!r}")

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
        if self.kind == "list":
            element = Option(self.item, None, low=self.low, high=self.high, low_open=self.low_open,
                             high_open=self.high_open)
            expected = {"float": "finite numbers", "int": "integers", "text": "names"}[self.item] + self._bounds()
            return parse_list(value, who, name, lambda v: element.parse(v, who, name), expected,
                              min_items=self.min_items, words=self.choices, expect=self.expect)
        return value if not isinstance(value, str) else value.strip()  # text

    def _bounds(self) -> str:
        """`` >= 1 and < 2``: the range, as listings and messages write it ("" when unbounded)."""
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f" {' and '.join(bounds)}" if bounds else ""

    def describe(self) -> str:
        """One line for listings: kind, range, default and help."""
        what = {"choice": "|".join(self.choices), "list": f"list of {self.item}"}.get(self.kind, self.kind)
        default = self.default
        if self.kind == "list" and isinstance(default, tuple):  # as it is written on the command line
            default = ",".join(str(v) for v in default)
        return f"{what}{self._bounds()}, default {default!r}" + (f": {self.help}" if self.help else "")


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
