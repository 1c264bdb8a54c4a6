"""Resumable evaluations: the loop's whole state saved at chunk ends, and a run that continues from it.

A resume point holds every component (experts, mixer, adapters: counts, weights, network weights,
optimizer moments) and the loop's sums, trajectories and position, pickled together so that the
references between them (an adapter and the expert it trains) survive. Since the loop is
deterministic, a resumed run prints exactly the BPB of an uninterrupted one. A resume point also
records a digest of the configuration and of the stream, and is refused for any other run.

A resume file is pickled Python objects: loading one runs code, so resume only from files your own
runs wrote (artifacts, in contrast, never unpickle objects).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
from contextlib import contextmanager
from pathlib import Path

from .errors import PgolfError, UsageError

FORMAT = "pgolf-core/resume"
VERSION = 1
_LOOP_FIELDS = ("nll", "expert_nll", "n_bytes", "n_targets", "next_target", "timers", "trajectory_pos",
                "trajectory_w", "cum", "saved", "last_recorded", "loop_seconds", "guards")


class Interrupted(PgolfError):
    """The run was interrupted (Ctrl-C) after saving a resume point. CLI exit code 130."""

    exit_code = 130


def run_digest(config: dict, stream) -> str:
    """What a resume point must match: the resolved configuration and the stream's tokens."""
    from .container import tokens_checksum

    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode() + tokens_checksum(stream).encode()).hexdigest()


def save(path, loop, digest: str) -> None:
    """Write a resume point of ``loop`` (at a chunk end) to ``path``, atomically."""
    state = {"format": FORMAT, "version": VERSION, "digest": digest, "comps": loop.comps,
             "loop": {k: getattr(loop, k) for k in _LOOP_FIELDS}}
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load(path, digest: str) -> dict:
    """A resume point written for the run whose digest is ``digest``."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)  # noqa: S301 -- the user's own resume file (see the module docstring)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise PgolfError(f"resume file {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise PgolfError(f"resume file {path}: not a {FORMAT} v{VERSION} file")
    if state["digest"] != digest:
        raise UsageError(f"resume file {path} was written by a run with another configuration or stream; "
                         f"give the same options and data, or another --resume file")
    return state


def restore(loop, state: dict, source) -> None:
    """Put a saved state into a freshly built ``loop`` (its components are replaced by the saved ones)."""
    loop.comps = state["comps"]
    for k, v in state["loop"].items():
        setattr(loop, k, v)
    loop.stream.reveal_to(source, loop.next_target)  # every token up to the position is already scored


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


def run_resumable(loop, source, chunk: int, path, every: int, digest: str, progress: bool) -> None:
    """``Loop.run`` with a resume point every ``every`` targets (and at Ctrl-C) in ``path``; continues
    from ``path`` when it holds a resume point of this run."""
    import time

    from .report import progress_bar

    if Path(path).is_file():
        restore(loop, load(path, digest), source)
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
                save(path, loop, digest)
                last = end
                if flag["hit"]:
                    raise Interrupted(f"interrupted at target {end} of {loop.n_tokens - 1}: resume point saved in {path}; "
                                      f"run the same command again to continue")
    loop.loop_seconds += time.perf_counter() - t0
