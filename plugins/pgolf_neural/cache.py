"""The cached scorer: each position's hidden state computed once, attention over a sliding band.

The sliding-window scorer (``scoring.py``) runs a whole ``seq_len`` window to score ``stride``
targets, so at stride 64 and seq_len 2048 it computes every position 32 times. This scorer walks the
stream in blocks of ``block`` positions and keeps, for every layer, the keys and values of the last
``seq_len - 1`` positions it computed. A position attends to itself and the ``seq_len - 1``
positions before it (the band a full window gives its last target), so every target is predicted
from ``min(t, seq_len)`` tokens: at least as much context as any window gives it, at the cost of
one forward per position. Keys are kept rotated by their stream position (angles computed in
float64, ``GPT.rope_at``), and attention depends only on the offset between query and key, so a
query sees the relative angles of a window.

What makes it exact and decodable:

- Blocks are placed by stream position (block b holds inputs ``[b * block, (b + 1) * block)``) and
  always run at their full shape; inputs not known yet are token 0. The model is causal, so the
  rows of the known inputs do not depend on the placeholders, and a block run with fewer known
  inputs gives the same rows, bit for bit, as the complete block. A block's keys and values are
  kept only once all its inputs are known. So the rows do not depend on how the stream is cut into
  spans, and the compressor's decoder (``predict``, one target at a time) reproduces the encoder's.
- The kept keys and values belong to the weights that computed them. When the weights change
  (test-time training: the parameters' version counters move, or ``invalidate`` is called), the
  cache is rebuilt from ``seq_len`` positions (rounded up to whole blocks) before the next block.
  A span that starts before the kept state (a caller going back), or more than that band after it
  (a fresh scorer asked for a span in the middle of a stream), restarts the same way. Spans that
  follow each other, as the evaluator's do, never restart.
- With ``bos`` set (document isolation), a position attends only to positions of its own document
  (a document starts at a BOS token) and the previous-token paths restart at each BOS.

Block size. A block of up to ``seq_len`` positions attends to all its keys under a band mask. A
longer block (a multiple of ``seq_len``) runs its attention in tiles of ``seq_len`` queries, each
against the ``seq_len - 1`` keys before it and its own (``Attention.forward``'s ``tiles``), so the
cost stays linear and the whole block goes through each layer's matrix products at once: what makes
a small model fast on a CPU. Decoding runs the block of each target, so a long block makes it
slower; the rows are the same function of the tokens whatever the block, to rounding.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .scoring import autocast, adaptive_temperature


def weights_stamp(model) -> tuple:
    """The version counters of the model's parameters: every in-place change moves one."""
    return tuple(p._version for p in model.parameters())


