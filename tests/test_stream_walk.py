"""The stream-walk measure (``helpers.stream_walk``): its definitions on a toy package, and the walk
of a plain evaluation (``-s`` prints it)."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from helpers.stream_walk import Walk, record, walk_mode, wing


@pytest.fixture
def toy(tmp_path, monkeypatch):
    pkg = tmp_path / "pgolf_walktoy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(textwrap.dedent("""
        from . import b

        def start(tokens):
            head(tokens[:5])
            b.middle(tokens)
            untouched(len(tokens))
            return b.back(np.asarray(tokens, dtype=np.int64))

        def head(view):
            return view

        def untouched(n):
            return n

        def again(box):
            return box

        import numpy as np
    """))
    (pkg / "b.py").write_text(textwrap.dedent("""
        class Holder:
            def __init__(self, arr):
                self.arr = arr

        def middle(tokens):
            return Holder(tokens)

        def back(copy):
            from . import a
            return a.again({"k": copy})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("pgolf_walktoy.a")
    for name in [m for m in sys.modules if m.startswith("pgolf_walktoy")]:
        del sys.modules[name]


def test_the_toy_walk_counts_stops_and_returns(toy):
    tokens = np.arange(20, dtype=np.uint16)
    _, walk = record(toy.start, tokens, tokens)
    print(walk.format("toy"))
    names = [f for _, f in walk.calls]
    assert "untouched" not in names  # its argument does not hold the stream
    assert names == ["start", "head", "middle", "Holder.__init__", "back", "again"]  # a view, an object, a copy, a dict
    assert [s.module for s in walk.stops] == ["pgolf_walktoy.a", "pgolf_walktoy.b", "pgolf_walktoy.a"]
    assert walk.counts() == {"stops": 3, "modules": 2, "returns": 1}
    assert walk.wings().counts() == {"stops": 1, "modules": 1, "returns": 0}


def test_a_stream_of_other_content_is_not_recorded(toy):
    _, walk = record(toy.head, np.arange(20), np.arange(1, 21))
    assert walk.calls == []


def test_wings_and_collapse():
    assert wing("pgolf_core.run.spine") == "pgolf_core.run" and wing("pgolf_core.evaluate") == "pgolf_core.evaluate"
    assert wing("pgolf_ngram.bigram") == "pgolf_ngram"
    w = Walk([("x", "f"), ("x", "g"), ("y", "h"), ("x", "i"), ("y", "j")])
    assert [s.calls for s in w.stops] == [2, 1, 1, 1] and w.counts() == {"stops": 4, "modules": 2, "returns": 2}


def test_the_plain_walk_starts_at_evaluate_and_reaches_the_expert():
    res, walk = walk_mode("plain", 3000)
    print(walk.format("plain, modules"))
    print(walk.wings().format("plain, wings"))
    assert walk.stops and walk.stops[0].module == "pgolf_core.evaluate"
    assert any(m.startswith("pgolf_ngram") for m in walk.modules)
    # the call tree: the plain run's spine is data -> loop -> plugins -> results, the stream going down only
    print(walk.tree.format())
    tree = walk.tree
    assert tree.stops() == ["pgolf_core.evaluate", "pgolf_core.checks", "pgolf_core.run", "pgolf_core.stream", "pgolf_ngram"]
    assert tree.returns() == []
    # the always-on checks have walks of their own, attached to the run, not branches of the spine
    assert set(tree.parts()) == {"spine", "StreamFacts", "Tampering"}


def test_the_tree_counts_a_hand_back_up_as_a_return(toy):
    tokens = np.arange(20, dtype=np.uint16)
    _, walk = record(toy.start, tokens, tokens)  # a.start -> b.back -> a.again: b hands the stream back up to a
    def module(m):
        return m

    assert walk.tree.stops(group=module) == ["pgolf_walktoy.a", "pgolf_walktoy.b"]
    assert walk.tree.returns(group=module) == [("pgolf_walktoy.b", "pgolf_walktoy.a")]
    assert walk.tree.returns() == []  # one plugin is one wing: the stream never leaves it
