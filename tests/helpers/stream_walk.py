"""The stream's walk: how the token stream travels through the code in one run, measured with
nothing but ``sys.setprofile``.

Definition (what ``record`` measures):

- A *call* is a Python function call event of the profiler (``"call"``; returns are ignored) on the
  thread that runs the callable, in a frame whose code lives in a pgolf package: a top-level
  package whose name starts with ``pgolf`` (``pgolf_core``, ``pgolf_ngram``, ``pgolf_mixers``,
  ``pgolf_neural``, ``pgolf_ttt``, ``pgolf_entropy``, third-party ``pgolf_*`` plugins), the code's
  file being inside that package's directory. A generator or coroutine resumed after a ``yield``
  or ``await`` is the same call going on, not a new one. C functions, other threads and
  subprocesses are not seen.
- A call is *recorded* when its arguments at call time (``co_varnames[:argcount + kwonly
  (+ *args, **kwargs)]`` read from ``f_locals``; ``self`` included) *hold the stream*: an argument
  is a stream array, or a list/tuple/set/dict whose values include one, or an object whose own
  attributes (one level of ``vars()``, ``__slots__`` and dataclass fields) include one. Containers
  and objects are looked into one level only (the first 256 values).
- A *stream array* is the integer ndarray given to ``record`` as the stream, or an integer 1-D
  ndarray seen in an argument with the same length and the same content (the run's own copy, in
  another dtype: it is registered the first time it is seen), or any ndarray that may share memory
  with one of those (``np.may_share_memory``: views such as ``tokens[:end]``). A copy of a part of
  the stream is not the stream.
- The *module* of a call is ``frame.f_globals["__name__"]``. A *stop* is a maximal run of
  consecutive recorded calls in the same module (shown with its first function); a *return* is a
  stop in a module that an earlier stop already visited. ``Walk`` reports the stops, their number,
  the number of distinct modules and the number of returns.
- The *wing* granularity groups the modules before collapsing: the first two dotted parts inside
  ``pgolf_core`` (``pgolf_core.run.spine`` -> ``pgolf_core.run``, ``pgolf_core.evaluate`` stays), the
  top-level package for a plugin (``pgolf_ngram.expert`` -> ``pgolf_ngram``).

``python -m tests.helpers.stream_walk [--tokens N] [MODE ...]`` (or ``python
tests/helpers/stream_walk.py``) prints the walks of the run modes ``plain``, ``audit``, ``prove``
and ``resume`` of ``evaluate(["bigram", "trigram"], ...)`` on the first N demo tokens. The module
needs only the standard library and numpy (pgolf_core is imported by the modes), so it can be
copied and run against another checkout of the project.
"""

from __future__ import annotations

import dataclasses
import dis
import os
import sys
import weakref
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

PREFIX = "pgolf"
MAX_VALUES = 256  # values of one container or object looked at
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR
_VARARGS, _VARKEYWORDS = 0x04, 0x08
_RESUME = dis.opmap.get("RESUME")


@dataclass
class Stop:
    module: str
    function: str  # the first recorded function of the stop
    calls: int = 1

    def __str__(self) -> str:
        return f"{self.module}:{self.function}" + (f" (x{self.calls})" if self.calls > 1 else "")


@dataclass
class Walk:
    calls: list  # (module, function) of every recorded call, in order
    stops: list = field(default_factory=list)
    tree: Optional["Tree"] = None  # the call-tree measure of the same calls (``record`` fills it)

    def __post_init__(self):
        if not self.stops:
            self.stops = collapse(self.calls)

    @property
    def n_stops(self) -> int:
        return len(self.stops)

    @property
    def modules(self) -> list:
        return list(dict.fromkeys(s.module for s in self.stops))

    @property
    def n_modules(self) -> int:
        return len(self.modules)

    @property
    def n_returns(self) -> int:
        seen, returns = set(), 0
        for s in self.stops:
            returns += s.module in seen
            seen.add(s.module)
        return returns

    def wings(self) -> "Walk":
        """The same walk with every module replaced by its wing (``wing``)."""
        return Walk([(wing(m), f) for m, f in self.calls])

    def counts(self) -> dict:
        return {"stops": self.n_stops, "modules": self.n_modules, "returns": self.n_returns}

    def format(self, title: str = "") -> str:
        c = self.counts()
        head = f"{title}: " if title else ""
        lines = [f"{head}{c['stops']} stops, {c['modules']} modules, {c['returns']} returns ({len(self.calls)} calls)"]
        seen = set()
        for i, s in enumerate(self.stops, 1):
            lines.append(f"  {i:3d}. {s}" + ("  <- return" if s.module in seen else ""))
            seen.add(s.module)
        return "\n".join(lines)


