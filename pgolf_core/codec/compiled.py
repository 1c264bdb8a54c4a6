"""The compiled coding loop: a chunk's targets coded (or decoded) in one numba function.

Coding is sequential: target t's rows need token t - 1. Driven from Python, each target costs a
handful of calls (every expert's ``predict`` and ``observe``, the mixer's, the coder), a few
microseconds each, so decoding ran at a few thousand targets per second while an n-gram
evaluation scores hundreds of thousands. When every expert and the mixer offer a ``StepKernel``
(``pgolf_core.api``), the loop instead generates one function for the configuration that, per
target, calls every expert's ``predict`` kernel, the mixer's, checks the mixture row, codes or
decodes the token with the range coder's kernels (``pgolf_core.codec.rangecoder``), and calls the
``observe`` kernels: the same steps, in the same order, as ``Loop.step_targets``.

What stays the same as the Python path:
- Each kernel computes its component's own row; the row is checked (mass within
  ``MASS_TOLERANCE`` of 1, no negative or NaN entry) and every log-probability of the coded token
  bounded (finite, at most ``LOGP_TOLERANCE``), and the first failure stops the function, which
  the loop reports through the same guards.
- The encoder hands the kernels a token buffer that holds only the tokens coded so far (the
  source stream is read by the coder alone); the decoder's buffer holds only decoded tokens.
- Chunk ends (``update``, adapters, checksums) are the loop's, as before.

The function is generated per number of experts and per set of kernels (numba resolves the kernels
it calls when it compiles), and kept for the process: compiling costs a few seconds, once.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

_RUNNERS: dict = {}

# status codes the runner returns with the position it stopped at
OK, BAD_ROW, BAD_LOGP, UNDECODABLE = 0, 1, 2, 3


def kernels_of(comps) -> Optional[tuple]:
    """(expert kernels, mixer kernel or None) when every component offers one, else None."""
    ks = [e.step_kernel() for e in comps.experts]
    if any(k is None for k in ks):
        return None
    mk = None
    if comps.mixer is not None:
        mk = comps.mixer.step_kernel()
        if mk is None:
            return None
    elif len(ks) != 1:
        return None
    return ks, mk


def available(comps) -> bool:
    """True when the compiled loop can code with these components."""
    return kernels_of(comps) is not None


def _source(k: int, rooms: tuple, mixer: bool, decode: bool) -> str:
    """The runner's code: the per-target step of ``Loop.step_targets`` for k experts."""
    es = ", ".join(f"e{j}" for j in range(k))
    lines = [f"def run(tokens, src, t0, t1, cstate, words, freq, dists, row, lps, out_lp, out_mix, ms, {es}):",
             "    n_v = row.shape[0]",
             "    for t in range(t0, t1):"]
    lines += [f"        if not ROOM{j}(e{j}):\n            return t, OK" for j in range(k) if rooms[j]]
    lines += [f"        PRED{j}(e{j}, tokens, t, dists[{j}])" for j in range(k)]
    if mixer:
        lines.append("        MPRED(ms, dists, row)")
    else:
        lines.append("        for v in range(n_v):\n            row[v] = dists[0, v]")
    lines += ["        ok = True",
              "        for v in range(n_v):",
              "            if not row[v] >= 0.0:",
              "                ok = False",
              "        mass = row_sum(row)",
              "        if not (ok and abs(mass - 1.0) <= MASS_TOL):",
              "            return t, BAD_ROW"]
    if decode:
        lines += ["        tok = decode_under(cstate, words, row, mass, freq)",
                  "        if tok < 0:",
                  "            return t, UNDECODABLE"]
    else:
        lines += ["        tok = src[t]",
                  "        encode_under(cstate, words, row, mass, tok, freq)"]
    lines += ["        tokens[t] = tok",
              "        bad = False",
              f"        for j in range({k}):",
              "            p = dists[j, tok]",
              "            x = math.log(p) if p > 0.0 else -math.inf",
              "            lps[j] = x",
              "            out_lp[j, t - t0] = x",
              "            if not (x > -math.inf and x <= LOGP_TOL):",
              "                bad = True",
              "        p = row[tok]",
              "        x = math.log(p) if p > 0.0 else -math.inf",
              "        out_mix[t - t0] = x",
              "        if bad or not (x > -math.inf and x <= LOGP_TOL):",
              "            return t + 1, BAD_LOGP"]
    lines += [f"        OBS{j}(e{j}, tokens, t)" for j in range(k)]
    if mixer:
        lines.append("        MOBS(ms, lps, tok, dists)")
    lines.append("    return t1, OK")
    return "\n".join(lines) + "\n"


