"""Results: one versioned schema, JSON, a human-readable table, per-token arrays in an .npz."""

from __future__ import annotations

import json
import math
import platform
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

RESULTS_SCHEMA = "pgolf-core/results"
RESULTS_VERSION = 3  # 2: validity.level (proven/audited/unchecked/invalid), strict scoring, spot checks;
# 3: no "valid" field: it said true for an unchecked run, which a reader of version 1 took for a verdict.
# "level" is the one verdict (docs/results.md).


@dataclass
class Results:
    """What one evaluation measured. ``to_dict()`` is the JSON schema (``schema``/``version``)."""

    bpb: float  # bits per byte of the mixture: sum(-ln p) / ln 2 / sum(bytes)
    loss: float  # nats per target of the mixture
    targets: int  # number of scored targets (stream length - 1)
    bytes: int  # UTF-8 bytes the targets stand for
    expert_bpb: dict  # expert label -> BPB of that expert alone on the same pass
    expert_loss: dict  # expert label -> nats per target
    weights: Optional[dict]  # final mixer weights by expert label (None without a mixer)
    trajectory: dict  # {"positions": [...], "weights": [[w_k]...], "cumulative": {bytes, mixture_nll, expert_nll}}
    validity: dict  # {"level", "violations", "checks", "reasons" (why unchecked), "strict", "audit", "spot_checks", "proof"}
    config: dict  # the resolved configuration
    versions: dict  # python, numpy, pgolf-core and plugin versions
    timings: dict  # seconds: total, build, loop, per component; targets_per_second
    adapters: dict = field(default_factory=dict)  # adapter name -> its stats()
    logprobs: Optional[dict] = None  # per-target arrays when asked (see save_npz)
    data_checks: dict = field(default_factory=dict)  # the cheap data checks of the scored stream (pgolf_core.datacheck)

    @property
    def level(self) -> str:
        """``proven``, ``audited``, ``unchecked`` or ``invalid`` (``pgolf_core.run.verdict``): the verdict."""
        return self.validity["level"]

    @property
    def valid(self) -> bool:
        """No violation was found: ``level`` is not ``invalid``. Not a verdict (an unchecked run is
        "valid"); kept for code that guards against invalid results, and not in the JSON."""
        return self.level != "invalid"

    def to_dict(self) -> dict:
        return {
            "schema": RESULTS_SCHEMA,
            "version": RESULTS_VERSION,
            "level": self.level,
            "metrics": {
                "bpb": self.bpb, "loss": self.loss, "targets": self.targets, "bytes": self.bytes,
                "experts": {k: {"bpb": self.expert_bpb[k], "loss": self.expert_loss[k]} for k in self.expert_bpb},
            },
            "mixer": {"weights": self.weights, "trajectory": self.trajectory},
            "validity": self.validity,
            "adapters": self.adapters,
            "config": self.config,
            "versions": self.versions,
            "timings": self.timings,
            "data_checks": self.data_checks,
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(_jsonable(self.to_dict()), indent=indent)

    def save_npz(self, path) -> None:
        """Per-target log-probabilities (mixture and experts, natural log) and bytes."""
        if self.logprobs is None:
            raise ValueError("this run did not keep per-target log-probabilities (keep_logprobs=True)")
        lp = self.logprobs
        np.savez_compressed(path, mixture=lp["mixture"], experts=lp["experts"], bytes=lp["bytes"],
                            expert_names=np.array(lp["expert_names"]))


def _proof_lines(proof: dict) -> list:
    """The proof's lines: the file's own score (computed without plugins), how it was decoded, and
    the description length."""
    e, box = proof["encode"], proof.get("sandbox", {})
    if "score" in proof:
        s = proof["score"]
        head = (f"proof      coded {s['coded_bpb']:.6f} BPB from the file: {s['file_bytes']:,} bytes = {s['payload_bytes']:,} "
                f"payload + {s['header_bytes']:,} header")
    else:
        head = (f"proof      coded {e['coded_bpb']:.6f} BPB (encoder's count): {e['file_bytes']:,} bytes = "
                f"{e['payload_bytes']:,} payload + {e['header_bytes']:,} header")
    how = (f"in a sandbox ({box.get('mechanism')}, Landlock ABI {box.get('abi')})" if box.get("enforced")
           else f"WITHOUT a sandbox ({box.get('reason') or 'not available'})")
    tail = f"decoded back identical from the file alone, {how}" if proof.get("ok") else f"FAILED: {proof.get('error')}"
    lines = [f"{head}; {tail}"]
    if "description" in proof:
        lines.append("described  " + describe_line(proof["description"]))
    return lines


def describe_line(dl: dict) -> str:
    """One line for the verdict: the description length and the two counts."""
    return (f"description length {dl['total_bpb']:.6f} BPB ({dl['total_bytes']:,} B = {dl['payload_bytes']:,} payload + "
            f"{dl['header_bytes']:,} header + {dl['artifact_bytes']:,} artifacts + {dl['plugin_code']['compressed']:,} "
            f"plugin code); competition count {dl['competition_bytes']:,} B "
            f"({'within' if dl['within_cap'] else 'OVER'} {dl['competition_cap']:,}), strict {dl['strict_bytes']:,} B "
            f"(+ tokenizer {dl['tokenizer_bytes']:,}, decompressor {dl['decompressor']['raw']:,})")


def check_output_path(path) -> None:
    """Fail before any work starts when ``path`` cannot be written: its folder is missing, the path
    is a folder, or trying the write fails (a read-only or virtual file system such as ``/proc``
    passes a permission check and still refuses). A long run must never end in a traceback over
    its output. The try leaves an existing file as it was and removes a file it created."""
    from ..errors import UsageError

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p} is a folder; give a file name to write")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {p}: the folder {parent} does not exist")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {p}: {exc.strerror or exc}") from None
    if not existed:
        try:
            p.unlink()
        except OSError:
            pass


