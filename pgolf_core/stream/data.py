"""Token streams: parameter-golf shards, .npy arrays, and documents -> shards.

Shard format (parameter-golf): a header of 256 little-endian int32 (magic 20240520, version 1,
token count) followed by that many little-endian uint16 token ids. A split is the concatenation
of its shards in sorted order; each document is written as BOS (id 1) followed by its tokens.
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from ..errors import DataError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
BOS_ID = 1
SHARD_TOKENS = 100_000_000  # tokens per shard in the official export


def read_shard(path, vocab_size: Optional[int] = None) -> np.ndarray:
    """Read one shard, validating header, length and (when given) the token range."""
    path = Path(path)
    n = shard_token_count(path)
    tokens = np.fromfile(path, dtype="<u2", count=n, offset=HEADER_BYTES)
    check_vocab(tokens, vocab_size, path)
    return tokens


def shard_token_count(path) -> int:
    """The token count of a shard from its header, after checking magic, version and file size
    (reads 1 KiB: a streaming reader validates every shard before the first token is read)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"shard {path}: no such file")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise DataError(f"shard {path}: {size} bytes is shorter than the {HEADER_BYTES}-byte header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if int(header[0]) != SHARD_MAGIC:
        raise DataError(f"shard {path}: bad magic {int(header[0])} (expected {SHARD_MAGIC})")
    if int(header[1]) != SHARD_VERSION:
        raise DataError(f"shard {path}: unsupported version {int(header[1])} (expected {SHARD_VERSION})")
    n = int(header[2])
    expected = HEADER_BYTES + 2 * n
    if n < 0 or size != expected:
        raise DataError(
            f"shard {path}: header says {n} tokens ({expected} bytes) but the file has {size} bytes "
            f"({'truncated' if size < expected else 'trailing data'})"
        )
    return n


def write_shard(path, tokens: np.ndarray) -> None:
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise DataError(f"shard {path}: token ids must fit in uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, tokens.size
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


def check_vocab(tokens: np.ndarray, vocab_size: Optional[int], source) -> None:
    if vocab_size is None or tokens.size == 0:
        return
    top = int(tokens.max())
    if top >= vocab_size:
        where = int(np.argmax(tokens >= vocab_size))
        raise DataError(
            f"{source}: token id {int(tokens[where])} at position {where} is out of range for a vocabulary of "
            f"{vocab_size} (the largest id is {top}; does the tokenizer match the data?)"
        )


def load_npy(path, what: str) -> np.ndarray:
    """An .npy array (never a pickle); a missing or unreadable file is a ``DataError`` naming ``what``."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{what} {path}: no such file") from None
    except Exception as exc:
        raise DataError(f"{what} {path}: not a readable .npy array ({exc})") from None


def read_npy(path, vocab_size: Optional[int] = None) -> np.ndarray:
    path = Path(path)
    arr = load_npy(path, "token file")
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"token file {path}: expected a 1-D integer array, got {arr.dtype} of shape {arr.shape}")
    if arr.size and int(arr.min()) < 0:
        raise DataError(f"token file {path}: negative token id {int(arr.min())}")
    check_vocab(arr, vocab_size, path)
    return arr.astype(np.uint16) if int(arr.max(initial=0)) < 2**16 else arr.astype(np.int64)


_SPLIT_NAMES = {"val": "validation", "train": "training", "val_bytes": "byte-sidecar"}


def shard_split(path) -> Optional[str]:
    """The split a parameter-golf file name declares (``fineweb_<split>_<index>.bin``: ``val``,
    ``train``, ``val_bytes``), or None for a file not named that way."""
    m = re.fullmatch(r"fineweb_(.+)_(\d+)\.bin", Path(path).name)
    return m.group(1) if m else None


def _refuse_other_split(shard: Path, split: str, pattern=None) -> None:
    """A shard named for another split is never read as ``split``: a training shard scored as the
    validation split would print a score for the wrong data with exit 0."""
    other = shard_split(shard)
    if other is None or other == split:
        return
    kind, want = _SPLIT_NAMES.get(other, other), _SPLIT_NAMES.get(split, split)
    what = f"data {shard} is" if pattern is None else f"data {pattern} matches {shard},"
    raise DataError(f"{what} a {kind} shard (split '{other}'), not a {want} shard; give the fineweb_{split}_*.bin "
                    f"shards (to read {kind} tokens on purpose: pgolf_core.stream.data.load_tokens(PATH, split='{other}'))")


def shard_paths(path, split: str = "val") -> list:
    """The shards a path names: a file, a directory (``fineweb_<split>_*.bin``) or a glob. A file
    or a glob match named for another split (``fineweb_train_*`` when ``split`` is ``val``) is
    refused, and so is a directory that holds only other splits' shards."""
    p = Path(path)
    if p.is_file():
        _refuse_other_split(p, split)
        return [p]
    if p.is_dir():
        found = [q for q in sorted(p.glob("fineweb_*_*.bin")) if shard_split(q) == split]
        if found:
            return found
        named = [q for q in sorted(p.glob("fineweb_*_*.bin")) if shard_split(q) is not None]
        if named:  # e.g. only training shards: never score another split than the one asked for
            splits = sorted({shard_split(q) for q in named})
            raise DataError(f"data directory {p} has no fineweb_{split}_*.bin shards, only {', '.join(splits)} "
                            f"shards; name the shards to score explicitly (e.g. {named[0]})")
        found = sorted(p.glob("*.bin"))
        if not found:
            raise DataError(f"data directory {p}: no fineweb_{split}_*.bin shards")
        return found
    found = sorted(Path(x) for x in glob.glob(str(path)) if Path(x).is_file())
    if not found:
        raise DataError(f"data {path}: no such file, directory or matching shards")
    for q in found:
        _refuse_other_split(q, split, path)
    return found


def check_data_path(path, split: str = "val") -> None:
    """Fail as ``load_tokens`` would when ``path`` names no token data, without reading any."""
    p = Path(path)
    if p.suffix == ".npy":
        if not p.is_file():
            raise DataError(f"token file {p}: no such file")
        return
    shard_paths(path, split)


def load_tokens(path, vocab_size: Optional[int] = None, split: str = "val") -> np.ndarray:
    """Load a token stream from a .npy file, a shard, a shard directory or a glob of shards."""
    p = Path(path)
    if p.suffix == ".npy":
        return read_npy(p, vocab_size)
    parts = [read_shard(s, vocab_size) for s in shard_paths(path, split)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def official_trim(tokens: np.ndarray, seq_len: int = 2048) -> np.ndarray:
    """The official scripts' cut: keep ``((N - 1) // seq_len) * seq_len + 1`` tokens."""
    if int(seq_len) < 1:
        from ..errors import UsageError

        raise UsageError(f"the official trim needs a positive sequence length, got {seq_len}")
    n = ((len(tokens) - 1) // seq_len) * seq_len + 1
    if n < 2:
        raise DataError(f"stream of {len(tokens)} tokens is shorter than one window of {seq_len}")
    return tokens[:n]


def read_jsonl_texts(path, exclude_sources: Sequence[str] = (), limit: Optional[int] = None) -> Iterator[str]:
    """Yield the ``text`` field of each line of a JSONL file, skipping excluded ``source`` values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"documents {path}: no such file")
    n = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"documents {path}:{lineno}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                text = doc["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"documents {path}:{lineno}: expected a JSON object with a 'text' field ({exc})") from exc
            if not isinstance(text, str):
                raise DataError(f"documents {path}:{lineno}: 'text' must be a string, got {type(text).__name__}")
            if doc.get("source") in exclude_sources:
                continue
            yield text
            n += 1
            if limit is not None and n >= limit:
                return


def encode_documents(texts: Iterable[str], sp, bos_id: int = BOS_ID) -> np.ndarray:
    """Tokenize documents into one stream, BOS before each, as the official export does."""
    texts = list(texts)
    pieces = sp.Encode(texts, out_type=int) if texts else []
    out = np.empty(sum(len(p) + 1 for p in pieces), dtype=np.uint16)
    i = 0
    for ids in pieces:
        out[i] = bos_id
        out[i + 1 : i + 1 + len(ids)] = ids
        i += len(ids) + 1
    return out


def encode_caseops_documents(texts: Iterable[str], sp, bos_id: int = BOS_ID) -> tuple:
    """CaseOps documents into one stream, BOS before each, with the original UTF-8 bytes of each
    token (BOS 0): (tokens uint16, byte counts uint16), the shard and its sidecar."""
    from .caseops import encode_document

    tokens, counts = [], []
    for text in texts:
        ids, nbytes = encode_document(text, sp)
        tokens += [bos_id, *ids]
        counts += [0, *nbytes]
    if counts and max(counts) >= 2**16:
        raise DataError(f"a token stands for {max(counts)} bytes: more than a uint16 sidecar holds")
    return np.array(tokens, dtype=np.uint16), np.array(counts, dtype=np.uint16)


def _check_caseops_model(sp, tokenizer_path) -> None:
    from .caseops import OPERATORS

    ids = [sp.piece_to_id(op) for op in OPERATORS]
    if any(i == sp.unk_id() for i in ids):
        raise DataError(f"tokenizer {tokenizer_path}: not a CaseOps model (the operators U+E001..U+E004 are not "
                        f"pieces of it); use fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model")


def prepare_shards(docs_path, tokenizer_path, out_dir, val_docs: int = 0, shard_tokens: int = SHARD_TOKENS,
                   exclude_sources: Sequence[str] = (), caseops: bool = False) -> dict:
    """Write ``fineweb_val_*.bin`` (the first ``val_docs`` documents) and ``fineweb_train_*.bin``.

    ``caseops``: apply the lossless case transform (``pgolf_core.stream.caseops``) before tokenizing with
    a CaseOps model, and write the validation byte sidecar ``fineweb_val_bytes_*.bin`` beside the
    validation shards (each token's original UTF-8 bytes: BPB stays on the original text)."""
    from .bytes import load_sentencepiece

    sp = load_sentencepiece(tokenizer_path)
    if caseops:
        _check_caseops_model(sp, tokenizer_path)
    texts = list(read_jsonl_texts(docs_path, exclude_sources))
    if val_docs > len(texts):
        raise DataError(f"documents {docs_path}: asked for {val_docs} validation docs but the file has {len(texts)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder; --out names the folder the shards go to")
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    encoded = {}
    for split, part in (("val", texts[:val_docs]), ("train", texts[val_docs:])):
        if part:
            encoded[split] = encode_caseops_documents(part, sp) if caseops else (encode_documents(part, sp), None)
    dropped = 0
    if "val" in encoded and "train" in encoded:  # disjoint splits by construction, checked before writing
        train, dropped = drop_documents_in(encoded["train"][0], encoded["val"][0])
        encoded["train"] = (train, None)
    for split, part in (("val", texts[:val_docs]), ("train", texts[val_docs:])):
        if split not in encoded:
            continue
        stream, counts = encoded[split]
        files = []
        for k, s in enumerate(range(0, len(stream), shard_tokens)):
            f = out / f"fineweb_{split}_{k:06d}.bin"
            write_shard(f, stream[s : s + shard_tokens])
            files.append(str(f))
            if counts is not None and split == "val":
                write_shard(out / f"fineweb_{split}_bytes_{k:06d}.bin", counts[s : s + shard_tokens])
        summary[split] = {"docs": len(part) - (dropped if split == "train" else 0), "tokens": int(len(stream)),
                          "shards": files}
        if split == "train" and dropped:
            summary[split]["dropped_copies_of_val_docs"] = dropped
        if counts is not None and split == "val":
            summary[split]["sidecar_bytes"] = int(counts.sum())
            summary[split]["text_bytes"] = sum(len(t.encode("utf-8")) for t in part)
    return summary


def document_keys(stream: np.ndarray) -> list:
    """A 128-bit digest of each BOS-delimited document's token ids (the document, not its position)."""
    import hashlib

    bos = np.flatnonzero(stream == BOS_ID)
    ends = np.append(bos[1:], len(stream))
    ids = np.ascontiguousarray(stream, dtype="<u2")
    return [hashlib.blake2b(ids[a + 1 : e].tobytes(), digest_size=16).digest() for a, e in zip(bos, ends)]


def drop_documents_in(train: np.ndarray, val: np.ndarray) -> tuple:
    """The training stream without the documents whose token ids equal a validation document's,
    and how many were dropped. A docs file can hold a validation text twice (the same page crawled
    twice); the training split must never hold it, whatever ``--val-docs`` is. Raises ``DataError``
    if a copy survived (which would be a bug here, not in the data)."""
    val_keys = set(document_keys(val))
    bos = np.flatnonzero(train == BOS_ID)
    ends = np.append(bos[1:], len(train))
    keep = np.ones(len(train), dtype=bool)
    dropped = 0
    for a, e, key in zip(bos, ends, document_keys(train)):
        if key in val_keys:
            keep[a:e] = False
            dropped += 1
    train = train[keep]
    if val_keys.intersection(document_keys(train)):
        raise DataError("internal error: a validation document is still in the training split; nothing was written")
    return train, dropped


TOKENIZER_CHECK_DOCS = 8  # complete documents decoded and re-encoded to check a tokenizer against data
TOKENIZER_CHECK_MAX_TOKENS = 4096  # longer documents are skipped (the check stays a few milliseconds)


def check_tokenizer_matches(tokens: np.ndarray, sp, source, tokenizer) -> dict:
    """Decode complete documents of the stream (BOS to BOS) and re-encode them: with the tokenizer
    that wrote the data they come back token for token. A wrong tokenizer of the same or a larger
    vocabulary passes the id-range check but not this one, and would count the wrong bytes.

    Returns the evidence; raises ``DataError`` when fewer than half of the sampled documents round
    trip. Streams without complete documents are not checked (``{"documents": 0}``)."""
    starts = np.flatnonzero(np.asarray(tokens) == BOS_ID)
    docs = [(a + 1, b) for a, b in zip(starts[:-1], starts[1:]) if 0 < b - a - 1 <= TOKENIZER_CHECK_MAX_TOKENS]
    if not docs:
        return {"documents": 0}
    picks = [docs[i] for i in np.linspace(0, len(docs) - 1, min(TOKENIZER_CHECK_DOCS, len(docs))).astype(int)]
    bad = []
    for a, b in picks:
        ids = [int(x) for x in tokens[a:b]]
        if sp.encode(sp.decode(ids)) != ids:
            bad.append(int(a))
    if 2 * len(bad) > len(picks):
        raise DataError(f"{source}: the tokenizer {tokenizer} does not match the data: {len(bad)} of {len(picks)} "
                        f"sampled documents (starting at positions {bad[:3]}) do not re-encode to their own tokens, so "
                        f"their bytes would be counted wrong. Give the tokenizer that wrote the data, or skip this "
                        f"check (--no-tokenizer-check) for a stream that legitimately does not round-trip")
    return {"documents": len(picks), "round_trip_failures": len(bad)}


def sidecar_path(shard: Path) -> Path:
    """``fineweb_val_000000.bin`` -> ``fineweb_val_bytes_000000.bin`` (the parameter-golf naming)."""
    stem, _, index = shard.stem.rpartition("_")
    return shard.with_name(f"{stem}_bytes_{index}{shard.suffix}")


def load_byte_sidecar(data, n_tokens: int, explicit=None):
    """Per-token byte counts for the stream read from ``data``: from ``explicit`` (a sidecar shard,
    directory or glob) or, when the token shards have ``fineweb_*_bytes_*`` files beside them, from
    those. Returns ``SidecarBytes`` or None (no sidecar: the tokenizer's table counts). Each sidecar
    is a shard (same header) of uint16 counts and must have as many entries as its token shard."""
    from .bytes import SidecarBytes

    if explicit is not None:
        paths = [Path(explicit)] if Path(explicit).is_file() else shard_paths(explicit, "val_bytes")
    else:
        if data is None or Path(data).suffix == ".npy":
            return None
        shards = shard_paths(data)
        paths = [sidecar_path(q) for q in shards]
        present = [q.is_file() for q in paths]
        if not any(present):
            return None
        if not all(present):
            missing = [str(q) for q, ok in zip(paths, present) if not ok]
            raise DataError(f"byte sidecars: {missing[0]} is missing while other shards of {data} have one")
    counts = np.concatenate([read_shard(q) for q in paths]).astype(np.int64)
    if len(counts) != n_tokens:
        raise DataError(f"byte sidecar {paths[0] if len(paths) == 1 else paths}: {len(counts)} counts for "
                        f"{n_tokens} tokens (expected one count per token)")
    return SidecarBytes(counts, ", ".join(str(q) for q in paths))


def _read_sidecar(source) -> np.ndarray:
    """Every count of a sidecar shard, folder or glob (or of an .npy of counts)."""
    if str(source).endswith(".npy"):  # counts handed over by an evaluation (checked against the header all the same)
        return np.load(source, allow_pickle=False).astype(np.int64)
    paths = [Path(source)] if Path(source).is_file() else shard_paths(source, "val_bytes")
    return np.concatenate([read_shard(q) for q in paths]).astype(np.int64)


def sidecar_target_bytes(source, tokens, header: dict, path) -> int:
    """Bytes of the decoded stream's targets from the sidecar at ``source``, which must be the one
    the file was coded with (its first N counts' sha256)."""
    from ..digest import counts_digest

    counts = _read_sidecar(source)[: len(tokens)]
    if len(counts) != len(tokens) or counts_digest(counts) != header.get("byte_counting", {}).get("sha256"):
        raise DataError(f"{path}: the byte sidecar {source} is not the one the stream was coded with "
                        f"(its first {len(tokens):,} counts differ)")
    return int(counts[1:].sum())
