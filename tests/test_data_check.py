"""``pgolf-core data check`` against planted faults: validation documents copied into training
(exactly, and with one word changed), inflated byte sidecars (byte-fallback x3, CaseOps sentinels
counted, the leading space twice), the lookup table on a CaseOps stream, lowercased texts, a cut
stream; and the clean cases. Synthetic tests need nothing; the others read ../shared."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core.cli import cli
from pgolf_core.stream.data import BOS_ID, encode_documents, prepare_shards, read_jsonl_texts, read_shard, write_shard
from pgolf_core.datacheck import check_data
from pgolf_core.datacheck.inputs import Inputs, split_documents
from pgolf_core.datacheck.overlap import check_overlap, iter_train_blocks, lsh_rows
from pgolf_core.errors import UsageError

from conftest import FINEWEB_SAMPLE, _need

TEXTFIXER = "EsteveSegura/TextFixer:fineweb_subset"  # holds official val docs 0-2: never training data here
EXACT = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]  # val-head documents planted in training
NEAR = 60  # planted with one word changed


def run(*args):
    res = CliRunner().invoke(cli, ["data", "check", *map(str, args)])
    return res.exit_code, res.output


def line(output: str, check: str) -> str:
    return next(x for x in output.splitlines() if x.startswith(check))


def write_stream(folder, stream, n_shards=3, split="train"):
    """A stream as shards cut at arbitrary positions (mid-document): the reader must carry."""
    folder.mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, len(stream), n_shards + 1).astype(int)
    for k in range(n_shards):
        write_shard(folder / f"fineweb_{split}_{k:06d}.bin", stream[cuts[k] : cuts[k + 1]])
    return folder


def random_docs(rng, n, lo=20, hi=400, vocab=1024):
    return [rng.integers(3, vocab, rng.integers(lo, hi)).astype(np.uint16) for _ in range(n)]


def join(docs):
    return np.concatenate([np.r_[BOS_ID, d] for d in docs]).astype(np.uint16)


# --- no shared data needed ---------------------------------------------------------------------


def test_documents_split_at_bos_and_a_headless_stream_keeps_its_first_part():
    s, e = split_documents(np.array([1, 5, 6, 1, 1, 7], np.uint16))
    assert s.tolist() == [1, 4, 5] and e.tolist() == [3, 4, 6]
    s, e = split_documents(np.array([9, 9, 1, 5], np.uint16))
    assert s.tolist() == [0, 3] and e.tolist() == [2, 4]


def test_training_blocks_carry_documents_across_blocks_and_shards(tmp_path):
    docs = random_docs(np.random.default_rng(1), 60)
    stream = join(docs)
    shards = [(p, len(read_shard(p))) for p in sorted(write_stream(tmp_path, stream, 4).glob("*.bin"))]
    for block in (7, 100, 1000, 1 << 20):
        seen = []
        for buf, at in iter_train_blocks(shards, block):
            assert np.array_equal(buf, stream[at : at + len(buf)])
            seen += [buf[a:b].tolist() for a, b in zip(*split_documents(buf))]
        assert seen == [d.tolist() for d in docs]


def test_the_documents_tile_every_target_of_the_denominator():
    from pgolf_core.stream.bytes import SidecarBytes, byte_table_from_sentencepiece
    from pgolf_core.datacheck.bytes_check import denominator_total
    from pgolf_core.demo import demo_tokenizer_path, demo_tokens

    table = byte_table_from_sentencepiece(demo_tokenizer_path())
    tokens = np.asarray(demo_tokens("val")[:5000])
    for stream in (tokens, tokens[7:], np.r_[tokens, BOS_ID, BOS_ID].astype(tokens.dtype)):  # headless; empty docs
        assert denominator_total(Inputs(stream, "s", table=table)) == int(table.target_bytes(stream).sum())
        counts = np.random.default_rng(0).integers(0, 9, len(stream))
        sidecar = Inputs(stream, "s", table=table, sidecar=SidecarBytes(counts, "x"))
        assert denominator_total(sidecar) == int(counts[1:].sum())  # position 0 is never a target


def test_lsh_rows_keep_the_miss_probability_small():
    r = lsh_rows(0.8, 128)
    assert r == 4 and (1 - 0.8 ** r) ** (128 // r) < 1e-6
    assert lsh_rows(0.5, 128) < r


def test_overlap_finds_exact_and_near_copies_in_synthetic_shards(tmp_path):
    rng = np.random.default_rng(2)
    val_docs = random_docs(rng, 40, 100, 600)
    near = val_docs[7].copy()
    near[50] = 1000 if near[50] != 1000 else 1001  # one token changed: 5 of ~500 shingles differ
    train = random_docs(rng, 300) + [val_docs[3], val_docs[30], near]
    train = [train[i] for i in rng.permutation(len(train))]
    folder = write_stream(tmp_path, join(train), 3)
    inputs = Inputs(join(val_docs), "val", [(p, len(read_shard(p))) for p in sorted(folder.glob("*.bin"))])
    for block in (1 << 24, 500):  # the same answer however the stream is cut
        r = check_overlap(inputs, block_tokens=block)
        f = r.figures
        assert r.status == "PROBLEM" and f["exact_documents"] == 2 and f["near_documents"] == 1
        assert [e["val_doc"] for e in f["exact_examples"]] == [3, 30] and f["near_examples"][0]["val_doc"] == 7
        assert 0.85 < f["near_examples"][0]["jaccard"] < 1 and f["tokens_per_second"] > 0 and f["peak_rss_bytes"] > 0
    assert check_overlap(inputs, threshold=0.999).figures["near_documents"] == 0  # the threshold is honoured


def test_bad_inputs_are_usage_errors_naming_the_file(tmp_path):
    val = tmp_path / "val.npy"
    np.save(val, join(random_docs(np.random.default_rng(3), 3)))
    code, out = run("--val", tmp_path / "missing.npy")
    assert code == 2 and "missing.npy: no such file" in out
    bad = tmp_path / "fineweb_train_000000.bin"
    bad.write_bytes(b"\0" * 4096)
    code, out = run("--val", val, "--train", tmp_path)
    assert code == 2 and "bad magic" in out and "fineweb_train_000000.bin" in out
    docs = tmp_path / "docs.jsonl"
    docs.write_text("not json\n")
    code, out = run("--val", val, "--docs", docs)
    assert code == 2 and "docs.jsonl:1" in out and "'text'" in out
    code, out = run("--val", val, "--tokenizer", docs)
    assert code == 2 and "not a SentencePiece model" in out
    with pytest.raises(UsageError, match="unknown check"):
        check_data(val, checks=["speling"])


# --- the official val head and the FineWeb sample (../shared) ---------------------------------


@pytest.fixture(scope="module")
def head(val_docs_path):
    return [json.loads(x) for x in open(val_docs_path)]


@pytest.fixture(scope="module")
def sp(tokenizer_path):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tokenizer_path))


@pytest.fixture(scope="module")
def train_dirs(tmp_path_factory, head, sp):
    """Training shards from 200 FineWeb documents: clean, and with val-head documents planted."""
    texts = list(read_jsonl_texts(_need(FINEWEB_SAMPLE), exclude_sources=[TEXTFIXER], limit=200))
    docs = [np.array(ids, np.uint16) for ids in sp.Encode(texts)]
    root = tmp_path_factory.mktemp("train")
    clean = write_stream(root / "clean", join(docs))
    words = head[NEAR]["text"].split(" ")
    words[len(words) // 2] = "elephant"  # one word changed
    planted = list(docs)
    for k, v in enumerate(EXACT):
        planted.insert(7 + 19 * k, np.array(head[v]["token_ids"], np.uint16))
    planted.insert(111, np.array(sp.encode(" ".join(words)), np.uint16))
    return clean, write_stream(root / "planted", join(planted))


def test_the_official_val_head_with_sp1024_is_clean(train_dirs, tokenizer_path, val_docs_path):
    from conftest import VAL_HEAD

    code, out = run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--docs", val_docs_path, "--train", train_dirs[0])
    assert code == 0, out
    assert "PARTIAL  partial: 131,072 tokens, 129,024 targets after the official cut, of 62,021,632 (0.21%)" in line(out, "coverage")
    assert "OK       tokenizer table 315,257 vs decoded ids 315,257 bytes: equal on all 109 documents" in line(out, "bytes")
    assert "OK       108 of 108 documents decode to their text" in line(out, "lossless")
    assert line(out, "overlap").startswith("overlap   OK       no validation document of 109 found")


def test_planted_copies_are_found_exactly_and_the_changed_one_nearly(train_dirs, tokenizer_path):
    from conftest import VAL_HEAD

    code, out = run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--train", train_dirs[1], "--only", "overlap", "--json")
    assert code == 1
    f = json.loads(out)["checks"]["overlap"]["figures"]
    assert f["exact_documents"] == 10 and [e["val_doc"] for e in f["exact_examples"]] == EXACT[:5]
    assert f["near_documents"] == 1 and f["near_examples"][0]["val_doc"] == NEAR and f["near_examples"][0]["jaccard"] >= 0.8
    assert f["train_documents"] == 211 and f["train_shards"] == 3
    code, out = run("--val", VAL_HEAD, "--train", train_dirs[1], "--only", "overlap")
    assert code == 1 and "10 of 109 validation documents (9.17%) are in training exactly, 1 more nearly" in out


def test_a_sidecar_counting_byte_fallback_tokens_as_3_bytes(tmp_path, tokenizer_path, val_head_tokens, byte_table, sp):
    counts = np.r_[0, byte_table.target_bytes(val_head_tokens)]
    is_byte = np.array([sp.IsByte(int(t)) for t in val_head_tokens])
    np.save(tmp_path / "good.npy", counts)
    np.save(tmp_path / "x3.npy", np.where(is_byte, 3, counts))
    from conftest import VAL_HEAD

    assert run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--bytes", tmp_path / "good.npy", "--only", "bytes")[0] == 0
    code, out = run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--bytes", tmp_path / "x3.npy", "--only", "bytes")
    assert code == 1 and f"{2 * is_byte.sum():+,}" in out and "byte-fallback tokens counted as 3 bytes" in out


def test_a_sidecar_counting_the_leading_space_twice(tmp_path, tokenizer_path, val_head_tokens, byte_table):
    t = val_head_tokens.astype(np.int64)
    counts = np.r_[0, byte_table.target_bytes(t)]
    spaced = np.r_[False, byte_table.has_space[t[1:]] & ~byte_table.is_boundary[t[:-1]]]
    np.save(tmp_path / "twice.npy", counts + spaced)
    from conftest import VAL_HEAD

    code, out = run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--bytes", tmp_path / "twice.npy", "--only", "bytes")
    assert code == 1 and "the leading space counted twice (109 docs)" in out
    starts = np.flatnonzero(t == BOS_ID) + 1  # a space prepended to each document and counted
    np.save(tmp_path / "start.npy", counts + np.isin(np.arange(len(t)), starts))
    code, out = run("--val", VAL_HEAD, "--tokenizer", tokenizer_path, "--bytes", tmp_path / "start.npy", "--only", "bytes")
    assert code == 1 and "+109 (+0.03%), 109 of 109 documents differ: a byte counted at each document start" in out


@pytest.fixture(scope="module")
def caseops_head(tmp_path_factory, caseops_tokenizer_path, val_docs_path):
    out = tmp_path_factory.mktemp("caseops")
    prepare_shards(val_docs_path, caseops_tokenizer_path, out, val_docs=108, caseops=True)
    return out


def test_the_caseops_head_is_clean_and_its_faults_are_named(caseops_head, caseops_tokenizer_path, val_docs_path, tmp_path):
    code, out = run("--val", caseops_head, "--tokenizer", caseops_tokenizer_path, "--docs", val_docs_path)
    assert code == 0, out
    assert "OK       sidecar 313,038 vs decoded ids (CaseOps inverse) 313,038 bytes" in line(out, "bytes")
    assert "108 of 108 documents decode to their text (108 exactly" in line(out, "lossless")
    tokens = read_shard(caseops_head / "fineweb_val_000000.bin")
    counts = read_shard(caseops_head / "fineweb_val_bytes_000000.bin").astype(np.int64)
    ops = np.isin(tokens, [4, 5, 6, 7])  # TITLE, ALLCAPS, CAPNEXT, ESC in this model
    np.save(tmp_path / "sentinels.npy", np.where(ops, 3, counts))
    code, out = run("--val", caseops_head, "--tokenizer", caseops_tokenizer_path, "--bytes", tmp_path / "sentinels.npy")
    assert code == 1 and f"{3 * ops.sum():+,}" in line(out, "bytes") and "CaseOps sentinel bytes counted" in line(out, "bytes")
    bare = tmp_path / "bare"  # the shard without its sidecar: the lookup table counts
    bare.mkdir()
    shutil.copy(caseops_head / "fineweb_val_000000.bin", bare)
    code, out = run("--val", bare, "--tokenizer", caseops_tokenizer_path, "--only", "bytes")
    assert code == 1 and "CaseOps sentinel bytes counted" in out and "counted with the lookup table" in out


def test_a_lowercasing_tokenizer_is_lossy_with_an_example(tmp_path, head, sp, tokenizer_path, val_docs_path):
    lowered = tmp_path / "lower.npy"
    np.save(lowered, encode_documents([d["text"].lower() for d in head], sp))
    code, out = run("--val", lowered, "--tokenizer", tokenizer_path, "--docs", val_docs_path, "--only", "lossless")
    assert code == 1
    assert "108 of 108 documents do not decode to their text: lowercased (casefold" in out
    assert "e.g. doc 0 at char 0: decoded 'insurance company" in out and "vs text 'Insurance Company" in out


def test_a_cut_stream_is_partial_and_a_problem_only_with_full_val(tmp_path, val_head_tokens, tokenizer_path):
    cut = tmp_path / "cut.npy"
    np.save(cut, val_head_tokens[:50_000])
    code, out = run("--val", cut, "--tokenizer", tokenizer_path, "--only", "coverage")
    assert code == 0 and "coverage  PARTIAL  partial: 50,000 tokens, 49,152 targets after the official cut" in out
    code, out = run("--val", cut, "--tokenizer", tokenizer_path, "--only", "coverage", "--full-val")
    assert code == 1 and "coverage  PROBLEM  partial:" in out and "(--full-val)" in out


def test_coverage_of_a_full_split_compares_the_bytes():
    from pgolf_core.datacheck.coverage import check_coverage

    sha = "97754754561f20def5edd99765ca0668f880bd94e67316d54aa10ab25f45cc4d"  # CaseOps sp8192
    full = np.zeros(47_851_520 + 1, np.uint16)
    assert check_coverage(full, sha, 151_074_309).status == "OK"
    r = check_coverage(full, sha, 164_594_398)  # the sentinels' bytes counted
    assert r.status == "PROBLEM" and "164,594,398 bytes against the known 151,074,309 (+8.95%" in r.summary
    r = check_coverage(full[:9_662_465], sha, 30_000_000)  # the --val-docs=10000 export
    assert r.status == "PARTIAL" and "9,662,464 targets after the official cut, of 47,851,520 (20.19%)" in r.summary
    assert check_coverage(np.zeros(47_851_520 + 2049, np.uint16), sha, 151_074_309).status == "PROBLEM"  # too many


def test_prepare_never_writes_a_validation_document_into_training(tmp_path, tokenizer_path):
    docs = tmp_path / "docs.jsonl"
    texts = ["The first validation page.", "A training page.", "The first validation page.", "Another one."]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    summary = prepare_shards(docs, tokenizer_path, tmp_path / "out", val_docs=1)
    assert summary["train"]["docs"] == 2 and summary["train"]["dropped_copies_of_val_docs"] == 1
    res = check_data(tmp_path / "out", [tmp_path / "out"], checks=["overlap"])
    assert res.exit_code == 0 and res["overlap"].figures["train_documents"] == 2


def test_eval_records_the_cheap_checks(val_head_tokens, tokenizer_path):
    from pgolf_core import evaluate

    res = evaluate(["unigram"], tokens=val_head_tokens, tokenizer=tokenizer_path)
    checks = res.to_dict()["data_checks"]
    assert checks["coverage"]["status"] == "PARTIAL" and checks["bytes"]["status"] == "OK"
    assert checks["coverage"]["figures"]["targets"] == res.targets


def test_eval_records_a_caseops_stream_counted_with_the_table(caseops_head, caseops_tokenizer_path, tmp_path):
    from pgolf_core import evaluate

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(caseops_head / "fineweb_val_000000.bin", bare)
    good = evaluate(["unigram"], tokens=caseops_head, tokenizer=caseops_tokenizer_path).data_checks
    assert good["bytes"]["status"] == "OK" and good["bytes"]["figures"]["method"] == "sidecar"
    res = evaluate(["unigram"], tokens=bare, tokenizer=caseops_tokenizer_path)
    assert res.data_checks["bytes"]["status"] == "PROBLEM" and res.bytes == res.data_checks["bytes"]["figures"]["denominator_bytes"]
    from pgolf_core.run.report import format_table

    assert "data       bytes PROBLEM: tokenizer table 343,098 vs tokenizer table less the CaseOps operators 313,038" in format_table(res)
