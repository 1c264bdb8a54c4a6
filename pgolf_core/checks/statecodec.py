"""An object graph as data: what a resume point holds, written and read without pickle.

``encode(roots, allowed)`` turns named roots into a JSON tree (``{"objects": [...], "roots": {...}}``)
and a list of NumPy arrays; ``decode(tree, array, allowed)`` builds the graph back. An object
referenced twice is one node, referenced twice, so identity survives (an adapter and the expert it
trains, a parameter and the optimizer state keyed by it).

What a node can be (its tag ``"t"``): list, tuple, set, frozenset, dict, OrderedDict, defaultdict
(its factory a builtin container type or an allowed function), bytes, bytearray, complex, NumPy
arrays, scalars and dtypes, torch tensors and parameters (values, dtype, strides, device,
``requires_grad``, version counter; dtypes NumPy lacks, bfloat16 among them, stored as their bits
in unsigned integers), torch dtypes, devices and sizes, weak references, enum members, functions,
classes and numba dispatchers (by their ``module:qualname``), and instances of allowed classes.
Booleans, integers, strings, None and finite floats are JSON values; other floats are tagged.

What runs when a file is read: nothing it names except what ``Allowed`` admits. A class or function
is looked up by ``module:qualname`` in pgolf_core, the packages of the loaded plugins and of the
run's components; torch classes only from ``torch.nn.modules``, ``torch.optim`` and
``torch.utils.hooks``. An instance is made with ``cls.__new__(cls)`` and its ``__dict__`` and slots
are set: no ``__reduce__``, ``__setstate__`` or constructor named by the file is called. Saving
uses a class's own ``__getstate__`` when it defines one (to leave out what belongs to the process,
as ``BuildContext`` leaves out the plugin manager); reading never calls anything on the state.
Methods of allowed classes later run on the restored data, as they do on any data the run reads.
"""

from __future__ import annotations

import base64
import collections
import enum
import importlib
import math
import sys
import types
import weakref

import numpy as np

from ..errors import PgolfError

TORCH_CLASS_PREFIXES = ("torch.nn.modules.", "torch.optim.")  # nn.Module and optimizer classes
TORCH_CLASS_MODULES = ("torch.utils.hooks",)  # RemovableHandle: what register_*_hook returns
FACTORIES = {f"builtins:{t.__name__}": t for t in (dict, list, set, tuple, int, float, str)}
FACTORIES["collections:OrderedDict"] = collections.OrderedDict
ARRAY_KINDS = "biufcSUmM"  # NumPy dtype kinds stored as they are: never objects or structured records
BIT_VIEWS = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}  # torch dtypes NumPy lacks, by item size


class UnsavableState(PgolfError):
    """Something in the state is not data the resume format can hold."""


class Malformed(Exception):
    """A tree or array that ``decode`` cannot take; ``path`` says where in the state."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path or 'the state'}: {message}")


class Allowed:
    """Where the classes and functions of a state may come from: ``roots`` are top-level packages
    (``pgolf_core``, the plugins'), torch contributes only its module and optimizer classes."""

    def __init__(self, roots):
        self.roots = frozenset(roots)

    def module_ok(self, module: str, is_class: bool) -> bool:
        if module.split(".")[0] in self.roots:
            return True
        return is_class and (module.startswith(TORCH_CLASS_PREFIXES) or module in TORCH_CLASS_MODULES)

    def name_of(self, obj) -> str | None:
        """``module:qualname`` of a class, function or numba dispatcher that resolves back to it."""
        target = getattr(obj, "py_func", obj) if _is_dispatcher(obj) else obj
        module, qual = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qual, str):
            return None
        name = f"{module}:{qual}"
        try:
            return name if self.resolve(name) is obj else None
        except LookupError:
            return None

    def resolve(self, name: str):
        """The class, function or dispatcher called ``name``; LookupError with the reason otherwise."""
        module, sep, qual = name.partition(":") if isinstance(name, str) else ("", "", "")
        if not (sep and module and qual) or "<" in qual:
            raise LookupError(f"{name!r} is not a module:qualname")
        if not self.module_ok(module, is_class=True):
            raise LookupError(f"{name!r} is outside pgolf_core, the loaded plugins and the allowed torch modules")
        obj = _module(module)
        for i, part in enumerate(qual.split(".")):
            if i and not isinstance(obj, type):
                raise LookupError(f"{name!r}: {part!r} is not looked up in a class")
            obj = getattr(obj, part, None)
        is_class = isinstance(obj, type)
        if not (is_class or isinstance(obj, types.FunctionType) or _is_dispatcher(obj)):
            raise LookupError(f"{name!r} is not a class or function")
        own = getattr(obj, "py_func", obj)
        if own.__module__ != module or own.__qualname__ != qual:
            raise LookupError(f"{name!r} is another name of {own.__module__}:{own.__qualname__}")
        if not self.module_ok(module, is_class):
            raise LookupError(f"{name!r}: only classes are taken from {module}")
        return obj


