"""``pgolf-core doctor``: what a bug report needs, gathered in one place.

A score depends on more than the command line: the library versions and thread counts (a matrix
product's rounding can depend on them), whether this machine can confine a proof's decoder (PROVEN
or only DECODED), which plugins loaded (and which failed), and which tokenizer and data the run
saw. The doctor reports all of it and fails on none of it: a report is most needed when something
is missing, so every probe catches its own error and prints it in place of a value.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path
from typing import Optional, Sequence

SCHEMA, VERSION = "pgolf-core/doctor", 1
SHA_PREFIX = 12  # hex digits of a file's sha256 printed: enough to tell two tokenizers apart at a glance
LIBRARIES = ("pgolf-core", "numpy", "torch", "numba", "sentencepiece", "pluggy", "click", "zstandard")
ENVIRONMENT = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PGOLF_PLUGINS",
               "PGOLF_DISABLE_PLUGIN_AUTOLOAD", "PGOLF_NO_SANDBOX")
SHARED = Path("..") / "shared" / "data"  # where the project's documentation and tests expect the shared corpus


def collect(data: Sequence[str] = (), tokenizers: Sequence[str] = (), plugin_modules: Sequence[str] = (),
            cwd: Optional[Path] = None) -> dict:
    """The doctor's report as a JSON-ready dict (``schema`` pgolf-core/doctor, ``version`` 1)."""
    from .options import get_plugins

    cwd = Path.cwd() if cwd is None else Path(cwd)
    plugins, plugin_error = None, None
    try:
        plugins = get_plugins(tuple(plugin_modules))
    except Exception as exc:  # a plugin that breaks loading is exactly what the report must show
        plugin_error = f"{type(exc).__name__}: {exc}"
    report = {
        "schema": SCHEMA, "version": VERSION,
        "versions": _versions(),
        "platform": {"system": platform.platform(), "machine": platform.machine(),
                     "python": f"{platform.python_implementation()} {platform.python_version()}",
                     "executable": sys.executable},
        "threads": _threads(),
        "cuda": _cuda(),
        "sandbox": _sandbox(),
        "plugins": plugins.summary() if plugins is not None else [],
        "plugin_error": plugin_error,
        "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
        "shared": [],
        "data": [],
        "tokenizers": [],
    }
    for folder, where in _shared_folders(cwd):
        report["shared"].append({"path": str(folder), "found_from": where})
        for path in sorted(folder.rglob("*")):
            if path.suffix == ".model":
                report["tokenizers"].append(describe_tokenizer(path, plugins) | {"found_from": where})
            elif path.suffix in (".npy", ".bin", ".jsonl") and "_bytes_" not in path.name:  # sidecars go with their shards
                report["data"].append(describe_data(path) | {"found_from": where})
    for path in tokenizers:
        report["tokenizers"].append(describe_tokenizer(path, plugins) | {"found_from": "--tokenizer"})
    for path in data:
        report["data"].append(describe_data(path) | {"found_from": "--data"})
    if data and tokenizers:
        report["match"] = [match(d, t, plugins) for d in data for t in tokenizers]
    return report


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _threads() -> dict:
    """CPUs, and the threads torch and numba would use: the thread count is part of a proof's
    header, because the decoder must round as the encoder did."""
    out = {"cpu_count": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        out["cpus_usable"] = len(os.sched_getaffinity(0))  # a container or taskset may allow fewer
    out["torch"] = _probe(lambda: importlib.import_module("torch").get_num_threads())
    out["numba"] = _probe(lambda: importlib.import_module("numba").get_num_threads())
    return out


def _cuda() -> dict:
    def probe():
        torch = importlib.import_module("torch")
        available = bool(torch.cuda.is_available())
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else []
        return {"available": available, "torch_cuda": torch.version.cuda, "devices": devices}

    out = _probe(probe)
    return out if isinstance(out, dict) else {"available": False, "error": out}


def _sandbox() -> dict:
    try:
        from ..proof.sandbox import sandbox_status

        return dict(sandbox_status())
    except Exception as exc:  # an unknown kernel or libc must not stop the report
        return {"available": False, "mechanism": "none", "reason": f"{type(exc).__name__}: {exc}"}


def _probe(fn):
    """``fn()``, or the error it raised as a string ("error: ..."), so one broken library does not
    hide the rest of the report."""
    try:
        return fn()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def _shared_folders(cwd: Path) -> list:
    """``../shared/data`` seen from the working folder and from the repository this package was
    installed from (an editable install; a wheel has no repository), each folder once."""
    candidates = [(cwd / SHARED, "the working folder")]
    repo = _repository()
    if repo is not None:
        candidates.append((repo / SHARED, "the repository"))
    out = []
    for folder, where in candidates:
        if folder.is_dir() and folder.resolve() not in [f for f, _ in out]:
            out.append((folder.resolve(), f"{SHARED} from {where}"))
    return out


def _repository() -> Optional[Path]:
    """The source checkout this package runs from, when it is one (an editable install)."""
    repo = Path(__file__).resolve().parent.parent
    return repo if (repo / "pyproject.toml").is_file() else None


def describe_tokenizer(path, plugins=None) -> dict:
    """{path, vocab_size, sha256 (prefix), format} of a tokenizer file, or {path, error}."""
    from ..digest import sha256_file
    from ..tokenizers import load_tokenizer

    out = {"path": str(path)}
    try:
        out["sha256"] = sha256_file(path)[:SHA_PREFIX]
        tok = load_tokenizer(path, plugins)
        out.update(vocab_size=int(tok.vocab_size), format=type(tok).__name__)
    except Exception as exc:
        out["error"] = str(exc) if _is_pgolf_error(exc) else f"{type(exc).__name__}: {exc}"
    return out


def describe_data(path) -> dict:
    """What a data path holds, read from headers only (a shard's or a .npy's), so that a folder of
    100M-token shards is described in milliseconds: {path, kind, tokens, ...} or {path, error}."""
    import numpy as np

    from ..stream.data import HEADER_INTS, SHARD_MAGIC, shard_paths

    p = Path(path)
    out = {"path": str(path)}
    try:
        if p.suffix == ".npy" and p.is_file():  # a missing one is named below, in the engine's words
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
            out.update(kind="npy", dtype=str(arr.dtype), tokens=int(arr.shape[0]) if arr.ndim == 1 else None,
                       shape=list(arr.shape))
        elif p.suffix == ".jsonl" and p.is_file():
            with open(p, "rb") as f:
                out.update(kind="documents (jsonl)", documents=sum(1 for line in f if line.strip()))
        else:
            shards = shard_paths(p)
            counts = []
            for s in shards:
                header = np.fromfile(s, dtype="<i4", count=HEADER_INTS)
                if len(header) < 3 or int(header[0]) != SHARD_MAGIC:
                    raise ValueError(f"{s} is not a parameter-golf shard (no shard header)")
                counts.append(int(header[2]))
            out.update(kind="shards", shards=len(shards), tokens=sum(counts))
            sidecars = [s for s in p.glob("fineweb_val_bytes_*.bin")] if p.is_dir() else []
            if sidecars:
                out["byte_sidecars"] = len(sidecars)
        if p.is_file():
            out["bytes_on_disk"] = p.stat().st_size
    except Exception as exc:
        out["error"] = str(exc) if _is_pgolf_error(exc) else f"{type(exc).__name__}: {exc}"
    return out


def match(data, tokenizer, plugins=None) -> dict:
    """Whether ``tokenizer`` wrote ``data``: the largest id against the vocabulary, and the same
    decode/re-encode check ``eval`` runs before it scores."""
    from ..stream.data import check_tokenizer_matches, load_tokens
    from ..tokenizers import load_tokenizer

    out = {"data": str(data), "tokenizer": str(tokenizer)}
    try:
        tok = load_tokenizer(tokenizer, plugins)
        tokens = load_tokens(data)
        top = int(tokens.max(initial=0))
        out.update(max_id=top, vocab_size=int(tok.vocab_size), fits=top < tok.vocab_size)
        if out["fits"]:
            out["round_trip"] = check_tokenizer_matches(tokens, tok, data, tokenizer)
        out["ok"] = out["fits"]
    except Exception as exc:
        out.update(ok=False, error=str(exc) if _is_pgolf_error(exc) else f"{type(exc).__name__}: {exc}")
    return out


def _is_pgolf_error(exc) -> bool:
    from ..errors import PgolfError

    return isinstance(exc, PgolfError)


def format_report(r: dict) -> str:
    """The human-readable report: one line per fact, labels in a column, as ``eval`` prints."""
    v = r["versions"]
    lines = ["versions   " + "  ".join(f"{k} {v[k] or '-'}" for k in ("pgolf-core", "python", "numpy", "torch",
                                                                         "numba", "sentencepiece")),
             "           " + "  ".join(f"{k} {v[k] or '-'}" for k in ("pluggy", "click", "zstandard")),
             f"platform   {r['platform']['system']} ({r['platform']['machine']}), {r['platform']['executable']}"]
    t = r["threads"]
    usable = f" ({t['cpus_usable']} usable)" if t.get("cpus_usable") not in (None, t["cpu_count"]) else ""
    lines.append(f"threads    {t['cpu_count']} CPUs{usable}; torch {t['torch']}, numba {t['numba']}")
    c = r["cuda"]
    if c.get("error"):
        lines.append(f"cuda       unknown ({c['error']})")
    elif c["available"]:
        lines.append(f"cuda       available (CUDA {c['torch_cuda']}): {', '.join(c['devices'])}")
    else:
        lines.append(f"cuda       not available (torch built {'for CUDA ' + c['torch_cuda'] if c['torch_cuda'] else 'for CPU'})")
    s = r["sandbox"]
    if s.get("available"):
        lines.append(f"sandbox    {s['mechanism']} (Landlock ABI {s['abi']}): proofs can be PROVEN"
                     + ("; running as root, see docs/proofs.md (Limits)" if s.get("root") else ""))
    else:
        lines.append(f"sandbox    none: proofs are at most DECODED ({s.get('reason')})")
    if r["plugin_error"]:
        lines.append(f"plugins    FAILED to load: {r['plugin_error']}")
    for p in r["plugins"]:
        what = "; ".join(f"{k}s: {', '.join(n)}" for k, n in p["provides"].items() if n) or "-"
        lines.append(f"plugin     {p['name']} ({p['source']}{', ' + p['version'] if p['version'] else ''}): "
                     + (f"FAILED: {p['error']}" if p["error"] else what))
    for k, val in r["environment"].items():
        lines.append(f"env        {k}={val}")
    if not r["shared"]:
        lines.append(f"shared     no {SHARED} from the working folder or the repository")
    for sh in r["shared"]:
        lines.append(f"shared     {sh['path']} ({sh['found_from']})")
    for tok in r["tokenizers"]:
        if tok.get("error"):
            lines.append(f"tokenizer  {tok['path']}: {tok['error']}")
        else:
            lines.append(f"tokenizer  {tok['path']}: vocab {tok['vocab_size']:,}, sha256 {tok['sha256']}")
    for d in r["data"]:
        lines.append(f"data       {d['path']}: {_data_text(d)}")
    for m in r.get("match", []):
        if m.get("error"):
            lines.append(f"match      {m['data']} with {m['tokenizer']}: {m['error']}")
        elif not m["fits"]:
            lines.append(f"match      {m['data']} with {m['tokenizer']}: NO, token id {m['max_id']} is outside the "
                         f"vocabulary of {m['vocab_size']}")
        else:
            rt = m["round_trip"]
            checked = (f"{rt['documents']} documents decode and re-encode ({rt['round_trip_failures']} failed)"
                       if rt["documents"] else "no complete document to re-encode")
            lines.append(f"match      {m['data']} with {m['tokenizer']}: ids fit (max {m['max_id']}), {checked}")
    return "\n".join(lines)


def _data_text(d: dict) -> str:
    if d.get("error"):
        return d["error"]
    if d["kind"] == "npy":
        return (f"{d['tokens']:,} tokens ({d['dtype']})" if d["tokens"] is not None
                else f"not a 1-D token array ({d['dtype']} {d['shape']})")
    if d["kind"] == "shards":
        side = f", {d['byte_sidecars']} byte sidecars" if d.get("byte_sidecars") else ""
        return f"{d['shards']} shard{'s' if d['shards'] != 1 else ''}, {d['tokens']:,} tokens{side}"
    return f"{d['documents']:,} documents"
