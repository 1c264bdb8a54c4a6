"""What the two adapters share: finding the expert's model, the chunk clock, timing and stats."""

from __future__ import annotations

import time

import numpy as np

from pgolf_core.api import Adapter
from pgolf_core.errors import UsageError

from .schedule import chunk_count, chunk_lr
from .windows import ChunkClock

# Targets of the official FineWeb validation split (62,021,846 tokens): the default horizon of the
# cosine schedule when the run does not say how long its stream is.
OFFICIAL_VAL_TARGETS = 62_021_845


def adapted_model(experts: dict, target: str, who: str):
    """(expert, model, its seq_len) of the expert named ``target`` that an adapter ``who`` trains,
    or a usage error naming what is missing."""
    if target not in experts:
        raise UsageError(f"{who}: option target={target!r} names no expert of this run "
                         f"(experts: {', '.join(experts) or 'none'})")
    expert = experts[target]
    found = expert.adaptable_model()
    if found is None:
        raise UsageError(f"{who}: expert {target!r} declares no model to adapt (Expert.adaptable_model returns None)")
    model, seq_len = found
    return expert, model, seq_len


class ChunkedAdapter(Adapter):
    """Buffers the evaluator's spans into its own chunks and trains on each completed chunk.

    Subclasses provide ``_params(model)`` (the tensors to train, called once in ``setup``) and may
    override ``_before_train(tokens, a, b)``.
    """

    def __init__(self, ctx, *, target, optimizer, epochs, lr, chunk_tokens, seq_len, batch,
                 polyak, grad_clip, schedule, ramp_max, horizon):
        if ctx.byte_counts is None:
            raise UsageError(f"adapter {type(self).__name__}: the byte table (tokenizer) is needed for the byte-weighted loss")
        self.ctx, self.target, self.kind = ctx, target, optimizer
        self.epochs, self.lr, self.chunk_tokens = epochs, lr, chunk_tokens
        self.seq_len, self.batch, self.polyak, self.grad_clip = seq_len, batch, polyak, grad_clip
        self.schedule, self.ramp_max = schedule, ramp_max
        horizon = horizon or ctx.stream_targets or OFFICIAL_VAL_TARGETS
        self.n_chunks = chunk_count(horizon, chunk_tokens)
        self.clock = ChunkClock(chunk_tokens)
        self.trainer = None
        self.seconds: list = []
        self.history: list = []

    def setup(self, experts: dict) -> None:
        from .trainer import ChunkTrainer

        expert, model, expert_seq_len = adapted_model(experts, self.target, f"adapter {self.name!r}")
        self.expert, self.model = expert, model
        seq_len = self.seq_len or int(expert_seq_len or 0)
        if seq_len < 1:
            raise UsageError(f"adapter {self.name!r}: expert {self.target!r} does not say its seq_len; pass seq_len=N")
        context = getattr(model, "context_length", None)
        if context and seq_len > context:  # training on positions the model was never built for
            raise UsageError(f"adapter {self.name!r}: seq_len={seq_len} exceeds the context length of expert "
                             f"{self.target!r}'s model ({context})")
        self.seq_len = seq_len
        params = self._params(model)
        if not params:
            raise UsageError(f"adapter {self.name!r}: nothing to train in expert {self.target!r}")
        self.trainer = ChunkTrainer(model, params, optimizer=self.kind, epochs=self.epochs, seq_len=seq_len,
                                    batch=self.batch, grad_clip=self.grad_clip, polyak=self.polyak,
                                    byte_table=self.ctx.byte_counts, rope_len=expert_seq_len)

    def _params(self, model) -> list:
        raise NotImplementedError

    def _before_train(self, tokens: np.ndarray, a: int, b: int) -> tuple:
        """Hook before training chunk ``[a, b)``; returns the span to train on (default: all of it)."""
        return a, b

    def after_chunk(self, tokens: np.ndarray, start: int, end: int, final: bool) -> None:
        if self.trainer is None:
            raise RuntimeError(f"adapter {self.name!r} was not set up with the run's experts")
        for index, a, b in self.clock.advance(start, end, final):
            t0 = time.perf_counter()
            self.expert.weights_changed()  # the expert may cache activations of the old weights
            a, b = self._before_train(tokens, a, b)
            if a >= b or self.epochs == 0:
                continue
            lr = chunk_lr(self.lr, index, self.n_chunks, self.schedule, self.ramp_max)
            info = self.trainer.train(tokens, a, b, lr)
            self.seconds.append(time.perf_counter() - t0)
            self.history.append({"chunk": index, "targets": [a, b], "lr": lr, **info})

    def state_fingerprint(self):
        if self.trainer is None:
            return None
        import hashlib

        h = hashlib.sha256()
        for p in self.trainer.params:
            h.update(p.detach().cpu().float().numpy().tobytes())
        return h.digest()

    def stats(self) -> dict:
        secs = np.asarray(self.seconds, dtype=np.float64)
        return {
            "chunks_trained": len(self.seconds),
            "seconds_per_chunk": float(secs.mean()) if secs.size else 0.0,
            "seconds_total": float(secs.sum()),
            "chunk_tokens": self.chunk_tokens,
            "history": self.history,
        }

    def describe(self) -> dict:
        return {"target": self.target, "optimizer": self.kind, "epochs": self.epochs, "lr": self.lr,
                "chunk_tokens": self.chunk_tokens, "seq_len": self.seq_len, "batch": self.batch,
                "polyak": self.polyak, "grad_clip": self.grad_clip, "schedule": self.schedule,
                "ramp_max": self.ramp_max, "horizon_chunks": self.n_chunks}
