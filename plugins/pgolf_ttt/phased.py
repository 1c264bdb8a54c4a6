"""``phased-ttt``: the field's phased test-time training (#1610 -> #1626 -> #1736 -> #1855) as an adapter.

Two kinds of training, both score-first:

- per document, a rank-r LoRA (on q/k/v/o/mlp/head, ``bank.py``) trained on chunks of the document
  (48 targets by default): a chunk is scored, then the document's LoRA takes one AdamW step on it;
  every document starts again from the same LoRA; documents are batched, one LoRA per document;
- global phases: when given counts of documents are scored (the record: 833, 1666, 2500), SGD on all
  base weights over every document scored so far (``phases.py``).

Where it lives (the decision). The loop's contract is coarse: an adapter runs after a chunk, and an
expert scores a whole span with fixed weights. The per-document LoRA changes the weights every 48
targets, inside a document, which is finer than any chunk the loop could use (and a loop chunk of 48
targets would still put one LoRA on every document the chunk touches). So the adapter does not train
in ``after_chunk``; at ``setup`` it hands the expert a scorer (``Expert.delegate_scoring``), and the
expert's ``score``/``distributions`` run it (``docttt.py``). The scorer is bound by the expert's own
contract: the row of target t comes from the tokens before t and from LoRA and base weights trained
on targets before t only, exactly as an n-gram expert counts within a span. The global phases run
inside the scorer too, right before the first target of the document that follows the phase's
count, so the result does not depend on the loop's chunk size, on the batch size or on the number of
ranks. ``after_chunk`` only checks that every scored span went through the scorer.

Legality, as checked by ``tests/test_ttt_phased.py`` and ``--audit``: no token is trained on before it
is scored (C3); a chunk's window is placed from its nominal end, so no target's context depends on a
later token (C1); the LoRA of a document never sees another document; a phase trains only on
documents whose every target is scored.

The compressed round trip (``--prove``): the coder and the decoder predict one target at a time, so
the scorer also works target by target (``DocumentTTT.predict_row``, ``observe``): a target's row is
the one a span starting there would give (the scores do not depend on where spans are cut, above),
and observing it is the one-target span itself, with its LoRA step at a chunk's end and a phase
before the next document. Both sides make the same calls on the same tokens, so they agree bit for
bit; the cost is a window's forward per target (and one more where a chunk's LoRA steps), on
each side, so proofs of long streams are slow.

Differences from the record, on purpose: documents are taken in stream order (the record sorts them
by length and lets ranks claim batches first-come, which makes its result depend on timing); every
document's LoRA starts from the same A (the record keeps A warm across documents within a phase,
which would make a document's score depend on which documents shared its slot before); a chunk's
window is placed from the chunk's nominal end (above); a phase runs exactly after its count of
documents rather than after the batch that reaches it.
"""

from __future__ import annotations

import numpy as np

from pgolf_core.api import Adapter
from pgolf_core.errors import UsageError

from .base import adapted_model


class PhasedTTTAdapter(Adapter):
    decodable = True  # the scorer replays its steps target by target (docttt.DocumentTTT.predict_row/observe)

    def __init__(self, ctx, *, target, lora, rank, alpha, lr, beta1, beta2, eps, weight_decay, chunk, seq_len,
                 batch, grad_steps, phases, global_lr, global_momentum, global_chunk, global_seq_len, global_batch,
                 global_epochs, global_clip, bos):
        self.ctx, self.target, self.lora, self.rank, self.alpha = ctx, target, lora, rank, alpha
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = lr, beta1, beta2, eps, weight_decay
        self.chunk, self.seq_len, self.batch, self.grad_steps = chunk, seq_len, batch, grad_steps
        self.phases = phases
        self.global_opts = dict(lr=global_lr, momentum=global_momentum, chunk_tokens=global_chunk,
                                seq_len=global_seq_len, batch=global_batch, epochs=global_epochs, grad_clip=global_clip)
        self.bos = bos
        self.scorer = None
        self.seen_end = 1

    def setup(self, experts: dict) -> None:
        from .bank import find_sites, initial_a
        from .docttt import DocumentTTT
        from .phases import GlobalPhase

        who = f"adapter {self.name or 'phased-ttt'!r}"
        expert, model, expert_seq_len = adapted_model(experts, self.target, who)
        described = expert.describe()
        if not described.get("isolate_docs"):
            raise UsageError(f"{who} scores each document on its own: give expert {self.target!r} "
                             f"isolate_docs=true (--expert-opt {self.target}.isolate_docs=true)")
        if float(described.get("temperature", 1.0)) != 1.0:
            raise UsageError(f"{who}: expert {self.target!r}'s temperature is not applied by the phased scorer; "
                             f"drop its temperature option")
        seq_len = self.seq_len or int(expert_seq_len or 0)
        if self.chunk > seq_len:
            raise UsageError(f"{who}: chunk={self.chunk} exceeds the window length seq_len={seq_len}")
        self.seq_len = seq_len
        sites = find_sites(model, self.lora, who)
        param = next(model.parameters())
        for p in model.parameters():  # the LoRA steps differentiate the bank only; phases switch these on
            p.requires_grad_(False)
        dtype = getattr(expert, "dtype", None)
        self.global_opts["seq_len"] = self.global_opts["seq_len"] or seq_len
        if self.phases and self.global_opts["chunk_tokens"] < self.global_opts["seq_len"]:
            raise UsageError(f"{who}: global_chunk ({self.global_opts['chunk_tokens']}) must hold at least one "
                             f"sequence of {self.global_opts['seq_len']} targets, or the phases train nothing")
        phase = GlobalPhase(**self.global_opts, bos=self.bos)
        self.scorer = DocumentTTT(
            sites=sites, a0=initial_a(sites, self.rank, self.ctx.seed, param.device, param.dtype),
            scale=self.alpha / self.rank, chunk=self.chunk, seq_len=seq_len, batch=self.batch, lr=self.lr,
            beta1=self.beta1, beta2=self.beta2, eps=self.eps, weight_decay=self.weight_decay,
            grad_steps=self.grad_steps, bos=self.bos, phases=self.phases, phase_runner=phase,
            dtype=dtype)
        expert.delegate_scoring(self.scorer)
        self.expert = expert

    def after_chunk(self, tokens: np.ndarray, start: int, end: int, final: bool) -> None:
        """Nothing to train here (module docstring): the scorer did it while scoring. It checks that
        the expert's spans went through the scorer, in order."""
        if self.scorer is None:
            raise RuntimeError(f"adapter {self.name!r} was not set up with the run's experts")
        if start != self.seen_end or self.scorer.next_target != end:
            raise RuntimeError(f"adapter {self.name!r}: the expert's scorer is at target {self.scorer.next_target}, "
                               f"the loop ended the chunk [{start}, {end})")
        self.seen_end = end

    def state_fingerprint(self):
        return None if self.scorer is None else self.scorer.fingerprint()

    def stats(self) -> dict:
        return {} if self.scorer is None else dict(self.scorer.stats)

    def describe(self) -> dict:
        return {"target": self.target, "lora": list(self.lora), "rank": self.rank, "alpha": self.alpha, "lr": self.lr,
                "betas": [self.beta1, self.beta2], "eps": self.eps, "weight_decay": self.weight_decay,
                "chunk": self.chunk, "seq_len": self.seq_len, "batch": self.batch, "grad_steps": self.grad_steps,
                "phases": list(self.phases), "global": dict(self.global_opts), "bos": self.bos}
