"""lora-ttt: LoRA hooks on the model's own nn.Linear modules, training only the deltas, per-document reset."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import BuildContext  # noqa: E402
from pgolf_core.errors import UsageError  # noqa: E402
from pgolf_core.evaluate import evaluate  # noqa: E402
from helpers.neural import TinyExpert, demo_stream, one_thread  # noqa: E402,F401

OPTS = {"chunk_tokens": "200", "seq_len": "32", "batch": "4", "lr": "3e-2", "epochs": "2", "rank": "4"}


def _ctx():
    from pgolf_core.stream.bytes import byte_table_from_sentencepiece
    from pgolf_core.demo import demo_tokenizer_path

    return BuildContext(vocab_size=1024, byte_counts=byte_table_from_sentencepiece(demo_tokenizer_path()), seed=0)


def _adapter(plugins, expert, **opts):
    adapter = plugins.adapters.create("lora-ttt", _ctx(), **{**OPTS, **opts})
    adapter.setup({"neural": expert})
    return adapter


def test_lora_hooks_the_existing_linears_without_copying_and_starts_as_a_no_op(plugins):
    expert = TinyExpert(0)
    tokens = demo_stream(300)
    before = expert.score(tokens, 1, 300)
    keys = list(expert.model.state_dict())
    params = [id(p) for p in expert.model.parameters()]
    adapter = _adapter(plugins, expert)
    wrapped = adapter.describe()["wrapped"]
    assert wrapped == sorted(f"blocks.{i}.{m}" for i in range(3) for m in ("attn.c_q", "attn.c_v", "attn.proj", "mlp.fc"))
    assert list(expert.model.state_dict()) == keys and [id(p) for p in expert.model.parameters()] == params
    assert not any(p.requires_grad for p in expert.model.parameters())  # the model itself is frozen
    assert np.array_equal(expert.score(tokens, 1, 300), before)  # B = 0: no change before training


def test_lora_training_changes_scores_but_never_the_model_weights(plugins):
    expert = TinyExpert(0)
    fresh = {k: v.clone() for k, v in expert.model.state_dict().items()}
    tokens = demo_stream(700)
    adapter = _adapter(plugins, expert)
    before = expert.score(tokens, 401, 700)
    adapter.after_chunk(tokens[:401], 1, 401, False)  # trains [1, 201) and [201, 401)
    assert adapter.stats()["chunks_trained"] == 2
    after = expert.score(tokens, 401, 700)
    assert not np.allclose(before, after)
    for k, v in expert.model.state_dict().items():
        assert torch.equal(v, fresh[k]), k
    adapter.detach()
    assert np.array_equal(expert.score(tokens, 401, 700), before)  # hooks removed: the plain model again


def test_per_document_reset_trains_only_the_open_document(plugins):
    tokens = demo_stream(700).copy()
    tokens[tokens == 1] = 5  # documents only where we put them
    tokens[[0, 150, 330]] = 1  # BOS at 0, 150 and 330
    expert = TinyExpert(0)
    adapter = _adapter(plugins, expert, reset_per_doc="true")
    adapter.after_chunk(tokens[:201], 1, 201, False)
    adapter.after_chunk(tokens[:401], 201, 401, False)
    hist = adapter.stats()["history"]
    # chunk [1, 201) holds the BOS at 150: reset, train targets 151..200; chunk [201, 401): BOS at 330
    assert [h["targets"] for h in hist] == [[151, 201], [331, 401]]
    assert adapter.stats()["document_resets"] == 2
    # a reset puts the LoRA (and the optimizer) back at the start: after chunk 2 the deltas depend
    # only on the open document's tokens 330..400, so changing everything before 330 changes nothing
    other = tokens.copy()
    other[1:330] = (other[1:330].astype(np.int64) * 3 + 11) % 1024
    other[other == 1] = 5
    other[[0, 150, 330]] = 1
    fresh = _adapter(plugins, TinyExpert(0), reset_per_doc="true")
    fresh.after_chunk(other[:201], 1, 201, False)
    fresh.after_chunk(other[:401], 201, 401, False)
    pairs = list(zip(adapter.deltas.parameters(), fresh.deltas.parameters()))
    assert pairs and all(torch.equal(a, b) for a, b in pairs)
    assert any(not torch.equal(a, torch.zeros_like(a)) for a, _ in pairs[1::2])  # B did train


def test_unknown_targets_are_an_error_listing_the_linears(plugins):
    with pytest.raises(UsageError, match="match no nn.Linear.*c_q"):
        _adapter(plugins, TinyExpert(0), targets="query")
    with pytest.raises(UsageError, match="'lora-ttt'.*rank"):
        plugins.adapters.create("lora-ttt", _ctx(), rank="0")


def test_lora_ttt_in_the_evaluator_lowers_bpb_on_a_repeating_stream():
    from pgolf_core.demo import demo_tokenizer_path

    base = demo_stream(400)
    stream = np.concatenate([base, base, base])
    runs = {}
    for adapters in ([], ["lora-ttt"]):
        expert = TinyExpert(0)
        expert.name = "neural"
        runs[bool(adapters)] = evaluate([expert], adapters=adapters, tokens=stream, tokenizer=demo_tokenizer_path(),
                                        chunk_size=200, adapter_options={"lora-ttt": OPTS} if adapters else None)
    assert runs[True].bpb < runs[False].bpb
    assert runs[True].adapters["lora-ttt"]["chunks_trained"] == 5
