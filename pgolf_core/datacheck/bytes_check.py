"""Bytes: the metric's denominator in use (the tokenizer's table, or a byte sidecar) against the
UTF-8 bytes of the text the ids decode to (through the CaseOps inverse for a CaseOps tokenizer),
document by document, and against the original texts when they are given.

A difference is named when it has the shape of a mistake the field made: each byte-fallback
``<0xAB>`` piece counted as 3 bytes, the CaseOps operators' 3 UTF-8 bytes counted (the lookup
table used on a CaseOps stream, or a sidecar that counts them), the leading space counted twice
or at the start of a document, the "▁" marker counted as its own UTF-8 bytes.

``decode=False`` is the cheap form that ``eval`` runs: no decoding, the reference is the
tokenizer's table (less the operators' bytes for a CaseOps tokenizer), so it catches a sidecar
that disagrees with the tokens and a CaseOps stream counted with the table, in a pass or two of a
numba kernel over the stream.
"""

from __future__ import annotations

import numpy as np

from .inputs import Inputs, decoded_documents, split_documents
from .result import OK, PROBLEM, SKIPPED, CheckResult

OPERATOR_BYTES = 3  # each CaseOps operator is one private-use character: 3 UTF-8 bytes, 0 original bytes
EXAMPLES = 5


def document_bounds(starts, ends):
    """The target range of each document: its BOS (a target that must count 0) and its tokens;
    position 0 is never a target. The ranges tile the targets 1 .. N-1 of a stream."""
    first = np.maximum(starts - 1, 1)
    return first, np.maximum(ends, first)


def table_document_sums(table, tokens, starts, ends, base=None, space=True) -> np.ndarray:
    """Bytes of each document by the tokenizer's table (``base``: another per-token lookup instead of
    the pieces' bytes; ``space=False``: without the leading-space rule)."""
    from .kernels import table_sums

    first, last = document_bounds(starts, ends)
    out = np.empty(len(first), np.int64)
    b = table.base_bytes if base is None else np.asarray(base, dtype=np.int64)
    sp = table.has_space if space else np.zeros_like(table.has_space)
    table_sums(np.asarray(tokens), b, sp, table.is_boundary, first, last, out)
    return out


def denominator_sums(inputs: Inputs, starts, ends) -> np.ndarray:
    """Bytes per document as the evaluation counts them: the sidecar's counts, or the table."""
    if inputs.sidecar is None:
        return table_document_sums(inputs.table, inputs.val, starts, ends)
    from .kernels import array_sums

    first, last = document_bounds(starts, ends)
    out = np.empty(len(first), np.int64)
    array_sums(np.asarray(inputs.sidecar.counts, dtype=np.int64), first, last, out)
    return out


