"""Training options, environment aliases and the batch plan (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core.errors import UsageError
from pgolf_neural.train.options import env_overrides, resolve


def test_aliases_and_precedence():
    env = {"ITERATIONS": "7", "CROWN_Q_LAMBDA": "0", "PGOLF_SEED": "3", "HOME": "/x", "PGOLF_PLUGINS": "a"}
    cfg = resolve("tiny", {"iterations": "9"}, env)
    assert cfg.iterations == 9 and cfg.crown_q_lambda == 0.0 and cfg.seed == 3
    assert resolve("pr700", {}, {}).train_batch_tokens == 786_432
    assert env_overrides({"TRAIN_BATCH_TOKENS": "1e4", "TRAIN_SEQ_LEN": "128"}) == {
        "train_batch_tokens": 10_000, "train_seq_len": 128}


@pytest.mark.parametrize("env, match", [
    ({"PGOLF_ITERATONS": "3"}, "PGOLF_ITERATIONS"),
    ({"TRAIN_BATCH_TOKEN": "3"}, "TRAIN_BATCH_TOKENS"),
    ({"SWA_ENABLED": "1"}, "not supported"),
    ({"ITERATIONS": "many"}, "expected int"),
])
def test_unknown_or_bad_environment_is_an_error(env, match):
    with pytest.raises(UsageError, match=match):
        resolve("tiny", {}, env)


def test_unknown_option_and_bad_batch_are_errors():
    with pytest.raises(UsageError, match="did you mean 'iterations'"):
        resolve("tiny", {"iteration": "3"}, {})
    with pytest.raises(UsageError, match="multiple"):
        resolve("tiny", {"train_batch_tokens": "1000"}, {})
    with pytest.raises(UsageError, match="preset"):
        resolve("huge", {}, {})


def test_cli_rejects_unknown_option_and_validation_data(tmp_path):
    from click.testing import CliRunner

    from pgolf_neural.train.cli import train_cmd

    res = CliRunner().invoke(train_cmd, ["x.npy", "--iteratons", "3"])
    assert res.exit_code == 2 and "iteratons" in res.output
    np.save(tmp_path / "fineweb_val_tokens.npy", np.arange(100, dtype=np.uint16))
    res = CliRunner().invoke(train_cmd, [str(tmp_path / "fineweb_val_tokens.npy"), "--preset", "tiny"],
                             env={"ITERATIONS": "1"})
    assert res.exit_code != 0 and "validation" in res.output


def test_batch_plan_does_not_depend_on_process_count():
    from pgolf_neural.train.data import BatchPlan

    tokens = np.arange(5000, dtype=np.uint16)
    one = BatchPlan(tokens, 16, 8, world_size=1, micro_seqs=2)
    two = BatchPlan(tokens, 16, 8, world_size=2, micro_seqs=2)
    assert one.accum_steps == 4 and two.accum_steps == 2
    for step in (0, 3, 100):
        a = np.concatenate([one.micro_batch(step, 0, m) for m in range(4)])
        b = np.concatenate([two.micro_batch(step, r, m) for r in range(2) for m in range(2)])
        assert np.array_equal(a, b)
        assert a.shape == (8, 17) and np.array_equal(a[:, 1:], a[:, :-1] + 1)
    with pytest.raises(UsageError, match="does not split"):
        BatchPlan(tokens, 16, 8, world_size=3, micro_seqs=1)


@pytest.mark.parametrize("name", ["VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM"])
def test_model_settings_in_the_environment_are_refused_not_ignored(name):
    from pgolf_neural.train.options import env_overrides

    with pytest.raises(UsageError, match=f"--model-set {name.lower()}=3"):
        env_overrides({name: "3"})
