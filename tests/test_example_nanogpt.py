"""A user's own model (examples/pgolf-nanogpt, a plain GPT-2-style network) scored through the
causal-LM protocol with no change to pgolf-core: windows, audit, compression, TTT and LoRA-TTT."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.demo import demo_tokenizer_path, demo_tokens  # noqa: E402
from pgolf_core.errors import UsageError  # noqa: E402
from pgolf_core.evaluate import evaluate  # noqa: E402
from helpers.proof import PROOF_LEVEL  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pgolf-nanogpt"
if str(EXAMPLE) not in sys.path:  # installed by `make install-test`; a bare checkout still finds it
    sys.path.insert(0, str(EXAMPLE))

from pgolf_nanogpt.model import NanoConfig, NanoGPT, save  # noqa: E402

SEQ, STRIDE = 64, 16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = NanoGPT(NanoConfig(vocab_size=1024, context_length=SEQ, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the tiny init, so rows differ between contexts
    path = tmp_path_factory.mktemp("nano") / "nano.pt"
    save(model, path)
    return str(path), model.eval()


def options(path, **more):
    return {"neural": {"model": "pgolf_nanogpt:load", "checkpoint": path, "stride": str(STRIDE), **more}}


def tokens(n):
    return demo_tokens("val")[:n]


def reference_logp(model, toks):
    """Each target from the model's own logits over the sliding window that scores it (window k
    starts at k * STRIDE and scores its last STRIDE targets; the first scores all of its own)."""
    out = np.full(len(toks), np.nan)
    with torch.no_grad():
        for t in range(1, len(toks)):
            k = 0 if t <= SEQ else (t - SEQ - 1) // STRIDE + 1
            begin = k * STRIDE
            x = torch.from_numpy(toks[begin:t].astype(np.int64))[None]
            row = torch.log_softmax(model.logits(x)[0, -1].double(), -1)
            out[t] = float(row[int(toks[t])])
    return out[1:]


def test_a_user_model_is_scored_through_the_protocol_as_its_own_logits_say(checkpoint):
    path, model = checkpoint
    toks = tokens(400)
    res = evaluate(["neural"], tokens=toks, tokenizer=demo_tokenizer_path(), expert_options=options(path),
                   keep_logprobs=True)
    ref = reference_logp(model, toks)
    got = np.asarray(res.logprobs["mixture"])
    assert np.max(np.abs(got - ref)) < 1e-5
    described = res.config["experts"][0]["resolved"]
    assert described["config"]["model"].endswith("NanoGPT") and described["config"]["context_length"] == SEQ


def test_a_user_model_is_audited_and_proven(checkpoint):
    path, _ = checkpoint
    res = evaluate(["neural", "bigram"], mixer="logistic", tokens=tokens(700), tokenizer=demo_tokenizer_path(),
                   expert_options=options(path), audit=True, prove=True)
    assert res.level == PROOF_LEVEL, res.validity["violations"]


@pytest.mark.parametrize("adapter,opts", [("lora-ttt", {"targets": "qkv,attn.proj,fc", "rank": "2"}),
                                          ("ttt", {"trained_blocks": "1"})])
def test_a_user_model_is_adapted_by_test_time_training(checkpoint, adapter, opts):
    path, _ = checkpoint
    kw = dict(tokens=tokens(1500), tokenizer=demo_tokenizer_path(), expert_options=options(path),
              chunk_size=512)  # the adapter trains on chunks that end before the stream's last one
    base = evaluate(["neural"], **kw)
    adapted = evaluate(["neural"], adapters=[adapter], adapter_options={adapter: {"chunk_tokens": "512", **opts}},
                       audit=True, **kw)
    assert adapted.level == "audited", adapted.validity["violations"]
    assert adapted.bpb != base.bpb  # trained on the chunks already scored, so later targets change


def test_what_the_protocol_cannot_do_is_refused_clearly(checkpoint, tmp_path):
    path, _ = checkpoint
    kw = dict(tokens=tokens(100), tokenizer=demo_tokenizer_path())
    with pytest.raises(UsageError, match="scorer=cache needs the builtin GPT"):
        evaluate(["neural"], expert_options={"neural": {"model": "pgolf_nanogpt:load", "checkpoint": path,
                                                        "scorer": "cache"}}, **kw)
    with pytest.raises(UsageError, match="exceeds the context length"):
        evaluate(["neural"], expert_options=options(path, seq_len="128"), **kw)
    with pytest.raises(UsageError, match="package.module:factory"):
        evaluate(["neural"], expert_options={"neural": {"model": "pgolf_nanogpt"}}, **kw)
    with pytest.raises(UsageError, match="cannot import"):
        evaluate(["neural"], expert_options={"neural": {"model": "no_such_pkg:load"}}, **kw)
    with pytest.raises(UsageError, match="could not load"):
        evaluate(["neural"], expert_options={"neural": {"model": "pgolf_nanogpt:load",
                                                        "checkpoint": str(tmp_path / "missing.pt")}}, **kw)
    with pytest.raises(UsageError, match="does not follow the causal-LM protocol"):
        evaluate(["neural"], expert_options={"neural": {"model": "torch.nn:Identity"}}, **kw)
    with pytest.raises(UsageError, match="describe the builtin GPT"):
        evaluate(["neural"], expert_options={"neural": {"model": "pgolf_nanogpt:load", "checkpoint": path,
                                                        "preset": "tiny"}}, **kw)


class PeekingNanoGPT(NanoGPT):
    """A user model that lets each position see the whole input: it cheats on every target."""

    def logits(self, ids):
        out = super().logits(ids)
        peek = torch.nn.functional.one_hot(torch.roll(ids, -1, dims=1), self.vocab_size).float()
        peek[:, -1] = 0.0  # the last position has nothing after it to read
        return out + 50.0 * peek


class WrongWidthNanoGPT(NanoGPT):
    def logits(self, ids):
        return super().logits(ids)[..., :100]


def load_peeking(checkpoint=None, device="cpu"):
    from pgolf_nanogpt.model import load

    model = load(checkpoint, device)
    model.__class__ = PeekingNanoGPT
    return model


def load_wrong_width(checkpoint=None, device="cpu"):
    from pgolf_nanogpt.model import load

    model = load(checkpoint, device)
    model.__class__ = WrongWidthNanoGPT
    return model


def test_a_user_model_that_peeks_is_caught_by_the_audit_and_a_malformed_one_refused(checkpoint):
    path, _ = checkpoint
    kw = dict(tokens=tokens(600), tokenizer=demo_tokenizer_path())
    cheat = {"neural": {"model": f"{__name__}:load_peeking", "checkpoint": path, "stride": str(STRIDE)}}
    plain = evaluate(["neural"], expert_options=cheat, **kw)
    assert plain.level == "unchecked" and plain.bpb < 0.5  # a confident number that plain eval cannot vouch for
    audited = evaluate(["neural"], expert_options=cheat, audit=True, **kw)
    assert audited.level == "invalid" and any("C1" in v for v in audited.validity["violations"])
    bad = {"neural": {"model": f"{__name__}:load_wrong_width", "checkpoint": path, "stride": str(STRIDE)}}
    with pytest.raises(UsageError, match="logits of .* have shape"):
        evaluate(["neural"], expert_options=bad, **kw)
