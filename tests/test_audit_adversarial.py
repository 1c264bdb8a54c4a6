"""Plugins written against the public API to fool an audited run, each against the defence of the
live spot checks (``pgolf_core.checks.spotcheck``) it targets: copy detection, reading the checked
positions from the engine's objects, a cheat confined to a region of the stream, turning the live
checks off, a generator seeded at build time, and a peek at the static audit's views. None may
print AUDITED below the honest BPB, except the confined cheat, with the probability the verdict
states. Runs on the built-in demo stream: no ../shared needed."""

from __future__ import annotations

import numpy as np
import pytest

import planted as P
from cheats.spot_cheats import PeeksInARegion, PeeksUnlessCopied, PeeksWhenOriginal, ReadsTheChecks
from pgolf_core import evaluate
from pgolf_core.demo import demo_tokenizer_path, demo_tokens

V = 1024
N = 6000
CHUNK = 300  # 20 blocks: enough for a cheat on every block to meet a check


@pytest.fixture(scope="module")
def stream():
    return np.asarray(demo_tokens("val")[:N])


@pytest.fixture(scope="module")
def honest_bpb(stream):
    return _eval([P.HonestCounter(V)], stream).bpb


def _eval(experts, stream, **kw):
    return evaluate(experts, tokens=stream, tokenizer=demo_tokenizer_path(), chunk_size=CHUNK, **kw)


def _not_fooled(res, honest_bpb):
    """AUDITED only at the honest score: a cheat that was audited must not have cheated."""
    assert res.level != "audited" or res.bpb >= honest_bpb - 1e-9, (res.level, res.bpb, honest_bpb)


# ---------------------------------------------------------------------- (a) copy-aware experts


def test_an_expert_that_peeks_only_when_nobody_copied_it_is_never_audited_below_the_honest_score(stream, honest_bpb):
    cheat = _eval([PeeksUnlessCopied(V)], stream, strict=True)
    assert cheat.bpb < honest_bpb - 0.1  # unwatched, it cheats on every block
    _not_fooled(_eval([PeeksUnlessCopied(V)], stream, audit=True, spot_checks=20), honest_bpb)


def test_an_expert_honest_in_every_copy_is_caught_by_the_replay_of_the_whole_block(stream, honest_bpb):
    res = _eval([PeeksWhenOriginal(V)], stream, audit=True, spot_checks=20)
    assert res.bpb < honest_bpb - 0.1
    assert res.level == "invalid", res.validity["violations"]
    assert any("differs from a replay" in v for v in res.validity["violations"]), res.validity["violations"]


# ---------------------------------------------------------------------- (b) reading the decisions


def test_an_expert_that_reads_the_checked_positions_finds_none_and_is_caught(stream, honest_bpb):
    ReadsTheChecks.found.clear()
    res = _eval([ReadsTheChecks(V)], stream, audit=True, spot_checks=20)
    assert res.bpb < honest_bpb - 0.1
    checked = {r["position"] for r in res.validity["spot_checks"]["reports"]}
    assert checked and not checked & set(ReadsTheChecks.found), "a checked position existed while the live block was scored"
    assert res.level == "invalid", res.validity["violations"]  # (the copies, which can read the decisions, differ)


# ---------------------------------------------------------------------- (c) a confined cheat


