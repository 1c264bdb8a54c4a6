"""Shared helpers of the benchmarks: a median-of-repeats timer and a cached FineWeb token sample.

Benchmarks are scripts (``python benchmarks/bench_x.py``), not tests; they print medians of several
repeats, JIT warm-up apart, and ratios against a reference measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FINEWEB_SAMPLE = SHARED / "corpus" / "fineweb_sample.jsonl"
TOKENIZER = SHARED / "tokenizers" / "fineweb_1024_bpe.model"
CACHE = ROOT / "runs" / "cache"
#: Its first 300 FineWeb documents may be official validation documents (see the corpus SOURCE.md).
EXCLUDED_SOURCES = ("EsteveSegura/TextFixer:fineweb_subset",)


def median_time(fn: Callable[[], object], repeats: int = 5, setup: Optional[Callable[[], object]] = None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs; ``setup()`` runs untimed before each."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(runs: dict, repeats: int) -> dict:
    """``{name: (warm-up seconds, median seconds)}``: one warm-up run of each, then ``repeats``
    rounds that run every one in turn (A B C A B C ...), so a busy machine slows them alike."""
    warm = {k: _seconds(fn) for k, fn in runs.items()}
    times: dict = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_seconds(fn))
    return {k: (warm[k], statistics.median(v)) for k, v in times.items()}


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed(fn: Callable[[], object]):
    """``(result, seconds)`` of one call (for JIT warm-up, reported apart)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fineweb_sample_tokens(n_tokens: Optional[int] = None) -> np.ndarray:
    """The FineWeb sample (TextFixer docs excluded) as one uint16 stream, BOS before each document,
    tokenized with the official sp1024 model; cached under runs/cache/. First ``n_tokens`` tokens."""
    from pgolf_core.stream.bytes import load_sentencepiece
    from pgolf_core.stream.data import encode_documents, read_jsonl_texts

    cache = CACHE / "fineweb_sample_sp1024.npy"
    if cache.is_file():
        tokens = np.load(cache)
    else:
        if not FINEWEB_SAMPLE.is_file():
            raise SystemExit(f"benchmark needs {FINEWEB_SAMPLE} (the shared corpus)")
        sp = load_sentencepiece(TOKENIZER)
        tokens = encode_documents(read_jsonl_texts(FINEWEB_SAMPLE, exclude_sources=EXCLUDED_SOURCES), sp)
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, tokens)
        tmp.replace(cache)
    if n_tokens is not None:
        if n_tokens > len(tokens):
            raise SystemExit(f"asked for {n_tokens} tokens but the FineWeb sample has {len(tokens)}")
        tokens = tokens[:n_tokens]
    return tokens
