"""Coverage: is the stream the whole validation split, or a part of it?

The stream's tokens, targets and bytes are compared with the known size of the full split for its
tokenizer (``known``, by the sha256 of the .model file), and the tail policy is stated: the official
scripts score ``((N - 1) // 2048) * 2048`` targets (``data.official_trim``), pgolf-core scores all
``N - 1`` unless ``--trim-seq-len 2048``.

Decision on a partial stream: a head or a subset is often deliberate (a quick run, a test), so it is
reported as PARTIAL with "N of M targets (x%)" and is not a problem by itself (exit 0); with
``full_val`` (``--full-val``: the stream is meant to be the whole split, e.g. before publishing a
score) it is a PROBLEM. More targets than the split has is always a problem (it is not the
validation split), and so is a full stream whose bytes are off the known count.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..stream.data import BOS_ID
from .known import BYTES_TOLERANCE, known_tokenizer
from .result import OK, PARTIAL, PROBLEM, SKIPPED, CheckResult

SEQ_LEN = 2048  # the official evaluation's sequence length


def check_coverage(tokens: np.ndarray, tokenizer_sha256: Optional[str], total_bytes: Optional[int],
                   full_val: bool = False, seq_len: int = SEQ_LEN) -> CheckResult:
    """``total_bytes``: the denominator over every target (``bytes_check.denominator_total``), or None
    without a tokenizer."""
    n = len(tokens)
    targets = max(n - 1, 0)
    trimmed = ((n - 1) // seq_len) * seq_len if n > 1 else 0
    figures = {"tokens": n, "targets": targets, "documents": int((np.asarray(tokens) == BOS_ID).sum()),
               "official_trim_targets": trimmed, "official_trim_drops": targets - trimmed, "seq_len": seq_len}
    if total_bytes is not None:
        figures["bytes"] = int(total_bytes)
    tail = (f"tail: the official cut scores {trimmed:,} targets (drops {targets - trimmed:,}; pgolf-core scores all "
            f"unless --trim-seq-len {seq_len})" if targets != trimmed else "tail: already cut to a multiple of "
            f"{seq_len} (the official cut)")
    known = known_tokenizer(tokenizer_sha256)
    if known is None:
        why = "no tokenizer given" if tokenizer_sha256 is None else f"tokenizer sha256 {tokenizer_sha256[:12]}... is not a known one"
        return CheckResult("coverage", SKIPPED, f"{targets:,} targets, {figures['documents']:,} documents; {why}, so the "
                                                f"full split's size is unknown; {tail}", figures)
    figures.update(tokenizer=known.name, full_targets=known.targets, full_tokens=known.tokens, full_bytes=known.bytes,
                   full_bytes_basis=known.bytes_basis, note=known.note or None)
    figures["fraction"] = trimmed / known.targets
    if trimmed > known.targets:
        return CheckResult("coverage", PROBLEM, f"{trimmed:,} targets after the official cut: more than the "
                                                f"{known.targets:,} of the full validation split for {known.name} "
                                                f"(training data in the validation stream?)", figures)
    if trimmed < known.targets:
        per = ""
        if "bytes" in figures and targets:
            per = f"; {figures['bytes'] / targets:.4f} bytes/target (full split {known.bytes / known.targets:.4f})"
        status = PROBLEM if full_val else PARTIAL
        return CheckResult("coverage", status, f"partial: {n:,} tokens, {trimmed:,} targets after the official cut, of "
                                               f"{known.targets:,} ({100 * figures['fraction']:.2f}%) of the {known.name} "
                                               f"validation split"
                                               f"{' (--full-val)' if full_val else ''}{per}; {tail}", figures)
    line = f"full validation split for {known.name}: {trimmed:,} targets after the official cut"
    if "bytes" in figures:
        rel = (figures["bytes"] - known.bytes) / known.bytes
        figures["bytes_relative_difference"] = rel
        if abs(rel) > BYTES_TOLERANCE:
            return CheckResult("coverage", PROBLEM, f"{line}, but {figures['bytes']:,} bytes against the known "
                                                    f"{known.bytes:,} ({100 * rel:+.2f}%; {known.bytes_basis})", figures)
        line += f", {figures['bytes']:,} bytes ({100 * rel:+.3f}% of the known {known.bytes:,})"
    return CheckResult("coverage", OK, f"{line}; {tail}", figures)
