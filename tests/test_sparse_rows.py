"""The grouped path: experts' sparse rows (``Expert.sparse_rows``) joined into groups of equal tokens
(``pgolf_core.run.grouping``) and mixed over the groups (``Mixer.mix_log_grouped``), outside strict
scoring. It must score as the dense log path does, to float64 summation order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgolf_core.api import BuildContext, Expert, GroupedLogRows, SparseRows
from pgolf_core.errors import PgolfError
from pgolf_core.run.grouping import StreamCounts
from pgolf_core.run.loop import LOG_FLOOR32, Components, Loop, NoBytes
from pgolf_mixers.logistic import LogisticMixer
from pgolf_ngram.expert import NgramExpert

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# per-target agreement: relative, except for log-probabilities near 0 (a target the mixture is sure
# of), whose absolute error is that of the normalizer's sum, ~1e-13 nats after the weights have
# drifted by float64 rounding over thousands of steps
RTOL, ATOL = 1e-10, 1e-12


def zipf_stream(n, vocab, seed=0, bos_every=97):
    """Token ids with a Zipf-like frequency profile (so counts repeat and contexts recur), BOS (1) now and then."""
    rng = np.random.default_rng(seed)
    tokens = np.minimum(rng.zipf(1.3, n) - 1, vocab - 1).astype(np.int64)
    tokens[::bos_every] = 1
    return tokens


def expand(sp: SparseRows, tokens, start, vocab):
    return sp.dense(tokens, start, vocab)


@pytest.mark.parametrize("vocab", [1024, 8192])  # dense bigram rows (V <= 1024) and hashed successor lists
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_ngram_sparse_rows_are_its_rows_bit_for_bit_with_the_same_counting(vocab, order):
    tokens = zipf_stream(3000, vocab)
    a, b = NgramExpert(vocab, order), NgramExpert(vocab, order)
    for s, e in [(1, 2), (2, 400), (400, 3000)]:
        rows = a.distributions(tokens[:e], s, e)
        sp = b.sparse_rows(tokens[:e], s, e)
        assert np.array_equal(expand(sp, tokens, s, vocab), rows)
        assert a.state_fingerprint() == b.state_fingerprint()
    assert order == 1 or sp.offsets[-1] > 0  # higher orders do have supports


def test_the_contract_check_passes_the_ngrams_and_catches_a_lie():
    from pgolf_core.testing import check_sparse_rows

    tokens = zipf_stream(1500, 8192, seed=8)
    assert check_sparse_rows(lambda: NgramExpert(8192, 3), tokens, chunk=400)["max_vs_distributions"] == 0.0

    class Off(NgramExpert):
        def sparse_rows(self, tokens, start, end):
            sp = super().sparse_rows(tokens, start, end)
            return SparseRows(sp.offsets, sp.ids, sp.values, sp.base * 1.001, sp.slope)

    with pytest.raises(AssertionError, match="differs from distributions"):
        check_sparse_rows(lambda: Off(8192, 2), tokens, chunk=400)


def test_ngram_sparse_rows_then_other_calls_continue_the_same_state():
    tokens = zipf_stream(1200, 8192, seed=3)
    a, b = NgramExpert(8192, 3), NgramExpert(8192, 3)
    b.sparse_rows(tokens[:500], 1, 500)
    a.distributions(tokens[:500], 1, 500)
    assert np.array_equal(a.score(tokens[:900], 500, 900), b.score(tokens[:900], 500, 900))
    assert np.array_equal(a.predict(tokens[:900], 900), b.predict(tokens[:900], 900))
    assert np.array_equal(expand(b.sparse_rows(tokens, 900, 1200), tokens, 900, 8192),
                          a.distributions(tokens, 900, 1200))


def test_stream_counts_synced_from_the_stream_equal_counts_kept_target_by_target():
    vocab, tokens = 300, zipf_stream(2000, 300, seed=5)
    kept, synced = StreamCounts(vocab), StreamCounts(vocab)
    empty = SparseRows(np.zeros(1001, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.full(1000, 1 / vocab),
                       np.zeros(1000))
    kept.group([empty], tokens[1:1001], ["uniform"], LOG_FLOOR32)
    synced.sync(tokens, 1001)
    assert kept.upto == synced.upto == 1001
    assert np.array_equal(kept.counts, synced.counts) and np.array_equal(kept.counts, np.bincount(tokens[1:1001], minlength=vocab))
    used = lambda c: set(c.active[:c.meta[0]].tolist())  # noqa: E731
    assert used(kept) == used(synced) == set(np.unique(kept.counts).tolist())
    n = max(len(kept.hist), len(synced.hist))
    assert np.array_equal(np.pad(kept.hist, (0, n - len(kept.hist))), np.pad(synced.hist, (0, n - len(synced.hist))))


def test_grouping_partitions_the_vocabulary_and_refuses_ambiguous_supports():
    vocab = 50
    counts = StreamCounts(vocab)
    tokens = zipf_stream(400, vocab, seed=2)
    counts.sync(tokens, 200)
    ids = np.array([3, 7, 3], dtype=np.int64)
    sp = SparseRows(np.array([0, 2, 3], dtype=np.int64), ids, np.array([0.2, 0.1, 0.3]), np.array([0.01, 0.01]),
                    np.array([0.001, 0.001]))
    grouped, values, mass, low = counts.group([sp], tokens[200:202], ["e"], LOG_FLOOR32)
    for i in range(2):  # every token in exactly one group
        assert grouped.sizes[grouped.offsets[i]:grouped.offsets[i + 1]].sum() == vocab
    assert np.array_equal(grouped.log_values, np.log(values.astype(np.float32)))
    bad = SparseRows(np.array([0, 2], dtype=np.int64), np.array([4, 4], dtype=np.int64), np.array([0.1, 0.1]),
                     np.array([0.01]), np.array([0.0]))
    with pytest.raises(PgolfError, match="twice"):
        StreamCounts(vocab).group([bad], tokens[1:2], ["dup"], LOG_FLOOR32)
    out = SparseRows(np.array([0, 1], dtype=np.int64), np.array([vocab], dtype=np.int64), np.array([0.1]),
                     np.array([0.01]), np.array([0.0]))
    with pytest.raises(PgolfError, match="outside the vocabulary"):
        StreamCounts(vocab).group([out], tokens[1:2], ["range"], LOG_FLOOR32)


@pytest.mark.parametrize("options", [{}, {"context": "entropy", "buckets": 4}, {"context": "confidence", "buckets": 3},
                                     {"lr": 0.05}])
def test_mix_log_grouped_is_mix_log_on_the_expanded_rows(options):
    """Random groups (sizes summing to V): the grouped kernel against mix_log on the rows they stand for."""
    rng = np.random.default_rng(0)
    k, n, vocab = 3, 60, 64
    offsets, sizes, values, tg, dense, targets = [0], [], [], [], np.empty((k, n, vocab), dtype=np.float32), []
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(1, vocab), rng.integers(1, 20), replace=False))
        sz = np.diff(np.concatenate([[0], cuts, [vocab]]))
        p = rng.dirichlet(np.full(len(sz), 0.5), size=k) / sz
        lv = np.log(np.maximum(p, LOG_FLOOR32)).astype(np.float32)
        member = np.repeat(np.arange(len(sz)), sz)
        dense[:, i] = lv[:, member]
        y = int(rng.integers(0, vocab))
        targets.append(y)
        tg.append(offsets[-1] + member[y])
        offsets.append(offsets[-1] + len(sz))
        sizes.append(sz)
        values.append(lv)
    grouped = GroupedLogRows(np.concatenate(values, axis=1), np.concatenate(sizes).astype(np.float64),
                             np.array(offsets, dtype=np.int64), np.array(tg, dtype=np.int64))
    targets = np.array(targets)
    logp = dense[:, np.arange(n), targets].astype(np.float64)
    a, b = LogisticMixer(k, vocab, **options), LogisticMixer(k, vocab, **options)
    fast = a.mix_log_grouped(logp, targets, grouped)
    slow = b.mix_log(logp, targets, dense)
    np.testing.assert_allclose(fast, slow, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a.weights, b.weights, rtol=RTOL, atol=ATOL)
    assert not np.allclose(a.weights, 1 / k)


def build_loop(tokens, vocab, sparse, experts=("unigram", "bigram", "trigram"), **mixer_options):
    from pgolf_core.plugins import load_plugins

    plugins = load_plugins()
    ctx = BuildContext(vocab_size=vocab, expert_names=tuple(map(str, experts)), plugins=plugins)
    made = [plugins.experts.create(e, ctx) if isinstance(e, str) else e for e in experts]
    mixer = plugins.mixers.create("logistic", ctx, **mixer_options)
    labels = [e if isinstance(e, str) else type(e).__name__ for e in experts]
    return Loop(Components(made, labels, mixer), NoBytes(), len(tokens), tokens.dtype, keep_logprobs=True,
                sparse_rows=sparse)


def run_both(tokens, vocab, chunk=1000, experts=("unigram", "bigram", "trigram"), **mixer_options):
    """(grouped loop, dense loop) after scoring ``tokens`` with the same components."""
    out = []
    for sparse in (True, False):
        comps = [e() if callable(e) else e for e in experts]
        loop = build_loop(tokens, vocab, sparse, comps, **mixer_options)
        loop.run(tokens, chunk)
        out.append(loop)
    return out


def assert_same_scores(grouped: Loop, dense: Loop):
    assert grouped.grouped and not dense.grouped
    mix = [np.concatenate(lp.saved["mixture"]) for lp in (grouped, dense)]
    np.testing.assert_allclose(mix[0], mix[1], rtol=RTOL, atol=ATOL)
    assert abs(grouped.nll - dense.nll) <= 1e-12 * abs(dense.nll)
    # each expert's log-probabilities are the dense log path's, bit for bit (the same float32 logs)
    assert np.array_equal(np.concatenate(grouped.saved["experts"], axis=1), np.concatenate(dense.saved["experts"], axis=1))
    np.testing.assert_allclose(grouped.comps.mixer.weights, dense.comps.mixer.weights, rtol=RTOL, atol=0)
    assert not grouped.guards.violations and not dense.guards.violations


@pytest.mark.parametrize("vocab", [1024, 8192])
def test_grouped_path_scores_as_the_dense_log_path_on_random_streams(vocab):
    tokens = zipf_stream(6000 if vocab == 1024 else 3000, vocab, seed=vocab)
    assert_same_scores(*run_both(tokens, vocab, chunk=1500))


def test_grouped_path_with_a_context_and_a_higher_order():
    tokens = zipf_stream(3000, 1024, seed=9)
    experts = ("unigram", "trigram", lambda: NgramExpert(1024, 5))
    assert_same_scores(*run_both(tokens, 1024, experts=experts, context="entropy", buckets="4"))


class DenseCounter(Expert):
    """Add-one counts with full rows only (no sparse rows): the loop must keep the dense path."""

    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.counts = np.ones(vocab_size)

    def _rows(self, tokens, start, end):
        rows = np.empty((end - start, self.vocab_size))
        for i, t in enumerate(range(start, end)):
            rows[i] = self.counts / self.counts.sum()
            self.counts[tokens[t]] += 1
        return rows

    def score(self, tokens, start, end):
        return np.log(self._rows(tokens, start, end)[np.arange(end - start), tokens[start:end]])

    def distributions(self, tokens, start, end):
        return self._rows(tokens, start, end)


def test_a_mixture_with_an_expert_without_sparse_rows_falls_back_to_the_dense_path():
    tokens = zipf_stream(2000, 1024, seed=4)
    a, b = run_both(tokens, 1024, experts=(lambda: DenseCounter(1024), "bigram", "trigram"))
    assert not a.grouped and not b.grouped
    assert np.array_equal(np.concatenate(a.saved["mixture"]), np.concatenate(b.saved["mixture"]))
    assert np.array_equal(a.comps.mixer.weights, b.comps.mixer.weights)


def test_a_per_token_bias_and_strict_scoring_keep_the_dense_rows():
    tokens = zipf_stream(300, 1024, seed=1)
    assert not build_loop(tokens, 1024, True, bias="true").grouped
    loop = build_loop(tokens, 1024, True)
    assert loop.grouped
    strict = Loop(loop.comps, NoBytes(), len(tokens), tokens.dtype, strict=True)
    assert not strict.grouped


class ScaledSparse(NgramExpert):
    """A bigram whose sparse rows are scaled: unnormalized, which a plain run must catch (C2)."""

    def sparse_rows(self, tokens, start, end):
        sp = super().sparse_rows(tokens, start, end)
        return SparseRows(sp.offsets, sp.ids, 1.5 * sp.values, 1.5 * sp.base, 1.5 * sp.slope)


def test_unnormalized_sparse_rows_are_caught_in_a_plain_run():
    tokens = zipf_stream(500, 1024, seed=6)
    loop = build_loop(tokens, 1024, True, ("unigram", ScaledSparse(1024, 2)))
    loop.run(tokens, 250)
    assert loop.grouped and any("C2" in v for v in loop.guards.violations)


def test_evaluate_resumes_the_grouped_path_mid_stream(tmp_path):
    """A resumed run starts with fresh stream counts: they are recounted from the scored tokens."""
    from pgolf_core.demo import demo_tokenizer_path, demo_tokens
    from pgolf_core.evaluate import evaluate

    tokens = demo_tokens("val")[:3000]
    kw = dict(mixer="logistic", tokens=tokens, tokenizer=demo_tokenizer_path(), chunk_size=500)
    whole = evaluate(["unigram", "bigram"], **kw)
    path = tmp_path / "run.resume"
    first = evaluate(["unigram", "bigram"], resume=path, checkpoint_every=1000, **kw)
    assert path.is_file() and first.bpb == whole.bpb
    again = evaluate(["unigram", "bigram"], resume=path, **kw)  # continues from the last resume point
    assert again.config["grouped_rows"] and abs(again.bpb - whole.bpb) <= 1e-12 * whole.bpb


def real_stream(kind):
    if kind == "sp1024":
        path = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
        if not path.is_file():
            pytest.skip(f"needs {path}")
        return np.load(path).astype(np.int64)[:20000], 1024
    model = SHARED / "tokenizers" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
    texts = SHARED / "corpus" / "fineweb_val_head_sp1024.jsonl"
    if not (model.is_file() and texts.is_file()):
        pytest.skip(f"needs {model} and {texts}")
    import sentencepiece as spm

    from pgolf_core.stream.data import encode_caseops_documents, read_jsonl_texts

    # the validation head's documents in CaseOps sp8192 tokens (the first 8,000)
    tokens, _ = encode_caseops_documents(read_jsonl_texts(texts, limit=12), spm.SentencePieceProcessor(model_file=str(model)))
    assert len(tokens) >= 8000
    return tokens.astype(np.int64)[:8000], 8192


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sp1024", "caseops"])
def test_grouped_path_scores_as_the_dense_log_path_on_the_validation_head(kind):
    tokens, vocab = real_stream(kind)
    assert_same_scores(*run_both(tokens, vocab, chunk=4096))