class CachedScorer:
    def __init__(self, seq_len: int, block: int, bos: Optional[int] = None, temperature: float = 1.0):
        if not (isinstance(block, int) and block >= 1):
            raise ValueError(f"block must be a positive integer, got {block!r}")
        if block > seq_len and block % seq_len:
            raise ValueError(f"a block longer than seq_len ({seq_len}) must be a multiple of it, got {block}")
        self.seq_len, self.block, self.bos, self.temperature = int(seq_len), int(block), bos, float(temperature)
        self.clear()

    def clear(self) -> None:
        """Forget everything: the next block is computed from the start of its restart point."""
        self.pos = 0  # inputs [0, pos) are computed and kept (pos is a multiple of block)
        self.kv: Optional[list] = None  # per block of the model: (k, v) of inputs [pos - P, pos)
        self.last_hidden = None  # (block, C): hidden states of inputs [pos - block, pos)
        self.stamp = None  # weights_stamp of the weights that computed kv
        self.adopt = False  # after a deep copy: the copied weights are those of the copied cache
        self._masks: dict = {}  # the band mask of the last shape used

    def invalidate(self) -> None:
        """The model's weights changed in a way the version counters may not show."""
        self.stamp = ()

    # A deep copy's tensors come back with fresh version counters; a resume point's keep theirs
    # (pgolf_core.checks.statecodec), and this is not called for it.
    def __setstate__(self, state):
        self.__dict__.update(state)
        self.adopt = True

    def rows(self, model, ids: np.ndarray, start: int, end: int, device, dtype, timers: Optional[dict] = None,
             targets: Optional[np.ndarray] = None, distributions: bool = True):
        """Targets ``[start, end)``: ``(logp, rows)``. ``rows`` (end - start, V) are the float64
        log-softmax rows (None unless ``distributions``); ``logp`` (end - start,) are their entries
        at ``targets`` (None when no targets are given). ``ids`` holds every known token (inputs up
        to ``end - 2`` at least) and nothing else is read. Score-only calls never hold more than one
        block's rows: at V=8192 a span's rows would take 64 KB per target."""
        L = self.block
        known = len(ids)
        first, last = start - 1, end - 2  # input positions of the first and last target
        stamp = weights_stamp(model)
        if self.adopt:
            self.stamp, self.adopt = stamp, False
        stale = self.pos and stamp != self.stamp
        if stale or first < self.pos - L or first // L * L - self.pos > self._band():
            self._restart(first)
        self.stamp = stamp
        n, vocab = end - start, model.config.vocab_size
        logp = np.empty(n) if targets is not None else None
        rows = torch.empty((n, vocab), dtype=torch.float64) if distributions else None
        # inference_mode: nothing here is differentiated, and the kept tensors never reach a backward
        with torch.inference_mode(), autocast(device, dtype):
            for b0 in range(first // L * L, last + 1, L):
                t0 = time.perf_counter()
                while self.pos < b0:  # a gap: inputs before this span not computed yet (all known)
                    self._block(model, ids, self.pos, known, device)
                h = self.last_hidden if b0 + L <= self.pos else self._block(model, ids, b0, known, device)
                # all block rows: the head's shape never depends on the span
                logits = adaptive_temperature(model.head(h), self.temperature)
                t1 = time.perf_counter()
                lo, hi = max(first, b0) - b0, min(last + 1, b0 + L) - b0
                block = F.log_softmax(logits[lo:hi].double(), dim=-1).cpu()
                at = b0 + lo - first  # offset of this block's first row in the span
                if targets is not None:
                    y = torch.from_numpy(np.asarray(targets[at: at + hi - lo], dtype=np.int64))
                    logp[at: at + hi - lo] = block.gather(1, y[:, None])[:, 0].numpy()
                if rows is not None:
                    rows[at: at + hi - lo] = block
                if timers is not None:
                    timers["forward"] = timers.get("forward", 0.0) + t1 - t0
                    timers["softmax"] = timers.get("softmax", 0.0) + time.perf_counter() - t1
        return logp, rows

    def _band(self) -> int:
        """The band (seq_len - 1 positions) rounded up to whole blocks."""
        return -(-(self.seq_len - 1) // self.block) * self.block

    def _restart(self, first: int) -> None:
        """Start over one band before the block of input ``first``: the state then depends only on
        the weights and the tokens from there on."""
        self.clear()
        self.pos = max(0, first // self.block * self.block - self._band())

    def _band_mask(self, P: int, device):
        """(block, P + block) bool: query i (at P + i) may attend to key j iff 0 <= P + i - j < seq_len."""
        key = (P, str(device))
        if self._masks.get("key") != key:
            q = torch.arange(P, P + self.block, device=device)[:, None]
            k = torch.arange(P + self.block, device=device)[None, :]
            self._masks = {"key": key, "mask": (k <= q) & (q - k < self.seq_len)}
        return self._masks["mask"]

    def _tile_mask(self, P: int, device):
        """(block / seq_len, 1, seq_len, 2 seq_len - 1) bool for the tiled path: tile j's query i
        may attend to its key m (stream position b0 + j W - (W - 1) + m) iff the offset is in
        [0, W) and the key exists (it is one of the P kept positions or in the block)."""
        key = ("tiles", P, str(device))
        if self._masks.get("key") != key:
            W = self.seq_len
            n, extra = self.block // W, W - 1
            i = torch.arange(W, device=device)[:, None]
            m = torch.arange(W + extra, device=device)[None, :]
            band = (extra + i - m >= 0) & (extra + i - m < W)
            j = torch.arange(n, device=device)[:, None, None]
            exists = (j * W - extra + m[None]) >= -P  # (n, 1, span)
            self._masks = {"key": key, "mask": (band[None] & exists)[:, None]}
        return self._masks["mask"]

    def _block(self, model, ids: np.ndarray, b0: int, known: int, device):
        """Hidden states (block, C) of inputs ``[b0, b0 + block)`` (unknown ones set to token 0);
        keeps the keys and values when the block is complete and is the next one."""
        L, W = self.block, self.seq_len
        P = 0 if self.kv is None else self.kv[0][0].size(1)  # kept positions before b0
        lead = min(2, b0)  # the two tokens before b0 feed the bigram hash and the smear gate
        x = np.zeros(lead + L, dtype=np.int64)
        seen = ids[b0 - lead: min(b0 + L, known)]
        x[: len(seen)] = seen
        x_t = torch.from_numpy(x).to(device)[None]
        tiled = L > W
        mask = self._tile_mask(P, device) if tiled else self._band_mask(P, device)
        reset = None
        if self.bos is not None:
            band = np.zeros(P + L, dtype=np.int64)  # the document of each position (kept ones included)
            band[: P + len(seen) - lead] = ids[b0 - P: min(b0 + L, known)]
            doc = torch.from_numpy(np.cumsum(band == self.bos)).to(device)
            if tiled:  # the documents of each tile's keys: the W - 1 positions before it, then its own
                pad = torch.full((max(0, W - 1 - P),), -1, dtype=doc.dtype, device=device)
                keys_doc = torch.cat((pad, doc[max(0, P - (W - 1)):])).unfold(0, 2 * W - 1, W)  # (n, span)
                query_doc = doc[P:].view(L // W, W)
                mask = mask & (query_doc[:, None, :, None] == keys_doc[:, None, None, :])
            else:
                mask = mask & (doc[P:, None] == doc[None, :])
            reset = x_t == self.bos
        new: list = []
        rope = model.rope_at(torch.arange(b0, b0 + L, device=device), W)
        h = model.hidden(x_t, rope_len=W, lead=lead, reset=reset, past=self.kv, mask=mask, kv_out=new,
                         rope=rope, tiles=(W, 2 * W - 1) if tiled else None)[0]
        if b0 + L <= known and b0 == self.pos:
            n = new[0][0].size(1)
            self.kv = [(k[:, max(0, n - (W - 1)):], v[:, max(0, n - (W - 1)):]) for k, v in new]
            self.pos = b0 + L
            self.last_hidden = h
        return h
