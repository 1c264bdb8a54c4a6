"""Where evaluation time goes: every second of the loop booked to what spent it.

For each configuration the same stream is scored through ``pgolf_core.evaluate``; the loop
(``pgolf_core.run.loop``) times each expert's calls, split for the neural expert by its own timers into
the network's forward, the log-softmax, the copies of its rows to NumPy and the rest; the row work
of the loop itself (checking the experts' rows, their log at the target, stacking them for the
mixer), the mixer, the byte and sum bookkeeping and the adapters; what is
left of the loop's wall time is the loop's own overhead, printed too, so the shares add up to 100%.
The reference is the neural expert alone, measured in the same run: ``loop / neural-alone loop`` is
what adding the other experts and the mixer costs. The configurations' repeats are interleaved
(A B C A B C ...) and each row is the median run.

    python benchmarks/bench_eval.py [--checkpoint PATH] [--limit 32768] [--stride 64] [--repeats 3]

Without ``--checkpoint`` a randomly initialised ``tiny`` model is used (speed does not depend on
the weights). The stream is the official validation head from ../shared when present, else the
built-in demo stream.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VAL_HEAD = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
TOKENIZER = SHARED / "tokenizers" / "fineweb_1024_bpe.model"

CONFIGS = [
    ("neural alone", ["neural"], None),
    ("neural,bigram,trigram + hedge", ["neural", "bigram", "trigram"], "hedge"),
    ("neural,bigram,trigram + logistic", ["neural", "bigram", "trigram"], "logistic"),
]


def run_once(experts, mixer, options, tokens, tokenizer, plugins):
    import pgolf_core

    res = pgolf_core.evaluate(experts, mixer=mixer, tokens=tokens, tokenizer=tokenizer, plugins=plugins,
                              expert_options={k: v for k, v in options.items() if k in experts})
    loop = res.timings["loop_seconds"]
    parts = dict(res.timings["components"])
    inner = res.timings.get("expert_stats", {}).get("neural", {})
    if inner and "neural" in parts:  # the expert's own split: forward, softmax, row copies, the rest
        total = parts.pop("neural")
        for k in ("forward", "softmax", "rows"):
            parts[f"neural {k}"] = inner.get(k, 0.0)
        parts["neural other"] = total - sum(inner.get(k, 0.0) for k in ("forward", "softmax", "rows"))
    parts["loop overhead"] = loop - sum(parts.values())
    return {"loop": loop, "parts": parts, "bpb": res.bpb, "targets": res.targets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="neural checkpoint or artifact (default: random tiny model)")
    ap.add_argument("--limit", type=int, default=32768, help="tokens of the stream")
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--float32", action="store_true",
                    help="float32 full distributions (neural dist_dtype, n-gram dtype): cheaper geometric mixing")
    args = ap.parse_args()
    import torch

    from pgolf_core.plugins import load_plugins

    if args.threads:
        torch.set_num_threads(args.threads)
    if VAL_HEAD.is_file():
        tokens, tokenizer, where = np.load(VAL_HEAD)[: args.limit], TOKENIZER, "validation head"
    else:
        from pgolf_core.demo import demo_tokenizer_path, demo_tokens

        tokens, tokenizer, where = demo_tokens("val")[: args.limit], demo_tokenizer_path(), "demo stream"
    neural = {"stride": str(args.stride)}
    neural.update({"checkpoint": args.checkpoint} if args.checkpoint else {"preset": "tiny", "init_seed": "0"})
    options = {"neural": neural}
    if args.float32:
        neural["dist_dtype"] = "float32"
        options.update(bigram={"dtype": "float32"}, trigram={"dtype": "float32"})
    plugins = load_plugins()
    print(f"{len(tokens) - 1:,} targets of the {where}; options {options}; median of {args.repeats} "
          f"interleaved repeats after one warm-up run each", file=sys.stderr)
    for _, experts, mixer in CONFIGS:  # warm-up: JIT, allocator, thread pools
        run_once(experts, mixer, options, tokens, tokenizer, plugins)
    runs = {name: [] for name, _, _ in CONFIGS}
    for _ in range(args.repeats):  # interleaved (A B C A B C ...), so a busy machine slows all alike
        for name, experts, mixer in CONFIGS:
            runs[name].append(run_once(experts, mixer, options, tokens, tokenizer, plugins))
    rows = {name: min(rs, key=lambda r: abs(r["loop"] - statistics.median(x["loop"] for x in rs)))  # the median run
            for name, rs in runs.items()}
    ref = rows["neural alone"]["loop"]
    print(f"{'configuration':<34} {'BPB':>8} {'loop s':>8} {'targets/s':>10} {'x neural alone':>15}  shares of the loop")
    for name, r in rows.items():
        shares = "  ".join(f"{k} {v / r['loop']:.1%}" for k, v in sorted(r["parts"].items(), key=lambda kv: -kv[1]))
        total = sum(r["parts"].values()) / r["loop"]
        print(f"{name:<34} {r['bpb']:8.4f} {r['loop']:8.2f} {r['targets'] / r['loop']:10,.0f} {r['loop'] / ref:15.3f}  "
              f"{shares}  (sum {total:.1%})")


if __name__ == "__main__":
    main()
