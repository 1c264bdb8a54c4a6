"""Presets fill evaluate() arguments; the user's explicit choices win."""

from __future__ import annotations

import pytest

from pgolf_core.errors import UsageError
from pgolf_core.presets import Preset, get_preset, preset_kwargs


def test_pr700_is_the_seed_configuration_and_declared_invalid():
    kw = preset_kwargs("pr700")
    assert kw["experts"] == ["neural", "pr700-unigram", "pr700-bigram", "pr700-trigram", "pr700-entropy"]
    assert kw["mixer"] == "hedge"
    assert kw["mixer_options"] == {"eta": "0.1", "update": "batch", "batch_loss": "window", "window": "2048",
                                   "stride": "64", "bias": "2.0", "solo_first": "131072"}
    assert kw["expert_options"]["neural"] == {"stride": "64", "temperature": "0.98"}
    assert kw["adapters"] == ["ttt"]
    assert kw["adapter_options"] == {"ttt": {"schedule": "cosine-ramp", "batch": "64"}}
    assert preset_kwargs("pr700", adapter_options={"ttt": {"batch": "8"}})["adapter_options"]["ttt"]["batch"] == "8"
    assert preset_kwargs("pr700", adapters=[])["adapter_options"] == {}
    assert "C2" in kw["invalid_reason"]
    assert "pr700-trigram" not in kw["expert_options"]  # the seed's own trigram: sub-normalized, known invalid
    legal = preset_kwargs("pr700-legal")
    assert legal["experts"][-1] == "entropy" and not legal["invalid_reason"]
    assert legal["expert_options"]["pr700-trigram"] == {"empty": "uniform"}


def test_explicit_choices_win_and_neural_options_reach_the_entropy_source():
    kw = preset_kwargs("pr700-legal", experts=["neural", "entropy"], mixer_options={"eta": "1"},
                       expert_options={"neural": {"checkpoint": "m.pt", "stride": "32"}})
    assert kw["experts"] == ["neural", "entropy"] and set(kw["expert_options"]) == {"neural", "entropy"}
    assert kw["mixer_options"]["eta"] == "1" and kw["mixer_options"]["bias"] == "2.0"
    assert kw["expert_options"]["entropy"]["neural_checkpoint"] == "m.pt"
    assert kw["expert_options"]["entropy"]["neural_stride"] == "32"
    assert preset_kwargs("pr700", mixer="logistic")["mixer_options"] == {}


def test_missing_adapter_is_dropped_with_a_note(plugins):
    if "ttt" in plugins.adapters.entries:
        assert preset_kwargs("pr700", plugins)["adapters"] == ["ttt"]
    else:
        kw = preset_kwargs("pr700", plugins)
        assert kw["adapters"] == [] and any("'ttt' is not registered" in n for n in kw["notes"])


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(UsageError, match="pr700"):
        preset_kwargs("pr70")


def test_presets_come_from_plugins_through_the_hook(plugins):
    """The seed's presets are the neural plugin's; a third-party plugin adds its own the same way."""
    from pgolf_core import hookimpl

    assert plugins.presets.get("pr700").plugin == plugins.experts.get("neural").plugin

    class Mine:
        @hookimpl
        def pgolf_register_presets(register):
            register("bt-logistic", lambda: Preset(description="two n-grams, geometric", experts=("bigram", "trigram"),
                                                   mixer="logistic", mixer_options={"lr": "0.01"}, expert_options={}))

    plugins.add(Mine, "mine")
    try:
        kw = preset_kwargs("bt-logistic", plugins)
        assert kw["experts"] == ["bigram", "trigram"] and kw["mixer_options"] == {"lr": "0.01"}
        assert get_preset("bt-logistic", plugins).mixer == "logistic"
    finally:
        plugins.remove("mine")


def test_pr700_runs_only_when_invalid_results_are_allowed(plugins):
    """End to end on the demo with uniform sources in place of the network (no torch needed)."""
    from pgolf_core.errors import InvalidConfigurationError
    from pgolf_core.evaluate import evaluate

    pytest.importorskip("pgolf_entropy.plugin")
    import pgolf_entropy.plugin as ep

    if "pr700-entropy" not in plugins.experts.entries:
        plugins.add(ep, "entropy-test")
    if not {"unigram", "bigram", "trigram"} <= set(plugins.experts.entries) or "hedge" not in plugins.mixers.entries:
        pytest.skip("needs the n-gram experts and the hedge mixer")
    kw = preset_kwargs("pr700", plugins, adapters=[],
                       experts=["uniform", "pr700-unigram", "pr700-bigram", "pr700-trigram", "pr700-entropy"],
                       expert_options={"pr700-entropy": {"source": "bigram"}, "pr700-trigram": {"chunk": "1000"}})
    assert kw["expert_options"]["pr700-entropy"] == {"source": "bigram"}
    reason = kw.pop("invalid_reason")
    kw.pop("notes")
    with pytest.raises(InvalidConfigurationError, match="known invalid"):
        evaluate(plugins=plugins, limit=3000, **kw)
    res = evaluate(plugins=plugins, limit=3000, allow_invalid=True, **kw)
    assert not res.valid and reason
    # The legal variant of the same mixture (legal entropy, uniform empty buckets) runs without leave.
    legal = preset_kwargs("pr700-legal", plugins, adapters=[],
                          experts=["uniform", "pr700-unigram", "pr700-bigram", "pr700-trigram", "entropy"],
                          expert_options={"entropy": {"source": "bigram"}, "pr700-trigram": {"chunk": "1000"}})
    legal.pop("invalid_reason"), legal.pop("notes")
    assert legal["expert_options"]["pr700-trigram"] == {"chunk": "1000", "empty": "uniform"}
    assert evaluate(plugins=plugins, limit=3000, strict=True, **legal).valid
