"""Throughput and memory of ``pgolf-core data check``'s overlap check, the one that streams the
training shards: the whole FineWeb sample (3,300 documents, ~9.2M sp1024 tokens, all sources, so
the three TextFixer documents that are official validation documents 0-2 are in it) written as
training shards, against the official validation head.

    python benchmarks/bench_data_check.py [--copies 1,4] [--repeats 3]

Each measurement is one ``pgolf-core data check --only overlap --json`` process (its peak RSS is
the check's own: imports, the validation side, one block); ``--copies N`` writes the sample N
times over, to show that memory does not grow with the training tokens. Prints tokens/s (median of
the repeats), peak RSS (largest) and the time 8 billion training tokens would take at that rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import numpy as np

from common import CACHE, FINEWEB_SAMPLE, SHARED, TOKENIZER

VAL_HEAD = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
SHARD_TOKENS = 1_000_000  # small shards: many boundaries to carry documents across
TRAIN_TOKENS_8B = 8_000_000_000


def sample_stream() -> np.ndarray:
    """Every document of the FineWeb sample, tokenized with sp1024, BOS before each (cached)."""
    from pgolf_core.stream.bytes import load_sentencepiece
    from pgolf_core.stream.data import encode_documents, read_jsonl_texts

    cache = CACHE / "fineweb_sample_all_sp1024.npy"
    if not cache.is_file():
        if not FINEWEB_SAMPLE.is_file():
            raise SystemExit(f"benchmark needs {FINEWEB_SAMPLE} (the shared corpus)")
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, encode_documents(read_jsonl_texts(FINEWEB_SAMPLE), load_sentencepiece(TOKENIZER)))
    return np.load(cache)


def write_train(copies: int):
    from pgolf_core.stream.data import write_shard

    folder = CACHE / f"datacheck_train_x{copies}"
    stream = sample_stream()
    if not folder.is_dir():
        folder.mkdir(parents=True)
        full = np.concatenate([stream] * copies)
        for k, s in enumerate(range(0, len(full), SHARD_TOKENS)):
            write_shard(folder / f"fineweb_train_{k:06d}.bin", full[s : s + SHARD_TOKENS])
    return folder, len(stream) * copies


def measure(folder) -> dict:
    out = subprocess.run([sys.executable, "-m", "pgolf_core", "data", "check", "--val", str(VAL_HEAD), "--tokenizer",
                          str(TOKENIZER), "--train", str(folder), "--only", "overlap", "--json"],
                         capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)["checks"]["overlap"]["figures"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", default="1,4", help="Comma-separated: the sample written this many times over.")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    measure(write_train(1)[0])  # warm-up: the numba kernel is compiled once and cached
    for copies in [int(x) for x in args.copies.split(",")]:
        folder, n = write_train(copies)
        runs = [measure(folder) for _ in range(args.repeats)]
        rate = statistics.median(r["tokens_per_second"] for r in runs)
        rss = max(r["peak_rss_bytes"] for r in runs)
        f = runs[0]
        print(f"train x{copies}: {n:,} tokens in {f['train_shards']} shards, {f['train_documents']:,} documents; "
              f"{rate / 1e6:.1f}M tokens/s (median of {args.repeats}), peak RSS {rss / 2**20:.0f} MiB; "
              f"found exact {f['exact_documents']} (val docs {[e['val_doc'] for e in f['exact_examples']]}), "
              f"near {f['near_documents']}; candidate pairs {f['candidate_pairs']:,}, verified {f['verified_pairs']:,}")
        print(f"  projected for {TRAIN_TOKENS_8B / 1e9:.0f}B training tokens: {TRAIN_TOKENS_8B / rate / 60:.1f} min "
              f"at this rate (memory does not grow with the training tokens)")


if __name__ == "__main__":
    main()