def test_a_confined_cheat_escapes_with_the_probability_the_verdict_states(stream):
    """Only the live spot checks can see it (the static audit's stream ends before it), so they are
    run alone over many passes: the share of passes they miss it in must match the stated value."""
    from pgolf_core.run.loop import Components
    from pgolf_core.run.session import resolve_stream, run_pass
    from pgolf_core.checks.spotcheck import SpotChecks

    tokens, _, _, _, counter = resolve_stream(stream[:4001], demo_tokenizer_path())
    k, expected, runs = 400, 7, 100  # 10% of 4,000 targets; P(escape) = (1 - 7/4000)^400 ~ 0.50
    place = np.random.default_rng(0)
    escaped, stated = 0, set()
    for _ in range(runs):
        lo = int(place.integers(1, 4001 - k))
        spot = SpotChecks(len(tokens), expected)
        run_pass(Components([PeeksInARegion(V, lo, lo + k)], ["cheat"]), counter, tokens, 100, strict=True,
                 observers=[spot])
        escaped += not spot.violations
        stated.add(spot.coverage()["escape"]["10%"]["p"])
    (p,) = stated
    assert spot.coverage()["escape"]["10%"]["k"] == k and p == pytest.approx((1 - expected / 4000) ** k)
    sigma = (p * (1 - p) / runs) ** 0.5
    assert abs(escaped / runs - p) <= 4 * sigma, (escaped, runs, p)


# ---------------------------------------------------------------------- (d) no live checks


def test_without_live_spot_checks_a_run_is_never_audited(stream, honest_bpb):
    res = _eval([P.LongStreamCheat(V)], stream, audit=True, spot_checks=0)
    assert res.bpb < honest_bpb - 0.1  # the static audit's short stream cannot see it
    assert res.level == "unchecked" and any("--spot-checks 0" in r for r in res.validity["reasons"])
    honest = _eval([P.HonestCounter(V)], stream, audit=True, spot_checks=0)
    assert honest.level == "unchecked"
    from pgolf_core.run.report import format_table

    assert "verdict    UNCHECKED: no live spot check" in format_table(honest)


def test_the_verdict_states_the_coverage(stream):
    res = _eval([P.HonestCounter(V)], stream, audit=True, spot_checks=20)
    assert res.level == "audited", res.validity["violations"]
    spot = res.validity["spot_checks"]
    assert spot["rate"] == pytest.approx(20 / (N - 1)) and spot["positions"] >= 1
    assert 0 < spot["targets_replayed"] <= spot["targets"] == N - 1
    assert spot["escape"]["1%"]["p"] == pytest.approx((1 - 20 / (N - 1)) ** 60)
    from pgolf_core.run.report import format_table

    table = format_table(res)
    assert "escapes every spot check with probability" in table and f"{spot['targets_replayed']:,} of" in table


# ---------------------------------------------------------------------- (e) a generator seeded at build


def test_a_generator_seeded_once_at_build_is_nondeterminism(stream):
    res = evaluate(["seeded-at-build"], tokens=stream, tokenizer=demo_tokenizer_path(), chunk_size=CHUNK, audit=True,
                   spot_checks=1, plugin_modules=["planted_plugin"])
    assert res.level == "invalid"
    assert any("nondeterministic" in v and "two builds" in v for v in res.validity["violations"]), res.validity["violations"]
    honest = evaluate(["honest"], tokens=stream, tokenizer=demo_tokenizer_path(), chunk_size=CHUNK, audit=True,
                      spot_checks=20, plugin_modules=["planted_plugin"])
    assert honest.level == "audited" and honest.validity["spot_checks"]["twin_rebuilt"] is True


# ---------------------------------------------------------------------- the static audit's views


def test_the_static_audit_hands_only_sealed_views(stream):
    from pgolf_core.checks.audit import audit

    seen = []

    class Spy(P.HonestCounter):
        name = "spy"

        def _look(self, tokens, end):
            base = tokens.base if tokens.base is not None else tokens
            seen.append((bool(np.any(np.asarray(base)[end:])), tokens.flags.writeable))

        def distributions(self, tokens, start, end):
            self._look(tokens, end)
            return super().distributions(tokens, start, end)

        def score(self, tokens, start, end):
            self._look(tokens, end)
            return super().score(tokens, start, end)

        def update(self, tokens, start, end):
            self._look(tokens, end)

    report = audit([Spy(V)], tokens=stream, tokenizer=demo_tokenizer_path(), random_tokens=2000)
    assert report.passed and seen
    assert not any(past for past, _ in seen), "a view handed to a plugin held tokens past its end"
    assert not any(w for _, w in seen), "a writeable view"