class Features:
    """Per document, the counts a recognisable mistake is a multiple of, each computed (one
    pass of the kernel) the first time it is asked for: a clean stream needs few or none of them."""

    def __init__(self, inputs: Inputs, starts, ends):
        self.inputs, self.starts, self.ends, self.done = inputs, starts, ends, {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.done:
            self.done[key] = getattr(self, "_" + key)()
        return self.done[key]

    def _lut(self, lut, space=False):
        return table_document_sums(self.inputs.table, self.inputs.val, self.starts, self.ends, base=lut, space=space)

    def _bf(self):  # byte-fallback <0x..> pieces
        sp = self.inputs.tokenizer.sp
        return self._lut([sp.IsByte(i) for i in range(self.inputs.table.vocab_size)])

    def _ops(self):  # CaseOps operator pieces
        from ..stream.caseops import OPERATORS

        if not self.inputs.caseops:
            return np.zeros(len(self.starts), np.int64)
        sp = self.inputs.tokenizer.sp
        is_op = np.zeros(self.inputs.table.vocab_size, np.int64)
        is_op[[sp.piece_to_id(o) for o in OPERATORS]] = 1
        return self._lut(is_op)

    def _space(self):  # targets that count the +1 of a leading "\u2581"
        return self._lut(np.zeros(self.inputs.table.vocab_size, np.int64), space=True)

    def _start(self):  # 1 per non-empty document: its start, where a leading space is not counted
        return (self.starts < self.ends).astype(np.int64)

    def totals(self) -> dict:
        names = {"bf": "byte_fallback_tokens", "ops": "operator_tokens", "space": "spaced_tokens", "start": "documents"}
        return {names[k]: int(v.sum()) for k, v in self.done.items()}


KINDS = (  # (name, bytes per occurrence, feature)
    ("byte-fallback tokens counted as 3 bytes (each <0x..> piece is 1 byte)", 2, "bf"),
    ("CaseOps sentinel bytes counted (3 per operator, which stands for 0 original bytes)", OPERATOR_BYTES, "ops"),
    ("a byte counted at each document start (a leading space after BOS, which is not counted)", 1, "start"),
    ("the leading space counted twice", 1, "space"),
    ("the word-boundary marker \u2581 counted as its 3 UTF-8 bytes", 3, "space"),
    ("the word-boundary marker \u2581 counted as 3 bytes instead of 1", 2, "space"),
)


def diagnose(diff: np.ndarray, feats: dict) -> dict:
    """Name the kind of mistake of each differing document: the first kind whose count, times its
    bytes per occurrence, is the document's whole difference. {kind: documents}; 'unexplained'."""
    out: dict = {}
    for i in np.flatnonzero(diff):
        for name, per, key in KINDS:
            f = int(feats[key][i])
            if f and diff[i] == per * f:
                out[name] = out.get(name, 0) + 1
                break
        else:
            out["unexplained"] = out.get("unexplained", 0) + 1
    return out


def _reference_decoded(inputs: Inputs):
    """UTF-8 bytes of each document's decoded text (None for a CaseOps document that does not decode)."""
    return [None if t is None else len(t.encode("utf-8", "surrogatepass")) for t in decoded_documents(inputs)]


def check_bytes(inputs: Inputs, decode: bool = True) -> CheckResult:
    if inputs.tokenizer is None:
        return CheckResult("bytes", SKIPPED, "no tokenizer given (--tokenizer): nothing to decode the ids with")
    starts, ends = split_documents(inputs.val)
    den_docs = denominator_sums(inputs, starts, ends)
    method = "sidecar" if inputs.sidecar is not None else "tokenizer table"
    feats = Features(inputs, starts, ends)
    undecodable, replaced = [], []
    if decode:
        ref = _reference_decoded(inputs)
        undecodable = [i for i, r in enumerate(ref) if r is None]
        # invalid UTF-8 from byte-fallback pieces (a stream cut inside a character) decodes to U+FFFD:
        # its bytes are not those of the ids, so such documents are left out of the comparison
        suspects = [i for i, t in enumerate(decoded_documents(inputs)) if t is not None and "\ufffd" in t]
        replaced = [i for i in suspects if feats["bf"][i]]
        ref_docs = np.array([0 if r is None else r for r in ref], dtype=np.int64)
        basis = "decoded ids" + (" (CaseOps inverse)" if inputs.caseops else "")
    elif inputs.sidecar is None and not inputs.caseops:
        ref_docs = den_docs  # the table is the official count by construction: nothing to compare cheaply
        basis = "tokenizer table"
    else:
        ref_docs = table_document_sums(inputs.table, inputs.val, starts, ends) - OPERATOR_BYTES * feats["ops"]
        basis = "tokenizer table" + (" less the CaseOps operators" if inputs.caseops else "")
    diff = den_docs - ref_docs
    if undecodable or replaced:
        diff[undecodable + replaced] = 0
    bos_counted = 0
    if inputs.sidecar is not None:
        bos = starts[starts > 0] - 1
        bos_counted = int((np.asarray(inputs.sidecar.counts)[bos[bos > 0]] != 0).sum())
    kinds = diagnose(diff, feats)
    differing = np.flatnonzero(diff)
    total_den, total_ref = int(den_docs.sum()), int(ref_docs.sum())  # the documents tile every target
    figures = {"method": method, "reference": basis, "documents": int(len(starts)), "denominator_bytes": total_den,
               "reference_bytes": total_ref, "difference": total_den - total_ref,
               "relative_difference": (total_den - total_ref) / max(total_ref, 1),
               "differing_documents": int(len(differing)), "kinds": kinds, "undecodable_documents": undecodable[:EXAMPLES],
               "not_compared_invalid_utf8": replaced[:EXAMPLES],
               "bos_counted": bos_counted, **feats.totals(),
               "examples": [{"doc": int(i), "denominator": int(den_docs[i]), "reference": int(ref_docs[i])}
                            for i in differing[:EXAMPLES]]}
    if inputs.texts is not None:
        figures["texts"] = _against_texts(inputs.texts, den_docs)
    what = f"{method} {total_den:,} vs {basis} {total_ref:,} bytes"
    problems = []
    if len(differing):
        named = "; ".join(f"{k} ({v} docs)" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        problems.append(f"{total_den - total_ref:+,} ({100 * figures['relative_difference']:+.2f}%), "
                        f"{len(differing):,} of {len(starts):,} documents differ: {named}")
    if bos_counted:
        problems.append(f"{bos_counted:,} BOS tokens count bytes in the sidecar (they stand for none)")
    if undecodable:
        problems.append(f"{len(undecodable):,} documents are not valid CaseOps (first: {undecodable[0]})")
    if inputs.caseops and inputs.sidecar is None:
        problems.append("a CaseOps stream counted with the lookup table: give its byte sidecar (--bytes)")
    if problems:
        return CheckResult("bytes", PROBLEM, f"{what}: " + "; ".join(problems), figures)
    tail = ""
    if "texts" in figures:
        t = figures["texts"]
        tail = (f"; texts {t['text_bytes']:,} bytes ({t['difference']:+,}: {t['differing_documents']} docs normalized "
                f"by the tokenizer, see lossless)" if t["differing_documents"] else f"; texts equal ({t['documents']} docs)")
    return CheckResult("bytes", OK, f"{what}: equal on all {len(starts):,} documents{tail}", figures)


def denominator_total(inputs: Inputs) -> int:
    """The bytes of every target of the stream (what the evaluation divides by)."""
    return int(denominator_sums(inputs, *split_documents(inputs.val)).sum())


def _against_texts(texts, den_docs) -> dict:
    """The denominator against the original texts' UTF-8 bytes, document i against text i."""
    n = min(len(texts), len(den_docs))
    text_bytes = np.array([len(t.encode("utf-8")) for t in texts[:n]], dtype=np.int64)
    diff = den_docs[:n] - text_bytes
    return {"documents": n, "text_bytes": int(text_bytes.sum()), "denominator_bytes": int(den_docs[:n].sum()),
            "difference": int(diff.sum()), "differing_documents": int(np.count_nonzero(diff)),
            "examples": [{"doc": int(i), "denominator": int(den_docs[i]), "text": int(text_bytes[i])}
                         for i in np.flatnonzero(diff)[:EXAMPLES]]}
