"""The Expert API's tiers (``pgolf_core.api``): a rows-only expert gets score and predict/observe
derived, and the audit's recorder reports the wrapped expert's capabilities."""

from __future__ import annotations

import numpy as np

from pgolf_core.api import Expert, RowsExpert, capabilities
from pgolf_core.checks.audit_engine import RecordingExpert


class Counts(RowsExpert):
    """Add-one unigram counts, advanced by the rows it gives (a state that moves with every target)."""

    def __init__(self, vocab_size=5):
        super().__init__(vocab_size)
        self.counts = np.ones(vocab_size)

    def distributions(self, tokens, start, end):
        rows = np.empty((end - start, self.vocab_size))
        for i, t in enumerate(range(start, end)):
            rows[i] = self.counts / self.counts.sum()
            self.counts[tokens[t - 1]] += 1  # only the revealed past
        return rows

    def state_fingerprint(self):
        return self.counts.tobytes()


TOKENS = np.array([0, 1, 1, 2, 4, 1, 3, 1], dtype=np.uint16)


def test_a_rows_only_expert_scores_and_decodes_as_its_rows():
    rows = Counts().distributions(TOKENS, 1, len(TOKENS))
    score = Counts().score(TOKENS, 1, len(TOKENS))
    assert np.array_equal(score, np.log(rows[np.arange(len(TOKENS) - 1), TOKENS[1:]]))
    e = Counts()
    for t in range(1, len(TOKENS)):
        before = e.state_fingerprint()
        assert np.array_equal(e.predict(TOKENS[:t], t), rows[t - 1])
        assert e.state_fingerprint() == before  # predict leaves the state alone
        e.observe(TOKENS[:t + 1], t)
    assert capabilities(Counts()) >= {"distributions", "decodable"}


def test_the_recorder_forwards_everything_and_reports_the_capabilities():
    log = []
    rec = RecordingExpert(Counts(), "c", log)
    assert capabilities(rec) == capabilities(Counts())
    assert rec.counts.shape == (5,)  # a plugin's own attribute, read through
    rec.score(TOKENS, 1, 4)
    assert log == [("score", "c", 1, 4, len(TOKENS))]

    class ScoreOnly(Expert):
        def score(self, tokens, start, end):
            return np.full(end - start, -np.log(self.vocab_size))

    assert capabilities(RecordingExpert(ScoreOnly(5), "s", [])) == frozenset()
