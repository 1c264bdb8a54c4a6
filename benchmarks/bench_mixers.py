"""Mixer benchmark: throughput of the kernels against their NumPy references, and a BPB comparison.

    python benchmarks/bench_mixers.py                 # both parts, the whole validation head
    python benchmarks/bench_mixers.py --part speed    # throughput only (no shared data needed)
    python benchmarks/bench_mixers.py --part bpb --tokens 40000

Throughput: tokens/s of hedge (per-token, batch, fixed share) and logistic with K=4 inputs at
V=1024 and at V=8192 (from probability rows and from float32 log rows), the median of several
interleaved repeats after a JIT warm-up that is reported apart, with the NumPy reference of each
numba kernel measured in the same run.

BPB: on the FineWeb validation head, four experts: a static bigram table counted on the FineWeb
sample (add-one smoothing; a stand-in for a neural model fixed before evaluation) and online
Witten-Bell unigram, bigram and trigram experts (the pgolf_ngram plugin). Every mixer sees the same
chunks of the stream, as the evaluator would give them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TOKENIZER, fineweb_sample_tokens, interleaved, median_time, timed  # noqa: E402

from pgolf_core.api import BuildContext  # noqa: E402

VAL_HEAD = ROOT.parent / "shared" / "data" / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
VOCAB = 1024

MIXERS = {  # label -> (registered name, options as the command line would give them)
    "hedge per-token (eta=1)": ("hedge", {}),
    "hedge fixed share (0.01)": ("hedge", {"share": "0.01"}),
    "hedge seed (eta=.1,batch mean,bias 2,solo 10k)": (
        "hedge", {"eta": "0.1", "update": "batch", "batch_loss": "mean", "bias": "2", "solo_first": "10000"}),
    "logistic (lr=0.003)": ("logistic", {}),
    "logistic entropy x8 + bias (lr=0.005)": ("logistic", {"context": "entropy", "buckets": "8", "bias": "1", "lr": "0.005"}),
    "stack hedge-fs+logistic -> hedge-fs": (
        "stack", {"inputs": "hedge:share=0.01;logistic:context=entropy:bias=1:lr=0.005", "top": "hedge:share=0.01"}),
}


def plugins():
    from pgolf_core.plugins import load_plugins

    return load_plugins()


def make(pl, name, options, k, vocab=VOCAB):
    ctx = BuildContext(vocab_size=vocab, expert_names=tuple(f"e{i}" for i in range(k)), plugins=pl)
    return pl.mixers.create(name, ctx, **options)


def random_inputs(n, k=4, seed=0, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    dists = rng.dirichlet(np.full(vocab, 0.1), size=(k, n))
    targets = rng.integers(0, vocab, n)
    return dists, targets, np.log(dists[:, np.arange(n), targets])


def speed() -> None:
    from pgolf_mixers.hedge_kernels import hedge_share_kernel, hedge_share_reference
    from pgolf_mixers.logistic import PROB_FLOOR
    from pgolf_mixers.logistic_kernels import floored_log, logistic_reference

    pl = plugins()
    n_h, n_l = 200_000, 4096
    rng = np.random.default_rng(0)
    logp = -rng.exponential(3.0, (4, n_h))  # Hedge needs only the targets' log-probabilities
    targets = rng.integers(0, VOCAB, n_h)
    rows = []
    for label, opts in (("hedge token", {}), ("hedge batch", {"update": "batch"}), ("hedge fixed share", {"share": "0.01"})):
        mixer = make(pl, "hedge", opts, 4)
        _, warm = timed(lambda: mixer.mix(logp[:, :10], targets[:10]))
        t = median_time(lambda: mixer.mix(logp, targets))
        rows.append((label, n_h / t, warm))
    lw = np.log(np.full(4, 0.25))
    used = np.empty((n_h, 4))
    pair = interleaved({"reference": lambda: hedge_share_reference(lw, logp[:, :20_000], 1.0, 0.01),
                        "kernel": lambda: hedge_share_kernel(lw.copy(), logp, 1.0, 0.01, used)}, repeats=3)
    rows.append(("  fixed-share kernel alone", n_h / pair["kernel"][1], 0.0))
    rows.append(("  fixed-share NumPy reference", 20_000 / pair["reference"][1], 0.0))
    for vocab in (VOCAB, 8 * VOCAB):  # the field's SP8192 vocabulary against sp1024, same run
        n = n_l if vocab == VOCAB else n_l // 8
        dists, targets, logp = random_inputs(n, vocab=vocab)
        log_rows = floored_log(dists.astype(np.float32), PROB_FLOOR)
        mixer = make(pl, "logistic", {}, 4, vocab)
        _, warm = timed(lambda: mixer.mix(logp[:, :4], targets[:4], dists[:, :4]))
        timed(lambda: mixer.mix_log(logp[:, :4], targets[:4], log_rows[:, :4]))
        w, b = np.full((1, 4), 0.25), np.zeros(vocab)
        n_ref = min(512, n)
        runs = {"mix": lambda: mixer.mix(logp, targets, dists),
                "mix_log": lambda: mixer.mix_log(logp, targets, log_rows),
                "reference": lambda: logistic_reference(dists[:, :n_ref], targets[:n_ref], w, b, 0.003, False, 0,
                                                        PROB_FLOOR),
                "log": lambda: floored_log(dists, PROB_FLOOR)}
        res = interleaved(runs, repeats=3)
        rows.append((f"logistic (K=4, V={vocab}), rows", n / res["mix"][1], warm))
        rows.append(("  from float32 log rows (mix_log)", n / res["mix_log"][1], 0.0))
        rows.append(("  NumPy reference", n_ref / res["reference"][1], 0.0))
        rows.append(("  of which floored log of inputs", n / res["log"][1], 0.0))
    print(f"{'mixer':<40}{'tokens/s':>14}{'JIT warm-up s':>15}")
    for label, rate, warm in rows:
        print(f"{label:<40}{rate:>14,.0f}{warm:>15.2f}")
    print(f"fixed-share kernel / reference: {rows[3][1] / rows[4][1]:.0f}x; logistic from rows / reference: "
          f"{rows[5][1] / rows[7][1]:.1f}x (V=1024), {rows[9][1] / rows[11][1]:.1f}x (V=8192), from log rows: "
          f"{rows[6][1] / rows[7][1]:.1f}x, {rows[10][1] / rows[11][1]:.1f}x; "
          f"V=8192 / V=1024 from log rows: {rows[10][1] / rows[6][1]:.3f}")


def static_bigram(tokens: np.ndarray) -> np.ndarray:
    """Add-one bigram table p(y | x), (V, V), from a token stream counted once, before evaluation."""
    counts = np.ones((VOCAB, VOCAB))
    np.add.at(counts, (tokens[:-1].astype(np.int64), tokens[1:].astype(np.int64)), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def bpb(tokens_limit: int, chunk: int) -> None:
    from pgolf_core.bytes import bits_per_byte, byte_table_from_sentencepiece

    pl = plugins()
    stream = np.load(VAL_HEAD)[:tokens_limit]
    table = byte_table_from_sentencepiece(TOKENIZER)
    bigram = static_bigram(fineweb_sample_tokens())
    ctx = BuildContext(vocab_size=VOCAB)
    online = [pl.experts.create(name, ctx) for name in ("unigram", "bigram", "trigram")]
    names = ["static bigram", "online unigram", "online bigram", "online trigram"]
    mixers = {label: make(pl, name, opts, 4) for label, (name, opts) in MIXERS.items()}
    nll = dict.fromkeys([*names, *mixers], 0.0)
    seconds = dict.fromkeys(mixers, 0.0)
    n_bytes = 0
    for start in range(1, len(stream), chunk):
        end = min(start + chunk, len(stream))
        targets = stream[start:end].astype(np.int64)
        dists = np.stack([bigram[stream[start - 1:end - 1]], *(e.distributions(stream, start, end) for e in online)])
        logp = np.log(dists[:, np.arange(end - start), targets])
        n_bytes += int(table.target_bytes(stream, start, end).sum())
        for name, lp in zip(names, logp):
            nll[name] -= lp.sum()
        for label, mixer in mixers.items():
            t0 = time.perf_counter()
            nll[label] -= mixer.mix(logp, targets, dists if mixer.needs_distributions else None).sum()
            seconds[label] += time.perf_counter() - t0
    print(f"validation head: {len(stream) - 1} targets, {n_bytes} bytes, chunks of {chunk}")
    print(f"{'expert / mixer':<48}{'BPB':>8}{'mix s':>8}")
    for key, value in nll.items():
        print(f"{key:<48}{bits_per_byte(value, n_bytes):>8.4f}{seconds.get(key, float('nan')):>8.2f}")
    for label, mixer in mixers.items():
        print(f"final weights, {label}: {np.round(mixer.weights, 3).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "bpb", "all"), default="all")
    parser.add_argument("--tokens", type=int, default=None, help="first N tokens of the validation head (default all)")
    parser.add_argument("--chunk", type=int, default=2048, help="targets per mix() call")
    args = parser.parse_args()
    if args.part in ("speed", "all"):
        speed()
    if args.part in ("bpb", "all"):
        if not VAL_HEAD.is_file():
            raise SystemExit(f"the BPB part needs {VAL_HEAD} (the shared corpus)")
        bpb(args.tokens or len(np.load(VAL_HEAD)), args.chunk)


if __name__ == "__main__":
    main()
