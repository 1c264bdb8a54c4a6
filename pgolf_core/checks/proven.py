"""``--prove``: the stream coded into a file with the run's configuration, decoded back in a sandbox
that cannot reach the data, and the file scored without plugins (``pgolf_core.proof``). A round
trip that agrees makes the run PROVEN (DECODED where the decoder could not be sandboxed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .base import Check, Finding


class Proven(Check):
    needs_strict = True

    def __init__(self, path=None):
        self.path = path

    def open(self, spec, checks) -> None:
        from ..plugins import pin_plugin_code

        self.pinned = pin_plugin_code(spec.plugin_modules)  # the plugins' files before any is imported

    def before(self, run) -> None:
        from ..codec.compress import refuse_undecodable

        given = [c for c in [*run.experts, *run.adapters] if c.instance is not None]
        if given or not (run.spec.mixer is None or isinstance(run.spec.mixer, str)):
            raise UsageError("prove=True needs components given by registered name: the decoder rebuilds them from the file")
        refuse_undecodable(run.comps)  # an undecodable configuration is refused now, not after the evaluation

    def after(self, run, loop, summary: dict) -> Finding:
        proof = self._prove(run, summary["bpb"])
        box = proof.get("sandbox", {})
        how = (f"in a sandbox ({box.get('mechanism')}, Landlock ABI {box.get('abi')})" if box.get("enforced")
               else f"without a sandbox ({box.get('reason') or 'not available'})")
        return Finding(
            checks=[f"round trip: decoded from the compressed file alone, {how}; scored from the file without plugins"],
            violations=[] if proof.get("ok") else [f"round trip failed: {proof.get('error')}"],
            level=proof.get("level") or "decoded", sections={"proof": proof},
            timings={"encode_seconds": proof["encode"]["seconds"],
                     **({"decode_seconds": proof["decode"]["seconds"]} if "decode" in proof else {})})

    def _prove(self, run, bpb: float) -> dict:
        """Code the stream with fresh components, then decode it in a sandbox and score the file."""
        from ..codec.compress import encode_run
        from ..codec.container import read_container
        from ..proof.prove import data_files, prove_file

        with tempfile.TemporaryDirectory(prefix="pgolf-proof-") as tmp:
            path = Path(self.path) if self.path else Path(tmp) / "proof.pgz"
            enc = encode_run(run.rebuilt(), path, pinned=self.pinned, progress=run.spec.progress and run.is_main)
            modules = read_container(path)[0]["config"]["needed_plugins"]
            sidecar = None
            if run.counter.describe().get("method") == "sidecar":
                sidecar = Path(tmp) / "counts.npy"
                np.save(sidecar, np.asarray(run.counter.counts, dtype=np.int64))
            _, proof = prove_file(path, plugin_modules=modules, byte_counts=sidecar, reference=run.tokens,
                                  printed_bpb=bpb, data=data_files(run.dataset, run.counter.describe().get("source", "")))
        proof.update(file=str(path) if self.path else None, encode=enc.to_dict(), ideal_bpb=enc.ideal_bpb,
                     plugin_modules=modules)
        return proof
