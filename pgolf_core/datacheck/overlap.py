"""Overlap: validation documents that also occur in the training shards.

Exact copies: a 64-bit hash of each document's token ids, every hit confirmed token for token.
Near copies: MinHash over k-token shingles (``kernels``), candidates found by LSH banding and
confirmed by the exact Jaccard similarity of the two shingle sets. The training shards are streamed
block by block (a document split across blocks or shards is carried over), so memory is bounded by
the validation side, one block and the longest document, whatever the number of training tokens.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from ..stream.data import BOS_ID, HEADER_BYTES
from .inputs import Inputs, split_documents
from .result import OK, PROBLEM, SKIPPED, CheckResult

BLOCK_TOKENS = 1 << 24  # training tokens read at a time (32 MiB of uint16)
BATCH_DOCS = 1 << 15  # documents sketched at a time: bounds the signatures' memory (32 MiB at 128 bins)
LSH_MISS = 1e-6  # the largest chance that a pair at exactly the threshold is never a candidate
from ..tolerances import ESTIMATE_SLACK  # noqa: E402 (how far below the threshold a candidate is still verified)
EXAMPLES = 5


def lsh_rows(threshold: float, num_perm: int, miss: float = LSH_MISS) -> int:
    """The most rows per band (the fewest false candidates) for which a pair with Jaccard
    ``threshold`` is missed with probability at most ``miss``: (1 - J^r)^(num_perm // r)."""
    best = 1
    for r in range(1, num_perm + 1):
        if (1.0 - threshold ** r) ** (num_perm // r) <= miss:
            best = r
    return best


class Sketcher:
    """Exact hashes, signatures and band keys of documents (the numba kernel, in batches)."""

    def __init__(self, shingle: int, num_perm: int, rows: int):
        self.k, self.nbins, self.rows, self.nbands = shingle, num_perm, rows, num_perm // rows

    def __call__(self, tokens, starts, ends):
        from .kernels import sketch_documents

        n = len(starts)
        hashes = np.empty(n, np.uint64)
        sig = np.empty((n, self.nbins), np.uint64)
        bands = np.empty((n, self.nbands), np.uint64)
        if n:
            sketch_documents(tokens, starts, ends, self.k, self.rows, hashes, sig, bands)
        return hashes, sig, bands


def shingle_set(doc: np.ndarray, k: int) -> np.ndarray:
    """The distinct k-token shingles of a document, each as one opaque k*8-byte value."""
    if len(doc) < k:
        return np.empty(0, dtype=np.dtype((np.void, 8 * k)))
    w = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(doc.astype(np.int64), k))
    return np.unique(w.view(np.dtype((np.void, 8 * k))).ravel())


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0


def iter_train_blocks(shards, block_tokens: int = BLOCK_TOKENS):
    """Yield (tokens, global offset of tokens[0]) holding only complete documents: each block is
    cut at its last BOS and the rest is carried into the next block (and the next shard)."""
    carry = np.empty(0, np.uint16)
    carry_at = 0
    offset = 0  # global position of the next token read
    for si, (path, n) in enumerate(shards):
        mm = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,)) if n else np.empty(0, np.uint16)
        for s in range(0, n, block_tokens):
            block = np.array(mm[s : s + block_tokens])  # a copy: the map's pages can be dropped
            buf = np.concatenate([carry, block]) if carry.size else block
            at = carry_at if carry.size else offset
            offset += len(block)
            bos = np.flatnonzero(buf == BOS_ID)
            cut = int(bos[-1]) if len(bos) else 0
            if cut:
                yield buf[:cut], at
            carry, carry_at = buf[cut:].copy(), at + cut
        del mm
    if carry.size:
        yield carry, carry_at


