"""What each cheat gets under each mode, against the honest add-one bigram measured in the same run.

The cheats are the tests' (``tests/cheats/``): an honest bigram with one trick each (disk, frames,
gc, sidefile, artifact, bytes, patch), an adapter that trains on the 8,192 tokens after its chunk,
and the experts that target the live spot checks (copy-aware, reads-the-checks, a peek confined
to 10,000 contiguous targets, a long-stream peek with ``--spot-checks 0``). They are packaged here
as one plugin package written to a scratch folder, with the stream in another folder, the way an
outside author would ship them. Modes: plain, ``audit``, ``prove`` (sandboxed decode in
``eval``) and a separate ``pgolf-core decompress`` of the proof's file.

    python benchmarks/bench_cheats.py [--limit N] [--only disk,frames] [--sparse-runs 5]

Prints one markdown row per cheat: the level and BPB of each mode, and the description length
(DL, BPB) of each proof. Reads the val head from ../shared (the demo stream without it).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, SHARED, TOKENIZER

TESTS = ROOT / "tests"
SPOT = '''

from . import spot_cheats as _spot


@hookimpl(specname="pgolf_register_experts")
def _register_spot_cheats(register):
    register("cheat-copy-aware", lambda ctx: _spot.PeeksUnlessCopied(ctx.vocab_size), description="test")
    register("cheat-reads-checks", lambda ctx: _spot.ReadsTheChecks(ctx.vocab_size), description="test")
    register("cheat-sparse", lambda ctx, lo=1, hi=1: _spot.PeeksInARegion(ctx.vocab_size, lo, hi), description="test")
    register("cheat-long-stream", lambda ctx: _spot.P.LongStreamCheat(ctx.vocab_size), description="test")
'''
PACKAGE = "bench_cheats_plugin"


def write_plugin(folder: Path, data: Path, n_tokens: int) -> None:
    pkg = folder / PACKAGE
    pkg.mkdir(parents=True)
    template = (TESTS / "cheats" / "cheat_template.py").read_text()
    (pkg / "__init__.py").write_text(template.format(data=str(data), n_tokens=n_tokens, tag=PACKAGE) + SPOT)
    shutil.copy(TESTS / "planted.py", pkg / "planted.py")
    shutil.copy(TESTS / "cheats" / "spot_cheats.py", pkg / "spot_cheats.py")


def clear_side_files(plugin_dir: Path, data: Path) -> None:
    """The sidefile cheat's caches (``SIDE_FILES`` of the template)."""
    name = f"pgolf-cheat-{PACKAGE}.npy"
    for side in (Path("/tmp") / name, Path.home() / f".{name}", plugin_dir / PACKAGE / f"cheat-cache-{PACKAGE}.npy",
                 data.with_name(f"cheat-cache-{PACKAGE}.npy")):
        side.unlink(missing_ok=True)


def cell(res, proof: bool = False) -> str:
    out = f"{res.level.upper()} {res.bpb:.6f}"
    dl = (res.validity.get("proof") or {}).get("description")
    if proof and dl:
        out += f" (DL {dl['total_bpb']:.4f})"
    return out


def decompress_cell(pgz: Path, folder: Path, plugin_dir: Path) -> str:
    if not pgz.exists():
        return "no file"
    env = dict(os.environ, PYTHONPATH=str(plugin_dir))
    p = subprocess.run([sys.executable, "-m", "pgolf_core", "decompress", str(pgz), "-o", str(folder / "out.npy"),
                        "-p", PACKAGE, "--json"], capture_output=True, text=True, env=env)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        return f"exit {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1][:80]}"
    level = (doc.get("level") or "invalid").upper()
    return f"{level} {doc['coded_bpb']:.6f}" if "coded_bpb" in doc else f"{level} ({(doc.get('error') or '')[:70]})"


