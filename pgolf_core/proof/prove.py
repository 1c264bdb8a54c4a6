"""The round trip that makes a score PROVEN, as ``eval --prove`` and ``pgolf-core decompress`` run it.

1. The decoder runs sandboxed (``pgolf_core.proof.sandbox``), loading only pgolf-core's builtins and
   the plugin modules named by the user; it never sees the data, and refuses to start when the
   data lies inside a folder it must read.
2. The score is computed from the file and the decoded tokens by a process with no plugin in it
   (``pgolf_core.proof.score``); an evaluation's printed BPB must agree with it within the coder's
   documented overhead.
3. Every byte the decoder needed is counted (``pgolf_core.proof.description``).

The level is ``proven`` only when the sandbox was enforced; without one (no Landlock, an unknown
machine for seccomp) a successful round trip is ``decoded``, and the reason is stated.
"""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError, PgolfError


def data_files(dataset, sidecar_source: str = "") -> list:
    """The files a stream was read from (token shards, .npy, sidecars): what the decoder must not reach."""
    out = []
    if dataset == "demo":  # the demo's text ships with the interpreter
        import pydoc_data.topics

        out.append(pydoc_data.topics.__file__)
    elif dataset and dataset != "array":
        p = Path(dataset)
        out += [str(q) for q in p.iterdir() if q.is_file()] if p.is_dir() else ([str(p)] if p.is_file() else glob.glob(str(dataset)))
    out += [s.strip() for s in sidecar_source.split(",") if s.strip()]
    return out


def check_out_of_reach(plan, files) -> None:
    """Refuse when a data file lies inside a folder (or is a file) the decoder must read."""
    for f in files:
        where = plan.covers(f)
        if where:
            raise DataError(f"the data file {f} lies inside {where}, which the sandboxed decoder must read (it holds "
                            f"code or files it needs): move the data elsewhere, or the plugin or file away from it")


def prove_file(path, *, plugin_modules=(), tokenizer=None, file_overrides=None, byte_counts=None,
               reference: Optional[np.ndarray] = None, printed_bpb: Optional[float] = None, data=(),
               timeout: Optional[float] = None) -> tuple:
    """Decode ``path`` sandboxed, score it without plugins, count its description; returns (tokens
    or None, proof dict). ``reference``: the original stream (its first difference is reported);
    ``printed_bpb``: an evaluation's figure that must agree with the file's; ``data``: files the
    decoder must not be able to read."""
    from ..codec.compress import header_files
    from ..codec.container import read_container
    from .description import description_length
    from .plan import decoder_plan
    from .sandbox import run_decoder, sandbox_status
    from .score import score_in_fresh_process

    status = sandbox_status()
    header, _ = read_container(path)
    files = header_files(header, path, tokenizer, file_overrides)
    plan = decoder_plan([*plugin_modules, *header["config"].get("plugin_code", [])], [str(path), *files.values()],
                        pinned=header.get("plugin_files"))
    check_out_of_reach(plan, data)
    proof = {"ok": False, "level": None, "file": str(path), "sandbox": dict(status)}
    try:
        tokens, child, _ = run_decoder(path, plugin_modules=plugin_modules, tokenizer=tokenizer,
                                       file_overrides=file_overrides, require=status["available"],
                                       threads=header.get("threads", {}), timeout=timeout)
    except PgolfError as exc:
        proof["error"] = str(exc)
        partial = getattr(exc, "decoded", None)
        if partial is not None and reference is not None:
            proof["error"] += "; " + _first_difference(partial, reference, partial=True)
        return None, proof
    proof["decode"] = child["decode"]
    proof["sandbox"].update(enforced=status["available"], applied=child["sandbox"], read_rules=child["read_rules"])
    with tempfile.TemporaryDirectory(prefix="pgolf-score-") as tmp:
        np.save(Path(tmp) / "tokens.npy", tokens)
        try:
            proof["score"] = score = score_in_fresh_process(path, Path(tmp) / "tokens.npy", tokenizer, byte_counts)
        except PgolfError as exc:
            proof["error"] = str(exc)
            return tokens, proof
    proof["description"] = description_length(score, files, plan.code)
    proof.update(coded_bpb=score["coded_bpb"], file_bytes=score["file_bytes"], payload_bytes=score["payload_bytes"],
                 header_bytes=score["header_bytes"], bytes=score["bytes"])
    error = _first_problem(tokens, reference, printed_bpb, score)
    if error:
        proof["error"] = error
        return tokens, proof
    proof["ok"] = True
    proof["level"] = "proven" if status["available"] else "decoded"
    if not status["available"]:
        proof["unsandboxed_reason"] = status["reason"]
    return tokens, proof


def _first_difference(tokens, reference, partial: bool = False) -> str:
    """'' when ``tokens`` equal ``reference`` (or, for a partial decode, start it); else where they part."""
    ref = np.asarray(reference, dtype=np.int64)
    got = np.asarray(tokens, dtype=np.int64)
    n = min(len(ref), len(got))
    bad = np.nonzero(ref[:n] != got[:n])[0]
    if len(bad):
        return f"the decoded stream first differs from the original at position {int(bad[0]):,}"
    if partial:
        return f"the decoded stream matches the original up to position {n:,}, where decoding stopped"
    if len(ref) != len(got):
        return f"the decoded stream has {len(got):,} tokens, the reference {len(ref):,} (equal up to {n:,})"
    return ""


def _first_problem(tokens, reference, printed_bpb, score) -> str:
    if reference is not None:
        diff = _first_difference(tokens, reference)
        if diff:
            return diff + " (a reference that is not the coded stream, or a decoder that went wrong)"
    if printed_bpb is not None:
        from .score import AGREEMENT_SLACK

        # One-sided: the file may cost at most the coder's overhead more than the printed figure. It
        # may cost less (a count is at least 1, so a target of probability below 1/F is coded above
        # its probability: pgolf_core.codec.coderformat), and a printed figure worse than the file's claims
        # nothing the file does not show.
        gap = score["coded_bpb"] - printed_bpb
        if gap > score["overhead_bpb"] + AGREEMENT_SLACK:
            return (f"the file codes {score['coded_bpb']:.6f} BPB but {printed_bpb:.6f} was printed: the file costs "
                    f"{gap:.3g} BPB more, beyond the coder's overhead ({score['overhead_bpb']:.3g})")
    return ""
