"""Throughput of the n-gram experts (score + count) on the FineWeb sample.

    python benchmarks/bench_ngram.py [--tokens 4000000] [--repeats 3] [--orders 1,2,3,5,8]

For each order: JIT warm-up (first call in a fresh process, compilation or cache load) reported
apart, then the median over repeats of a fresh expert scoring the stream in 131,072-token chunks
(as the evaluator calls it), tables growing from empty. Also the full-distribution throughput at
order 3 (on a warm trigram), the table memory at the end, BPB, and as references measured in the
same run: np.bincount over the same tokens (a lower bound on any counting pass) and the plain-Python
reference estimator on a small slice.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fineweb_sample_tokens, median_time, timed  # noqa: E402

CHUNK = 131_072
DIST_CHUNK = 4096


def score_all(expert, tokens):
    return np.concatenate([expert.score(tokens, s, min(s + CHUNK, len(tokens))) for s in range(1, len(tokens), CHUNK)])


def timed_runs(order, tokens, repeats):
    """Median wall and CPU seconds of fresh experts scoring the stream; the last expert and its log-probs."""
    from pgolf_ngram.expert import NgramExpert

    walls, cpus = [], []
    for _ in range(repeats):
        expert = NgramExpert(1024, order)
        w0, c0 = time.perf_counter(), time.process_time()
        logp = score_all(expert, tokens)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), expert, logp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--orders", default="1,2,3,5,8")
    ap.add_argument("--dist-targets", type=int, default=100_000)
    args = ap.parse_args()
    orders = [int(x) for x in args.orders.split(",")]

    tokens = fineweb_sample_tokens(args.tokens)
    n = len(tokens) - 1
    print(f"FineWeb sample: {len(tokens):,} tokens ({n:,} targets), chunks of {CHUNK:,}")

    t_bincount = median_time(lambda: np.bincount(tokens, minlength=1024), repeats=5)
    print(f"reference np.bincount: {n / t_bincount / 1e6:,.1f} M tokens/s")

    from pgolf_ngram.expert import NgramExpert
    from pgolf_ngram.reference import ReferenceNgram

    ref_n = 20_000
    t_ref = median_time(lambda: ReferenceNgram(1024, 3).score(tokens, 1, ref_n), repeats=1)
    ref_rate = (ref_n - 1) / t_ref
    print(f"reference plain-Python trigram: {ref_rate / 1e3:,.1f} K tokens/s (on {ref_n:,} tokens)")

    from pgolf_core.bytes import bits_per_byte, byte_table_from_sentencepiece
    from common import TOKENIZER

    n_bytes = int(byte_table_from_sentencepiece(TOKENIZER).target_bytes(tokens, 1).sum())
    print(f"\n{'order':>5} {'warm-up s':>9} {'M tok/s':>8} {'cpu M tok/s':>11} {'x bincount':>10} "
          f"{'x python':>8} {'table MB':>9} {'BPB':>7}")
    for order in orders:
        _, warm = timed(lambda: NgramExpert(1024, order).score(tokens, 1, 1000))
        wall, cpu, e, logp = timed_runs(order, tokens, args.repeats)
        rate = n / wall
        print(f"{order:>5} {warm:>9.2f} {rate / 1e6:>8.2f} {n / cpu / 1e6:>11.2f} {rate * t_bincount / n:>10.3f} "
              f"{rate / ref_rate:>8.0f} {e.describe()['memory_bytes'] / 1e6:>9.1f} "
              f"{bits_per_byte(-logp.sum(), n_bytes):>7.4f}")
        del e

    m = args.dist_targets
    warm_e = NgramExpert(1024, 3)
    _, dwarm = timed(lambda: warm_e.distributions(tokens, 1, 1000))
    half = len(tokens) // 2
    counted = NgramExpert(1024, 3)
    counted.score(tokens, 1, half)
    snapshot = counted.tables

    def setup():  # the same counted tables before each repeat (distributions advance them)
        counted.tables = copy.deepcopy(snapshot)
        counted._next_target = half

    def dists_in_chunks():  # 4,096 rows (32 MB) per call: the allocator reuses the pages
        for s in range(half, half + m, DIST_CHUNK):
            counted.distributions(tokens, s, min(s + DIST_CHUNK, half + m))

    t_dist = median_time(dists_in_chunks, repeats=args.repeats, setup=setup)
    c0 = time.process_time()
    setup()
    dists_in_chunks()
    c_dist = time.process_time() - c0
    print(f"\nfull distributions, order 3, {m:,} targets after {half:,} counted, {DIST_CHUNK:,} per call: "
          f"{m / t_dist / 1e3:,.0f} K targets/s wall, {m / c_dist / 1e3:,.0f} K/s CPU (warm-up {dwarm:.2f} s)")

if __name__ == "__main__":
    main()
