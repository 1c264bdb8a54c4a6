"""The phased-TTT scorer: each document scored chunk by chunk with its own LoRA, one step per chunk.

It is called by the neural expert for every span (``Expert.delegate_scoring``) and returns the
log-probabilities (and rows) of the span's targets. Geometry, in a document's own coordinates (the
document starting at stream position ``d`` owns targets ``d + 1 ..`` up to and including the next
BOS, as ``pgolf_neural.scoring.plan_document_windows`` has it; doc-relative target ``j`` is stream
target ``d + j``):

- chunk ``c`` holds targets ``j`` in ``(c*C, (c+1)*C]``;
- it is scored by one window of inputs ``[w0, w0 + W)`` with ``W = min((c+1)*C, L)`` and
  ``w0 = (c+1)*C - W``: every target of the chunk sees at least ``L - C + 1`` tokens of its document.
  The window is placed from the chunk's *nominal* end, never from where the document ends, so a
  target's context never depends on a later token (the record's windows end at the document's end:
  a later BOS would have moved earlier targets' windows); inputs past what is known are zeros,
  which the causal model never reads for an earlier target;
- after the chunk is scored, if all its targets are scored and the document goes on, the document's
  LoRA takes one AdamW step on the mean loss of the chunk, from the scoring forward itself.

Batching: the complete documents of a span, between phase boundaries, go in batches of ``batch``
consecutive documents, scored in lockstep (one forward per chunk index for the whole batch, the
bank holding one LoRA per document; a document that ends leaves the bank). Under torchrun the
batches are shared across ranks and the rows gathered in order. The document left open at the end
of a span, and that document again in the next span, are scored alone by every rank: its LoRA and
optimizer state is then known everywhere without any message.

Determinism: every window's width is a function of its chunk index alone and every document starts
from the same LoRA, and a row of the CPU kernels does not depend on how many other rows share the
batch (checked in tests/test_ttt_phased.py), so the scores do not depend on the batch size, on the
number of ranks, nor on where the loop cuts its spans.

Global phases (``phases.py``): just before the first target of document ``N_k`` is scored (``N_k``
being a phase's count of scored documents), all base weights train on documents ``0 .. N_k - 1``,
every one of whose targets is scored.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from pgolf_core.errors import PgolfError

from .bank import Attached, Bank, lora_logits


@dataclass
class Piece:
    """A document's targets in one span: doc-relative ``(a, b]`` of the document at ``d``."""

    d: int
    a: int  # targets already scored before this span (the open document's carry)
    b: int  # last doc-relative target of this span
    complete: bool  # its closing BOS is scored in this span


@dataclass
class Carry:
    d: int
    scored: int
    bank: Bank


