"""Plots of a run: mixer weights along the stream and running BPB of each expert and the mixture.

matplotlib is an optional extra (``pip install pgolf-core[plot]``); it is imported only here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import PgolfError


def load_results(path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise PgolfError(f"results {path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise PgolfError(f"results {path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != "pgolf-core/results":
        if not isinstance(doc, dict):
            raise PgolfError(f"results {path}: not a pgolf-core results document (a JSON {type(doc).__name__})")
        raise PgolfError(f"results {path}: not a pgolf-core results document (schema {doc.get('schema')!r})")
    return doc


def running_bpb(doc: dict) -> tuple:
    """Positions and {label: running BPB} from a results document's cumulative sums."""
    traj = doc["mixer"]["trajectory"]
    cum = traj.get("cumulative")
    if not cum or not traj["positions"]:
        raise PgolfError("the results have no trajectory to plot (written by an older pgolf-core?)")
    nbytes = np.maximum(np.asarray(cum["bytes"], dtype=np.float64), 1.0)
    curves = {"mixture": np.asarray(cum["mixture_nll"]) / math.log(2) / nbytes}
    names = list(doc["metrics"]["experts"])
    expert_nll = np.asarray(cum["expert_nll"], dtype=np.float64)
    for k, name in enumerate(names):
        curves[name] = expert_nll[:, k] / math.log(2) / nbytes
    return np.asarray(traj["positions"]), curves


def plot_results(doc: dict, out) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PgolfError("plotting needs matplotlib: pip install 'pgolf-core[plot]'") from exc
    pos, curves = running_bpb(doc)
    weights = np.asarray(doc["mixer"]["trajectory"]["weights"], dtype=np.float64)
    names = list(doc["metrics"]["experts"])
    fig, axes = plt.subplots(2 if weights.size else 1, 1, figsize=(9, 6.5 if weights.size else 3.5), sharex=True,
                             squeeze=False)
    ax = axes[0, 0]
    for label, curve in curves.items():
        ax.plot(pos, curve, lw=2.2 if label == "mixture" else 1.2, label=label, color="black" if label == "mixture" else None)
    from ..run.report import result_level

    verdict = f"  {result_level(doc).upper()}"
    ax.set_ylabel("running BPB")
    ax.set_title(f"BPB {doc['metrics']['bpb']:.4f}{verdict} on {Path(str(doc['config'].get('data'))).name}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    if weights.size:
        wpos = pos[-len(weights):]
        ax2 = axes[1, 0]
        cols = names if weights.shape[1] == len(names) else [f"w{i}" for i in range(weights.shape[1])]
        # lines, not a stack: a geometric mixer's weights are signed and need not sum to 1
        for k, col in enumerate(cols):
            ax2.plot(wpos, weights[:, k], lw=1.2, label=col)
        ax2.axhline(0.0, color="grey", lw=0.6)
        ax2.set_ylabel(f"{doc['config']['mixer']['name']} weight" if doc["config"].get("mixer") else "mixer weight")
        ax2.legend(loc="upper right", fontsize=8)
        ax2.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("target position")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
