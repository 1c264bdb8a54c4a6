"""phased-ttt: per-document LoRA stepped after each scored chunk, documents batched, global phases.

The reference here is written without the adapter's bank or lockstep: each document alone, a plain
LoRA of nn.Parameters and ``torch.optim.AdamW``, score the chunk, then step."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import BuildContext  # noqa: E402
from pgolf_core.errors import UsageError  # noqa: E402
from helpers.cli import eval_json  # noqa: E402
from helpers.neural import demo_stream, micro_model, one_thread  # noqa: E402,F401

SEQ, CHUNK = 32, 8
OPTS = {"chunk": str(CHUNK), "seq_len": str(SEQ), "rank": "4", "alpha": "8", "lr": "1e-3", "batch": "3",
        "weight_decay": "0.5", "phases": "none", "global_seq_len": "16", "global_chunk": "64", "global_batch": "4",
        "global_lr": "3e-2"}
N = 1400  # the demo's first documents: BOS at 0, 686, 1179 and 1343


def _expert(seed: int = 0, bos=1):
    from pgolf_neural.expert import NeuralExpert

    return NeuralExpert(micro_model(seed), seq_len=SEQ, stride=CHUNK, batch=4, device=torch.device("cpu"),
                        dtype=None, source="micro", bos=bos)


def _ctx(n):
    return BuildContext(vocab_size=1024, seed=0, stream_targets=n - 1)


def _run(plugins, tokens, spans=None, distributions=False, **opts):
    """(log-probabilities of targets 1..n-1, adapter, expert) over ``spans`` (default: one span)."""
    expert = _expert()
    adapter = plugins.adapters.create("phased-ttt", _ctx(len(tokens)), **{**OPTS, **opts})
    adapter.setup({"neural": expert})
    out, kept = [], []
    for s, e in spans or [(1, len(tokens))]:
        view = tokens[:e]
        if distributions:
            rows = expert.distributions(view, s, e)
            kept.append(rows)
            out.append(np.log(rows[np.arange(e - s), tokens[s:e]]))
        else:
            out.append(expert.score(view, s, e))
        adapter.after_chunk(view, s, e, e == len(tokens))
    if distributions:
        _run.rows = np.concatenate(kept)  # the rows of the last run asked for them
    return np.concatenate(out), adapter, expert


def _reference(tokens, *, rank=4, alpha=8.0, lr=1e-3, wd=0.5, betas=(0.0, 0.99), eps=1e-10):
    """Each document alone: a window per chunk, score it, then one AdamW step on its mean loss."""
    from pgolf_ttt.bank import find_sites, initial_a, site_module

    model = _expert().model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sites = find_sites(model, ("q", "k", "v", "o", "mlp", "head"), "test")
    a0 = initial_a(sites, rank, 0, torch.device("cpu"), torch.float32)
    scale = alpha / rank
    starts = [int(q) for q in np.flatnonzero(tokens[:-1] == 1)]
    out = []
    for k, d in enumerate(starts):
        n = (starts[k + 1] if k + 1 < len(starts) else len(tokens) - 1) - d  # targets d+1 .. d+n
        A = [torch.nn.Parameter(a.clone()) for a in a0]
        B = [torch.nn.Parameter(torch.zeros(s.fan_out, rank)) for s in sites]
        opt = torch.optim.AdamW([*A, *B], lr=lr, betas=betas, eps=eps, weight_decay=wd)
        for c in range(math.ceil(n / CHUNK)):
            W = min((c + 1) * CHUNK, SEQ)
            w0 = (c + 1) * CHUNK - W
            x = np.zeros(W, dtype=np.int64)
            known = min(w0 + W, n) - w0
            x[:known] = tokens[d + w0: d + w0 + known]
            hooks = [site_module(model, s).register_forward_hook(
                lambda m, i, o, a=a, b=b: o + scale * (i[0] @ a.t()) @ b.t())
                for s, a, b in zip(sites, A, B) if s.kind != "head"]
            with torch.enable_grad():
                h = model.hidden(torch.from_numpy(x)[None], rope_len=SEQ)[0, W - CHUNK:]
                for hk in hooks:
                    hk.remove()
                logits = h @ model.tok_emb.weight.t() + scale * (h @ A[-1].t()) @ B[-1].t()
                logits = 30.0 * torch.tanh(logits / 30.0)
                top = min((c + 1) * CHUNK, n)
                y = torch.from_numpy(tokens[d + c * CHUNK + 1: d + top + 1].astype(np.int64))
                logp = torch.log_softmax(logits.double(), -1)
                out.append(logp[: top - c * CHUNK].gather(1, y[:, None])[:, 0].detach().numpy())
                if (c + 1) * CHUNK < n:  # a full chunk, and the document goes on
                    loss = torch.nn.functional.cross_entropy(logits, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    return np.concatenate(out)


def test_scores_each_chunk_then_steps_as_the_plain_reference_does(plugins):
    tokens = demo_stream(N)
    got, adapter, _ = _run(plugins, tokens)
    want = _reference(tokens)
    assert got.shape == want.shape == (N - 1,)
    # float rounding only (a larger rate makes this random micro model's steps chaotic: 1e-5 at 3e-3)
    assert np.max(np.abs(got - want)) < 1e-6
    stats = adapter.stats()
    assert stats["documents"] == 4 and stats["lora_steps"] > 100
    frozen, _, _ = _run(plugins, tokens, lr="0")
    assert np.mean(np.abs(got - frozen)) > 1e-3  # the steps did change the scores


def test_lr0_is_the_experts_own_document_isolated_scoring(plugins):
    tokens = demo_stream(N)
    frozen, _, _ = _run(plugins, tokens, lr="0")
    plain = _expert().score(tokens, 1, N)  # stride = chunk, same seq_len: the same windows
    assert np.array_equal(frozen, plain)


def test_a_later_token_changes_no_earlier_loss(plugins):
    tokens = demo_stream(N)
    opts = dict(phases="1,2")
    spans = [(1, 500), (500, N)]
    ref, _, _ = _run(plugins, tokens, spans=spans, distributions=True, **opts)
    ref_rows = _run.rows
    rng = np.random.default_rng(1)
    for p in (300, 690, 701, 1100):  # inside a chunk, right after a document, a phase's edge
        other = tokens.copy()
        other[p:] = rng.integers(2, 1024, N - p)
        other[p + 5] = 1  # a new document boundary in the changed future
        got, _, _ = _run(plugins, other, spans=spans, distributions=True, **opts)
        assert np.array_equal(got[: p - 1], ref[: p - 1]), p  # targets 1 .. p-1
        assert np.array_equal(_run.rows[p - 1], ref_rows[p - 1]), p  # the row of target p: from tokens < p


def test_each_document_starts_again_from_the_same_lora(plugins):
    tokens = demo_stream(N)
    bos = np.flatnonzero(tokens == 1)
    other = tokens.copy()
    other[1: bos[1]] = np.random.default_rng(2).integers(2, 1024, bos[1] - 1)  # another first document
    a, _, _ = _run(plugins, tokens)
    b, _, _ = _run(plugins, other)
    first = bos[1]  # targets 1..686 belong to document 0 (the BOS at 686 is its last)
    assert not np.allclose(a[:first], b[:first])
    assert np.array_equal(a[first:], b[first:])  # documents 1 and 2 never saw document 0
    c, _, _ = _run(plugins, other, phases="1")  # a phase after document 0 carries it into the base
    assert not np.allclose(a[first:], c[first:])


def test_global_phases_run_at_their_counts_on_scored_documents_only(plugins):
    tokens = demo_stream(N)
    bos = [int(q) for q in np.flatnonzero(tokens == 1)]
    none, _, _ = _run(plugins, tokens, spans=[(1, 400), (400, 1000), (1000, N)])
    got, adapter, _ = _run(plugins, tokens, spans=[(1, 400), (400, 1000), (1000, N)], phases="1,2")
    phases = adapter.stats()["phases"]
    assert [p["after_documents"] for p in phases] == [1, 2]
    assert [p["targets"] for p in phases] == bos[1:3]  # trained on targets 1 .. the BOS closing document k
    assert all(p["steps"] > 0 for p in phases)
    assert np.array_equal(got[: bos[1]], none[: bos[1]])  # document 0 is scored before any phase
    assert not np.allclose(got[bos[1]:], none[bos[1]:])  # document 1 after the first


def test_scores_do_not_depend_on_span_cuts_batch_size_or_distributions(plugins):
    tokens = demo_stream(N)
    one, _, _ = _run(plugins, tokens, phases="2")
    cut, _, _ = _run(plugins, tokens, spans=[(1, 13), (13, 14), (14, 690), (690, 1200), (1200, N)], phases="2",
                     batch="1")
    rows, _, _ = _run(plugins, tokens, spans=[(1, 700), (700, N)], phases="2", distributions=True)
    assert np.array_equal(one, cut)
    assert np.max(np.abs(one - rows)) < 1e-9


def test_a_deep_copy_mid_document_continues_as_the_original(plugins):
    import copy

    tokens = demo_stream(N)
    expert = _expert()
    adapter = plugins.adapters.create("phased-ttt", _ctx(N), **{**OPTS, "phases": "1"})
    adapter.setup({"neural": expert})
    expert.score(tokens[:900], 1, 900)  # document 1 is open at 900, with its LoRA state
    twin = copy.deepcopy(expert)  # what the audit's snapshots do
    assert np.array_equal(twin.score(tokens, 900, N), expert.score(tokens, 900, N))


def test_a_stream_longer_than_the_build_context_says_is_scored_whole(plugins):
    # the audit's random stream is longer than the run's (regression: a document was taken as
    # ended at the context's stream length, and the next span found it never begun)
    tokens = demo_stream(N)
    expert = _expert()
    adapter = plugins.adapters.create("phased-ttt", _ctx(300), **OPTS)
    adapter.setup({"neural": expert})
    got = np.concatenate([expert.score(tokens[:e], s, e) for s, e in [(1, 400), (400, 800), (800, N)]])
    want, _, _ = _run(plugins, tokens)
    assert np.array_equal(got, want)


def test_the_model_is_left_without_hooks_and_phases_change_the_base(plugins):
    tokens = demo_stream(N)
    _, adapter, expert = _run(plugins, tokens, phases="none")
    assert all(not m._forward_hooks for m in expert.model.modules())
    fresh = micro_model(0).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in expert.model.state_dict().items())  # LoRA only
    _, _, trained = _run(plugins, tokens, phases="1")
    assert not all(torch.equal(v, fresh[k]) for k, v in trained.model.state_dict().items())


@pytest.mark.parametrize("opts, words", [
    ({"phases": "3,2"}, "option phases must be increasing"),
    ({"phases": "two"}, "option phases must be increasing"),
    ({"lora": "q,x"}, "unknown sites x"),
    ({"rank": "0"}, "option rank must be an integer >= 1"),
    ({"beta2": "1"}, "option beta2"),
    ({"global_chunk": "8", "global_seq_len": "16"}, "global_chunk (8) must hold"),
])
def test_bad_options_are_refused_in_one_line(plugins, opts, words):
    with pytest.raises(UsageError) as err:
        plugins.adapters.create("phased-ttt", _ctx(100), **{**OPTS, **opts})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_setup_refuses_what_it_cannot_score(plugins):
    adapter = plugins.adapters.create("phased-ttt", _ctx(100), **OPTS)
    with pytest.raises(UsageError, match="isolate_docs=true"):
        adapter.setup({"neural": _expert(bos=None)})
    adapter = plugins.adapters.create("phased-ttt", _ctx(100), **{**OPTS, "chunk": "64"})
    with pytest.raises(UsageError, match="chunk=64 exceeds"):
        adapter.setup({"neural": _expert()})
    adapter = plugins.adapters.create("phased-ttt", _ctx(100), **{**OPTS, "phases": "2", "global_seq_len": "0",
                                                                  "global_chunk": "16"})
    with pytest.raises(UsageError, match=r"global_chunk \(16\) must hold at least one sequence of 32"):
        adapter.setup({"neural": _expert()})


NEURAL = ["-e", "neural", "--expert-opt", "neural.preset=tiny", "--expert-opt", "neural.init_seed=0",
          "--expert-opt", "neural.seq_len=64", "--expert-opt", "neural.isolate_docs=true"]
PHASED = ["-a", "phased-ttt", *[x for k, v in {"chunk": "16", "rank": "4", "lr": "1e-2", "batch": "2",
                                                "phases": "1,3", "global_chunk": "256", "global_batch": "4",
                                                "global_lr": "1e-2"}.items()
                                for x in ("--adapter-opt", f"phased-ttt.{k}={v}")]]


def test_target_by_target_is_the_span_scoring_with_its_steps_and_a_phase(plugins):
    # what the coder and the decoder do: predict target t from tokens[:t], then observe it
    tokens = demo_stream(720)  # document 0 ends at 686: the phase runs before target 687
    _run(plugins, tokens, spans=[(1, 400), (400, 720)], phases="1", distributions=True)
    want_rows = _run.rows
    chunks = {400: 1, 720: 400}  # the loop's chunks, end -> start: after each, the adapter checks the scorer
    expert = _expert()
    adapter = plugins.adapters.create("phased-ttt", _ctx(len(tokens)), **{**OPTS, "phases": "1"})
    adapter.setup({"neural": expert})
    assert expert.decodable and adapter.decodable
    rows = []
    for t in range(1, len(tokens)):
        before = adapter.state_fingerprint()
        rows.append(expert.predict(tokens[:t], t))
        assert adapter.state_fingerprint() == before, t  # predict changes nothing (the phase included)
        expert.observe(tokens[:t + 1], t)
        if t + 1 in chunks:
            adapter.after_chunk(tokens[:t + 1], chunks[t + 1], t + 1, t + 1 == len(tokens))
    assert np.array_equal(np.array(rows), want_rows)
    _, spans_adapter, _ = _run(plugins, tokens, phases="1")
    assert adapter.state_fingerprint() == spans_adapter.state_fingerprint()  # the same state at the end
    stats = adapter.stats()
    assert [p["after_documents"] for p in stats["phases"]] == [1] and stats["lora_steps"] > 40


def test_phased_ttt_is_proven(plugins):
    from pgolf_core.evaluate import evaluate
    from helpers.proof import PROOF_LEVEL

    kw = dict(limit=760, chunk_size=250, adapters=["phased-ttt"],
              expert_options={"neural": {"preset": "tiny", "init_seed": "0", "seq_len": "64", "isolate_docs": "1"}},
              adapter_options={"phased-ttt": {"chunk": "16", "rank": "4", "lr": "1e-2", "phases": "1",
                                              "global_chunk": "256", "global_lr": "1e-2"}})
    res = evaluate(["neural"], prove=True, **kw)
    assert res.level == PROOF_LEVEL, res.validity["violations"]
    # the coder's rows, target by target, give the printed (span-scored) BPB to the last bits
    assert res.validity["proof"]["ideal_bpb"] == pytest.approx(res.bpb, abs=1e-12)
    assert [p["after_documents"] for p in res.adapters["phased-ttt"]["phases"]] == [1]


def _eval(nproc: int, *extra) -> dict:
    # 1,400 tokens: documents end at 686, 1179 and 1343, so both phases (after 1 and 3) run
    args = ["eval", *NEURAL, *PHASED, "--limit", "1400", "--chunk-size", "300", *extra]
    return eval_json(args, nproc, timeout=600)


@pytest.mark.slow
def test_two_gloo_ranks_give_the_one_process_bpb():
    one, two = _eval(1), _eval(2)
    assert one["config"]["world_size"] == 1 and two["config"]["world_size"] == 2
    assert abs(one["metrics"]["bpb"] - two["metrics"]["bpb"]) < 1e-6
    for r in (one, two):
        assert [p["after_documents"] for p in r["adapters"]["phased-ttt"]["phases"]] == [1, 3]


def test_presets_pr1855_and_pr2135(plugins):
    from pgolf_core.presets import preset_kwargs

    kw = preset_kwargs("pr1855", plugins)
    assert kw["experts"] == ["neural"] and kw["mixer"] is None and kw["adapters"] == ["phased-ttt"]
    assert kw["expert_options"] == {"neural": {"isolate_docs": "true"}}
    adapter = plugins.adapters.create("phased-ttt", _ctx(100), **kw["adapter_options"]["phased-ttt"])
    d = adapter.describe()
    assert (d["rank"], d["alpha"], d["lr"], d["chunk"], d["batch"], d["phases"]) == (80, 144.0, 1e-4, 48, 64,
                                                                                     [833, 1666, 2500])
    kw = preset_kwargs("pr2135", plugins, adapter_options={"phased-ttt": {"phases": "2,4"}})
    assert kw["mixer"] == "tilt" and kw["mixer_options"] == {"order": "16", "threshold": "0.8", "beta": "2.625"}
    assert kw["adapter_options"]["phased-ttt"]["phases"] == "2,4"  # the user's value wins


@pytest.mark.slow
def test_the_audit_passes_with_phases_inside_the_audited_stream():
    from pgolf_core.checks.audit import audit

    report = audit(["neural"], adapters=["phased-ttt"], limit=1200, chunk=400, random_tokens=1000,
                   expert_options={"neural": {"preset": "tiny", "init_seed": "0", "seq_len": "64",
                                              "isolate_docs": "true"}},
                   adapter_options={"phased-ttt": {"chunk": "16", "rank": "4", "lr": "1e-2", "batch": "2",
                                                   "phases": "1,2", "global_chunk": "256", "global_lr": "1e-2"}})
    assert report.passed, report.format_table()
    names = {(c.component, c.rule) for c in report.checks if c.status == "PASS"}
    assert ("configuration", "C1+C3 causal") in names and ("configuration", "C4 one pass") in names
