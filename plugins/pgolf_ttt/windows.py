"""Which tokens the adapters train on, and when (pure NumPy; no torch).

Positions are stream positions: target ``t`` is predicted from ``tokens[:t]``. The adapter's own
chunk ``i`` holds targets ``[1 + i*C, 1 + (i+1)*C)``, the seed's chunking of the N-1 targets. The
evaluator hands over its (smaller or larger) chunks; ``ChunkClock`` says which adapter chunks are
complete after each one. A chunk is complete only when all its targets are scored (``end`` has
reached its upper edge), and nothing is trained after the stream's last span (``final``): there is
nothing left to score with the adapted weights.

Training windows (decision): the loss covers exactly the chunk's targets, each once per epoch, as
in the seed. Windows tile the chunk with ``seq_len`` targets each; when the chunk is not a multiple
of ``seq_len`` the last window is right-aligned to the chunk end and its inputs reach back into
the earlier (already scored) part of the stream, with the loss masked to the targets not yet
covered. Context from earlier chunks is legal (every such token is scored) and it keeps every
window full length, so no target is trained with less context than the model was built for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Targets ``first .. last-1`` (inputs ``tokens[first-1 : last-1]``); loss on targets ``>= loss_from``."""

    first: int
    last: int
    loss_from: int


class ChunkClock:
    """Maps the evaluator's spans to completed adapter chunks ``(index, a, b)``."""

    def __init__(self, chunk_tokens: int):
        self.chunk = int(chunk_tokens)
        self.next_index = 0  # the adapter chunk that is not yet complete
        self.seen_end = 1  # every target < seen_end has been handed over

    def advance(self, start: int, end: int, final: bool) -> list:
        if start != self.seen_end:
            raise ValueError(f"spans must follow each other: expected start {self.seen_end}, got {start}")
        self.seen_end = end
        done = []
        while 1 + (self.next_index + 1) * self.chunk <= end:
            a = 1 + self.next_index * self.chunk
            done.append((self.next_index, a, a + self.chunk))
            self.next_index += 1
        return [] if final else done


def training_windows(a: int, b: int, seq_len: int) -> list:
    """Windows whose loss covers each target of ``[a, b)`` exactly once (see the module docstring)."""
    if not 1 <= a < b:
        raise ValueError(f"bad chunk [{a}, {b})")
    length = min(int(seq_len), b - 1)  # the stream may be shorter than one window
    out, t = [], a
    while t < b:
        if t + length <= b:
            out.append(Window(t, t + length, t))
        else:
            out.append(Window(b - length, b, t))
        t += length
    return out


def window_arrays(tokens: np.ndarray, windows: list, byte_table) -> tuple:
    """(inputs, targets, weights) of equal-length windows, int64/int64/float64 arrays of shape (B, T).

    The weight of a target is its byte count (the metric's denominator), zero where it is masked.
    """
    t_len = windows[0].last - windows[0].first
    x = np.empty((len(windows), t_len), dtype=np.int64)
    y = np.empty_like(x)
    w = np.empty((len(windows), t_len), dtype=np.float64)
    for i, win in enumerate(windows):
        if win.last - win.first != t_len:
            raise ValueError("windows of one batch must have equal length")
        x[i] = tokens[win.first - 1 : win.last - 1]
        y[i] = tokens[win.first : win.last]
        w[i] = byte_table.target_bytes(tokens, win.first, win.last)
        w[i, : win.loss_from - win.first] = 0.0
    return x, y, w
