"""What trust costs: strict scoring against the fast path, and an audited evaluation against a
plain one, on the same stream, with repeats interleaved (fast, strict, fast, strict, ...).

    python benchmarks/bench_verdicts.py --data VAL_HEAD.npy --tokenizer fineweb_1024_bpe.model \\
        [--checkpoint tiny.int5.ptz] [--repeats 3] [--part strict,audit,prove]

Configurations: bigram,trigram + hedge; bigram,trigram + logistic; with --checkpoint also
neural,bigram,trigram + hedge. ``strict`` prints, per configuration, BPB of both paths (the honest
builtins must agree to 1e-9) and the median loop throughput of each with their ratio. ``audit``
prints the wall time of ``evaluate(audit=True)`` against plain ``evaluate`` (median of the
repeats), with the audit's and the spot checks' own seconds. ``prove`` prints the throughput of
compress and decompress (the compiled coding loop and the Python loop) against plain and strict
eval, all whole calls measured interleaved in one run, with coded and ideal BPB.
Without --data the built-in demo stream is used.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _configs(checkpoint):
    out = [("bigram,trigram + hedge", ["bigram", "trigram"], "hedge", {}),
           ("bigram,trigram + logistic", ["bigram", "trigram"], "logistic", {})]
    if checkpoint:
        out.append(("neural,bigram,trigram + hedge", ["neural", "bigram", "trigram"], "hedge",
                    {"neural": {"checkpoint": checkpoint}}))
    return out


def _run(evaluate, args, experts, mixer, opts, **kw):
    t0 = time.perf_counter()
    res = evaluate(experts, mixer=mixer, tokens=args.data, tokenizer=args.tokenizer, expert_options=opts,
                   limit=args.limit, **kw)
    return res, time.perf_counter() - t0


def part_strict(evaluate, args) -> None:
    print(f"{'configuration':<32} {'fast BPB':>12} {'strict BPB':>12} {'|diff|':>9} {'fast t/s':>10} {'strict t/s':>10} {'ratio':>6}")
    for label, experts, mixer, opts in _configs(args.checkpoint):
        _run(evaluate, args, experts, mixer, opts, strict=True)  # warm-up (numba JIT, caches), not timed
        fast, strict = [], []
        for _ in range(args.repeats):
            rf, _ = _run(evaluate, args, experts, mixer, opts)
            rs, _ = _run(evaluate, args, experts, mixer, opts, strict=True)
            fast.append(rf.timings["targets_per_second"])
            strict.append(rs.timings["targets_per_second"])
        f, s = statistics.median(fast), statistics.median(strict)
        print(f"{label:<32} {rf.bpb:12.9f} {rs.bpb:12.9f} {abs(rf.bpb - rs.bpb):9.1e} {f:10,.0f} {s:10,.0f} {s / f:6.2f}")


def part_audit(evaluate, args) -> None:
    print(f"{'configuration':<32} {'plain s':>8} {'audited s':>9} {'ratio':>6} {'audit s':>8} {'spots s':>8}  level")
    for label, experts, mixer, opts in _configs(args.checkpoint):
        plain, audited, last = [], [], None
        for _ in range(args.repeats):
            plain.append(_run(evaluate, args, experts, mixer, opts)[1])
            last, t = _run(evaluate, args, experts, mixer, opts, audit=True)
            audited.append(t)
        p, a = statistics.median(plain), statistics.median(audited)
        tm = last.timings
        print(f"{label:<32} {p:8.1f} {a:9.1f} {a / p:6.2f} {tm['audit_seconds']:8.1f} {tm['spot_check_seconds']:8.1f}  "
              f"{last.level}")


def part_prove(evaluate, args) -> None:
    """Per configuration, in one interleaved run: plain and strict eval, then compress and decompress
    with the compiled coding loop (when every component has a kernel) and with the Python loop."""
    import tempfile
    from pathlib import Path

    from common import interleaved

    from pgolf_core.codec.compress import compress, decompress

    tmp = Path(tempfile.mkdtemp())
    print(f"{'configuration':<32} {'loop':<9} {'eval t/s':>9} {'strict t/s':>10} {'enc t/s':>9} {'dec t/s':>9} "
          f"{'dec/eval':>8} {'dec/strict':>10} {'ideal BPB':>11} {'coded BPB':>11} {'rel':>8} {'header B':>8}")
    for label, experts, mixer, opts in _configs(args.checkpoint):
        kw = dict(tokens=args.data, tokenizer=args.tokenizer, expert_options=opts, limit=args.limit)
        reports = {}

        def coder(loop):
            def enc():
                reports[loop] = compress(experts, mixer, output=tmp / f"{loop}.pgz", coding_loop=loop, **kw)

            def dec():
                reports[loop + ":dec"] = decompress(tmp / f"{loop}.pgz", expert_options=None)[1]

            return enc, dec

        runs = {"eval": lambda: evaluate(experts, mixer=mixer, **kw),
                "strict": lambda: evaluate(experts, mixer=mixer, strict=True, **kw)}
        loops = ["compiled", "python"] if not args.checkpoint or "neural" not in experts else ["python"]
        for loop in loops:
            enc, dec = coder(loop)
            runs[f"{loop}:enc"], runs[f"{loop}:dec"] = enc, dec
        if "compiled" in loops:
            try:
                runs["compiled:enc"]()
            except Exception:  # a component without a kernel: this configuration codes from Python only
                loops.remove("compiled")
                del runs["compiled:enc"], runs["compiled:dec"]
        secs = interleaved(runs, args.repeats)
        n = reports[loops[0]].targets
        tps = {k: n / v[1] for k, v in secs.items()}
        for loop in loops:
            r = reports[loop]
            print(f"{label:<32} {loop:<9} {tps['eval']:9,.0f} {tps['strict']:10,.0f} {tps[loop + ':enc']:9,.0f} "
                  f"{tps[loop + ':dec']:9,.0f} {tps[loop + ':dec'] / tps['eval']:8.3f} "
                  f"{tps[loop + ':dec'] / tps['strict']:10.3f} {r.ideal_bpb:11.7f} {r.coded_bpb:11.7f} "
                  f"{r.coded_bpb / r.ideal_bpb - 1:8.1e} {r.header_bytes:8,}")
        print(f"{'':<32} (whole calls, medians of {args.repeats}; JIT warm-up excluded)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--tokenizer")
    ap.add_argument("--checkpoint", help="neural checkpoint: adds neural,bigram,trigram + hedge")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--part", default="strict,audit")
    args = ap.parse_args()
    from pgolf_core import evaluate

    for part in args.part.split(","):
        print(f"== {part}")
        {"strict": part_strict, "audit": part_audit, "prove": part_prove}[part](evaluate, args)


if __name__ == "__main__":
    main()