def _module(name: str):
    """An allowed module: imported already, or imported now (never a ``__main__``)."""
    if name in sys.modules:
        return sys.modules[name]
    if name.rsplit(".", 1)[-1] == "__main__":
        raise LookupError(f"module {name!r} is not imported")
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 -- any failure to import is a name this run cannot take
        raise LookupError(f"module {name!r} cannot be imported ({type(exc).__name__})") from None


def _is_dispatcher(obj) -> bool:
    return type(obj).__module__.startswith("numba.") and callable(getattr(obj, "py_func", None))


def _type_name(obj) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _slot_names(cls) -> list:
    names = []
    for c in cls.__mro__:
        slots = c.__dict__.get("__slots__", ())
        for s in [slots] if isinstance(slots, str) else slots:
            if s not in ("__dict__", "__weakref__") and s not in names:
                names.append(s)
    return names


def _own_getstate(cls) -> bool:
    """Whether ``cls`` takes its ``__getstate__`` from a class of its own world: object's and torch's
    (nn.Module's, Optimizer's: what their ``__setstate__`` completes again) are not used."""
    owner = next((c for c in cls.__mro__ if "__getstate__" in c.__dict__), object)
    return owner is not object and not owner.__module__.startswith("torch")


def _key_path(path: str, key) -> str:
    return f"{path}[{key!r}]" if type(key) in (str, int) else f"{path}[<{_type_name(key)} key>]"


def _torch():
    return sys.modules.get("torch")


def bit_view(torch, dtype):
    """The unsigned integer dtype a tensor of ``dtype`` is stored as, or None when NumPy has ``dtype``."""
    try:
        torch.empty(0, dtype=dtype).numpy()
        return None
    except TypeError:
        return getattr(torch, BIT_VIEWS[torch.empty(0, dtype=dtype).element_size()])


# ---------------------------------------------------------------------------------------- encoding

def encode(roots: dict, allowed: Allowed, *, dry: bool = False) -> tuple[dict, list]:
    """``({"objects": nodes, "roots": {name: value}}, arrays)`` for the graph under ``roots``;
    ``dry`` checks that everything can be saved without copying any tensor off its device."""
    enc = _Encoder(allowed, dry)
    out = {name: enc.value(obj, name) for name, obj in roots.items()}
    return {"objects": enc.nodes, "roots": out}, enc.arrays