@contextmanager
def writing(path, option: str):
    """An output written after the run: an ``OSError`` becomes one line naming the file (exit 1)."""
    from ..errors import PgolfError

    try:
        yield
    except OSError as exc:
        raise PgolfError(f"{option} {path}: the result above is complete, but writing this file failed: "
                         f"{exc.strerror or exc}") from None


def result_level(doc: dict) -> str:
    """The verdict of a results document of any version (version 1 had only ``valid``)."""
    if "level" in doc:
        return doc["level"]
    return "unchecked" if doc.get("valid") else "invalid"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def collect_versions(plugins=None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for pkg in ("pgolf-core", "pluggy", "numba", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    if plugins is not None:
        out["plugins"] = {i.name: (i.version or i.module) for i in plugins.info if not i.error}
    return out


def format_table(res: Results) -> str:
    """The human-readable summary printed by ``pgolf-core eval``."""
    level = res.level.upper()
    lines = [
        f"BPB        {res.bpb:.6f}  {level}" if res.valid else f"BPB        INVALID ({res.bpb:.6f} is not a compression rate)",
        f"loss       {res.loss:.6f} nats/token",
        f"targets    {res.targets:,}",
        f"bytes      {res.bytes:,}",
    ]
    lines.append("experts    " + "  ".join(f"{k}={v:.4f}" for k, v in res.expert_bpb.items()) + "  (BPB alone)")
    if res.weights:
        lines.append("weights    " + "  ".join(f"{k}={v:.4f}" for k, v in res.weights.items()))
    t = res.timings
    lines.append(f"time       {t['total_seconds']:.2f} s total, {t['targets_per_second']:,.0f} targets/s in the loop")
    proof = res.validity.get("proof")
    if proof and "encode" in proof:
        lines += _proof_lines(proof)
    spot = res.validity.get("spot_checks") or {}
    lines += [f"spot check {line}" for line in spot.get("summary", [])]
    reasons = res.validity.get("reasons") or []
    if res.level == "unchecked" and reasons:
        lines += [f"verdict    UNCHECKED: {r}" for r in reasons]
    elif res.level == "unchecked":
        lines.append("verdict    UNCHECKED: only runtime guards ran; --audit checks C1-C4, --prove codes and decodes the stream")
    flagged = [c for c in res.data_checks.values() if isinstance(c, dict) and c.get("status") in ("PROBLEM", "PARTIAL")]
    lines += [f"data       {c['name']}: {c['summary']}" if c["status"] == "PARTIAL" else
              f"data       {c['name']} {c['status']}: {c['summary']}" for c in flagged]
    if not res.valid:
        for v in res.validity["violations"]:
            lines.append(f"violation  {v}")
    return "\n".join(lines)


@contextmanager
def progress_bar(total: int, enabled: bool = True, label: str = "scoring"):
    """A rich progress bar on stderr; yields ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(file=sys.stderr)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as prog:
        task = prog.add_task(label, total=total)
        yield lambda n: prog.advance(task, n)