def collapse(calls) -> list:
    """Stops of a sequence of (module, function) calls: maximal runs in the same module."""
    stops: list = []
    for module, function in calls:
        if stops and stops[-1].module == module:
            stops[-1].calls += 1
        else:
            stops.append(Stop(module, function))
    return stops


def wing(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "pgolf_core":
        return ".".join(parts[:2])
    return parts[0]


# -- the call-tree measure ------------------------------------------------------------------------------------------
CHECK_HOOKS = ("open", "before", "loop_observers", "drive", "after")
OBSERVER_HOOKS = ("before_step", "on_step")  # what the loop calls on the observers a check adds


def _is_check(obj) -> bool:
    """An object attached to the run as a check (``pgolf_core.checks.base.Check``)."""
    return any(c.__name__ == "Check" and c.__module__.startswith("pgolf_core.checks") for c in type(obj).__mro__)


def _is_check_part(obj) -> bool:
    """An object of the checks' wing (a loop observer a check added)."""
    return obj is not None and type(obj).__module__.startswith("pgolf_core.checks")


def owner(frame) -> str:
    """The wing a call belongs to: a method belongs to its object's class (an expert's inherited
    ``Expert.update`` is the expert's plugin, a check's inherited hook is the check's), anything else
    to the module of its code."""
    me = frame.f_locals.get("self") if frame.f_code.co_argcount else None
    module = frame.f_globals.get("__name__", "?")
    if me is not None and frame.f_code.co_varnames[:1] == ("self",):
        cls_module = type(me).__module__
        if cls_module.split(".")[0].startswith(PREFIX):
            module = cls_module
    return module


@dataclass(frozen=True)
class Call:
    owner: str  # the call's module (``owner``)
    ancestors: tuple  # the modules of the pgolf frames above it, outermost first
    check: Optional[str]  # the class of the check whose hook it runs under, or None (the spine)


@dataclass
class Tree:
    """The walk as a call tree, per part of the run.

    Modules are grouped by wing (``wing``; ``group`` picks another grouping). The *spine* is every recorded call not under a check's hook (``CHECK_HOOKS`` of a
    ``pgolf_core.checks`` ``Check``, ``OBSERVER_HOOKS`` of a loop observer from that package); each
    check (and observer) has its own part. In a part, the *stops* are the
    wings that receive the stream, in the order they first do; a *return* is a call that hands the
    stream back up to a wing above its caller (a wing among its ancestors, not its own caller's:
    ``loop -> expert -> loop``), counted once per (caller, callee) pair. The loop calling the experts
    chunk after chunk is one stop each and no return: the stream goes down, never back up.
    """

    calls: list

    def parts(self) -> list:
        return list(dict.fromkeys(c.check or "spine" for c in self.calls))

    def part(self, name: str = "spine") -> list:
        return [c for c in self.calls if (c.check or "spine") == name]

    def stops(self, name: str = "spine", group: Callable = wing) -> list:
        return list(dict.fromkeys(group(c.owner) for c in self.part(name)))

    def returns(self, name: str = "spine", group: Callable = wing) -> list:
        found = []
        for c in self.part(name):
            up = [group(m) for m in c.ancestors]
            chain = [w for i, w in enumerate(up) if i == 0 or w != up[i - 1]]
            me = group(c.owner)
            if chain and me in chain[:-1] and chain[-1] != me:
                found.append((chain[-1], me))
        return list(dict.fromkeys(found))

    def format(self) -> str:
        lines = []
        for name in self.parts():
            stops, back = self.stops(name), self.returns(name)
            lines.append(f"  {name}: {len(stops)} stops, {len(back)} returns: " + " -> ".join(stops)
                         + "".join(f"\n      return {a} -> {b}" for a, b in back))
        return "\n".join(lines)


class _Recorder:
    def __init__(self, stream: np.ndarray, prefix: str = PREFIX):
        stream = np.asarray(stream)
        if stream.ndim != 1 or not np.issubdtype(stream.dtype, np.integer):
            raise ValueError(f"the stream must be a 1-D integer array, got {stream.dtype} of shape {stream.shape}")
        self.prefix = prefix
        self.reference = stream
        self.streams = [stream]  # the stream arrays (kept alive, so their ids stay theirs)
        self.stream_ids = {id(stream)}
        self.not_stream: dict = {}  # id -> weakref of a same-length array found not equal to the stream
        self.files: dict = {}  # co_filename -> whether its code is in a pgolf package
        self.starts: dict = {}  # generator code -> offset of its first RESUME
        self.calls: list = []
        self.frames: list = []  # the Call of each recorded call

    # -- what is looked at ----------------------------------------------------------------------------------------
    def in_scope(self, frame) -> bool:
        filename = frame.f_code.co_filename
        verdict = self.files.get(filename)
        if verdict is None:
            verdict = self.files[filename] = self._package_file(frame, filename)
        return verdict

    def _package_file(self, frame, filename: str) -> bool:
        name = frame.f_globals.get("__name__") or ""
        top = name.split(".")[0]
        if not top.startswith(self.prefix):
            return False
        package = sys.modules.get(top)
        dirs = list(getattr(package, "__path__", None) or [])
        if not dirs and getattr(package, "__file__", None):
            return os.path.realpath(filename) == os.path.realpath(package.__file__)  # a one-module plugin
        real = os.path.realpath(filename)
        return any(real.startswith(os.path.realpath(d) + os.sep) for d in dirs)

    def is_start(self, frame) -> bool:
        """False for a generator or coroutine resumed after a yield/await (the same call going on)."""
        code = frame.f_code
        if not code.co_flags & _GENERATOR_FLAGS or _RESUME is None:
            return True
        first = self.starts.get(code)
        if first is None:
            first = next((i.offset for i in dis.get_instructions(code) if i.opcode == _RESUME), -1)
            self.starts[code] = first
        return frame.f_lasti <= first

    # -- the stream -----------------------------------------------------------------------------------------------
    def is_stream(self, a: np.ndarray) -> bool:
        if id(a) in self.stream_ids:
            return True
        if a.ndim == 1 and len(a) == len(self.reference) and np.issubdtype(a.dtype, np.integer):
            ref = self.not_stream.get(id(a))
            if ref is None or ref() is not a:
                if np.array_equal(a, self.reference):
                    self.streams.append(a)
                    self.stream_ids.add(id(a))
                    return True
                try:
                    self.not_stream[id(a)] = weakref.ref(a)
                except TypeError:
                    pass
        return any(np.may_share_memory(a, s) for s in self.streams)

    def holds(self, value, depth: int = 1) -> bool:
        if isinstance(value, np.ndarray):
            return self.is_stream(value)
        if depth <= 0 or value is None or isinstance(value, (str, bytes, int, float, bool, type)):
            return False
        if isinstance(value, dict):
            values = list(value.values())[:MAX_VALUES]
        elif isinstance(value, (list, tuple, set, frozenset)):
            values = list(value)[:MAX_VALUES]
        else:
            values = _attributes(value)
        return any(self.holds(v, depth - 1) for v in values)

    # -- the profiler ---------------------------------------------------------------------------------------------
    def __call__(self, frame, event, arg):
        if event != "call" or not self.in_scope(frame) or not self.is_start(frame):
            return
        code = frame.f_code
        n = code.co_argcount + code.co_kwonlyargcount
        n += bool(code.co_flags & _VARARGS) + bool(code.co_flags & _VARKEYWORDS)
        if not n:
            return
        local = frame.f_locals
        for name in code.co_varnames[:n]:
            if self.holds(local.get(name)):  # *args and **kwargs: a tuple and a dict, looked into one level
                self.calls.append((frame.f_globals.get("__name__", "?"), getattr(code, "co_qualname", code.co_name)))
                self.frames.append(self.placed(frame))
                return

    def placed(self, frame) -> Call:
        """The call's owner (``owner``), the owners of the pgolf frames above it (outermost first) and
        the check whose hook it runs under."""
        ancestors, check, f = [], None, frame
        while f is not None:
            if self.in_scope(f):
                if f is not frame:
                    ancestors.append(owner(f))
                me = f.f_locals.get("self") if f.f_code.co_argcount else None
                if check is None and f.f_code.co_name in CHECK_HOOKS and _is_check(me):
                    check = type(me).__name__
                elif check is None and f.f_code.co_name in OBSERVER_HOOKS and _is_check_part(me):
                    check = type(me).__name__  # a check's loop observer (the spot checks), called by the loop
            f = f.f_back
        return Call(owner(frame), tuple(reversed(ancestors)), check)


def _attributes(obj) -> list:
    """One level of an object's own attributes: ``vars()``, ``__slots__``, dataclass fields."""
    import types

    if isinstance(obj, (types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                        types.CodeType, types.FrameType)):
        return []
    try:
        return _own_values(obj)
    except Exception:  # an object that refuses to be looked into holds nothing here
        return []


def _own_values(obj) -> list:
    values = []
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        values.extend(list(d.values())[:MAX_VALUES])
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                values.append(object.__getattribute__(obj, name))
            except Exception:
                pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            try:
                values.append(object.__getattribute__(obj, f.name))
            except Exception:
                pass
    return values[:MAX_VALUES]


def record(fn: Callable, stream, *args, prefix: str = PREFIX, **kwargs) -> tuple:
    """Run ``fn(*args, **kwargs)`` under ``sys.setprofile`` and return (its result, the ``Walk`` of
    ``stream`` through the pgolf packages; its ``tree`` is the call-tree measure)."""
    rec = _Recorder(stream, prefix)
    previous = sys.getprofile()
    sys.setprofile(rec)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return result, Walk(rec.calls, tree=Tree(rec.frames))


# -- the run modes of evaluate ------------------------------------------------------------------------------------
EXPERTS = ("bigram", "trigram")
MODES = ("plain", "audit", "prove", "resume")


def demo_stream(n: int = 3000) -> np.ndarray:
    from pgolf_core.demo import demo_tokens

    return np.array(demo_tokens("val")[:n])


def mode_call(mode: str, tokens: np.ndarray, workdir: Optional[str] = None) -> Callable:
    """The callable of one run mode: ``evaluate(EXPERTS, tokens=..., tokenizer=demo, <mode's flags>)``."""
    import tempfile

    from pgolf_core import evaluate
    from pgolf_core.demo import demo_tokenizer_path

    options = {}
    if mode == "audit":
        options = {"audit": True}
    elif mode == "prove":
        options = {"prove": True}
    elif mode == "resume":
        workdir = workdir or tempfile.mkdtemp(prefix="stream-walk-")
        options = {"resume": os.path.join(workdir, "run.resume"), "checkpoint_every": max(1, len(tokens) // 3)}
    elif mode != "plain":
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    return lambda: evaluate(list(EXPERTS), tokens=tokens, tokenizer=demo_tokenizer_path(), **options)


def walk_mode(mode: str, n_tokens: int = 3000, workdir: Optional[str] = None) -> tuple:
    tokens = demo_stream(n_tokens)
    return record(mode_call(mode, tokens, workdir), tokens)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modes", nargs="*", metavar="MODE", help=f"run modes among {', '.join(MODES)} (default: all)")
    p.add_argument("--tokens", type=int, default=3000, help="demo tokens scored (default 3000)")
    p.add_argument("--calls", action="store_true", help="also print every recorded call")
    a = p.parse_args(argv)
    unknown = [m for m in a.modes if m not in MODES]
    if unknown:
        p.error(f"unknown modes {unknown}; choose among {MODES}")
    import pgolf_core

    print(f"pgolf_core: {pgolf_core.__file__}")
    for mode in a.modes or MODES:
        res, walk = walk_mode(mode, a.tokens)
        print(f"\n== {mode}: bpb {res.bpb:.6f}, level {getattr(res, 'level', '?')}")
        print(walk.format("modules"))
        print(walk.wings().format("wings"))
        print("call tree (wings, per part of the run):")
        print(walk.tree.format())
        if a.calls:
            for m, f in walk.calls:
                print(f"    {m}:{f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
