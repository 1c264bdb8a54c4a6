"""Resumable evaluations: the loop's whole state saved at chunk ends, and a run that continues from it.

A resume point holds every component (experts, mixer, adapters: counts, weights, network weights,
optimizer moments) and the loop's sums, trajectories and position, encoded together by
``statecodec`` so that the references between them (an adapter and the expert it trains) survive.
Since the loop is deterministic, a resumed run prints exactly the BPB of an uninterrupted one. A
resume point also records digests of the configuration and of the stream, and is refused for any
other run.

The file is data, never code: a zip archive of ``manifest.json`` (format, version, digests,
position, and the state's object graph as JSON) and ``arrays/<n>.npy``, one per array or tensor,
each deflated (level 1) when a sample of it deflates well (``_compression``). Arrays are
read with their dtype and shape checked against the manifest, never as objects. Reading a file
runs nothing it names beyond what ``statecodec.Allowed`` admits (pgolf_core's, the loaded
plugins' and torch's module and optimizer classes, made without calling their constructors). A
malformed, truncated or crafted file, or one of another version, is refused with one line
(``ResumeFileError``); so is a pickled resume point of earlier versions, which is never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import types
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import PgolfError, ResumeFileError, UsageError
from ..run.loop import Components
from .statecodec import Allowed, Malformed, decode, encode

FORMAT = "pgolf-core/resume"
VERSION = 2  # version 1 was a pickle: refused, never read
MANIFEST = "manifest.json"
MANIFEST_LIMIT = 256 << 20  # bytes: a manifest past this is not one this code wrote
SAMPLE_BLOCKS, SAMPLE_BLOCK = 16, 1 << 16  # what an array's compressibility is judged on: 1 MiB
DEFLATE_BELOW = 0.8  # deflate an array whose sample deflates to less than this fraction
_COMPONENT_FIELDS = ("experts", "labels", "mixer", "adapters", "adapter_labels")
_LOOP_FIELDS = ("nll", "expert_nll", "n_bytes", "n_targets", "next_target", "timers", "trajectory_pos",
                "trajectory_w", "cum", "saved", "last_recorded", "loop_seconds", "guards")


class Interrupted(PgolfError):
    """The run was interrupted (Ctrl-C) after saving a resume point. CLI exit code 130."""

    exit_code = 130


def run_digest(config: dict, stream) -> dict:
    """What a resume point must match: the resolved configuration and the stream's tokens."""
    from ..codec.container import tokens_checksum

    text = json.dumps(config, sort_keys=True, default=str)
    return {"config": hashlib.sha256(text.encode()).hexdigest(), "stream": tokens_checksum(stream)}


def allowed_modules(plugins, comps: Components) -> Allowed:
    """The packages a resume point's classes may come from: pgolf_core, the loaded plugins' and those
    of this run's own components (a component given as an instance)."""
    roots = {"pgolf_core"}
    for plugin in plugins.pm.get_plugins() if plugins is not None else ():
        roots.add((plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__).split(".")[0])
    roots.update(type(c).__module__.split(".")[0] for c in comps.all())
    return Allowed(roots)


def _state(loop) -> dict:
    return {**{k: getattr(loop.comps, k) for k in _COMPONENT_FIELDS}, **{k: getattr(loop, k) for k in _LOOP_FIELDS}}


def check_saveable(loop, allowed: Allowed) -> None:
    """Raise ``statecodec.UnsavableState`` now, before any scoring, when the state cannot be saved."""
    encode(_state(loop), allowed, dry=True)


