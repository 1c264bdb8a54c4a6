"""The seed's own accounting of its sliding-window loop, next to pgolf-core's one-pass accounting.

The seed (PR #700) starts a window at every multiple of ``stride`` below the stream's last target
and scores the last ``stride`` positions of each (all of them in the first window). Near the end a
window is cut short by the stream, and its last ``stride`` positions are the stream's last
``stride`` targets again: they are scored once more by every window that starts within
``seq_len`` of the end, each time from a shorter context. On a 4,097-token stream with seq_len 2048
and stride 64 that is 6,080 scored targets for 4,096 distinct ones. A BPB over those counts some
bytes up to 32 times; pgolf-core scores each target once.

``seed_windows`` lists the seed's windows in our ``Window`` terms (targets ``lo .. hi - 1``, inputs
from ``begin``), so that the same model scores both plans and a published number can be split into
its one-pass part and the re-scored tail.
"""

from __future__ import annotations

import numpy as np

from .scoring import Window, plan_windows, score_windows


def seed_windows(n_tokens: int, seq_len: int, stride: int) -> list[Window]:
    """The seed's windows over a stream of ``n_tokens`` tokens (targets 1 .. n_tokens - 1)."""
    total = n_tokens - 1  # the seed's total_tokens: positions with a next token
    out = []
    for ws in range(0, total, stride):
        end = min(ws + seq_len, total)
        wlen = end - ws
        if wlen < 1:
            continue
        s = 0 if ws == 0 else max(wlen - stride, 0)
        out.append(Window(ws, ws + s + 1, ws + wlen + 1))  # position p predicts target p + 1
    return out


def compare(model, tokens: np.ndarray, byte_counts, *, seq_len: int, stride: int, batch: int = 32) -> dict:
    """Both accountings of the same model on ``tokens``: {"one_pass": ..., "seed": ...}, each with
    targets, bytes, loss (nats per target) and BPB; ``seed`` also has the re-scored targets and bytes."""
    from pgolf_core.stream.bytes import bits_per_byte

    n = len(tokens)
    out = {}
    for name, windows in (("one_pass", plan_windows(1, n, seq_len, stride)), ("seed", seed_windows(n, seq_len, stride))):
        logp = score_windows(model, tokens, windows, seq_len=seq_len, batch=batch)
        nbytes = sum(int(byte_counts.target_bytes(tokens, w.lo, w.hi).sum()) for w in windows)
        targets = sum(w.hi - w.lo for w in windows)
        out[name] = {"windows": len(windows), "targets": targets, "bytes": nbytes, "loss": float(-logp.mean()),
                     "bpb": bits_per_byte(float(-logp.sum()), nbytes)}
    out["seed"]["rescored_targets"] = out["seed"]["targets"] - out["one_pass"]["targets"]
    out["seed"]["rescored_bytes"] = out["seed"]["bytes"] - out["one_pass"]["bytes"]
    return out
