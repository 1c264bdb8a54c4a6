"""The inputs of ``data check``, all resolved and validated before any check starts: a bad path or
an unreadable file is a ``UsageError`` (exit 2) naming the file and what was expected, never a
traceback an hour into streaming the training shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..stream.data import BOS_ID
from ..errors import DataError, UsageError


@dataclass
class Inputs:
    val: np.ndarray  # the validation token stream
    val_source: str
    train: list = field(default_factory=list)  # [(shard path, token count)] in stream order
    texts: Optional[list] = None  # the documents' original texts (--docs), in stream order
    docs_source: Optional[str] = None
    tokenizer: object = None  # pgolf_core.tokenizers.SentencePieceTokenizer
    tokenizer_sha256: Optional[str] = None
    caseops: bool = False  # the tokenizer reserves the CaseOps operators: ids decode through caseops.decode
    table: object = None  # the tokenizer's ByteTable
    sidecar: object = None  # SidecarBytes (--bytes, or the sidecars beside the val shards)

    def describe(self) -> dict:
        return {"val": self.val_source, "val_tokens": int(len(self.val)),
                "train_shards": len(self.train), "train_tokens": int(sum(n for _, n in self.train)),
                "docs": self.docs_source, "tokenizer": getattr(self.tokenizer, "path", None),
                "tokenizer_sha256": self.tokenizer_sha256, "caseops": self.caseops,
                "bytes": self.sidecar.describe() if self.sidecar is not None else
                ({"method": "tokenizer table"} if self.table is not None else None)}


def split_documents(tokens: np.ndarray):
    """(starts, ends) of the documents of a BOS-delimited stream, BOS excluded: document i is
    ``tokens[starts[i]:ends[i]]``. Tokens before the first BOS (a stream cut mid-document) form a
    document of their own; empty documents (BOS BOS) are kept so indices follow the BOS count."""
    bos = np.flatnonzero(np.asarray(tokens) == BOS_ID)
    starts = bos + 1
    ends = np.append(bos[1:], len(tokens))
    if len(tokens) and (len(bos) == 0 or bos[0] > 0):
        starts, ends = np.insert(starts, 0, 0), np.insert(ends, 0, bos[0] if len(bos) else len(tokens))
    return starts.astype(np.int64), ends.astype(np.int64)


def _usage(exc: Exception) -> UsageError:
    return UsageError(str(exc))


def load_inputs(val, train: Sequence = (), docs=None, tokenizer=None, byte_counts=None) -> Inputs:
    """Read the validation stream, the docs and the tokenizer, find the sidecar and check the header
    of every training shard (1 KiB each: the shards themselves are streamed later)."""
    from ..stream.data import load_byte_sidecar, load_tokens, shard_paths, shard_token_count

    tok = table = sha = None
    caseops = False
    if tokenizer is not None:
        from ..stream.caseops import OPERATORS
        from ..digest import sha256_file
        from ..tokenizers import SentencePieceTokenizer

        try:
            tok = SentencePieceTokenizer(tokenizer)
        except DataError as exc:
            raise _usage(exc) from None
        table, sha = tok.byte_table(), sha256_file(tokenizer)
        caseops = all(tok.sp.piece_to_id(op) != tok.sp.unk_id() for op in OPERATORS)
    if val is None:
        raise UsageError("give the validation stream to check (--val: an .npy, a shard, a folder or a glob)")
    try:
        tokens = load_tokens(val, vocab_size=table.vocab_size if table is not None else None)
    except DataError as exc:
        raise UsageError(f"--val: {exc} (expected an .npy of token ids or fineweb_val_*.bin shards)") from None
    sidecar = None
    try:
        if byte_counts is not None and str(byte_counts).endswith(".npy"):
            sidecar = _npy_sidecar(byte_counts, len(tokens))
        else:
            sidecar = load_byte_sidecar(val, len(tokens), byte_counts)
    except DataError as exc:
        raise UsageError(f"--bytes: {exc}") from None
    shards = []
    for path in train:
        try:
            for shard in shard_paths(path, "train"):
                shards.append((Path(shard), shard_token_count(shard)))
        except DataError as exc:
            raise UsageError(f"--train: {exc} (expected parameter-golf fineweb_train_*.bin shards)") from None
    texts = None
    if docs is not None:
        from ..stream.data import read_jsonl_texts

        try:
            texts = list(read_jsonl_texts(docs))
        except DataError as exc:
            raise UsageError(f"--docs: {exc}") from None
    return Inputs(tokens, str(val), shards, texts, str(docs) if docs else None, tok, sha, caseops, table, sidecar)


def _npy_sidecar(path, n_tokens: int):
    from ..stream.bytes import SidecarBytes

    from ..stream.data import load_npy

    counts = load_npy(path, "byte counts")
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer) or len(counts) != n_tokens:
        raise DataError(f"byte counts {path}: expected {n_tokens} integer counts (one per token), "
                        f"got {counts.dtype} of shape {counts.shape}")
    return SidecarBytes(counts.astype(np.int64), str(path))


def decoded_documents(inputs: Inputs) -> list:
    """The text of each validation document as the tokenizer decodes its ids (through the CaseOps
    inverse for a CaseOps tokenizer), computed once and shared by the bytes and lossless checks.
    A CaseOps document that does not decode is None."""
    cached = getattr(inputs, "_decoded", None)
    if cached is not None:
        return cached
    from ..stream.caseops import decode as caseops_decode

    starts, ends = split_documents(inputs.val)
    out = []
    for a, e in zip(starts, ends):
        text = inputs.tokenizer.decode(inputs.val[a:e].tolist())
        if inputs.caseops:
            try:
                text = caseops_decode(text)
            except DataError:
                text = None
        out.append(text)
    inputs._decoded = out
    return out
