"""Option parsing for the adapters: command-line values arrive as strings and are checked here.

Every parser names the adapter and the option in its error, so a typo never becomes a wrong number.
"""

from __future__ import annotations

from pgolf_core.errors import UsageError


def _fail(adapter: str, option: str, expected: str, value) -> UsageError:
    return UsageError(f"adapter {adapter!r}: option {option} must be {expected}, got {value!r}")


def as_int(adapter: str, option: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise _fail(adapter, option, f"an integer >= {minimum}", value)
    try:
        out = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise _fail(adapter, option, f"an integer >= {minimum}", value) from None
    if out < minimum or (isinstance(value, float) and value != out):
        raise _fail(adapter, option, f"an integer >= {minimum}", value)
    return out


def as_float(adapter: str, option: str, value, minimum: float = 0.0, maximum: float = float("inf"),
             open_min: bool = False) -> float:
    if isinstance(value, bool):
        raise _fail(adapter, option, "a number", value)
    try:
        out = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _fail(adapter, option, "a number", value) from None
    low_ok = out > minimum if open_min else out >= minimum
    if not (low_ok and out <= maximum) or out != out:
        bound = f"{'>' if open_min else '>='} {minimum}" + (f" and <= {maximum}" if maximum != float("inf") else "")
        raise _fail(adapter, option, f"a number {bound}", value)
    return out


def as_bool(adapter: str, option: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _fail(adapter, option, "true or false (1/0, yes/no)", value)


def as_choice(adapter: str, option: str, value, choices) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise _fail(adapter, option, "one of " + ", ".join(choices), value)
    return text


def as_names(adapter: str, option: str, value) -> tuple:
    """A comma-separated list of names (or a list/tuple of names), at least one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if not names:
        raise _fail(adapter, option, "a comma-separated list of names", value)
    return names
