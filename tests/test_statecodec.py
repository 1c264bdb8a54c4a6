"""statecodec: an object graph goes to JSON and arrays and comes back equal, with its shared
references; what is not data (a lock, a lambda, a class of another package) is refused at save time
with the path to it; a tree naming code outside the allowed modules is refused without running it."""

from __future__ import annotations

import collections
import json
import math
import threading

import numpy as np
import pytest

from pgolf_core.run.loop import Guards
from pgolf_core.checks.statecodec import Allowed, Malformed, UnsavableState, decode, encode

ALLOWED = Allowed({"pgolf_core", "pgolf_ngram", "pgolf_ttt", "test_statecodec"})


def round_trip(roots: dict, allowed: Allowed = ALLOWED) -> dict:
    """Encode, go through JSON text (as the file does), decode."""
    tree, arrays = encode(roots, allowed)
    tree = json.loads(json.dumps(tree, allow_nan=False))
    copies = [np.array(a, copy=True) for a in arrays]  # the decoder gets arrays of its own
    return decode(tree, lambda i, path: copies[i], allowed)


class Slotted:
    __slots__ = ("a", "b")


def test_plain_data_comes_back_equal_with_shared_references_and_cycles():
    shared = [1, 2]
    cyclic: list = []
    cyclic.append(cyclic)
    dd = collections.defaultdict(list, {"x": [1]})
    data = {"ints": [0, -5, 10**30], "floats": [0.1, -0.0, math.inf, -math.inf, 1e-300], "s": "é", "none": None,
            "t": (1, "a", (2.5,)), "set": {3, 4}, "fs": frozenset({"a"}), "b": b"\x00\xff", "ba": bytearray(b"ab"),
            "c": complex(1, -2), "od": collections.OrderedDict([("z", 1), ("a", 2)]), "dd": dd,
            (1, 2): "tuple key", 7: "int key", "shared": [shared, shared], "cyclic": cyclic}
    back = round_trip({"d": data})["d"]
    for k in ("ints", "s", "none", "t", "set", "fs", "b", "ba", "c", "od", (1, 2), 7):
        assert back[k] == data[k] and type(back[k]) is type(data[k])
    assert back["floats"][:4] == data["floats"][:4] and math.copysign(1, back["floats"][1]) == -1
    assert back["floats"][4] == 1e-300
    assert list(back["od"]) == ["z", "a"]
    assert back["dd"].default_factory is list and back["dd"]["new"] == []
    assert back["shared"][0] is back["shared"][1]
    assert back["cyclic"][0] is back["cyclic"]
    nan = round_trip({"x": math.nan})["x"]
    assert math.isnan(nan)


def test_numpy_arrays_scalars_and_dtypes():
    ro = np.arange(6, dtype=np.int32).reshape(2, 3)
    ro.flags.writeable = False
    f = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    back = round_trip({"a": [ro, f, ro, np.float32(1.5), np.int64(-3), np.dtype("<u2"), np.array("text")]})["a"]
    assert np.array_equal(back[0], ro) and back[0].dtype == np.int32 and not back[0].flags.writeable
    assert back[0] is back[2]
    assert np.array_equal(back[1], f)
    assert type(back[3]) is np.float32 and back[3] == 1.5 and type(back[4]) is np.int64 and back[4] == -3
    assert back[5] == np.dtype("<u2") and back[6] == np.array("text")


def test_objects_of_allowed_classes_and_functions_by_name():
    from pgolf_ngram import kernels

    g = Guards()
    g.violation("k", "message")
    s = Slotted()
    s.a = g
    back = round_trip({"g": g, "s": s, "fn": kernels.slot_of, "cls": Guards, "again": g})
    assert type(back["g"]) is Guards and back["g"].violations == ["message"] and back["g"]._seen == {"k"}
    assert back["s"].a is back["g"] and back["again"] is back["g"] and not hasattr(back["s"], "b")
    assert back["fn"] is kernels.slot_of and back["cls"] is Guards  # a numba dispatcher, a class


def test_tensors_keep_dtype_layout_grad_flag_version_and_identity():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.randn(3, 4))
    with torch.no_grad():
        p.mul_(2.0)
        p.add_(1.0)  # version 2
    bf = torch.randn(5, dtype=torch.bfloat16)
    perm = torch.randn(4, 3).t()  # a permuted layout
    plain = torch.arange(6, dtype=torch.int64)
    plain.tag = "kept"
    opt = torch.optim.AdamW([p], lr=1e-3)
    p.grad = torch.ones_like(p)
    opt.step()
    module = torch.nn.Linear(2, 2)
    back = round_trip({"p": p, "bf": bf, "perm": perm, "plain": plain, "opt": opt, "module": module,
                       "dt": torch.bfloat16, "dev": torch.device("cpu"), "size": torch.Size([2, 3])})
    bp = back["p"]
    assert type(bp) is torch.nn.Parameter and bp.requires_grad and torch.equal(bp, p) and bp._version == p._version
    assert bp.grad is None  # gradients are not state (as a pickle, a resume point never held them)
    assert back["bf"].dtype == torch.bfloat16 and torch.equal(back["bf"], bf)
    assert back["perm"].stride() == perm.stride() and torch.equal(back["perm"], perm)
    assert back["plain"].tag == "kept" and torch.equal(back["plain"], plain)
    state = back["opt"].state[back["opt"].param_groups[0]["params"][0]]
    assert back["opt"].param_groups[0]["params"][0] is bp  # the optimizer steps the restored parameter
    assert torch.equal(state["exp_avg"], opt.state[p]["exp_avg"])
    assert torch.equal(back["module"](torch.ones(2)), module(torch.ones(2)))
    assert back["dt"] is torch.bfloat16 and back["dev"] == torch.device("cpu") and back["size"] == torch.Size([2, 3])


