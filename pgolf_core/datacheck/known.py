"""The tokenizers of the field whose full validation split has a known size, by sha256 of the
``.model`` file: what the coverage check compares a stream against.

Counts are those of the organisers' export of the 50,000 validation documents. ``targets`` is the
number of targets the official scripts score: the stream cut to ``((N - 1) // 2048) * 2048 + 1``
tokens (``data.official_trim``), so ``targets`` is a multiple of 2048. ``tokens`` is the uncut
stream's length where it is known. ``bytes`` is the metric's denominator over all targets of the
uncut stream (``bytes_basis`` says which count it is); a stream with every token is compared to it
within ``BYTES_TOLERANCE``, which is far below the 1-20% of the counting mistakes the field had and
above the few thousand bytes the tail of at most 2,047 targets can hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..tolerances import BYTES_TOLERANCE  # noqa: F401 (relative; re-exported for coverage)


@dataclass(frozen=True)
class KnownTokenizer:
    name: str
    targets: int  # after the official cut (a multiple of 2048)
    tokens: Optional[int]  # the uncut stream, when known
    bytes: int
    bytes_basis: str
    note: str = ""


KNOWN = {
    # official sp1024: 62,021,846 tokens (run logs' eval_tokens); 151,080,891 bytes = eval_bytes_per_token
    # 2.4359302919801884 x 62,021,845 targets (the OPC record's results.json), an integer to the last digit
    "4f5e8adb109c66b4886963bc75a7befd73bda36d27fd7102df8e9e66503b0e2a": KnownTokenizer(
        "sp1024 (official fineweb_1024_bpe)", 62_021_632, 62_021_846, 151_080_891, "tokenizer table, all targets"),
    # the SP8192 CaseOps export of today's top records: bytes are the originals (the byte sidecar)
    "97754754561f20def5edd99765ca0668f880bd94e67316d54aa10ab25f45cc4d": KnownTokenizer(
        "sp8192 CaseOps (lossless_caps_caseops_v1_reserved)", 47_851_520, None, 151_074_309,
        "byte sidecar (original UTF-8 bytes)"),
    # a community-trained sp8192 with the official trainer settings; 40,540,160 is the official sp8192
    # export's count: a retrain may tokenize the same text into slightly different counts
    "4e979c92754cc9d7bdebd9dfe5edf3fc0b41b38714b394e4297fa851e3afd516": KnownTokenizer(
        "sp8192 (community fineweb_8192_bpe, PR 2026-03-24)", 40_540_160, None, 151_080_891,
        "tokenizer table, all targets (the same normalized text as sp1024)",
        note="counts of the official sp8192 export; this community retrain may differ slightly"),
}


def known_tokenizer(sha256: Optional[str]) -> Optional[KnownTokenizer]:
    return KNOWN.get(sha256 or "")