class DocumentTTT:
    def __init__(self, *, sites, a0, scale: float, chunk: int, seq_len: int, batch: int, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, grad_steps: int, bos: int,
                 phases, phase_runner, dtype=None):
        self.sites, self.a0, self.scale = sites, a0, scale
        self.C, self.L, self.batch = chunk, seq_len, batch
        self.opt = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        self.grad_steps, self.bos, self.dtype = grad_steps, bos, dtype
        self.trains = lr > 0 and grad_steps > 0
        self.phases, self.phase_runner = list(phases), phase_runner  # doc counts, increasing; phases.run
        self.docs_done = 0  # documents whose every target is scored
        self.phases_done = 0
        self.next_target = None  # the target the next span must start at (in-order check)
        self.carry: Optional[Carry] = None
        self.stats = {"documents": 0, "chunks": 0, "lora_steps": 0, "seconds_lora": 0.0, "seconds_phases": 0.0,
                      "phases": []}

    # ------------------------------------------------------------------ the span

    def __call__(self, model, tokens, start: int, end: int, distributions):
        self._check_order(start, f"[{start}, {end})")
        ids = np.asarray(tokens)
        pieces = self._pieces(ids, start, end)
        logp, rows = [], [] if distributions else None
        i = 0
        with _eval(model):
            while i < len(pieces):
                p = pieces[i]
                self._phase_if_due(model, ids, p.d)
                if p.a > 0 or not p.complete:  # the open document: alone, on every rank
                    group = [p]
                else:
                    group = [p]
                    room = self._room()
                    while (i + len(group) < len(pieces) and len(group) < room
                           and pieces[i + len(group)].a == 0 and pieces[i + len(group)].complete):
                        group.append(pieces[i + len(group)])
                t0 = time.perf_counter()
                lp, rw = (self._solo if len(group) == 1 and (p.a > 0 or not p.complete) else self._shared)(
                    model, ids, group, distributions)
                self.stats["seconds_lora"] += time.perf_counter() - t0
                logp.append(lp)
                if rows is not None:
                    rows.append(rw)
                self.docs_done += sum(q.complete for q in group)
                self.stats["documents"] += sum(q.a == 0 for q in group)  # documents begun
                i += len(group)
        self.next_target = end
        out = np.concatenate(logp) if logp else np.zeros(0)
        if rows is None:
            return out
        cat = torch.cat(rows) if rows else torch.zeros((0, model.vocab_size), dtype=torch.float64)
        if distributions == "log":
            return out, cat.to(torch.float32).numpy()
        return out, cat.exp().numpy()

    def _check_order(self, start: int, what: str) -> None:
        """Spans, rows and observations come in stream order, each starting where the last ended."""
        if self.next_target is not None and start != self.next_target:
            raise PgolfError(f"internal: phased-ttt scored up to target {self.next_target - 1}, then was asked "
                             f"for {what}")

    def _room(self) -> int:
        """How many more documents may be scored before the next phase must run."""
        if self.phases_done < len(self.phases):
            return self.phases[self.phases_done] - self.docs_done
        return 1 << 62

    def _phase_if_due(self, model, ids, d: int) -> None:
        if self.phases_done < len(self.phases) and self.docs_done >= self.phases[self.phases_done]:
            t0 = time.perf_counter()
            # documents 0 .. N-1 are the stream's targets 1 .. d: they end at the BOS (position d)
            # that opens document N, the one about to be scored
            info = self.phase_runner(model, ids, d)
            info = {"after_documents": self.docs_done, **info, "seconds": time.perf_counter() - t0}
            self.stats["phases"].append(info)
            self.stats["seconds_phases"] += info["seconds"]
            self.phases_done += 1

    def _pieces(self, ids: np.ndarray, start: int, end: int) -> list:
        from pgolf_neural.scoring import document_start

        d0 = document_start(ids, start, self.bos)
        starts = [d0] + [start + int(q) for q in np.flatnonzero(ids[start:end - 1] == self.bos)]
        if self.carry is not None:
            if self.carry.d != d0 or self.carry.scored != start - 1 - d0:
                raise PgolfError(f"internal: phased-ttt carries document {self.carry.d} scored to "
                                 f"{self.carry.scored}, but the span [{start}, {end}) continues {d0}")
        elif start - 1 != d0:
            raise PgolfError(f"internal: phased-ttt was asked for [{start}, {end}) inside document {d0} it never "
                             f"began")
        # A document is complete when its closing BOS is scored. The last one of a stream stays
        # "open" (its state is kept, to no use): the stream's length in the build context is not
        # the length of every stream these components score (the audit runs longer ones).
        out = []
        for k, d in enumerate(starts):
            nxt = starts[k + 1] if k + 1 < len(starts) else None
            a = max(start, d + 1) - 1 - d
            b = (nxt if nxt is not None else end - 1) - d
            if b > a:
                out.append(Piece(d, a, b, complete=nxt is not None))
        # the span's last piece ends with a BOS target: that document is complete too
        if out and not out[-1].complete and ids[out[-1].d + out[-1].b] == self.bos:
            out[-1].complete = True
        return out

    # ------------------------------------------------------------------ groups of documents

    def _solo(self, model, ids, group, distributions):
        p = group[0]
        if p.a > 0:
            bank = self.carry.bank
        else:
            bank = Bank.fresh(1, self.a0, self.sites)
        self.carry = None
        lp, rows, bank = self._lockstep(model, ids, group, bank, distributions)
        if not p.complete:
            self.carry = Carry(p.d, p.b, bank)
        return lp, rows

    def _shared(self, model, ids, group, distributions):
        from pgolf_core.run.distributed import gather_rows, share, world

        batches = [group[i:i + self.batch] for i in range(0, len(group), self.batch)]
        rank, size = world()
        counts = [sum(q.b - q.a for b in batches[slice(*share(len(batches), r, size))] for q in b)
                  for r in range(size)]
        lps, rws = [], []
        for b in batches[slice(*share(len(batches), rank, size))]:
            lp, rw, _ = self._lockstep(model, ids, b, Bank.fresh(len(b), self.a0, self.sites), distributions)
            lps.append(lp)
            rws.append(rw)
        lp = np.concatenate(lps) if lps else np.zeros(0)
        rw = None
        if distributions:
            rw = torch.cat(rws) if rws else torch.zeros((0, model.vocab_size), dtype=torch.float64)
        if size > 1:
            lp = gather_rows(torch.from_numpy(lp), counts).numpy()
            if rw is not None:
                rw = gather_rows(rw, counts)
        return lp, rw

    def _lockstep(self, model, ids, pieces, bank: Bank, distributions, step: bool = True):
        """Score ``pieces`` (all at the same chunk index) chunk by chunk, stepping each one's LoRA
        (``step=False``: rows only, the bank and the counters left as they are).

        Returns the log-probabilities of their targets (piece after piece), their float64 log rows
        (or None) and the bank of the piece left open (scored alone), else None."""
        C, L = self.C, self.L
        device = next(model.parameters()).device
        chunk0 = {p.a // C for p in pieces}
        if len(chunk0) != 1:
            raise PgolfError("internal: a lockstep batch of documents at different chunks")
        c = chunk0.pop()
        live = list(range(len(pieces)))  # slots still scoring, in bank order
        open_bank = None
        got_lp = [[] for _ in pieces]
        got_rows = [[] for _ in pieces]
        while live:
            W = min((c + 1) * C, L)
            w0 = (c + 1) * C - W
            x = np.zeros((len(live), W), dtype=np.int64)
            y = np.zeros((len(live), C), dtype=np.int64)
            train = np.zeros(len(live), dtype=bool)
            for s, k in enumerate(live):
                p = pieces[k]
                hi = min(w0 + W, p.b)  # inputs known and inside the document: [w0, hi)
                x[s, :hi - w0] = ids[p.d + w0: p.d + hi]
                top = min((c + 1) * C, p.b)
                y[s, :top - c * C] = ids[p.d + c * C + 1: p.d + top + 1]
                full = (c + 1) * C <= p.b
                goes_on = not (p.complete and p.b == (c + 1) * C)
                train[s] = step and self.trains and full and goes_on
            xt = torch.from_numpy(x).to(device)
            yt = torch.from_numpy(y).to(device)
            mask = torch.from_numpy(train)
            logits = self._forward(model, xt, bank, W)
            logsm = F.log_softmax(logits.detach().double(), dim=-1)  # (n, C, V)
            for s, k in enumerate(live):
                p = pieces[k]
                lo, top = max(p.a, c * C), min((c + 1) * C, p.b)
                r = logsm[s, lo - c * C: top - c * C]
                got_lp[k].append(r.gather(1, yt[s, lo - c * C: top - c * C, None])[:, 0].cpu().numpy())
                if distributions:
                    got_rows[k].append(r.cpu())
            self.stats["chunks"] += len(live) if step else 0
            if train.any():
                for g in range(self.grad_steps):
                    if g > 0:
                        logits = self._forward(model, xt, bank, W)
                    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt.reshape(-1),
                                          reduction="none").view(len(live), C).mean(1)
                    # each document's own mean chunk loss: slots never mix, whatever the batch
                    loss = (nll * mask.to(nll.device, nll.dtype)).sum()
                    grads = torch.autograd.grad(loss, bank.params())
                    bank.adamw(grads, mask, **self.opt)
                    self.stats["lora_steps"] += int(train.sum())
            del logits
            c += 1
            keep = [s for s, k in enumerate(live) if c * C < pieces[k].b]
            if len(keep) < len(live):
                left = [s for s, k in enumerate(live) if s not in keep and not pieces[k].complete]
                if left:  # an open document is scored alone: its state is what the next span continues
                    open_bank = bank.select(left)
                bank = bank.select(keep)
                live = [live[s] for s in keep]
        lp = np.concatenate([np.concatenate(v) if v else np.zeros(0) for v in got_lp])
        rows = None
        if distributions:
            rows = torch.cat([torch.cat(v) for v in got_rows if v])
        return lp, rows, open_bank

    def _forward(self, model, xt, bank: Bank, W: int):
        from pgolf_neural.scoring import autocast

        for p in bank.params():
            p.requires_grad_(self.trains)
        # grad mode whenever the adapter trains at all, so a chunk's rows are computed the same way
        # whether or not its document goes on (which a later token decides)
        with torch.set_grad_enabled(self.trains), autocast(xt.device, self.dtype), \
                Attached(model, self.sites, bank, self.scale) as att:
            return lora_logits(model, xt, slice(W - self.C, W), att, self.L)

    # ------------------------------------------------------------------ target by target (the coder)

    decodable = True  # the neural expert's predict/observe go through predict_row/observe below

    def predict_row(self, model, tokens, t: int) -> torch.Tensor:
        """The float64 log row of target ``t`` from ``tokens[:t]``: the window and LoRA that a span
        starting at ``t`` would score it with. Nothing changes (a phase due before ``t``'s document
        ran when its last document's closing BOS was observed)."""
        self._check_order(t, f"the row of target {t}")
        if self.phases_done < len(self.phases) and self.docs_done >= self.phases[self.phases_done]:
            raise PgolfError(f"internal: phased-ttt has a phase due at target {t} that observe() did not run")
        ids = np.zeros(t + 1, dtype=np.int64)
        ids[:t] = tokens[:t]  # target t is unknown: a placeholder no input of its window reads
        (p,) = self._pieces(ids, t, t + 1)
        with _eval(model):
            bank = self.carry.bank if p.a > 0 else Bank.fresh(1, self.a0, self.sites)
            _, rows, _ = self._lockstep(model, ids, [p], bank, True, step=False)
        return rows[0]

    def observe(self, model, tokens, t: int) -> None:
        """Absorb target ``t`` (``tokens[:t + 1]``): exactly the span ``[t, t + 1)``, whose steps (the
        document's LoRA at a chunk's end, a new document's fresh LoRA) are what every later row of
        the stream is scored with, in the evaluation and in the decoder alike. A phase due after
        the document that ``t`` closes runs now, so that ``predict_row`` changes nothing: the weights
        of the next document's first row are the ones a span would give it (the span runs the phase
        just before that row; at the very end of a stream this runs one phase no row uses)."""
        self._check_order(t, f"target {t} to observe")
        ids = np.asarray(tokens[:t + 1])
        (p,) = self._pieces(ids, t, t + 1)
        # the LoRA steps after a full chunk of a document that goes on (``_lockstep``'s rule for one
        # target); any other target needs the span's bookkeeping only, not its forward
        if self.trains and p.b % self.C == 0 and not p.complete:
            self(model, ids, t, t + 1, None)
        else:
            self._absorb(p)
        if int(ids[t]) == self.bos:
            with _eval(model):
                self._phase_if_due(model, ids, t)

    def _absorb(self, p: Piece) -> None:
        """What the one-target span of ``p`` leaves behind when it takes no step (``_solo`` /
        ``_shared`` and ``_lockstep`` for one target): a document begun gets its fresh LoRA, an
        open one keeps its own, a closed one leaves nothing."""
        bank = self.carry.bank if p.a > 0 else Bank.fresh(1, self.a0, self.sites)
        self.carry = None if p.complete else Carry(p.d, p.b, bank)
        self.stats["chunks"] += 1
        self.stats["documents"] += p.a == 0
        self.docs_done += p.complete
        self.next_target = p.d + p.b + 1

    # ------------------------------------------------------------------ state

    def fingerprint(self) -> bytes:
        h = hashlib.sha256()
        h.update(np.array([self.docs_done, self.phases_done, -1 if self.next_target is None else self.next_target],
                          dtype=np.int64).tobytes())
        if self.carry is not None:
            h.update(np.array([self.carry.d, self.carry.scored], dtype=np.int64).tobytes())
            self.carry.bank.digest_into(h)
        return h.digest()


class _eval:
    """The model in eval mode for the span (training-only behaviour such as QAT's fake quantization
    stays off, for the LoRA steps and the phases too), back to its previous mode after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)
