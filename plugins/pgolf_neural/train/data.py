"""Training batches: a deterministic walk over the training stream, split across processes.

Step s uses sequences s*n .. s*n + n - 1 of the stream (n = global batch in sequences, each
``seq_len + 1`` tokens, consecutive sequences overlapping by one token, wrapping at the end).
Process r of W with A accumulation micro-steps takes micro-batch m as the block (r * A + m) of the
step's sequences, so the set of sequences in a step, and hence the averaged gradient, does not
depend on the number of processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgolf_core.errors import UsageError


def load_train_tokens(path, vocab_size: int) -> np.ndarray:
    """Training tokens from .npy / shards (split "train"); validation files are refused."""
    from pgolf_core.stream.data import load_tokens

    p = Path(path)
    if "val" in p.name.lower():
        raise UsageError(f"training data {path}: refusing a path named like validation data ('val' in {p.name!r})")
    tokens = load_tokens(p, vocab_size=vocab_size, split="train")
    if p.is_dir():
        from pgolf_core.stream.data import shard_paths

        bad = [s.name for s in shard_paths(p, "train") if "val" in s.name.lower()]
        if bad:
            raise UsageError(f"training data {path}: refusing validation shards {bad}")
    return tokens


class BatchPlan:
    """Which tokens each process sees at each step and micro-step."""

    def __init__(self, tokens: np.ndarray, seq_len: int, global_seqs: int, world_size: int, micro_seqs: int):
        if global_seqs % (world_size * micro_seqs):
            raise UsageError(
                f"global batch of {global_seqs} sequences does not split into {world_size} processes x "
                f"micro-batches of {micro_seqs} sequences (choose micro_batch_seqs dividing "
                f"{global_seqs // max(world_size, 1)})")
        if len(tokens) < seq_len + 2:
            raise UsageError(f"training stream of {len(tokens)} tokens is shorter than one sequence of {seq_len}")
        self.tokens = tokens
        self.seq_len = seq_len
        self.global_seqs = global_seqs
        self.world_size = world_size
        self.micro_seqs = micro_seqs
        self.accum_steps = global_seqs // (world_size * micro_seqs)
        self.n_starts = (len(tokens) - 1) // seq_len  # distinct sequence starts before wrapping

    def sequences(self, first: int, count: int) -> np.ndarray:
        """(count, seq_len + 1) int64 token rows for global sequence indices first..first+count-1."""
        idx = (np.arange(first, first + count) % self.n_starts) * self.seq_len
        return np.stack([self.tokens[i : i + self.seq_len + 1] for i in idx]).astype(np.int64)

    def micro_batch(self, step: int, rank: int, micro: int) -> np.ndarray:
        block = rank * self.accum_steps + micro
        return self.sequences(step * self.global_seqs + block * self.micro_seqs, self.micro_seqs)
