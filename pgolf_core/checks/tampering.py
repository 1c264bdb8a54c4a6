"""Changes to the engine a plugin made during the run, found after it (every run has this check).

The stream's bytes, counted by the spine before any component was built, against the loop's count
(a byte table changed in place), and the printed BPB against the loop's own sums by plain
arithmetic (``bits_per_byte`` replaced). In-process checks only raise the bar (a plugin can patch
this module too); the file's score under ``prove`` is computed where no plugin runs."""

from __future__ import annotations

from .base import Check, Finding

_LN2 = 0.6931471805599453  # a literal: math.log is a module attribute a plugin could replace


class Tampering(Check):
    def after(self, run, loop, summary: dict) -> Finding:
        return Finding(violations=tampering(summary, run.bytes_before_build))


def tampering(summary: dict, counted: int) -> list:
    out = []
    if summary["bytes"] != counted:
        out.append(f"the byte count changed during the run: {counted:,} bytes before the components were built, "
                   f"{summary['bytes']:,} after (a component changed the byte table)")
    nll = summary["loss"] * summary["targets"]
    direct = nll / (_LN2 * summary["bytes"]) if summary["bytes"] else 0.0
    if abs(summary["bpb"] - direct) > 1e-9 * max(1.0, abs(direct)):
        out.append(f"the BPB was changed inside the process: the loop's sums give {direct:.6f}, "
                   f"{summary['bpb']:.6f} was computed (the engine's BPB function was replaced)")
    return out
