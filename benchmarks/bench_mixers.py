"""Mixer benchmark: throughput of the kernels against their NumPy references, and a BPB comparison.

    python benchmarks/bench_mixers.py                 # both parts, the whole validation head
    python benchmarks/bench_mixers.py --part speed    # throughput only (no shared data needed)
    python benchmarks/bench_mixers.py --part bpb --tokens 40000
    python benchmarks/bench_mixers.py --part speed --data8192 CASEOPS_VAL_DIR

Throughput: tokens/s of hedge (per-token, batch, fixed share) and logistic with K=4 inputs at
V=1024 and at V=8192 (from probability rows and from float32 log rows), the median of several
interleaved repeats after a JIT warm-up that is reported apart, with the NumPy reference of each
numba kernel measured in the same run.

Speed at V=8192 (the field's vocabulary) against V=1024, in the same run: logistic over online
unigram, bigram and trigram experts, from dense float32 log rows (``mix_log``) and from grouped rows
(``mix_log_grouped``, built from the n-grams' exact sparse rows), on the validation head in sp1024
tokens and on a V=8192 stream (``--data8192``: a shard or shard directory, e.g. the head in CaseOps
sp8192 tokens; by default the validation head's documents tokenized here with the CaseOps model from
../shared, or a synthetic Zipf stream without it): (1) the mixing alone, on the inputs the loop
hands the mixer for a block late in the stream, and (2) the whole loop (experts' rows, grouping,
mixing) over the stream's first targets. Medians of interleaved repeats, with the largest relative
difference of the two paths' log-probabilities.

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
from common import ROOT, SHARED, TOKENIZER, fineweb_sample_tokens, interleaved, median_time, timed  # noqa: E402

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


def speed(data8192=None) -> None:
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
    print()
    ngram_speed(pl, data8192)


NGRAMS = ("unigram", "bigram", "trigram")


def zipf_stream(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Synthetic stand-in for real tokens: Zipf-like frequencies (so counts and contexts repeat), BOS every 97."""
    rng = np.random.default_rng(seed)
    tokens = np.minimum(rng.zipf(1.3, n) - 1, vocab - 1).astype(np.int64)
    tokens[::97] = 1
    return tokens


def ngram_stream(vocab: int, data8192):
    """(tokens, description) for the n-gram speed part at ``vocab``."""
    if vocab == VOCAB and VAL_HEAD.is_file():
        return np.load(VAL_HEAD).astype(np.int64), "validation head, sp1024"
    if vocab == 8 * VOCAB and data8192 and Path(data8192).exists():
        from pgolf_core.stream.data import load_tokens

        return np.asarray(load_tokens(data8192), dtype=np.int64), f"{data8192}"
    caseops = SHARED / "tokenizers" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
    texts = SHARED / "corpus" / "fineweb_val_head_sp1024.jsonl"
    if vocab == 8 * VOCAB and caseops.is_file() and texts.is_file():  # the val head's documents in CaseOps sp8192
        import sentencepiece as spm

        from pgolf_core.stream.data import encode_caseops_documents, read_jsonl_texts

        sp = spm.SentencePieceProcessor(model_file=str(caseops))
        tokens, _ = encode_caseops_documents(read_jsonl_texts(texts), sp)
        return tokens.astype(np.int64), "validation head documents, CaseOps sp8192"
    return zipf_stream(100_000, vocab), "synthetic Zipf stream"


def ngram_loop(pl, tokens, vocab, sparse: bool, observers=()):
    from pgolf_core.run.loop import Components, Loop, NoBytes

    ctx = BuildContext(vocab_size=vocab, expert_names=NGRAMS, plugins=pl)
    comps = Components([pl.experts.create(e, ctx) for e in NGRAMS], list(NGRAMS), pl.mixers.create("logistic", ctx))
    return Loop(comps, NoBytes(), len(tokens), tokens.dtype, keep_logprobs=True, sparse_rows=sparse, observers=observers)


def mixer_inputs(pl, tokens, vocab, sparse: bool, at: int, n: int):
    """(a copy of the mixer's state at target ``at``, the blocks of inputs the loop hands it for
    targets ``at .. at + n - 1``): recorded by a wrapper around the mixer's fast path, in the loop's
    own blocks (a chunk starts at ``at``, so both paths start a block there; the last block is cut)."""
    import copy

    from pgolf_core.api import GroupedLogRows

    tokens = tokens[:at + n + 1]
    loop = ngram_loop(pl, tokens, vocab, sparse)
    mixer = loop.comps.mixer
    name = "mix_log_grouped" if sparse else "mix_log"
    fast, seen = getattr(mixer, name), []

    def record(logp, targets, rows):
        if loop.next_target >= at:
            if not seen:
                seen.append(copy.deepcopy(mixer))
            seen.append((logp.copy(), targets.copy(), copy.deepcopy(rows)))
        return fast(logp, targets, rows)

    setattr(mixer, name, record)
    loop.run(tokens, at - 1)
    blocks, left = [], n
    for logp, targets, rows in seen[1:]:
        m = min(left, len(targets))
        if m < len(targets):  # the first m targets of the block
            if sparse:
                g = int(rows.offsets[m])
                rows = GroupedLogRows(rows.log_values[:, :g], rows.sizes[:g], rows.offsets[:m + 1], rows.target_group[:m])
            else:
                rows = rows[:, :m]
            logp, targets = logp[:, :m], targets[:m]
        blocks.append((logp, targets, rows))
        left -= m
        if not left:
            break
    return seen[0], blocks


