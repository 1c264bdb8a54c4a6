"""CaseOps: the lossless case transform, its byte counts, and CaseOps data with byte sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pgolf_core.stream import caseops as C
from pgolf_core.errors import DataError

CASEY = st.text(alphabet=st.sampled_from(list("aAbBqQzZ xyXY é1.-\n") + list(C.OPERATORS)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=CASEY)
def test_the_transform_is_a_bijection_and_keeps_the_original_bytes(text):
    enc = C.encode(text)
    assert C.decode(enc) == text
    assert not any(c.isupper() and c.isascii() for c in enc)  # every ASCII capital became an operator
    assert C.original_byte_counts([enc]) == [len(text.encode("utf-8"))]
    # however the coded string is cut into pieces, the pieces' counts add up to the original bytes
    cuts = sorted({len(enc) // 3, len(enc) // 2})
    pieces = [enc[a:b] for a, b in zip([0, *cuts], [*cuts, len(enc)])]
    assert sum(C.original_byte_counts(pieces)) == len(text.encode("utf-8"))


@pytest.mark.parametrize("word, coded", [
    ("the", "the"), ("The", C.TITLE + "the"), ("NASA", C.ALLCAPS + "nasa"), ("A", C.TITLE + "a"),
    ("iPhone", "i" + C.CAPNEXT + "phone"), ("McDonald", C.TITLE + "mc" + C.CAPNEXT + "donald"),
    ("x" + C.TITLE, "x" + C.ESC + C.TITLE), ("Été", "\u00c9t\u00e9"),  # non-ASCII letters are left alone
])
def test_words(word, coded):
    assert C.encode(word) == coded


@pytest.mark.parametrize("bad", [C.TITLE, C.TITLE + " a", "a" + C.ALLCAPS + "b", C.CAPNEXT + C.CAPNEXT + "a", C.ESC])
def test_malformed_coded_text_is_a_clear_error(bad):
    with pytest.raises(DataError, match="CaseOps text"):
        C.decode(bad)


def test_caseops_data_of_the_validation_documents(tmp_path, val_docs_path, caseops_tokenizer_path):
    """The val head's 108 documents through data prepare --caseops: the sidecar's total is the
    documents' UTF-8 byte count, and decoding the tokens and inverting the transform gives them back."""
    from pgolf_core.stream.bytes import load_sentencepiece
    from pgolf_core.stream.data import prepare_shards, read_shard
    model = caseops_tokenizer_path
    texts = [json.loads(line)["text"] for line in open(val_docs_path, encoding="utf-8")]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    summary = prepare_shards(docs, model, tmp_path / "out", val_docs=len(texts), caseops=True)
    tokens = read_shard(tmp_path / "out" / "fineweb_val_000000.bin")
    counts = read_shard(tmp_path / "out" / "fineweb_val_bytes_000000.bin")
    assert len(counts) == len(tokens) and counts[tokens == 1].sum() == 0
    assert int(counts.sum()) == summary["val"]["sidecar_bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    sp = load_sentencepiece(model)
    starts = list(np.flatnonzero(tokens == 1)) + [len(tokens)]
    decoded = [C.decode(sp.decode([int(x) for x in tokens[a + 1:b]])) for a, b in zip(starts, starts[1:])]
    assert decoded == texts
    from pgolf_core import evaluate

    res = evaluate(["bigram"], tokens=tmp_path / "out", tokenizer=model)
    assert res.config["bytes"]["method"] == "sidecar" and res.bytes == int(counts[1:].sum())


def test_prepare_refuses_a_tokenizer_without_the_operators(tmp_path):
    from pgolf_core.stream.data import prepare_shards
    from pgolf_core.demo import demo_tokenizer_path

    docs = tmp_path / "d.jsonl"
    docs.write_text(json.dumps({"text": "Hello World"}) + "\n")
    with pytest.raises(DataError, match="not a CaseOps model"):
        prepare_shards(docs, demo_tokenizer_path(), tmp_path / "o", val_docs=1, caseops=True)
