"""Throughput of the n-gram experts (score + count, and full distributions) on the FineWeb sample.

    python benchmarks/bench_ngram.py [--tokens 4000000] [--repeats 3] [--orders 1,2,3,5,8]

For each order: JIT warm-up (first call in a fresh process, compilation or cache load) reported
apart, then the median over repeats of a fresh expert scoring the stream in the evaluator's chunks
(``pgolf_core.evaluate.DEFAULT_CHUNK`` targets per call), tables growing from empty, with BPB, the
tables' allocated size at the end, and the peak resident memory of a separate process that does
the same (its resident memory with the counted expert alive, over the same process with the tokens
loaded: the pages counting actually touched, which the allocated size overstates or understates).
References measured in the same run: np.bincount over the same tokens (a lower bound on any
counting pass) and the plain-Python reference estimator on a small slice.

Full distributions: a trigram that has counted the first half of the stream is asked for
``--dist-targets`` rows in blocks of 4,096 (the evaluator's FULL_BLOCK_TARGETS), the same counted
tables before each repeat, float64 and float32 rows; medians of wall and CPU (process) time, since
the machine may be shared. The reference is the plain-Python estimator's ``distribution`` (one
dense vector per order) on rows right after its own score slice.
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

from pgolf_core.evaluate import DEFAULT_CHUNK as CHUNK  # noqa: E402
from pgolf_core.run.loop import FULL_BLOCK_TARGETS as DIST_CHUNK  # noqa: E402

REF_DIST_ROWS = 300


def score_all(expert, tokens):
    return np.concatenate([expert.score(tokens, s, min(s + CHUNK, len(tokens))) for s in range(1, len(tokens), CHUNK)])


def _vm_rss_mb() -> float:
    """This process's resident memory now (Linux /proc), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _resident_child(order, n_tokens):
    """In a fresh process: resident MB the counted tables occupy (RSS with the expert alive after
    counting the stream, minus RSS with the tokens loaded and an expert that counted 1,000)."""
    import gc

    from pgolf_ngram.expert import NgramExpert

    tokens = fineweb_sample_tokens(n_tokens)
    NgramExpert(1024, order).score(tokens, 1, 1000)  # JIT and imports in the baseline, not in the growth
    gc.collect()
    base = _vm_rss_mb()
    expert = NgramExpert(1024, order)
    score_all(expert, tokens)
    return _vm_rss_mb() - base


def resident_mb(order, n_tokens) -> float:
    """Resident memory (MB) of the tables after counting the stream, measured in a fresh process."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_resident_child, (order, n_tokens))


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
    ref = ReferenceNgram(1024, 3)
    t_ref = median_time(lambda: ref.score(tokens, 1, ref_n), repeats=1)
    ref_rate = (ref_n - 1) / t_ref
    print(f"reference plain-Python trigram: {ref_rate / 1e3:,.1f} K tokens/s (on {ref_n:,} tokens)")
    ref_dist_rate = reference_distribution_rate(ref, tokens, ref_n)

    from pgolf_core.stream.bytes import bits_per_byte, byte_table_from_sentencepiece
    from common import TOKENIZER

    n_bytes = int(byte_table_from_sentencepiece(TOKENIZER).target_bytes(tokens, 1).sum())
    print(f"\n{'order':>5} {'warm-up s':>9} {'M tok/s':>8} {'cpu M tok/s':>11} {'x bincount':>10} "
          f"{'x python':>8} {'tables MB':>9} {'resident MB':>11} {'BPB':>7}")
    for order in orders:
        _, warm = timed(lambda: NgramExpert(1024, order).score(tokens, 1, 1000))
        wall, cpu, e, logp = timed_runs(order, tokens, args.repeats)
        rate = n / wall
        print(f"{order:>5} {warm:>9.2f} {rate / 1e6:>8.2f} {n / cpu / 1e6:>11.2f} {rate * t_bincount / n:>10.3f} "
              f"{rate / ref_rate:>8.0f} {e.describe()['memory_bytes'] / 1e6:>9.1f} "
              f"{resident_mb(order, args.tokens):>11.1f} {bits_per_byte(-logp.sum(), n_bytes):>7.4f}")
        del e

    print()
    for dtype in ("float64", "float32"):
        rate_wall, rate_cpu, dwarm, rebuild = distribution_rates(tokens, args.dist_targets, args.repeats, dtype)
        print(f"full distributions, order 3, {dtype}, {args.dist_targets:,} targets after {len(tokens) // 2:,} counted, "
              f"{DIST_CHUNK:,} per call: {rate_wall / 1e3:,.0f} K targets/s wall, {rate_cpu / 1e3:,.0f} K/s CPU "
              f"(x{rate_cpu / ref_dist_rate:,.0f} the Python reference; warm-up {dwarm:.2f} s; views rebuilt "
              f"after the score-only counting in {rebuild:.3f} s CPU)")
    print(f"reference plain-Python trigram distributions: {ref_dist_rate / 1e3:,.2f} K targets/s CPU "
          f"(on {REF_DIST_ROWS} rows after {ref_n:,} counted)")


def distribution_rates(tokens, m, repeats, dtype):
    """Median (wall, CPU) targets/s of order-3 full distributions in blocks of DIST_CHUNK, the warm-up, and
    the CPU seconds of rebuilding the distributions' views after the score-only counting (reported apart)."""
    from pgolf_ngram.expert import NgramExpert

    _, warm = timed(lambda: NgramExpert(1024, 3, dtype=dtype).distributions(tokens, 1, 1000))
    half = len(tokens) // 2
    counted = NgramExpert(1024, 3, dtype=dtype)
    counted.score(tokens, 1, half)
    c0 = time.process_time()
    counted.tables.rebuild_views()  # once after score-only spans (the evaluator never switches back)
    counted.tables.views_current = True
    rebuild = time.process_time() - c0
    snapshot = counted.tables
    walls, cpus = [], []
    for _ in range(repeats):
        counted.tables = copy.deepcopy(snapshot)  # the same counted tables (distributions advance them)
        counted._next_target = half
        w0, c0 = time.perf_counter(), time.process_time()
        for s in range(half, half + m, DIST_CHUNK):
            counted.distributions(tokens, s, min(s + DIST_CHUNK, half + m))
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return m / float(np.median(walls)), m / float(np.median(cpus)), warm, rebuild


def reference_distribution_rate(ref, tokens, start):
    """CPU targets/s of the Python reference's full distributions on REF_DIST_ROWS rows from ``start``."""
    c0 = time.process_time()
    for t in range(start, start + REF_DIST_ROWS):
        ref.distribution(tokens, t)
        ref.count(tokens, t)
    return REF_DIST_ROWS / (time.process_time() - c0)


if __name__ == "__main__":
    main()