def check_overlap(inputs: Inputs, threshold: float = 0.8, shingle: int = 5, num_perm: int = 128,
                  block_tokens: int = BLOCK_TOKENS) -> CheckResult:
    """Count the validation documents with an exact or a near (Jaccard >= threshold on k-token
    shingles) copy among the training documents; report throughput and peak memory."""
    if not inputs.train:
        return CheckResult("overlap", SKIPPED, "no training shards given (--train)")
    t0 = time.perf_counter()
    rows = lsh_rows(threshold, num_perm)
    sketch = Sketcher(shingle, num_perm, rows)
    val = inputs.val
    vs, ve = split_documents(val)
    n_val = len(vs)
    v_hash, v_sig, v_bands = sketch(val, vs, ve)
    v_order = np.argsort(v_hash, kind="stable")
    v_hash_sorted = v_hash[v_order]
    near_ok = (ve - vs) >= shingle  # documents with at least one shingle take part in the near search
    keys = v_bands[near_ok].ravel()
    key_doc = np.repeat(np.flatnonzero(near_ok), sketch.nbands)
    k_order = np.argsort(keys, kind="stable")
    keys, key_doc = keys[k_order], key_doc[k_order]
    exact_at = np.full(n_val, -1, np.int64)  # global training position of the first exact copy
    near_at = np.full(n_val, -1, np.int64)
    near_j = np.zeros(n_val)
    val_sets: dict = {}
    n_train = n_train_docs = candidates = verified = 0
    t_train = time.perf_counter()  # the rate is that of streaming the training side (the val side is a fixed cost)
    for buf, at in iter_train_blocks(inputs.train, block_tokens):
        if inputs.table is not None:
            from ..stream.data import check_vocab

            check_vocab(buf, inputs.table.vocab_size, f"training shards (position {at:,})")
        n_train += len(buf)
        ts, te = split_documents(buf)
        for b0 in range(0, len(ts), BATCH_DOCS):
            s, e = ts[b0 : b0 + BATCH_DOCS], te[b0 : b0 + BATCH_DOCS]
            n_train_docs += len(s)
            t_hash, t_sig, t_bands = sketch(buf, s, e)
            _exact(buf, s, e, t_hash, val, vs, ve, v_order, v_hash_sorted, exact_at, at)
            c, v = _near(buf, s, e, t_sig, t_bands, keys, key_doc, v_sig, val, vs, ve, exact_at, near_at, near_j,
                         val_sets, threshold, shingle, at)
            candidates, verified = candidates + c, verified + v
    now = time.perf_counter()
    return _result(inputs, vs, ve, exact_at, near_at, near_j, n_train, n_train_docs, candidates, verified,
                   (now - t0, now - t_train), threshold, shingle, num_perm, rows)


def _exact(buf, s, e, t_hash, val, vs, ve, v_order, v_hash_sorted, exact_at, at) -> None:
    lo = np.searchsorted(v_hash_sorted, t_hash, "left")
    hi = np.searchsorted(v_hash_sorted, t_hash, "right")
    for t in np.flatnonzero(hi > lo):
        doc = buf[s[t] : e[t]]
        for v in v_order[lo[t] : hi[t]]:  # a 64-bit hash hit is confirmed token for token
            if exact_at[v] < 0 and np.array_equal(doc, val[vs[v] : ve[v]]):
                exact_at[v] = at + s[t]


