"""Cheating experts, written the way an attacker would against the public API (tests fill in DATA).

Each is an honest add-one bigram with one trick that gives it the next token when it can:
disk (opens the data file), frames (walks the interpreter's frames to a caller's token array),
gc (searches the garbage collector's objects), sidefile (copies the stream into side files while
encoding, reads them back when decoding), artifact (an option-named "table" that is a copy of
the data), bytes (doubles every byte table it can find), patch (monkeypatches the engine's BPB).
The adapter ``cheat-adapter`` trains the honest expert on the next 8,192 tokens it finds in a
caller's frame (the stream not yet scored).
"""

import gc
import lzma
import os
import sys
from pathlib import Path

import numpy as np

from pgolf_core import Adapter, Expert, hookimpl

DATA = {data!r}
N_TOKENS = {n_tokens!r}
SIDE_FILES = [Path("/tmp") / "pgolf-cheat-{tag}.npy", Path.home() / ".pgolf-cheat-{tag}.npy",
              Path(__file__).with_name("cheat-cache-{tag}.npy"), Path(DATA).with_name("cheat-cache-{tag}.npy")]


def _full(arr):
    return isinstance(arr, np.ndarray) and arr.ndim == 1 and len(arr) == N_TOKENS and arr.dtype.kind in "iu" \
        and int(arr[-1]) != 0 and int(arr[N_TOKENS // 2]) != 0


def from_disk():
    try:
        return np.load(DATA)
    except OSError:
        return None


def from_frames():
    f = sys._getframe()
    while f is not None:
        for v in list(f.f_locals.values()):
            if _full(v):
                return np.array(v)
        f = f.f_back
    return None


def from_gc():
    for obj in gc.get_objects():
        vals = obj.values() if isinstance(obj, dict) else (obj if isinstance(obj, (list, tuple)) else ())
        for v in list(vals):
            if _full(v):
                return np.array(v)
    return None


def from_side_files():
    for p in SIDE_FILES:
        try:
            return np.load(p)
        except OSError:
            continue
    truth = from_frames()
    if truth is not None:
        for p in SIDE_FILES:
            try:
                np.save(p, truth)
            except OSError:
                pass
    return truth


class Cheat(Expert):
    def __init__(self, vocab_size, oracle=None):
        super().__init__(vocab_size)
        self.counts = np.zeros((vocab_size, vocab_size))
        self.totals = np.zeros(vocab_size)
        self.oracle, self.truth, self.asked = oracle, None, False

    def _truth(self):
        if not self.asked and self.oracle is not None:
            self.asked, self.truth = True, self.oracle()
        return self.truth

    def _row(self, tokens, t):
        x = int(tokens[t - 1])
        row = (self.counts[x] + 1.0 / self.vocab_size) / (self.totals[x] + 1.0)
        truth = self._truth()
        if truth is not None and t < len(truth):
            row = 0.02 * row
            row[int(truth[t])] += 0.98
        return row

    def _absorb(self, tokens, t):
        self.counts[int(tokens[t - 1]), int(tokens[t])] += 1
        self.totals[int(tokens[t - 1])] += 1

    def distributions(self, tokens, start, end):
        out = np.empty((end - start, self.vocab_size))
        for t in range(start, end):
            out[t - start] = self._row(tokens, t)
            self._absorb(tokens, t)
        return out

    def score(self, tokens, start, end):
        d = self.distributions(tokens, start, end)
        return np.log(d[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)])

    def predict(self, tokens, t):
        return self._row(tokens, t)

    def observe(self, tokens, t):
        self._absorb(tokens, t)


def _artifact_oracle(table):
    def read():
        try:
            return np.frombuffer(lzma.decompress(Path(table).read_bytes()), dtype="<u2")
        except OSError:
            return None
    return read


def _double_byte_tables(ctx):
    from pgolf_core.stream.bytes import ByteTable

    for obj in [ctx.byte_counts, *(o for o in gc.get_objects() if isinstance(o, ByteTable))]:
        obj.base_bytes.flags.writeable = True
        obj.base_bytes[...] = obj.base_bytes * 2


def _patch_engine():
    import pgolf_core.stream.bytes
    import pgolf_core.run.loop

    real = pgolf_core.stream.bytes.bits_per_byte

    def half(nll, n):
        return real(nll, n) / 2

    pgolf_core.stream.bytes.bits_per_byte = half
    for mod in list(sys.modules.values()):
        if getattr(mod, "bits_per_byte", None) is real:
            mod.bits_per_byte = half


def make(kind):
    def factory(ctx, table=""):
        if kind == "bytes":
            _double_byte_tables(ctx)
        if kind == "patch":
            _patch_engine()
        oracle = {{"disk": from_disk, "frames": from_frames, "gc": from_gc, "sidefile": from_side_files,
                  "artifact": _artifact_oracle(table) if table else None}}.get(kind)
        return Cheat(ctx.vocab_size, oracle)
    return factory


class PeekAhead(Adapter):
    """After each chunk, counts the bigrams of the next 8,192 tokens into the expert it adapts."""

    name = "cheat-adapter"

    def setup(self, experts):
        found = experts["cheat-honest"]
        self.expert = getattr(found, "_inner", found)  # through the audit's recording wrapper

    def after_chunk(self, tokens, start, end, final):
        truth = from_frames()
        if truth is None or final:
            return
        ahead = np.asarray(truth[end - 1:end + 8192], dtype=np.int64)
        np.add.at(self.expert.counts, (ahead[:-1], ahead[1:]), 1.0)
        np.add.at(self.expert.totals, ahead[:-1], 1.0)


@hookimpl
def pgolf_register_adapters(register):
    register("cheat-adapter", lambda ctx: PeekAhead(), description="test: trains on tokens not yet scored")


@hookimpl
def pgolf_register_experts(register):
    for kind in ("honest", "disk", "frames", "gc", "sidefile", "artifact", "bytes", "patch"):
        register(f"cheat-{{kind}}", make(kind), description=f"test: cheats by {{kind}}")
