"""Options declared once per factory (``pgolf_core.options.declared``): parsed, checked, listed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pgolf_core.api import BuildContext
from pgolf_core.errors import PluginError, UsageError
from pgolf_core.options import Option, declared


@declared("expert 'toy'", rate=Option("float", 0.5, "a rate", low=0.0, high=1.0, high_open=True),
          n=Option("int", 3, "a count", low=1, high=9), mode=Option("choice", "a", "a mode", choices=("a", "b")),
          on=Option("bool", False, "a switch"))
def make_toy(ctx, rate, n, mode, on, extra="kept"):
    return {"rate": rate, "n": n, "mode": mode, "on": on, "extra": extra}


def test_declared_options_arrive_typed_with_their_defaults():
    assert make_toy(None) == {"rate": 0.5, "n": 3, "mode": "a", "on": False, "extra": "kept"}
    assert make_toy(None, rate="0.25", n="9", mode=" B ", on="yes", extra="x") == {
        "rate": 0.25, "n": 9, "mode": "b", "on": True, "extra": "x"}


@pytest.mark.parametrize("bad, message", [
    ({"rate": "1"}, "rate must be a finite number >= 0.0 and < 1.0"),
    ({"rate": "nan"}, "rate must be a finite number"),
    ({"n": "10"}, "n must be an integer from 1 to 9"),
    ({"n": 2.0}, "n must be an integer"),
    ({"mode": "c"}, "mode must be one of a, b"),
    ({"on": "maybe"}, "on must be a boolean"),
])
def test_bad_values_are_usage_errors_naming_the_component(bad, message):
    with pytest.raises(UsageError, match=f"expert 'toy': option {message}"):
        make_toy(None, **bad)


def test_a_declaration_must_name_a_parameter():
    with pytest.raises(PluginError, match="not parameters"):
        declared("expert 'x'", typo=Option("int", 1))(lambda ctx, real=1: real)


def test_builtin_declarations_reach_the_registry_and_the_listing(plugins):
    entry = plugins.mixers.get("hedge")
    assert entry.declared()["eta"].kind == "float" and entry.options()["eta"] == 1.0
    with pytest.raises(UsageError, match="Did you mean 'eta'"):
        plugins.mixers.create("hedge", BuildContext(vocab_size=8, expert_names=("a", "b")), etaa="1")
    with pytest.raises(UsageError, match="option share must be"):
        plugins.mixers.create("hedge", BuildContext(vocab_size=8, expert_names=("a", "b")), share="1")
    from pgolf_core.cli import cli

    out = CliRunner().invoke(cli, ["mixers", "--json"])
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert rows["logistic"]["declared"]["context"].startswith("none|entropy|confidence, default 'none'")


# ----------------------------------------------------------------------------- list options

@declared("adapter 'toy'", sizes=Option("list", (1, 2), "sizes", item="int", low=1),
          names=Option("list", ("a",), "names", item="text", min_items=0, choices=("none",)))
def make_lists(ctx, sizes, names):
    return {"sizes": sizes, "names": names}


def test_a_list_option_is_parsed_from_comma_separated_text():
    assert make_lists(None) == {"sizes": (1, 2), "names": ("a",)}
    assert make_lists(None, sizes=" 3, 4 ,5", names="x,y") == {"sizes": (3, 4, 5), "names": ("x", "y")}
    assert make_lists(None, sizes=[7]) == {"sizes": (7,), "names": ("a",)}
    assert make_lists(None, names="NONE")["names"] == "none"  # a whole-value word passes through


@pytest.mark.parametrize("value, message", [
    ("3,x,5", "option sizes must be a comma-separated list of integers >= 1, got '3,x,5' (element 2, 'x', is not one)"),
    ("3,0", "(element 2, '0', is not one)"),
    ("3,,5", "(element 2 is empty)"),
])
def test_a_bad_element_is_named_with_the_option(value, message):
    with pytest.raises(UsageError, match="adapter 'toy'") as e:
        make_lists(None, sizes=value)
    assert message in str(e.value)


def test_an_empty_list_is_refused_unless_min_items_is_0():
    with pytest.raises(UsageError, match="option sizes must be .* with at least one element, got ''"):
        make_lists(None, sizes="")
    assert make_lists(None, names="")["names"] == ()


def test_a_list_option_needs_an_item_kind():
    with pytest.raises(PluginError, match="item kind"):
        Option("list", (), "no item kind")
    with pytest.raises(PluginError, match="for list options"):
        Option("int", 1, "an item kind on a number", item="int")
    assert Option("list", (1, 2), "sizes", item="int", low=1).describe() == "list of int >= 1, default '1,2': sizes"