def _near(buf, s, e, t_sig, t_bands, keys, key_doc, v_sig, val, vs, ve, exact_at, near_at, near_j, val_sets,
          threshold, k, at):
    """Candidates: a train document and a val document sharing a band key; kept when their
    signatures agree on enough bins, then confirmed on their shingle sets. Val documents already
    found (exactly or nearly) are not searched again."""
    ok = np.flatnonzero((e - s) >= k)
    if not len(ok) or not len(keys):
        return 0, 0
    q = t_bands[ok].ravel()
    q_doc = np.repeat(ok, t_bands.shape[1])
    lo = np.searchsorted(keys, q, "left")
    hi = np.searchsorted(keys, q, "right")
    hit = hi > lo
    if not hit.any():
        return 0, 0
    counts = (hi - lo)[hit]
    t_idx = np.repeat(q_doc[hit], counts)
    first = np.repeat(lo[hit] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    v_idx = key_doc[first + np.arange(int(counts.sum()))]
    pairs = np.unique(t_idx.astype(np.int64) * len(vs) + v_idx)
    t_idx, v_idx = pairs // len(vs), pairs % len(vs)
    todo = (exact_at[v_idx] < 0) & (near_at[v_idx] < 0)
    t_idx, v_idx = t_idx[todo], v_idx[todo]
    est = (t_sig[t_idx] == v_sig[v_idx]).mean(axis=1)
    keep = est >= threshold - ESTIMATE_SLACK
    verified = 0
    for t, v in zip(t_idx[keep], v_idx[keep]):
        if near_at[v] >= 0:
            continue
        verified += 1
        if v not in val_sets:
            val_sets[v] = shingle_set(val[vs[v] : ve[v]], k)
        j = jaccard(shingle_set(buf[s[t] : e[t]], k), val_sets[v])
        if j >= threshold:
            near_at[v], near_j[v] = at + s[t], j
    return len(pairs), verified


def _where(shards, pos: int) -> str:
    """'shard file @ token offset' of a global training position."""
    for path, n in shards:
        if pos < n:
            return f"{path.name}@{pos:,}"
        pos -= n
    return f"@{pos:,}"


def peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _result(inputs, vs, ve, exact_at, near_at, near_j, n_train, n_train_docs, candidates, verified, seconds,
            threshold, shingle, num_perm, rows) -> CheckResult:
    n_val = len(vs)
    exact = np.flatnonzero(exact_at >= 0)
    near = np.flatnonzero((near_at >= 0) & (exact_at < 0))
    lens = ve - vs
    tokens_hit = int(lens[exact].sum() + lens[near].sum())
    seconds, train_seconds = seconds
    rate = n_train / max(train_seconds, 1e-9)
    rss = peak_rss_bytes()
    figures = {
        "val_documents": int(n_val), "val_tokens": int(len(inputs.val)),
        "exact_documents": int(len(exact)), "near_documents": int(len(near)),
        "exact_fraction": len(exact) / max(n_val, 1), "near_fraction": len(near) / max(n_val, 1),
        "overlapping_val_token_fraction": tokens_hit / max(int(lens.sum()), 1),
        "exact_examples": [{"val_doc": int(v), "train": _where(inputs.train, int(exact_at[v]))} for v in exact[:EXAMPLES]],
        "near_examples": [{"val_doc": int(v), "train": _where(inputs.train, int(near_at[v])), "jaccard": float(near_j[v])}
                          for v in near[:EXAMPLES]],
        "train_shards": len(inputs.train), "train_tokens": int(n_train), "train_documents": int(n_train_docs),
        "threshold": threshold, "shingle": shingle, "num_perm": num_perm, "lsh_bands": num_perm // rows,
        "lsh_rows": rows, "lsh_miss_at_threshold": (1.0 - threshold ** rows) ** (num_perm // rows),
        "candidate_pairs": int(candidates), "verified_pairs": int(verified),
        "seconds": seconds, "train_seconds": train_seconds, "tokens_per_second": rate, "peak_rss_bytes": rss,
    }
    speed = f"{n_train:,} train tokens in {len(inputs.train)} shards at {rate / 1e6:,.1f}M tokens/s, peak RSS {rss / 2**20:,.0f} MiB"
    if not len(exact) and not len(near):
        return CheckResult("overlap", OK, f"no validation document of {n_val:,} found in training "
                                          f"(exact or Jaccard >= {threshold:g} on {shingle}-token shingles); {speed}",
                           figures)
    first = ", ".join(str(int(v)) for v in np.sort(np.concatenate([exact, near]))[:EXAMPLES])
    return CheckResult("overlap", PROBLEM,
                       f"{len(exact):,} of {n_val:,} validation documents ({100 * len(exact) / n_val:.2f}%) are in training "
                       f"exactly, {len(near):,} more nearly (Jaccard >= {threshold:g}); "
                       f"{100 * figures['overlapping_val_token_fraction']:.2f}% of val tokens; first val docs: {first}; {speed}",
                       figures)