class _Encoder:
    def __init__(self, allowed: Allowed, dry: bool):
        self.allowed, self.dry = allowed, dry
        self.nodes: list = []
        self.arrays: list = []
        self.memo: dict = {}  # id(obj) -> node index
        self.open: set = set()  # ids of immutable nodes being encoded (a cycle through one cannot be built)
        self.alive: list = []  # what was made while encoding (__getstate__ dicts): their ids stay theirs

    def fail(self, path: str, what: str):
        raise UnsavableState(f"cannot save a resume point: {path} is {what}")

    def value(self, obj, path: str):
        t = type(obj)
        if obj is None or t in (bool, int, str):
            return obj
        if t is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        key = id(obj)
        if key in self.memo:
            if key in self.open:
                self.fail(path, f"a {_type_name(obj)} that contains itself (through a mutable object)")
            return {"ref": self.memo[key]}
        index = self.memo[key] = len(self.nodes)
        self.nodes.append(None)
        self.nodes[index] = self.node(obj, path)
        return {"ref": index}

    def items(self, values, path: str, immutable_id=None) -> list:
        if immutable_id is not None:
            self.open.add(immutable_id)
        out = [self.value(v, f"{path}[{i}]") for i, v in enumerate(values)]
        self.open.discard(immutable_id)
        return out

    def node(self, obj, path: str) -> dict:
        t, torch = type(obj), _torch()
        if t in (list, set):
            return {"t": t.__name__, "items": self.items(obj, path)}
        if t in (tuple, frozenset):
            return {"t": t.__name__, "items": self.items(obj, path, id(obj))}
        if t in (dict, collections.OrderedDict, collections.defaultdict):
            return self.mapping(obj, path)
        if t in (bytes, bytearray):
            return {"t": t.__name__, "b64": base64.b64encode(bytes(obj)).decode()}
        if t is complex:
            return {"t": "complex", "re": repr(obj.real), "im": repr(obj.imag)}
        if t is np.ndarray:
            return self.ndarray(obj, path)
        if isinstance(obj, np.generic):
            self.check_dtype(obj.dtype, path)
            return {"t": "npscalar", "dtype": obj.dtype.str, "b64": base64.b64encode(obj.tobytes()).decode()}
        if isinstance(obj, np.dtype):
            self.check_dtype(obj, path)
            return {"t": "npdtype", "dtype": obj.str}
        if t is weakref.ReferenceType:
            self.open.add(id(obj))
            self.alive.append(obj())  # held while encoding: its id is not given to another object
            target = self.value(self.alive[-1], f"{path}()")
            self.open.discard(id(obj))
            return {"t": "weakref", "target": target}
        if torch is not None and (node := self.torch_node(torch, obj, path)) is not None:
            return node
        if isinstance(obj, (type, types.FunctionType)) or _is_dispatcher(obj):
            return {"t": "global", "name": self.name(obj, path)}
        if isinstance(obj, enum.Enum):
            return {"t": "enum", "class": self.name(t, path), "name": obj.name}
        return self.instance(obj, path)

    def name(self, obj, path: str) -> str:
        name = self.allowed.name_of(obj)
        if name is None:
            what = "class" if isinstance(obj, type) else "function"
            self.fail(path, f"the {what} {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)!s}, which "
                            f"is not found by its name in pgolf_core, a loaded plugin or the allowed torch modules "
                            f"(a lambda or nested function has no such name)")
        return name

    def mapping(self, obj, path: str) -> dict:
        node = {"t": {dict: "dict", collections.OrderedDict: "odict"}.get(type(obj), "ddict")}
        if node["t"] == "ddict":
            names = {v: k for k, v in FACTORIES.items()}
            factory = obj.default_factory
            node["factory"] = None if factory is None else names.get(factory) or self.name(factory, f"{path}.default_factory")
        node["items"] = [[self.value(k, _key_path(path, k) + "<key>"), self.value(v, _key_path(path, k))]
                         for k, v in obj.items()]
        return node

    def check_dtype(self, dtype, path: str) -> None:
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            self.fail(path, f"an array or NumPy value of dtype {dtype} (only plain numbers, booleans and strings are saved)")

    def ndarray(self, arr: np.ndarray, path: str) -> dict:
        self.check_dtype(arr.dtype, path)
        return {"t": "ndarray", "array": self.array(arr), "readonly": not arr.flags.writeable}

    def array(self, arr) -> int | None:
        if self.dry:
            return None
        self.arrays.append(arr)
        return len(self.arrays) - 1

    def torch_node(self, torch, obj, path: str):
        if isinstance(obj, torch.Tensor):
            return self.tensor(torch, obj, path)
        if isinstance(obj, torch.dtype):
            return {"t": "tdtype", "name": str(obj).removeprefix("torch.")}
        if isinstance(obj, torch.device):
            return {"t": "tdevice", "name": str(obj)}
        if type(obj) is torch.Size:
            return {"t": "tsize", "items": list(obj)}
        return None

    def tensor(self, torch, t, path: str) -> dict:
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            self.fail(path, f"a {_type_name(t)} (a tensor subclass other than nn.Parameter)")
        if t.layout != torch.strided or t.is_quantized or t.is_nested or t.device.type == "meta":
            self.fail(path, f"a {t.layout} / quantized / nested / meta tensor (only dense tensors are saved)")
        if t.grad_fn is not None:
            self.fail(path, "a tensor computed with autograd (not a leaf: detach it before keeping it)")
        view = bit_view(torch, t.dtype)
        node = {"t": "tensor", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "device": str(t.device), "requires_grad": bool(t.requires_grad),
                "parameter": isinstance(t, torch.nn.Parameter), "version": _version(t)}
        if not t.is_contiguous() and dense(t.shape, t.stride()):
            node["stride"] = list(t.stride())  # a permuted layout comes back permuted
        data = None if self.dry else t.detach().cpu().resolve_conj().resolve_neg().contiguous()
        node["array"] = self.array(None if data is None else (data.view(view) if view else data).numpy())
        attrs = t.__dict__
        node["attrs"] = self.value(attrs, f"{path}.__dict__") if attrs else None
        return node

    def instance(self, obj, path: str) -> dict:
        cls = type(obj)
        if isinstance(obj, (dict, list, tuple, set, frozenset, str, bytes, int, float, np.ndarray)):
            self.fail(path, f"a {_type_name(obj)} (a subclass of a builtin type or array)")
        if not self.allowed.module_ok(cls.__module__, is_class=True):
            self.fail(path, f"a {_type_name(obj)} (only data, pgolf_core's and loaded plugins' classes, torch modules "
                            f"and optimizers can be saved)")
        name = self.name(cls, path)
        if _own_getstate(cls):
            state = obj.__getstate__()
            if not isinstance(state, dict):
                self.fail(path, f"a {_type_name(obj)} whose __getstate__ returns a {type(state).__name__}, not a dict")
            self.alive.append(state)
        else:
            state = getattr(obj, "__dict__", None)
        slots = [[s, self.value(getattr(obj, s), f"{path}.{s}")] for s in _slot_names(cls) if hasattr(obj, s)]
        out = {"t": "object", "class": name, "slots": slots, "dict": None}
        if state is not None:
            bad = [k for k in state if type(k) is not str]
            if bad:
                self.fail(path, f"a {_type_name(obj)} with a non-string attribute name {bad[0]!r}")
            out["dict"] = {k: self.value(v, f"{path}.{k}") for k, v in state.items()}
        return out