def save(path, loop, digest: dict, allowed: Allowed) -> None:
    """Write a resume point of ``loop`` (at a chunk end) to ``path``, atomically."""
    tree, arrays = encode(_state(loop), allowed)
    manifest = {"format": FORMAT, "version": VERSION, "digest": digest, "position": loop.next_target,
                "targets": loop.n_tokens - 1, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays],
                "state": tree}
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
                zf.writestr(MANIFEST, json.dumps(manifest, separators=(",", ":"), allow_nan=False))
                for i, a in enumerate(arrays):
                    zf.compression = _compression(a)  # what the member opened next gets (level 1 when deflated)
                    with zf.open(f"arrays/{i}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, a, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # also at a second Ctrl-C: no half-written file left behind
        raise


def _compression(arr: np.ndarray) -> int:
    """Deflated (level 1) for an array that deflates well, stored for one that does not: n-gram
    tables are mostly empty slots (50 MB of them take 0.3 MB), while deflating a large network's
    trained float weights would cost seconds at every resume point for a few percent. Arrays up to
    the sample's size are deflated without a look: judging them would cost as much."""
    raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    if raw.size <= SAMPLE_BLOCKS * SAMPLE_BLOCK:
        return zipfile.ZIP_DEFLATED
    starts = np.linspace(0, raw.size - SAMPLE_BLOCK, SAMPLE_BLOCKS).astype(np.int64)
    sample = b"".join(raw[a:a + SAMPLE_BLOCK].tobytes() for a in starts)
    return zipfile.ZIP_DEFLATED if len(zlib.compress(sample, 1)) < DEFLATE_BELOW * len(sample) else zipfile.ZIP_STORED


def load(path, digest: dict, allowed: Allowed) -> dict:
    """The state in the resume point at ``path``, written for the run whose digest is ``digest``."""
    with _open_zip(path) as zf:
        manifest = _manifest(zf, path)
        for part, what in (("config", "configuration"), ("stream", "stream")):
            if manifest["digest"].get(part) != digest[part]:
                raise UsageError(f"resume file {path} was written by a run with another configuration or stream (the "
                                 f"{what} differs); give the same options and data, or another --resume file")
        arrays = _ArrayReader(zf, manifest["arrays"], path)
        try:
            state = decode(manifest["state"], arrays.read, allowed)
        except Malformed as exc:
            raise ResumeFileError(f"resume file {path}: {exc}") from None
    if state.get("next_target") != manifest["position"]:
        raise ResumeFileError(f"resume file {path}: the state is at target {state.get('next_target')!r}, the manifest "
                              f"says {manifest['position']}")
    return state


def _open_zip(path) -> zipfile.ZipFile:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        return zipfile.ZipFile(path)
    except OSError as exc:
        raise ResumeFileError(f"resume file {path}: cannot be read ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        if head[:1] == b"\x80":
            why = "a pickled resume point of an earlier version, which is not read (loading a pickle runs code); " \
                  "delete it to start the run again"
        elif head == b"PK\x03\x04":
            why = f"a truncated or corrupt zip archive ({exc})"
        else:
            why = f"expected a {FORMAT} v{VERSION} file (a zip archive holding {MANIFEST}), found {head!r}..."
        raise ResumeFileError(f"resume file {path}: {why}") from None


def _manifest(zf: zipfile.ZipFile, path) -> dict:
    def refuse(why: str):
        raise ResumeFileError(f"resume file {path}: {why}")

    try:
        info = zf.getinfo(MANIFEST)
        if info.file_size > MANIFEST_LIMIT:
            refuse(f"{MANIFEST} of {info.file_size} bytes (more than {MANIFEST_LIMIT})")
        manifest = json.loads(zf.read(info), parse_constant=_no_constant)
    except KeyError:
        refuse(f"no {MANIFEST}: not a {FORMAT} file")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RecursionError) as exc:
        refuse(f"{MANIFEST} cannot be read ({type(exc).__name__}: {str(exc)[:120]})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        refuse(f"expected a {FORMAT} manifest, found format {_get(manifest, 'format')!r}")
    if manifest.get("version") != VERSION:
        refuse(f"a {FORMAT} file of version {manifest.get('version')!r}; this version reads version {VERSION}")
    digest = manifest.get("digest")
    if not (isinstance(digest, dict) and all(isinstance(digest.get(k), str) for k in ("config", "stream"))):
        refuse("the manifest has no configuration and stream digests")
    if not isinstance(manifest.get("arrays"), list) or not isinstance(manifest.get("state"), dict):
        refuse("the manifest has no 'arrays' list or 'state' object")
    if not isinstance(manifest.get("position"), int) or isinstance(manifest.get("position"), bool):
        refuse("the manifest has no position")
    return manifest


def _get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else type(obj).__name__


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class _ArrayReader:
    """The arrays of a resume file, each read once its node asks for it and checked against the
    manifest's dtype and shape before any memory is set aside for it."""

    def __init__(self, zf: zipfile.ZipFile, specs: list, path):
        self.zf, self.specs, self.path = zf, specs, path

    def read(self, index: int, where: str) -> np.ndarray:
        if not 0 <= index < len(self.specs):
            raise Malformed(where, f"array {index} is not among the manifest's {len(self.specs)} arrays")
        dtype, shape = self._spec(index, where)
        name = f"arrays/{index}.npy"
        try:
            info = self.zf.getinfo(name)
            with self.zf.open(info) as f:
                return self._array(f, info, dtype, shape, name, where)
        except KeyError:
            raise Malformed(where, f"{name} is missing from the archive") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise Malformed(where, f"{name} cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None

    def _spec(self, index: int, where: str):
        spec = self.specs[index]
        try:
            dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        except (TypeError, KeyError, ValueError):
            raise Malformed(where, f"the manifest's entry for array {index} is not {{'dtype', 'shape'}}") from None
        if dtype.hasobject or not all(type(n) is int and n >= 0 for n in shape):
            raise Malformed(where, f"the manifest describes array {index} as {dtype} {list(shape)}")
        return dtype, shape

    @staticmethod
    def _array(f, info, dtype, shape, name: str, where: str) -> np.ndarray:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise Malformed(where, f"{name}: .npy version {version} (expected 1.0 or 2.0)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        found_shape, fortran, found_dtype = read_header(f)
        if found_dtype != dtype or tuple(found_shape) != shape:
            raise Malformed(where, f"{name} holds {found_dtype} {list(found_shape)}, the manifest says {dtype} {list(shape)}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > info.file_size:
            raise Malformed(where, f"{name} is {info.file_size} bytes, too short for {dtype} {list(shape)}")
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise Malformed(where, f"{name} is truncated ({got} of {nbytes} bytes)")
            got += n
        if f.read(1):  # also where the archive checks the member's CRC
            raise Malformed(where, f"{name} has bytes after its {dtype} {list(shape)} data")
        return np.ndarray(shape, dtype=dtype, buffer=buf, order="F" if fortran else "C")


def restore(loop, state: dict, source, path) -> None:
    """Put a saved state into a freshly built ``loop`` (its components are replaced by the saved ones),
    after checking that it is a state of this run's components at a position of this stream."""
    _conforms(loop, state, path)
    loop.comps = Components(**{k: state[k] for k in _COMPONENT_FIELDS})
    for k in _LOOP_FIELDS:
        setattr(loop, k, state[k])
    loop.stream.reveal_to(source, loop.next_target)  # every token up to the position is already scored


def _conforms(loop, state: dict, path) -> None:
    """A decoded state fits this run: components of the same classes under the same labels, loop
    fields of the types the loop keeps, a position inside the stream."""
    def refuse(why: str):
        raise ResumeFileError(f"resume file {path}: {why}")

    fresh = _state(loop)
    if set(state) != set(fresh):
        refuse(f"the state holds {sorted(state)}, expected {sorted(fresh)}")
    for key in ("experts", "adapters"):
        got, want = state[key], fresh[key]
        if type(got) is not list or len(got) != len(want):
            refuse(f"{key} is not a list of {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            if type(g) is not type(w):
                refuse(f"{key}[{i}] is a {type(g).__qualname__}, this run has a {type(w).__qualname__}")
    for key, want in fresh.items():
        if type(state[key]) is not type(want):
            refuse(f"{key} is a {type(state[key]).__qualname__}, this run has a {type(want).__qualname__}")
    for key in ("labels", "adapter_labels"):
        if state[key] != fresh[key]:
            refuse(f"{key} {state[key]}, this run has {fresh[key]}")
    if state["expert_nll"].shape != fresh["expert_nll"].shape:
        refuse(f"expert_nll of shape {state['expert_nll'].shape}, expected {fresh['expert_nll'].shape}")
    pos = state["next_target"]
    if not (1 <= pos <= loop.n_tokens and state["n_targets"] == pos - 1):
        refuse(f"position {pos} with {state['n_targets']} targets scored, expected a position in 1..{loop.n_tokens} "
               f"after position - 1 targets")


@contextmanager
def interrupt_flag():
    """While active, Ctrl-C sets ``flag["hit"]`` instead of raising, so the loop can stop at a
    chunk end with a consistent state; a second Ctrl-C interrupts at once."""
    flag = {"hit": False}
    try:
        previous = signal.getsignal(signal.SIGINT)
    except ValueError:  # not the main thread
        yield flag
        return

    def handler(signum, frame):
        if flag["hit"]:
            raise KeyboardInterrupt
        flag["hit"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def run_resumable(loop, source, chunk: int, path, every: int, digest: dict, progress: bool, plugins=None) -> None:
    """``Loop.run`` with a resume point every ``every`` targets (and at Ctrl-C) in ``path``; continues
    from ``path`` when it holds a resume point of this run. ``plugins`` is the run's plugin set: its
    packages are where the saved classes may come from."""
    import time

    from ..run.report import progress_bar

    allowed = allowed_modules(plugins, loop.comps)
    check_saveable(loop, allowed)  # an unsavable component fails now, not at the first resume point
    if Path(path).is_file():
        restore(loop, load(path, digest, allowed), source, path)
    last = loop.next_target
    t0 = time.perf_counter()
    with interrupt_flag() as flag, progress_bar(loop.n_tokens - 1, enabled=progress) as advance:
        advance(loop.next_target - 1)
        for start, end, final in loop.chunk_spans(chunk):
            if end <= loop.next_target:
                continue  # scored before the resume point
            loop.score_chunk(source, start, end, final)
            advance(end - start)
            if flag["hit"] or (every and end - last >= every and not final):
                loop.loop_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                save(path, loop, digest, allowed)
                last = end
                if flag["hit"]:
                    raise Interrupted(f"interrupted at target {end} of {loop.n_tokens - 1}: resume point saved in {path}; "
                                      f"run the same command again to continue")
    loop.loop_seconds += time.perf_counter() - t0
