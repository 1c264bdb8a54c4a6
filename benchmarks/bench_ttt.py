"""TTT benchmark: seconds per chunk of the adapters against the scoring of the same chunk, and BPB.

    python benchmarks/bench_ttt.py --part speed                       # random tiny model, val head
    python benchmarks/bench_ttt.py --part bpb --checkpoint runs/tiny_fineweb/final_model.pt \
        --chunk-tokens 16384 --limit 65537

Speed: for one chunk of ``--chunk-tokens`` targets, the median over ``--repeats`` of (a) scoring it
with the neural expert (the reference), (b) one ttt training pass over it (``epochs`` epochs), (c)
one lora-ttt pass; the first training call (optimizer state allocation) is reported apart.

BPB: neural alone, + ttt, + lora-ttt, and Hedge over neural, bigram, trigram with and without ttt,
all on the same stream through ``pgolf_core.evaluate.evaluate``. With the default 131,072-token
chunk the validation head is a single chunk and the last chunk is never trained, so pass a smaller
``--chunk-tokens`` (e.g. 16384) to see TTT act.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TOKENIZER, median_time, timed  # noqa: E402

VAL_HEAD = ROOT.parent / "shared" / "data" / "corpus" / "fineweb_val_head_sp1024_tokens.npy"


def neural_options(args) -> dict:
    opts = {"checkpoint": args.checkpoint} if args.checkpoint else {"preset": args.preset, "init_seed": "0"}
    if args.seq_len:
        opts["seq_len"] = str(args.seq_len)
    opts["stride"] = str(args.stride)
    return opts


def adapter_options(args) -> dict:
    common = {"chunk_tokens": str(args.chunk_tokens)}
    ttt = dict(common, epochs=str(args.epochs), **({"lr": str(args.ttt_lr)} if args.ttt_lr else {}))
    return {"ttt": ttt, "lora-ttt": dict(common)}


def part_speed(args, tokens) -> None:
    from pgolf_core.api import BuildContext
    from pgolf_core.stream.bytes import byte_table_from_sentencepiece
    from pgolf_core.plugins import load_plugins

    plugins = load_plugins()
    ctx = BuildContext(vocab_size=1024, byte_counts=byte_table_from_sentencepiece(TOKENIZER), tokenizer_path=str(TOKENIZER))
    a, b = 1, 1 + min(args.chunk_tokens, len(tokens) - 1)
    rows = []
    for name in ("ttt", "lora-ttt"):
        expert = plugins.experts.create("neural", ctx, **neural_options(args))
        adapter = plugins.adapters.create(name, ctx, **adapter_options(args)[name])
        adapter.name = name
        adapter.setup({"neural": expert})
        ref = median_time(lambda: expert.score(tokens[:b], a, b), repeats=args.repeats)
        _, first = timed(lambda: adapter.trainer.train(tokens[:b], a, b, 1e-4))
        train = median_time(lambda: adapter.trainer.train(tokens[:b], a, b, 1e-4), repeats=args.repeats)
        rows.append((name, ref, first, train))
    print(f"chunk of {b - a} targets, median of {args.repeats}; reference = neural scoring of the chunk")
    print(f"{'adapter':10s} {'score s':>9s} {'first train s':>14s} {'train s/chunk':>14s} {'train/score':>12s}")
    for name, ref, first, train in rows:
        print(f"{name:10s} {ref:9.2f} {first:14.2f} {train:14.2f} {train / ref:12.2f}")


def part_bpb(args, tokens) -> None:
    from pgolf_core.evaluate import evaluate

    configs = [  # label, experts, adapters, adapter option overrides
        ("neural", ["neural"], [], {}),
        ("neural + ttt", ["neural"], ["ttt"], {}),
        ("neural + ttt (polyak off)", ["neural"], ["ttt"], {"polyak": "0"}),
        ("neural + lora-ttt", ["neural"], ["lora-ttt"], {}),
        ("hedge(neural,bigram,trigram)", ["neural", "bigram", "trigram"], [], {}),
        ("hedge(neural,bigram,trigram) + ttt", ["neural", "bigram", "trigram"], ["ttt"], {}),
    ]
    print(f"{len(tokens) - 1} targets, ttt/lora-ttt chunk_tokens={args.chunk_tokens}, evaluator chunk {args.eval_chunk}")
    print(f"{'configuration':38s} {'BPB':>9s} {'neural BPB':>11s} {'chunks':>7s} {'s/chunk':>8s} {'total s':>8s}")
    for label, experts, adapters, overrides in configs:
        if args.only and not any(key in label for key in args.only.split(",")):
            continue
        t0 = time.perf_counter()
        opts = adapter_options(args)
        res = evaluate(experts, adapters=adapters, tokens=tokens, tokenizer=TOKENIZER, chunk_size=args.eval_chunk,
                       expert_options={"neural": neural_options(args)},
                       adapter_options={a: dict(opts[a], **overrides) for a in adapters} or None)
        stats = res.adapters.get(adapters[0], {}) if adapters else {}
        print(f"{label:38s} {res.bpb:9.6f} {res.expert_bpb['neural']:11.6f} {stats.get('chunks_trained', 0):7d} "
              f"{stats.get('seconds_per_chunk', 0.0):8.1f} {time.perf_counter() - t0:8.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("speed", "bpb", "both"), default="both")
    ap.add_argument("--checkpoint", help="neural checkpoint or artifact (default: a random tiny model)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seq-len", type=int, default=0)
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--chunk-tokens", type=int, default=16384)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--ttt-lr", type=float, default=0.0, help="ttt learning rate (0 = the adapter's default, 1e-4)")
    ap.add_argument("--eval-chunk", type=int, default=8192)
    ap.add_argument("--limit", type=int, default=0, help="first N tokens of the val head (0 = all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated substrings of the configurations to run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if not VAL_HEAD.is_file():
        raise SystemExit(f"benchmark needs {VAL_HEAD} (the shared corpus)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tokens = np.load(VAL_HEAD)
    tokens = tokens[: args.limit] if args.limit else tokens
    if args.part in ("speed", "both"):
        part_speed(args, tokens)
    if args.part in ("bpb", "both"):
        part_bpb(args, tokens)


if __name__ == "__main__":
    main()
