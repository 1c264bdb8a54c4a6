"""Every builtin expert and mixer that is registered passes the audit (the others skip, by name)."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import testing as T
from pgolf_core.api import BuildContext

EXPERTS = {  # name -> options for a CPU-sized instance
    "uniform": {}, "unigram": {}, "bigram": {}, "trigram": {}, "ngram": {"order": "4"},
    "entropy": {"source": "bigram"},
}
MIXERS = {  # label -> (name, options)
    "hedge": ("hedge", {}),
    "hedge-seed": ("hedge", {"eta": "0.1", "update": "batch", "batch_loss": "mean", "bias": "2.0", "solo_first": "100"}),
    "hedge-share": ("hedge", {"share": "0.01"}),
    "logistic": ("logistic", {}),
    "stack": ("stack", {"inputs": "hedge:share=0.01;logistic:lr=0.02"}),
}


@pytest.fixture(scope="module")
def registry():
    from pgolf_core.plugins import load_plugins

    return load_plugins()


@pytest.fixture(scope="module")
def stream():
    from pgolf_core.demo import demo_tokens

    return np.asarray(demo_tokens("val")[:1000])


def _ctx(registry, k=1):
    return BuildContext(vocab_size=1024, expert_names=tuple(f"e{i}" for i in range(k)), plugins=registry)


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_builtin_expert_passes_the_audit(registry, stream, name):
    if name not in registry.experts.entries:
        pytest.skip(f"expert {name!r} is not registered")
    if name == "neural":
        pytest.importorskip("torch")
    instance = registry.experts.create(name, _ctx(registry), **EXPERTS[name])
    # the full 50,000-token random stream for the count-based experts; the ones that compute a
    # (T, V) block per target get shorter streams to keep the suite fast (same bound, fewer targets)
    random_tokens = {"entropy": 10_000}.get(name, 50_000)
    ev = T.audit_expert(instance, stream, chunk=256, random_tokens=random_tokens, n_candidates=8)
    assert abs(ev["C2"]["worst_mass"] - 1) <= T.MASS_TOLERANCE
    assert ("sparse rows" in ev) == instance.provides_sparse_rows  # the n-grams' sparse rows are their rows


@pytest.mark.slow
def test_neural_expert_passes_the_audit(registry, stream):
    """The tiny network with random weights (no checkpoint needed); under a minute on 2 CPU cores."""
    if "neural" not in registry.experts.entries:
        pytest.skip("expert 'neural' is not registered")
    pytest.importorskip("torch")
    instance = registry.experts.create("neural", _ctx(registry), preset="tiny", init_seed="0", seq_len="64", stride="32")
    ev = T.audit_expert(instance, stream[:400], chunk=200, random_tokens=2_000, n_cuts=2, n_candidates=3)
    assert abs(ev["C2"]["worst_mass"] - 1) <= T.MASS_TOLERANCE


@pytest.mark.parametrize("label", sorted(MIXERS))
def test_builtin_mixer_passes_the_audit(registry, label):
    name, opts = MIXERS[label]
    if name not in registry.mixers.entries:
        pytest.skip(f"mixer {name!r} is not registered")
    ev = T.check_mixer(lambda: registry.mixers.create(name, _ctx(registry, 3), **opts), n_experts=3)
    assert abs(ev["C2"]["worst_mass"] - 1) <= T.MASS_TOLERANCE
