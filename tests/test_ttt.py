"""The ttt adapter: schedule, chunking, windows, options, and what training does to the model."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pgolf_ttt.schedule import chunk_count, chunk_lr
from pgolf_ttt.windows import ChunkClock, training_windows

torch = pytest.importorskip("torch")

from helpers.neural import TinyExpert, demo_stream, one_thread  # noqa: E402,F401


def test_cosine_schedule_decays_from_lr_to_zero_and_ramp_multiplies():
    assert chunk_lr(1e-4, 0, 11) == pytest.approx(1e-4)
    assert chunk_lr(1e-4, 5, 11) == pytest.approx(0.5e-4)
    assert chunk_lr(1e-4, 10, 11) == pytest.approx(0.0, abs=1e-20)
    assert chunk_lr(1e-4, 99, 11) == chunk_lr(1e-4, 10, 11)  # past the horizon: stays at the end
    # the seed's ramp: 1 -> ramp_max over the first 30% of the chunks
    assert chunk_lr(1e-4, 0, 100, "cosine-ramp", 3.0) == pytest.approx(1e-4)
    assert chunk_lr(1e-4, 30, 100, "cosine-ramp", 3.0) == pytest.approx(3 * chunk_lr(1e-4, 30, 100))
    assert chunk_lr(1e-4, 7, 100, "constant") == 1e-4
    assert chunk_count(62_021_845, 131072) == 474


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), eval_chunk=st.integers(1, 90), chunk=st.integers(1, 120))
def test_clock_releases_each_complete_chunk_once_and_never_at_the_end(n, eval_chunk, chunk):
    clock, released, start, last_unfinished_end = ChunkClock(chunk), [], 1, 1
    while start < n:
        end = min(start + eval_chunk, n)
        final = end == n
        last_unfinished_end = last_unfinished_end if final else end
        got = clock.advance(start, end, final)
        assert not (final and got)  # nothing is trained after the last span
        for i, a, b in got:
            assert b <= end and b - a == chunk and a == 1 + i * chunk  # only scored targets
        released += [i for i, _, _ in got]
        start = end
    assert released == list(range(len(released)))
    # every chunk complete before the final span, and no other
    assert len(released) == sum(1 for i in range(n) if 1 + (i + 1) * chunk <= last_unfinished_end)


@settings(max_examples=60, deadline=None)
@given(a=st.integers(1, 300), length=st.integers(1, 300), seq_len=st.integers(1, 64))
def test_windows_cover_each_target_of_the_chunk_exactly_once(a, length, seq_len):
    b = a + length
    wins = training_windows(a, b, seq_len)
    covered = [t for w in wins for t in range(w.loss_from, w.last)]
    assert covered == list(range(a, b))
    for w in wins:
        assert w.last <= b and w.first >= 1  # inputs tokens[first-1:last-1] and targets < b: all scored
        assert w.last - w.first == min(seq_len, b - 1)


def _run(adapter_opts, n=800, expert_seed=0, chunk=200, tokens=None):
    from pgolf_core.evaluate import evaluate

    expert = TinyExpert(expert_seed)
    expert.name = "neural"
    stream = demo_stream(n) if tokens is None else tokens
    from pgolf_core.demo import demo_tokenizer_path

    res = evaluate([expert], adapters=["ttt"] if adapter_opts is not None else [], tokens=stream,
                   tokenizer=demo_tokenizer_path(), chunk_size=chunk,
                   adapter_options={"ttt": adapter_opts} if adapter_opts is not None else None)
    return res, expert


FAST = {"chunk_tokens": "200", "seq_len": "32", "batch": "4", "lr": "3e-2", "epochs": "3", "polyak": "0",
        "schedule": "constant"}


def test_ttt_lowers_bpb_on_a_repeating_stream_and_reports_its_work():
    base = demo_stream(250)
    stream = np.concatenate([base, base, base])
    plain, _ = _run(None, tokens=stream)
    adapted, _ = _run(FAST, tokens=stream)
    assert adapted.bpb < plain.bpb
    stats = adapted.adapters["ttt"]
    # 749 targets in spans ending at 201, 401, 601, 750 (final): chunks [1, 201), [201, 401) and
    # [401, 601) train; [601, 801) never completes
    assert stats["chunks_trained"] == 3
    assert stats["seconds_per_chunk"] > 0
    assert [h["targets"] for h in stats["history"]][:2] == [[1, 201], [201, 401]]
    assert all(h["loss_last_epoch"] < h["loss_first_epoch"] for h in stats["history"])


def test_frozen_blocks_and_embeddings_do_not_move_and_the_rest_does():
    fresh = TinyExpert(0).model.state_dict()
    _, expert = _run(dict(FAST, frozen_blocks="2"))
    after = expert.model.state_dict()
    for name, value in fresh.items():
        same = torch.equal(value, after[name])
        if name.startswith(("blocks.0.", "blocks.1.")) and "scale" not in name:
            assert same, name
        if name.startswith("tok_emb"):
            assert same, name
    assert not torch.equal(fresh["blocks.2.attn.c_q.weight"], after["blocks.2.attn.c_q.weight"])
    from pgolf_ttt.ttt import trainable_parameters

    model = expert.model
    chosen = {id(p) for p in trainable_parameters(model, 2)}
    names = {n for n, p in model.named_parameters() if id(p) in chosen}
    assert {"blocks.0.attn_scale", "blocks.1.mlp_scale", "bigram.scale"} <= names  # scales train everywhere
    assert "blocks.0.attn.c_q.weight" not in names and "tok_emb.weight" not in names


def test_polyak_average_is_what_the_model_scores_with():
    _, slow = _run(dict(FAST, polyak="0.999999"))
    _, plain = _run(FAST)
    name = "blocks.2.mlp.fc.weight"
    init = TinyExpert(0).model.state_dict()[name]
    moved_avg = (slow.model.state_dict()[name] - init).abs().max().item()
    moved_raw = (plain.model.state_dict()[name] - init).abs().max().item()
    assert moved_raw > 1e-3 and moved_avg < 1e-4 * moved_raw * 100


def test_options_are_checked_with_clear_errors(plugins):
    from pgolf_core.api import BuildContext
    from pgolf_core.errors import UsageError

    ctx = BuildContext(vocab_size=1024, byte_counts=object())
    for key, bad in (("epochs", "four"), ("lr", "-1"), ("optimizer", "adam"), ("schedule", "linear"),
                     ("polyak", "1.5"), ("chunk_tokens", "0")):
        with pytest.raises(UsageError, match=f"'ttt'.*{key}"):
            plugins.adapters.create("ttt", ctx, **{key: bad})
    with pytest.raises(UsageError, match="no option 'epoch'"):
        plugins.adapters.create("ttt", ctx, epoch="2")
    with pytest.raises(UsageError, match="names no expert"):
        _run(dict(FAST, target="nope"))


def test_the_seeds_trainable_set_is_its_last_two_blocks_plus_norms_scales_and_head():
    """The seed's TTT_FREEZE_BLOCKS=2 trains the *last* 2 blocks: 5,780,500 parameters in its log."""
    from pgolf_neural.config import preset
    from pgolf_neural.model import GPT
    from pgolf_ttt.ttt import trainable_parameters

    model = GPT(preset("pr700"))
    count = lambda params: sum(p.numel() for p in params)  # noqa: E731
    assert count(trainable_parameters(model, trained_blocks=2)) == 5_780_500
    assert count(trainable_parameters(model, frozen_blocks=2)) == 25_972_812  # the other reading, still available
    names = {n for n, p in model.named_parameters() if id(p) in {id(q) for q in trainable_parameters(model, trained_blocks=2)}}
    assert "blocks.10.attn.c_q.weight" in names and "blocks.8.attn.c_q.weight" not in names


def test_an_expert_without_a_declared_model_is_refused_by_name():
    from pgolf_core.demo import demo_tokenizer_path, demo_tokens
    from pgolf_core.errors import UsageError
    from pgolf_core.evaluate import evaluate

    for adapter in ("ttt", "lora-ttt"):
        with pytest.raises(UsageError, match="'bigram' declares no model to adapt"):
            evaluate(["bigram"], adapters=[adapter], adapter_options={adapter: {"target": "bigram"}},
                     tokens=demo_tokens("val")[:200], tokenizer=demo_tokenizer_path())