def dense(shape, stride) -> bool:
    """Whether ``stride`` lays ``shape`` out without gaps or overlaps (a permutation of a contiguous layout)."""
    expected = 1
    for n, s in sorted(((n, s) for n, s in zip(shape, stride) if n != 1), key=lambda p: p[1]):
        if s != expected:
            return False
        expected *= n
    return True


def _version(t):
    """A tensor's version counter (stamps such as the cached scorer's compare them), None for an
    inference tensor, which has none."""
    try:
        return int(t._version)
    except RuntimeError:
        return None


# ---------------------------------------------------------------------------------------- decoding

def decode(tree, array, allowed: Allowed) -> dict:
    """The roots of an ``encode``d graph. ``array(index, path)`` returns array ``index`` of the file,
    checked against the file's own description of it. Raises ``Malformed``."""
    if not isinstance(tree, dict) or not isinstance(tree.get("objects"), list) or not isinstance(tree.get("roots"), dict):
        raise Malformed("", "expected a JSON object with an 'objects' list and a 'roots' object")
    dec = _Decoder(tree["objects"], array, allowed)
    try:
        return {name: dec.value(v, str(name)) for name, v in tree["roots"].items()}
    except RecursionError:
        raise Malformed("", "nested too deeply") from None


class _Decoder:
    def __init__(self, nodes: list, array, allowed: Allowed):
        self.nodes, self.array_of, self.allowed = nodes, array, allowed
        self.built: dict = {}
        self.open: set = set()

    def value(self, v, path: str):
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is dict and set(v) == {"ref"}:
            return self.ref(v["ref"], path)
        if type(v) is dict and set(v) == {"float"} and v["float"] in ("nan", "inf", "-inf"):
            return float(v["float"])
        raise Malformed(path, f"expected a JSON value or {{'ref': n}}, found {_short(v)}")

    def ref(self, index, path: str):
        if type(index) is not int or not 0 <= index < len(self.nodes):
            raise Malformed(path, f"reference {_short(index)} is not a node index (0..{len(self.nodes) - 1})")
        if index in self.built:
            return self.built[index]
        if index in self.open:
            raise Malformed(path, f"node {index} contains itself")
        node = self.nodes[index]
        tag = node.get("t") if type(node) is dict else None
        make = _MAKERS.get(tag) if type(tag) is str else None
        if make is None:
            raise Malformed(path, f"node {index}: unknown type tag {_short(tag)} (known: {', '.join(sorted(_MAKERS))})")
        self.open.add(index)
        try:
            return make(self, node, index, path)
        except Malformed:
            raise
        except RecursionError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a node whose data its type cannot take
            raise Malformed(path, f"a {tag} node that cannot be built ({type(exc).__name__}: {_short(str(exc), 120)})") from None
        finally:
            self.open.discard(index)

    def keep(self, index: int, obj):
        """Register ``obj`` for ``index`` (mutable objects before their contents: cycles resolve)."""
        self.built[index] = obj
        self.open.discard(index)
        return obj

    def field(self, node: dict, key: str, kind, path: str):
        v = node.get(key)
        if not isinstance(v, kind) or (kind is int and type(v) is bool):
            raise Malformed(path, f"a {node.get('t')} node without a valid {key!r} (expected {_kinds(kind)}, found {_short(v)})")
        return v

    def items(self, node: dict, path: str) -> list:
        return [self.value(v, f"{path}[{i}]") for i, v in enumerate(self.field(node, "items", list, path))]

    def pairs(self, node: dict, path: str) -> list:
        out = []
        for i, kv in enumerate(self.field(node, "items", list, path)):
            if type(kv) is not list or len(kv) != 2:
                raise Malformed(path, f"item {i} is not a [key, value] pair")
            k = self.value(kv[0], f"{path}<key {i}>")
            out.append((k, self.value(kv[1], _key_path(path, k))))
        return out

    def resolve(self, name, path: str):
        try:
            return self.allowed.resolve(name)
        except LookupError as exc:
            raise Malformed(path, f"refused: {exc}") from None

    def klass(self, node: dict, path: str):
        cls = self.resolve(self.field(node, "class", str, path), path)
        if not isinstance(cls, type):
            raise Malformed(path, f"{node['class']!r} is not a class")
        return cls