def cheat_table(tmp: Path, n: int) -> dict:
    """label: (experts, adapters, expert options, extra audit options)."""
    lo = n // 2
    return {
        "honest": (["cheat-honest"], [], None, {}),
        "disk": (["cheat-disk"], [], None, {}),
        "frames": (["cheat-frames"], [], None, {}),
        "gc": (["cheat-gc"], [], None, {}),
        "sidefile": (["cheat-sidefile"], [], None, {}),
        "artifact": (["cheat-artifact"], [], {"cheat-artifact": {"table": str(tmp / "table.xz")}}, {}),
        "bytes": (["cheat-bytes"], [], None, {}),
        "patch": (["cheat-patch"], [], None, {}),
        "adapter": (["cheat-honest"], ["cheat-adapter"], None, {}),
        "copy-aware": (["cheat-copy-aware"], [], None, {}),
        "reads-checks": (["cheat-reads-checks"], [], None, {}),
        "sparse": (["cheat-sparse"], [], {"cheat-sparse": {"lo": lo, "hi": lo + 10_000}}, {}),
        "long-stream": (["cheat-long-stream"], [], None, {"spot_checks": 0}),
    }


def run_cell(tmp: Path, tok: str, label: str, mode: str) -> str:
    """One cheat under one mode, in this process (a fresh one: some cheats patch the engine for good)."""
    from pgolf_core import evaluate

    n = len(np.load(tmp / "data" / "stream.npy", mmap_mode="r"))
    experts, adapters, opts, audit_kw = cheat_table(tmp, n)[label]
    sys.path.insert(0, str(tmp / "plugin"))
    kw = dict(tokens=str(tmp / "data" / "stream.npy"), tokenizer=tok, plugin_modules=[PACKAGE], expert_options=opts,
              adapters=adapters, check_tokenizer=False)
    if mode == "audit":
        kw.update(audit=True, **audit_kw)
    elif mode == "prove":
        kw.update(prove=True, proof_path=str(tmp / f"{label}.pgz"))
    try:
        return cell(evaluate(experts, **kw), proof=mode == "prove")
    except Exception as exc:  # a refusal is a result of the table
        return f"refused: {type(exc).__name__}: {str(exc)[:80]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="tokens of the stream (default: all of it)")
    ap.add_argument("--only", default="", help="comma-separated cheats to run (default: all)")
    ap.add_argument("--sparse-runs", type=int, default=5, help="audited runs of the confined peek (each draws its checks)")
    ap.add_argument("--cell", nargs=4, metavar=("DIR", "TOKENIZER", "CHEAT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cell:
        print(run_cell(Path(args.cell[0]), *args.cell[1:]))
        return
    from pgolf_core.demo import demo_tokenizer_path, demo_tokens

    head = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
    stream = np.load(head) if head.is_file() else np.asarray(demo_tokens("val"))
    stream = stream[:args.limit] if args.limit else stream
    tok = str(TOKENIZER) if head.is_file() else str(demo_tokenizer_path())
    n = len(stream)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data" / "stream.npy"
        data.parent.mkdir()
        np.save(data, stream)
        plugin_dir = tmp / "plugin"
        write_plugin(plugin_dir, data, n)
        (tmp / "table.xz").write_bytes(lzma.compress(stream.astype("<u2").tobytes(), preset=9))
        only = [c for c in args.only.split(",") if c]
        print(f"stream: {n:,} tokens of {head if head.is_file() else 'the demo'}; plugin {PACKAGE} in {plugin_dir}")
        print("| cheat | plain | audit | prove | decompress |\n|---|---|---|---|---|")
        for label in cheat_table(tmp, n):
            if only and label not in only:
                continue
            row = []
            for mode in ("plain", "audit", "prove"):
                runs = args.sparse_runs if (label, mode) == ("sparse", "audit") else 1
                cells = []
                for _ in range(runs):
                    clear_side_files(plugin_dir, data)  # each run starts without the caches a previous one left
                    out = subprocess.run([sys.executable, __file__, "--cell", str(tmp), tok, label, mode],
                                         capture_output=True, text=True)
                    cells.append(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else
                                 f"exit {out.returncode}: {(out.stderr.strip().splitlines() or [''])[-1][:80]}")
                audited = sum(c.startswith("AUDITED") for c in cells)
                row.append(cells[0] + (f"; AUDITED in {audited} of {runs} runs" if runs > 1 else ""))
            row.append(decompress_cell(tmp / f"{label}.pgz", tmp, plugin_dir))
            print(f"| {label} | " + " | ".join(row) + " |", flush=True)
        clear_side_files(plugin_dir, data)


if __name__ == "__main__":
    main()
