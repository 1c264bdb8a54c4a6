"""Byte accounting of the official metric: how many UTF-8 bytes each target token stands for.

The rule: a target y after token x counts the UTF-8 length of y's piece
without its leading "▁", plus 1 when the piece had a leading "▁" and x is not a boundary token.
Byte-fallback pieces count 1; control, unknown and unused tokens count 0 and are boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

SPACE = "\u2581"  # SentencePiece's word-boundary marker "▁"


@dataclass(frozen=True)
class ByteTable:
    """Per-token lookup tables of the byte count (one entry per vocabulary id)."""

    base_bytes: np.ndarray  # int64 (V,): UTF-8 bytes of the piece without its leading "▁"
    has_space: np.ndarray  # bool (V,): the piece starts with "▁"
    is_boundary: np.ndarray  # bool (V,): control/unknown/unused token (counts 0, resets the space rule)

    @property
    def vocab_size(self) -> int:
        return int(self.base_bytes.shape[0])

    def target_bytes(self, tokens: np.ndarray, start: int = 1, end: int | None = None) -> np.ndarray:
        """Bytes of targets ``start..end-1`` of ``tokens`` (int64); target t's previous token is t-1."""
        end = len(tokens) if end is None else end
        if start < 1:
            raise ValueError("position 0 has no previous token and is never a target")
        y = np.asarray(tokens[start:end], dtype=np.int64)
        x = np.asarray(tokens[start - 1 : end - 1], dtype=np.int64)
        return self.base_bytes[y] + (self.has_space[y] & ~self.is_boundary[x])

    def describe(self) -> dict:
        return {"method": "tokenizer table"}


@dataclass(frozen=True)
class SidecarBytes:
    """Byte counts given per token by a sidecar file (the CaseOps data of today's records): target t
    stands for ``counts[t]`` original UTF-8 bytes (BOS and case operators count 0). It replaces the
    tokenizer's table, which cannot know the bytes a case transform removed."""

    counts: np.ndarray  # int64 (N,), aligned with the token stream
    source: str  # the sidecar file(s)

    def target_bytes(self, tokens: np.ndarray, start: int = 1, end: int | None = None) -> np.ndarray:
        end = len(tokens) if end is None else end
        if start < 1:
            raise ValueError("position 0 has no previous token and is never a target")
        return self.counts[start:end]

    def head(self, n: int) -> "SidecarBytes":
        """The counts of the first ``n`` tokens (the stream was cut to them)."""
        return SidecarBytes(self.counts[:n], self.source)

    def describe(self) -> dict:
        return {"method": "sidecar", "source": self.source}


def load_sentencepiece(path) -> "object":
    """Load a SentencePiece model, with a clear error naming the file."""
    import sentencepiece as spm

    path = Path(path)
    if not path.is_file():
        raise DataError(f"tokenizer {path}: no such file (expected a SentencePiece .model)")
    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except Exception as exc:
        raise DataError(f"tokenizer {path}: not a SentencePiece model ({exc})") from exc
    return sp


def byte_table_from_sentencepiece(sp_or_path) -> ByteTable:
    """Build the byte tables from a SentencePiece processor or model path."""
    sp = load_sentencepiece(sp_or_path) if isinstance(sp_or_path, (str, Path)) else sp_or_path
    vocab = sp.GetPieceSize()
    base = np.zeros(vocab, dtype=np.int64)
    space = np.zeros(vocab, dtype=bool)
    boundary = np.ones(vocab, dtype=bool)
    for i in range(vocab):
        if sp.IsControl(i) or sp.IsUnknown(i) or sp.IsUnused(i):
            continue
        boundary[i] = False
        if sp.IsByte(i):
            base[i] = 1
            continue
        piece = sp.IdToPiece(i)
        if piece.startswith(SPACE):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return ByteTable(base, space, boundary)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """BPB = (sum of -ln p) / ln 2 / (sum of bytes): a ratio of sums, never a mean of ratios."""
    if n_bytes <= 0:
        raise ValueError("no bytes were scored")
    return float(nll_nats) / math.log(2.0) / float(n_bytes)
