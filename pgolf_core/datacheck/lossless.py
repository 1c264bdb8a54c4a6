"""Lossless: the ids decode back to the original texts (``--docs``), so the bytes scored are the
bytes of the text, not of a normalized, smaller one.

Document i of the stream is compared with text i. Equal counts; so does equality after the
normalization the field's SentencePiece models document (``nmt_nfkc`` with whitespace collapsing:
NFKC, every whitespace run one space, the ends stripped), which the official byte count is measured
after. Anything else is lossy and reported with an example: the document, the first differing
position and both snippets, and the kind when it is recognisable (lowercased: a casefold
tokenizer, whose capitals cannot be recovered; unknown tokens ``⁇``).

The stream's last document may be cut off (a head of the validation split): a decoded text that is
a prefix of its original there is reported as cut, not lossy.
"""

from __future__ import annotations

import unicodedata

from .inputs import Inputs, decoded_documents
from .result import OK, PROBLEM, SKIPPED, CheckResult

SNIPPET = 40
UNK = " \u2047 "  # SentencePiece's rendering of an unknown token


def normalize(text: str) -> str:
    """What nmt_nfkc with whitespace collapsing leaves of a text (the documented trimming)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _kind(decoded: str, text: str) -> str:
    norm = normalize(text)
    if decoded == norm.lower() or decoded == norm.casefold():
        return "lowercased (casefold: the capitals cannot be recovered)"
    if decoded.lower() == norm.lower():
        return "letter case changed"
    if UNK.strip() in decoded and UNK.strip() not in text:
        return "unknown tokens (characters the tokenizer cannot represent)"
    if len(decoded) < len(norm):
        return "text lost"
    return "text changed"


def first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def check_lossless(inputs: Inputs) -> CheckResult:
    if inputs.texts is None or inputs.tokenizer is None:
        missing = " and ".join(x for x, v in (("--docs", inputs.texts), ("--tokenizer", inputs.tokenizer)) if v is None)
        return CheckResult("lossless", SKIPPED, f"needs {missing}")
    decoded, texts = decoded_documents(inputs), inputs.texts
    n = min(len(decoded), len(texts))
    exact = normalized = cut = 0
    lossy, kinds, example = [], {}, None
    for i in range(n):
        d, t = decoded[i], texts[i]
        if d == t:
            exact += 1
            continue
        if d is not None and d == normalize(t):
            normalized += 1
            continue
        if i == len(decoded) - 1 and d is not None and normalize(t).startswith(d):
            cut += 1  # the stream ends inside this document
            continue
        lossy.append(i)
        kind = "not valid CaseOps" if d is None else _kind(d, t)
        kinds[kind] = kinds.get(kind, 0) + 1
        if example is None:
            norm = normalize(t)
            at = first_difference(d or "", norm)
            lo = max(0, at - 10)
            example = {"doc": i, "position": at, "kind": kind, "decoded": (d or "")[lo : lo + SNIPPET],
                       "text": norm[lo : lo + SNIPPET]}
    figures = {"compared": n, "stream_documents": len(decoded), "texts": len(texts), "exact": exact,
               "normalized": normalized, "cut": cut, "lossy": len(lossy), "lossy_documents": lossy[:5],
               "kinds": kinds, "example": example}
    counts = "" if len(decoded) == len(texts) else f" (the stream has {len(decoded):,} documents, the texts {len(texts):,})"
    if lossy:
        e = example
        return CheckResult("lossless", PROBLEM,
                           f"{len(lossy):,} of {n:,} documents do not decode to their text{counts}: "
                           + "; ".join(f"{k} ({v})" for k, v in kinds.items())
                           + f"; e.g. doc {e['doc']} at char {e['position']}: decoded {e['decoded']!r} vs text {e['text']!r}",
                           figures)
    return CheckResult("lossless", OK, f"{n:,} of {n:,} documents decode to their text ({exact:,} exactly, {normalized:,} "
                                       f"after NFKC + whitespace normalization{f', {cut} cut off at the end' if cut else ''})"
                                       f"{counts}", figures)
