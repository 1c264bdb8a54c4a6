"""``pgolf-core data check``: the data failures the field actually had, caught before a score.

- ``overlap``: validation documents in the training shards (exactly, or nearly: MinHash), streamed;
- ``bytes``: the denominator (table or sidecar) against the bytes the ids decode to and the texts;
- ``lossless``: the ids decode back to the original texts;
- ``coverage``: the stream against the known size of the full validation split.

``check_data(...)`` returns a ``DataCheckResult`` (``.lines()``, ``.to_dict()``, ``.exit_code``:
0 clean, 1 a problem). Bad inputs raise ``UsageError`` before any check runs.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import PgolfError
from .result import OK, PARTIAL, PROBLEM, SKIPPED, CheckResult, DataCheckResult

CHECKS = ("coverage", "bytes", "lossless", "overlap")

__all__ = ["CHECKS", "CheckResult", "DataCheckResult", "OK", "PARTIAL", "PROBLEM", "SKIPPED", "check_data",
           "stream_checks"]


def check_data(val, train: Sequence = (), docs=None, tokenizer=None, byte_counts=None, *, full_val: bool = False,
               threshold: float = 0.8, shingle: int = 5, num_perm: int = 128, checks: Optional[Sequence[str]] = None,
               seq_len: int = 2048) -> DataCheckResult:
    """Run the checks (all by default; ``checks`` picks some) on the validation stream ``val``
    (an .npy, a shard, a folder or a glob), the training shards ``train`` (paths, folders or globs),
    the original texts ``docs`` (JSONL, in the stream's order), with ``tokenizer`` (.model) and the
    byte sidecar ``byte_counts`` (default: the ``fineweb_val_bytes_*`` files beside the val shards)."""
    from ..errors import UsageError
    from .inputs import load_inputs

    names = tuple(checks) if checks is not None else CHECKS
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise UsageError(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
    if not 0.0 < threshold <= 1.0 or shingle < 1 or num_perm < 1:
        raise UsageError(f"threshold must be in (0, 1], shingle and num_perm positive (got {threshold}, {shingle}, {num_perm})")
    inputs = load_inputs(val, train, docs, tokenizer, byte_counts)
    results = []
    for name in names:
        if name == "coverage":
            from .bytes_check import denominator_total
            from .coverage import check_coverage

            total = denominator_total(inputs) if inputs.table is not None else None
            results.append(check_coverage(inputs.val, inputs.tokenizer_sha256, total, full_val, seq_len))
        elif name == "bytes":
            from .bytes_check import check_bytes

            results.append(check_bytes(inputs))
        elif name == "lossless":
            from .lossless import check_lossless

            results.append(check_lossless(inputs))
        else:
            from .overlap import check_overlap

            results.append(check_overlap(inputs, threshold, shingle, num_perm))
    return DataCheckResult(results, inputs.describe())


def stream_checks(tokens, table, tokenizer_path, counter) -> dict:
    """The cheap checks ``eval`` records for the stream it scores: coverage, and the bytes of its
    counter against the tokenizer's table (no decoding; a few passes over the stream in chunks).
    {check: {name, status, summary, figures}}."""
    import numpy as np

    from ..stream.caseops import OPERATORS
    from ..digest import sha256_file
    from ..tokenizers import SentencePieceTokenizer
    from .bytes_check import check_bytes
    from .coverage import check_coverage
    from .inputs import Inputs

    inputs = Inputs(np.asarray(tokens), "stream", table=table, sidecar=counter if counter is not table else None)
    try:
        inputs.tokenizer = SentencePieceTokenizer(tokenizer_path)
    except PgolfError:  # a plugin's tokenizer format: no SentencePiece pieces to inspect, no known split size
        inputs.tokenizer = None
    if inputs.tokenizer is None:
        from .bytes_check import denominator_total

        return {"coverage": check_coverage(inputs.val, None, denominator_total(inputs)).to_dict()}
    inputs.tokenizer_sha256 = sha256_file(tokenizer_path)
    sp = inputs.tokenizer.sp
    inputs.caseops = all(sp.piece_to_id(op) != sp.unk_id() for op in OPERATORS)
    b = check_bytes(inputs, decode=False)
    c = check_coverage(inputs.val, inputs.tokenizer_sha256, b.figures["denominator_bytes"])
    return {c.name: c.to_dict(), b.name: b.to_dict()}
