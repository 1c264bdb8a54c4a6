"""Learning-rate schedules across TTT chunks (pure functions; no torch).

The seed decays the rate with a cosine over the chunks of the whole validation stream and, with its
"adaptive LR", multiplies it by a ramp that grows linearly from 1 to ``ramp_max`` over the first
30% of the chunks (more scored data seen, larger steps).
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "cosine-ramp", "constant")
RAMP_FRACTION = 0.3  # the ramp reaches ramp_max after this fraction of the chunks (the seed's value)


def chunk_count(horizon_targets: int, chunk_tokens: int) -> int:
    """Number of TTT chunks in a stream of ``horizon_targets`` targets."""
    return max(1, -(-int(horizon_targets) // int(chunk_tokens)))


def chunk_lr(base_lr: float, index: int, n_chunks: int, schedule: str = "cosine", ramp_max: float = 3.0) -> float:
    """Learning rate for training on chunk ``index`` (0-based) of ``n_chunks``.

    Past the horizon the rate stays at its value for the last chunk.
    """
    if schedule == "constant":
        return float(base_lr)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    i = min(int(index), n_chunks - 1)
    lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * i / max(n_chunks - 1, 1)))
    if schedule == "cosine-ramp":
        progress = min(i / max(n_chunks * RAMP_FRACTION, 1.0), 1.0)
        lr *= 1.0 + (ramp_max - 1.0) * progress
    return float(lr)
