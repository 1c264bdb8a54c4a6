"""Running ``pgolf-core`` in a subprocess, as one process or under torchrun (gloo ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def eval_json(args, nproc: int = 1, timeout: int = 600) -> dict:
    """The JSON results of ``pgolf-core <args> --json`` on ``nproc`` processes, one thread each
    (only rank 0 prints, so stdout holds exactly one document)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        cmd = [sys.executable, "-m", "pgolf_core", *args, "--json"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "pgolf_core", *args, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)
