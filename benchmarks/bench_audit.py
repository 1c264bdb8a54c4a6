"""What an audit costs, in units of one evaluation of the same configuration on the same stream.

    python benchmarks/bench_audit.py [--experts bigram,trigram] [--mixer hedge] [--repeats 3]

The reference is ``evaluate()`` on the audit stream (the demo's first --limit tokens) and on the
random stream; the first run of each (numba JIT, caches) is reported apart as warm-up, then the
medians of interleaved repeats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", default="bigram,trigram")
    ap.add_argument("--mixer", default="hedge")
    ap.add_argument("--limit", type=int, default=2048)
    ap.add_argument("--random-tokens", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", help="neural checkpoint (default: the demo checkpoint) when neural is an expert")
    args = ap.parse_args()

    from pgolf_core.checks.audit import audit
    from pgolf_core.demo import demo_tokenizer_path
    from pgolf_core.evaluate import evaluate
    from pgolf_core.plugins import load_plugins
    from pgolf_core.testing import random_stream

    plugins = load_plugins()
    names = args.experts.split(",")
    tok = demo_tokenizer_path()
    rand = random_stream(args.random_tokens, 1024)
    opts = {}
    if "neural" in names:  # the random stream is not the demo, so the checkpoint is named explicitly
        from pgolf_neural.artifact import demo_checkpoint_path

        opts = {"neural": {"checkpoint": args.checkpoint or str(demo_checkpoint_path())}}
    runs = {
        "evaluate, audit stream": lambda: evaluate(names, mixer=args.mixer, plugins=plugins, limit=args.limit,
                                                   expert_options=opts),
        "evaluate, random stream": lambda: evaluate(names, mixer=args.mixer, plugins=plugins, tokens=rand, tokenizer=tok,
                                                    expert_options=opts),
        "audit (all checks)": lambda: audit(names, mixer=args.mixer, plugins=plugins, limit=args.limit,
                                            random_tokens=args.random_tokens, expert_options=opts),
    }
    res = interleaved(runs, args.repeats)
    warm, med = {k: w for k, (w, _) in res.items()}, {k: m for k, (_, m) in res.items()}
    ref = med["evaluate, audit stream"] + med["evaluate, random stream"]
    print(f"configuration: experts={args.experts} mixer={args.mixer}, {args.limit} + {args.random_tokens:,} tokens; "
          f"repeats interleaved")
    for k in runs:
        print(f"{k:<26} warm-up {warm[k]:7.2f} s   median of {args.repeats} {med[k]:7.2f} s")
    print(f"audit / (one evaluation of both streams) = {med['audit (all checks)'] / ref:.1f}x")


if __name__ == "__main__":
    main()