def _runner(eks, mk, decode: bool):
    from numba import njit

    from . import rangecoder
    from ..run.loop import LOGP_TOLERANCE, MASS_TOLERANCE

    key = (tuple((e.predict, e.observe, e.room) for e in eks), None if mk is None else (mk.predict, mk.observe), decode)
    if key in _RUNNERS:
        return _RUNNERS[key]
    env = {"math": math, "OK": OK, "BAD_ROW": BAD_ROW, "BAD_LOGP": BAD_LOGP, "UNDECODABLE": UNDECODABLE,
           "MASS_TOL": MASS_TOLERANCE, "LOGP_TOL": LOGP_TOLERANCE,
           "row_sum": rangecoder.row_sum, "encode_under": rangecoder.encode_under, "decode_under": rangecoder.decode_under}
    for j, e in enumerate(eks):
        env[f"PRED{j}"], env[f"OBS{j}"], env[f"ROOM{j}"] = e.predict, e.observe, e.room
    if mk is not None:
        env["MPRED"], env["MOBS"] = mk.predict, mk.observe
    src = _source(len(eks), tuple(e.room is not None for e in eks), mk is not None, decode)
    exec(compile(src, f"<pgolf-core compiled coding loop, {len(eks)} experts>", "exec"), env)
    fn = njit(env["run"])
    _RUNNERS[key] = fn
    return fn


class CompiledCoding:
    """The compiled loop over one stream: ``run`` codes a chunk and returns the loop's outputs.

    ``coder`` is a ``RowEncoder`` (then ``source`` is the stream to code) or a ``RowDecoder``;
    ``first`` is token 0 (context, never coded)."""

    def __init__(self, comps, n_tokens: int, first: int, coder, source: Optional[np.ndarray] = None):
        self.comps, self.coder = comps, coder
        self.tokens = np.zeros(int(n_tokens), dtype=np.int64)  # the kernels' stream: coded tokens only
        self.tokens[0] = int(first)
        self.source = None if source is None else np.ascontiguousarray(source, dtype=np.int64)
        vocab = comps.experts[0].vocab_size
        if self.source is not None and len(self.source) and not (0 <= self.source.min() and self.source.max() < vocab):
            from ..errors import DataError  # the kernels index rows with these ids: check them once, here

            bad = int(np.argmax((self.source < 0) | (self.source >= vocab)))
            raise DataError(f"token {int(self.source[bad])} at position {bad} is outside the vocabulary of {vocab}")

    def run(self, start: int, end: int):
        """Targets [start, end). Returns (tokens, logp (K, n), mixed (n,)); raises the loop's errors."""
        from .coding import RowDecoder
        from ..errors import PgolfError

        comps, coder = self.comps, self.coder
        k, vocab = len(comps.experts), comps.experts[0].vocab_size
        n = end - start
        decode = isinstance(coder, RowDecoder)
        dists, row, lps = np.empty((k, vocab)), np.empty(vocab), np.empty(k)
        out_lp, out_mix = np.empty((k, n)), np.empty(n)
        if decode:
            coder.reserve(n, vocab)
            src = self.tokens[:0]
        else:
            coder.reserve(n, vocab)
            src = self.source
        t = start
        while t < end:
            found = kernels_of(comps)
            if found is None:
                raise PgolfError("internal: a component stopped offering its compiled step in the middle of a stream")
            eks, mk = found
            fn = _runner(eks, mk, decode)
            ms = () if mk is None else mk.state
            stop, status = fn(self.tokens, src, t, end, coder.state, coder.words, coder.freq, dists, row, lps,
                              out_lp[:, t - start:], out_mix[t - start:], ms, *[e.state for e in eks])
            self._done(eks, mk, stop)
            if status != OK:
                return self._failed(status, stop, start, dists, row, lps, coder)
            t = stop
            if t < end:
                for e in eks:
                    if e.room is not None and not e.room(e.state):
                        e.grow()
        if decode:
            coder.decoded += n
        else:
            coder.n_symbols += n
            coder.vocab_size = vocab
        return self.tokens[start:end], out_lp, out_mix

    @staticmethod
    def _done(eks, mk, stop: int) -> None:
        for e in [*eks, *([mk] if mk is not None else [])]:
            if e.done is not None:
                e.done(stop)

    def _failed(self, status: int, stop: int, start: int, dists, row, lps, coder):
        """Word what stopped the runner with the loop's own guards (which raise)."""
        from ..errors import PgolfError
        from ..run.loop import Guards

        guards = Guards()
        if status == BAD_ROW:
            for j, label in enumerate(self.comps.labels):
                guards.rows(dists[j][None, :], f"expert {label!r}", stop)
            guards.rows(row[None, :], "the mixture", stop)
        elif status == BAD_LOGP:
            for j, label in enumerate(self.comps.labels):
                guards.logp(lps[j:j + 1].copy(), 1, f"expert {label!r}", stop - 1)
            tok = int(self.tokens[stop - 1])
            guards.logp(np.log(row[tok:tok + 1]), 1, "the mixture", stop - 1)
        elif status == UNDECODABLE:
            raise coder.undecodable(coder.decoded + stop - start)
        raise PgolfError("; ".join(guards.violations) or f"internal: compiled loop stopped with status {status}")
