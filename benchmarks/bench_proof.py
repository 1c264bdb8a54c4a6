"""What the proof sandbox costs: decoding the same file in this process and in the sandboxed child.

For one compressed file (n-grams + a mixer over the val head, or the built-in demo without
../shared), interleaved repeats of
- in-process: ``pgolf_core.codec.compress.decompress`` (plugins in this process; not a proof),
- sandboxed: ``pgolf_core.proof.sandbox.run_decoder`` (fresh interpreter, read plan, Landlock,
  seccomp, a fresh numba cache: every kernel is compiled again),
and prints the medians: start-up (the child's wall time minus its decoding time), decoding
targets/s, and the ratios sandboxed / in-process.

    python benchmarks/bench_proof.py [--experts bigram,trigram] [--mixer hedge] [--limit N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import SHARED, TOKENIZER


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", default="bigram,trigram")
    ap.add_argument("--mixer", default="hedge")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from pgolf_core.codec.compress import compress, decompress
    from pgolf_core.proof.sandbox import run_decoder, sandbox_status

    head = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
    data, tok = (str(head), str(TOKENIZER)) if head.is_file() else (None, None)
    print(f"sandbox: {sandbox_status()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pgz"
        enc = compress(args.experts.split(","), mixer=args.mixer, tokens=data, tokenizer=tok, output=path, limit=args.limit)
        print(f"file: {enc.targets:,} targets of {data or 'the demo'}, {enc.file_bytes:,} bytes, coded {enc.coded_bpb:.6f} BPB")
        rows = {"in-process": [], "sandboxed": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _, rep = decompress(path)
            rows["in-process"].append((time.perf_counter() - t0, rep.seconds, rep.targets))
            t0 = time.perf_counter()
            _, child, _ = run_decoder(path)
            d = child["decode"]
            rows["sandboxed"].append((time.perf_counter() - t0, d["seconds"], d["targets"]))
    med = {k: (statistics.median(w for w, _, _ in v), statistics.median(s for _, s, _ in v), v[0][2]) for k, v in rows.items()}
    print(f"{'mode':<12}{'wall s':>10}{'start-up s':>12}{'decode s':>10}{'targets/s':>12}")
    for k, (wall, dec, n) in med.items():
        print(f"{k:<12}{wall:>10.2f}{wall - dec:>12.2f}{dec:>10.2f}{n / dec:>12,.0f}")
    (wi, di, n), (ws, ds, _) = med["in-process"], med["sandboxed"]
    print(f"ratios sandboxed / in-process: wall {ws / wi:.2f}, decoding speed {(n / ds) / (n / di):.2f}")


if __name__ == "__main__":
    main()