def _short(v, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[:n] + "..."


def _kinds(kind) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def _make_list(d: _Decoder, node, i, path):
    out = d.keep(i, [] if node["t"] == "list" else set())
    items = d.items(node, path)
    out.extend(items) if node["t"] == "list" else out.update(items)
    return out


def _make_frozen(d: _Decoder, node, i, path):
    return d.keep(i, (tuple if node["t"] == "tuple" else frozenset)(d.items(node, path)))


def _make_mapping(d: _Decoder, node, i, path):
    if node["t"] == "ddict":
        name = node.get("factory")
        factory = None if name is None else FACTORIES.get(name) or d.resolve(name, f"{path}.default_factory")
        out = d.keep(i, collections.defaultdict(factory))
    else:
        out = d.keep(i, {} if node["t"] == "dict" else collections.OrderedDict())
    for k, v in d.pairs(node, path):
        out[k] = v
    return out


def _make_bytes(d: _Decoder, node, i, path):
    data = base64.b64decode(d.field(node, "b64", str, path), validate=True)
    return d.keep(i, data if node["t"] == "bytes" else bytearray(data))


def _make_complex(d: _Decoder, node, i, path):
    return d.keep(i, complex(float(d.field(node, "re", str, path)), float(d.field(node, "im", str, path))))


def _dtype(d: _Decoder, node, path: str) -> np.dtype:
    dtype = np.dtype(d.field(node, "dtype", str, path))
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise Malformed(path, f"dtype {dtype} is not a plain number, boolean or string type")
    return dtype


def _make_ndarray(d: _Decoder, node, i, path):
    arr = d.array_of(d.field(node, "array", int, path), path)
    if arr.dtype.kind not in ARRAY_KINDS:
        raise Malformed(path, f"an array of dtype {arr.dtype}")
    if node.get("readonly"):
        arr.flags.writeable = False
    return d.keep(i, arr)


def _make_npscalar(d: _Decoder, node, i, path):
    dtype = _dtype(d, node, path)
    raw = base64.b64decode(d.field(node, "b64", str, path), validate=True)
    if len(raw) != dtype.itemsize:
        raise Malformed(path, f"a {dtype} value of {len(raw)} bytes (expected {dtype.itemsize})")
    return d.keep(i, np.frombuffer(raw, dtype=dtype)[0])


def _make_npdtype(d: _Decoder, node, i, path):
    return d.keep(i, _dtype(d, node, path))


def _make_weakref(d: _Decoder, node, i, path):
    target = d.value(node.get("target"), f"{path}()")
    if target is None:
        target = _Gone()  # a reference whose object is gone: dead as soon as made
    ref = weakref.ref(target)
    return d.keep(i, ref)


class _Gone:
    """Stand-in referent of a dead weak reference."""


def _make_global(d: _Decoder, node, i, path):
    return d.keep(i, d.resolve(d.field(node, "name", str, path), path))


def _make_enum(d: _Decoder, node, i, path):
    cls = d.klass(node, path)
    if not issubclass(cls, enum.Enum):
        raise Malformed(path, f"{node['class']!r} is not an enum")
    return d.keep(i, cls[d.field(node, "name", str, path)])


def _make_object(d: _Decoder, node, i, path):
    cls = d.klass(node, path)
    if issubclass(cls, (enum.Enum, BaseException, dict, list, tuple, set, frozenset, str, bytes, int, float, np.ndarray)):
        raise Malformed(path, f"{node['class']!r} cannot be restored as a plain object")
    torch = _torch()
    if torch is not None and issubclass(cls, torch.Tensor):
        raise Malformed(path, f"{node['class']!r} is a tensor class")
    obj = d.keep(i, cls.__new__(cls))
    state, slots = node.get("dict"), d.field(node, "slots", list, path)
    if state is not None:
        if type(state) is not dict:
            raise Malformed(path, "an object whose 'dict' is not a JSON object")
        obj.__dict__.update({k: d.value(v, f"{path}.{k}") for k, v in state.items()})
    names = _slot_names(cls)
    for pair in slots:
        if type(pair) is not list or len(pair) != 2 or pair[0] not in names:
            raise Malformed(path, f"{_short(pair)} is not one of the slots of {node['class']} ({', '.join(names) or 'none'})")
        object.__setattr__(obj, pair[0], d.value(pair[1], f"{path}.{pair[0]}"))
    return obj


def _torch_dtype(torch, name, path: str):
    dtype = getattr(torch, name, None) if type(name) is str else None
    if not isinstance(dtype, torch.dtype):
        raise Malformed(path, f"{_short(name)} is not a torch dtype")
    return dtype


def _make_tdtype(d: _Decoder, node, i, path):
    return d.keep(i, _torch_dtype(_require_torch(path), node.get("name"), path))


def _make_tdevice(d: _Decoder, node, i, path):
    return d.keep(i, _require_torch(path).device(d.field(node, "name", str, path)))


def _make_tsize(d: _Decoder, node, i, path):
    items = d.field(node, "items", list, path)
    if not all(type(n) is int and n >= 0 for n in items):
        raise Malformed(path, "a torch.Size of other than non-negative integers")
    return d.keep(i, _require_torch(path).Size(items))


def _make_tensor(d: _Decoder, node, i, path):
    torch = _require_torch(path)
    dtype = _torch_dtype(torch, node.get("dtype"), path)
    shape = d.field(node, "shape", list, path)
    if not all(type(n) is int and n >= 0 for n in shape):
        raise Malformed(path, "a tensor shape of other than non-negative integers")
    view = bit_view(torch, dtype)
    arr = d.array_of(d.field(node, "array", int, path), path)
    expected = np.dtype(str(view).removeprefix("torch.")) if view else torch.empty(0, dtype=dtype).numpy().dtype
    if arr.dtype != expected or list(arr.shape) != shape:
        raise Malformed(path, f"a {dtype} tensor of shape {shape} stored as {arr.dtype} {list(arr.shape)} "
                              f"(expected {expected} {shape})")
    t = torch.from_numpy(arr)
    t = t.view(dtype) if view else t
    if "stride" in node:
        t = _strided(torch, t, node["stride"], path)
    device = torch.device(d.field(node, "device", str, path))
    if device.type != "cpu":
        t = t.to(device)
    rg = d.field(node, "requires_grad", bool, path)
    t = torch.nn.Parameter(t, requires_grad=rg) if d.field(node, "parameter", bool, path) else t.requires_grad_(rg)
    version = node.get("version")
    if version is not None:
        if type(version) is not int or version < 0:
            raise Malformed(path, f"version {_short(version)} is not a non-negative integer")
        _set_version(torch, t, version)
    d.keep(i, t)
    attrs = d.value(node.get("attrs"), f"{path}.__dict__")
    if attrs is not None:
        if type(attrs) is not dict or not all(type(k) is str for k in attrs):
            raise Malformed(path, "tensor attributes that are not a dict of names")
        t.__dict__.update(attrs)
    return t


def _set_version(torch, t, version: int) -> None:
    """Give ``t`` its saved version counter (torch 2.4 takes one tensor, later versions sequences);
    a torch without the setter leaves fresh counters, as unpickled tensors have."""
    setter = getattr(torch._C._autograd, "_unsafe_set_version_counter", None)
    if setter is None:
        return
    try:
        setter((t,), (version,))
    except TypeError:
        setter(t, version)


def _strided(torch, t, stride, path: str):
    """``t`` (contiguous) laid out with ``stride``, which must describe a dense, non-overlapping layout."""
    shape = list(t.shape)
    if type(stride) is not list or len(stride) != len(shape) or not all(type(s) is int and s >= 0 for s in stride):
        raise Malformed(path, f"stride {_short(stride)} does not fit shape {shape}")
    if t.numel() and not dense(shape, stride):
        raise Malformed(path, f"stride {stride} is not a dense layout of shape {shape}")
    out = torch.empty_strided(shape, stride, dtype=t.dtype)
    out.copy_(t)
    return out


def _require_torch(path: str):
    try:
        import torch
    except ImportError:
        raise Malformed(path, "holds tensors, and torch is not installed") from None
    return torch


_MAKERS = {
    "list": _make_list, "set": _make_list, "tuple": _make_frozen, "frozenset": _make_frozen,
    "dict": _make_mapping, "odict": _make_mapping, "ddict": _make_mapping, "bytes": _make_bytes,
    "bytearray": _make_bytes, "complex": _make_complex, "ndarray": _make_ndarray, "npscalar": _make_npscalar,
    "npdtype": _make_npdtype, "weakref": _make_weakref, "global": _make_global, "enum": _make_enum,
    "object": _make_object, "tdtype": _make_tdtype, "tdevice": _make_tdevice, "tsize": _make_tsize,
    "tensor": _make_tensor,
}