def mix_blocks(state, blocks, sparse: bool):
    """A copy of the mixer mixes the recorded blocks in order; its log-probabilities."""
    import copy

    mixer = copy.deepcopy(state)
    fn = mixer.mix_log_grouped if sparse else mixer.mix_log
    return np.concatenate([fn(*b) for b in blocks])


def ngram_speed(pl, data8192) -> None:
    """Logistic over unigram, bigram, trigram at V=1024 and V=8192: dense rows against grouped rows."""
    table, rates = [], {}
    for vocab in (VOCAB, 8 * VOCAB):
        tokens, where = ngram_stream(vocab, data8192)
        n_block = 1024
        at = min(60_000, len(tokens) - n_block - 1)  # late in the stream: supports have grown
        inputs = {s: mixer_inputs(pl, tokens, vocab, s, at, n_block) for s in (False, True)}
        runs = {s: (lambda s=s: mix_blocks(*inputs[s], s)) for s in (False, True)}
        res = interleaved({"dense": runs[False], "grouped": runs[True]}, repeats=5)
        gap = float(np.max(np.abs(runs[True]() - runs[False]()) / np.abs(runs[False]())))
        n_loop = 30_000 if vocab == VOCAB else 15_000
        head = tokens[:n_loop + 1]
        loops = {}

        def whole(sparse):
            loop = ngram_loop(pl, head, vocab, sparse)
            loop.run(head, 1 << 30)
            loops[sparse] = loop

        res_loop = interleaved({"dense": lambda: whole(False), "grouped": lambda: whole(True)}, repeats=3)
        mix = [np.concatenate(loops[s].saved["mixture"]) for s in (False, True)]
        gap_loop = float(np.max(np.abs(mix[1] - mix[0]) / np.abs(mix[0])))
        groups = sum(len(b[2].sizes) for b in inputs[True][1]) / n_block
        for key, label, r, n in (("mix", f"mixing alone, {n_block} targets at {at}", res, n_block),
                                 ("loop", f"whole loop, first {n_loop} targets", res_loop, n_loop)):
            d, g = n / r["dense"][1], n / r["grouped"][1]
            rates[vocab, key] = (d, g)
            table.append((f"V={vocab} {label}", d, g, g / d))
        print(f"V={vocab}: {where}; {groups:.0f} groups per target at {at} (of V={vocab}); largest relative "
              f"difference grouped vs dense: {gap:.1e} (mixing), {gap_loop:.1e} (whole loop)")
    print(f"{'logistic over unigram,bigram,trigram':<52}{'dense t/s':>12}{'grouped t/s':>13}{'ratio':>8}")
    for label, d, g, ratio in table:
        print(f"{label:<52}{d:>12,.0f}{g:>13,.0f}{ratio:>7.1f}x")
    for key, what in (("mix", "mixing alone"), ("loop", "whole loop")):
        (d1, g1), (d8, g8) = rates[VOCAB, key], rates[8 * VOCAB, key]
        print(f"V=8192 / V=1024, {what}: dense {d8 / d1:.3f}, grouped {g8 / g1:.3f}; grouped at V=8192 / dense at "
              f"V=1024: {g8 / d1:.2f}")


def static_bigram(tokens: np.ndarray) -> np.ndarray:
    """Add-one bigram table p(y | x), (V, V), from a token stream counted once, before evaluation."""
    counts = np.ones((VOCAB, VOCAB))
    np.add.at(counts, (tokens[:-1].astype(np.int64), tokens[1:].astype(np.int64)), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def bpb(tokens_limit: int, chunk: int) -> None:
    from pgolf_core.stream.bytes import bits_per_byte, byte_table_from_sentencepiece

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
    parser.add_argument("--data8192", default=None,
                        help="V=8192 tokens for the speed part (shard or directory; default: a synthetic stream)")
    args = parser.parse_args()
    if args.part in ("speed", "all"):
        speed(args.data8192)
    if args.part in ("bpb", "all"):
        if not VAL_HEAD.is_file():
            raise SystemExit(f"the BPB part needs {VAL_HEAD} (the shared corpus)")
        bpb(args.tokens or len(np.load(VAL_HEAD)), args.chunk)


if __name__ == "__main__":
    main()