def test_hooks_held_by_handles_survive():
    torch = pytest.importorskip("torch")
    from pgolf_ttt.lora import LoRADelta, _AddDelta

    lin = torch.nn.Linear(4, 4)
    delta = LoRADelta(lin, 2, 4.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        delta.B.fill_(0.5)
    handle = lin.register_forward_hook(_AddDelta(delta))
    back = round_trip({"lin": lin, "handle": handle, "delta": delta})
    x = torch.ones(1, 4)
    assert torch.equal(back["lin"](x), lin(x))
    back["handle"].remove()  # the handle's weak references point at the restored module's hooks
    assert torch.equal(back["lin"](x), torch.nn.functional.linear(x, lin.weight, lin.bias))


@pytest.mark.parametrize("value, path, what", [
    ({"_lock": threading.Lock()}, "experts[0]._lock", "_thread.lock"),
    ({"fn": lambda x: x}, "experts[0].fn", "a lambda or nested function"),
    ({"frac": __import__("fractions").Fraction(1, 3)}, "experts[0].frac", "fractions.Fraction"),
    ({"obj": np.array([object()])}, "experts[0].obj", "dtype object"),
    ({"sub": collections.Counter()}, "experts[0].sub", "subclass of a builtin"),
])
def test_what_is_not_data_is_refused_at_save_time_with_its_path(value, path, what):
    g = Guards()
    g.__dict__.update(value)
    with pytest.raises(UnsavableState, match="cannot save a resume point") as info:
        encode({"experts": [g]}, ALLOWED)
    assert f"{path} is" in str(info.value) and what in str(info.value) and "\n" not in str(info.value)


def test_a_class_outside_the_allowed_packages_is_refused_at_save_time():
    g = Guards()
    with pytest.raises(UnsavableState, match="mixer is a pgolf_core.run.loop.Guards"):
        encode({"mixer": g}, Allowed({"pgolf_ngram"}))


MARKER: list = []


class Sneaky:
    """What a crafted file would like to be built: making one has a side effect we can see."""

    def __new__(cls):
        MARKER.append("constructed")
        return super().__new__(cls)


def _tree(node) -> dict:
    return {"objects": [node], "roots": {"x": {"ref": 0}}}


@pytest.mark.parametrize("node, message", [
    ({"t": "object", "class": "test_statecodec:Sneaky", "dict": {}, "slots": []}, "outside pgolf_core"),
    ({"t": "object", "class": "subprocess:Popen", "dict": {"args": "touch x"}, "slots": []}, "outside pgolf_core"),
    ({"t": "global", "name": "os:system"}, "outside pgolf_core"),
    ({"t": "global", "name": "builtins:eval"}, "outside pgolf_core"),
    ({"t": "global", "name": "pgolf_core.checks.resume:os"}, "is not a class or function"),
    ({"t": "global", "name": "pgolf_core.run.loop:np.ndarray"}, "not looked up in a class"),
    ({"t": "ddict", "factory": "os:getcwd", "items": []}, "outside pgolf_core"),
    ({"t": "pickle", "data": "gASV"}, "unknown type tag 'pickle'"),
    ({"t": "list", "items": [{"ref": 5}]}, "reference 5 is not a node index"),
    ({"t": "tuple", "items": [{"ref": 0}]}, "contains itself"),
    ({"t": "npdtype", "dtype": "|O"}, "not a plain number"),
    ({"t": "object", "class": "pgolf_core.run.loop:Guards", "dict": [], "slots": []}, "'dict' is not a JSON object"),
])
def test_a_crafted_tree_is_refused_and_nothing_it_names_runs(node, message):
    allowed = Allowed({"pgolf_core", "pgolf_ngram"})  # not this test module: a crafted class comes from outside
    MARKER.clear()
    with pytest.raises(Malformed, match=message) as info:
        try:
            decode(_tree(node), lambda i, path: None, allowed)
        finally:
            assert MARKER == []  # Sneaky.__new__ never ran, refused or not
    assert "\n" not in str(info.value)


def test_an_allowed_class_is_built_without_its_constructor():
    MARKER.clear()
    out = decode(_tree({"t": "object", "class": "test_statecodec:Sneaky", "dict": {"a": 1}, "slots": []}),
                 lambda i, path: None, Allowed({"test_statecodec"}))
    # cls.__new__(cls) is the class's own code, allowed here; __init__ and __setstate__ are never called
    assert type(out["x"]) is Sneaky and out["x"].a == 1 and MARKER == ["constructed"]


@pytest.mark.parametrize("node, match", [
    ({"shape": [4]}, r"a torch.float32 tensor of shape \[4\] stored as float32 \[3\]"),
    ({"dtype": "bfloat16"}, r"a torch.bfloat16 tensor of shape \[3\] stored as float32 \[3\] \(expected uint16 \[3\]\)"),
    ({"dtype": "system"}, "'system' is not a torch dtype"),
    ({"stride": [2]}, r"stride \[2\] is not a dense layout of shape \[3\]"),
    ({"device": "nowhere"}, "a tensor node that cannot be built"),
])
def test_a_tensor_node_that_disagrees_with_its_array_is_refused(node, match):
    pytest.importorskip("torch")
    good = {"t": "tensor", "dtype": "float32", "shape": [3], "device": "cpu", "requires_grad": False,
            "parameter": False, "version": 0, "array": 0, "attrs": None}
    decode(_tree(good), lambda i, path: np.zeros(3, np.float32), ALLOWED)  # the node as written
    with pytest.raises(Malformed, match=match):
        decode(_tree({**good, **node}), lambda i, path: np.zeros(3, np.float32), ALLOWED)
