"""Sliding-window scoring of a token stream with the GPT.

Windows are placed by absolute stream position, independent of how the stream is cut into spans:
window k reads the tokens from ``k * stride`` on (at most ``seq_len`` of them) and scores

- window 0: targets ``1 .. seq_len``,
- window k >= 1: the last ``stride`` targets it can see, ``k*stride + seq_len - stride + 1 ..
  k*stride + seq_len``.

So every target t >= 1 belongs to exactly one window, is predicted from at least
``min(t, seq_len - stride + 1)`` and at most ``seq_len`` previous tokens, and never from tokens
``>= t``. A span ``[start, end)`` is scored by the windows that own its targets; a window whose
targets are split between two spans is run once for each (the model is causal, so the inputs after a
span's last target are simply left out and the result is the same). The RoPE base is always that of a
``seq_len`` window, whatever the actual input length, for the same reason.

``plan_windows`` lists the windows of a span and ``score_windows`` scores any list of them, so a
distributed evaluator can give each rank a share of the windows and gather the results in order.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F

from pgolf_core.causal_lm import has_projection
from pgolf_core.errors import UsageError

DEFAULT_SEQ_LEN = 2048
DEFAULT_STRIDE = 64
DEFAULT_BATCH = 32


class Window(NamedTuple):
    begin: int  # stream position of the window's first input token
    lo: int  # first target this window scores
    hi: int  # one past the last target it scores


def check_geometry(seq_len: int, stride: int, batch: int = 1) -> None:
    if not (isinstance(seq_len, int) and seq_len >= 1):
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if not (isinstance(stride, int) and 1 <= stride <= seq_len):
        raise ValueError(f"stride must be an integer in [1, seq_len={seq_len}], got {stride!r}")
    if not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be a positive integer, got {batch!r}")


def window_index(t: int, seq_len: int, stride: int) -> int:
    """Index of the window that scores target t (t >= 1)."""
    return 0 if t <= seq_len else -(-(t - seq_len) // stride)


def window_targets(k: int, seq_len: int, stride: int) -> tuple[int, int]:
    """Targets ``[lo, hi)`` that window k scores over the whole stream."""
    hi = k * stride + seq_len + 1
    return (1 if k == 0 else hi - stride), hi


def plan_windows(start: int, end: int, seq_len: int = DEFAULT_SEQ_LEN,
                 stride: int = DEFAULT_STRIDE) -> list[Window]:
    """The windows that score targets ``[start, end)``, in stream order, clipped to the span."""
    check_geometry(seq_len, stride)
    if not 1 <= start <= end:
        raise ValueError(f"span must satisfy 1 <= start <= end, got [{start}, {end})")
    if start == end:
        return []
    windows = []
    for k in range(window_index(start, seq_len, stride), window_index(end - 1, seq_len, stride) + 1):
        lo, hi = window_targets(k, seq_len, stride)
        windows.append(Window(k * stride, max(lo, start), min(hi, end)))
    return windows


def document_start(tokens: np.ndarray, t: int, bos: int) -> int:
    """Where the document of target t begins: its input ``t - 1``'s last BOS at or before it (0 if
    none). A BOS target ends the document before it and is predicted from that document."""
    ids, hi, step = np.asarray(tokens), t, 4096
    while hi > 0:  # backwards, a slice at a time: documents are short next to the stream
        lo = max(0, hi - step)
        hits = np.flatnonzero(ids[lo:hi] == bos)
        if hits.size:
            return lo + int(hits[-1])
        hi, step = lo, step * 2
    return 0


def plan_document_windows(tokens: np.ndarray, start: int, end: int, seq_len: int, stride: int,
                          bos: int) -> list[Window]:
    """Document isolation: the windows of ``plan_windows`` laid out inside each document, from its
    own start, so no window reads a token of another document.

    A document starting at position d (a BOS, or the stream's start) owns the targets ``d + 1``
    up to and including the next BOS; they are planned as targets ``1 ..`` of a stream that begins
    at d. Windows of different documents are independent and batch together."""
    ids = np.asarray(tokens)
    first = document_start(ids, start, bos)
    starts = first + np.flatnonzero(ids[first: max(end - 1, first)] == bos)
    starts = np.union1d([first], starts).astype(np.int64)  # document starts among the span's inputs
    windows, t = [], start
    while t < end:
        i = int(np.searchsorted(starts, t - 1, side="right")) - 1
        d = int(starts[i])
        stop = min(end, int(starts[i + 1]) + 1) if i + 1 < len(starts) else end
        windows += [Window(d + w.begin, d + w.lo, d + w.hi) for w in plan_windows(t - d, stop - d, seq_len, stride)]
        t = stop
    return windows


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """bf16 autocast on CUDA unless float32 is asked for; plain float32 elsewhere."""
    if device.type == "cuda" and dtype in (None, torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=dtype or torch.bfloat16)
    if dtype not in (None, torch.float32):
        raise ValueError(f"dtype {dtype} is only supported on CUDA; use float32 on {device.type}")
    return contextlib.nullcontext()


def adaptive_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The seed's entropy-adaptive temperature (its ``TTT_TEMPERATURE``): each row's logits are
    divided by T = 1 - (1 - temperature) * (1 - H / ln V), clamped to [0.9, 1.05], where H is the
    entropy of the row's own softmax. Confident rows (low H) are sharpened most. It reads only the
    row itself, so it keeps scoring causal, and the softmax after it keeps every row normalized.
    ``temperature=1`` is the identity."""
    if temperature == 1.0:
        return logits
    p = torch.softmax(logits.float(), dim=-1)
    entropy = -(p * (p + 1e-10).log()).sum(-1)
    t = (1.0 - (1.0 - temperature) * (1.0 - entropy / math.log(logits.size(-1)))).clamp(min=0.9, max=1.05)
    return logits.float() / t.unsqueeze(-1)


def _run_batch(model, ids: np.ndarray, batch: list[Window], seq_len: int, device, dtype, timers=None,
               temperature: float = 1.0) -> list:
    """float64 log-softmax rows of each window's targets: a list of (hi - lo, V) tensors.

    ``timers`` (a dict) gets the seconds of the network's forward ("forward") and of the
    log-softmax ("softmax"), on the CPU clock of the calling thread's view (CUDA is asynchronous:
    there the split is only indicative)."""
    t0 = time.perf_counter()
    width = max(w.hi - 1 - w.begin for w in batch)  # inputs up to the last target's predecessor
    x = np.zeros((len(batch), width), dtype=np.int64)  # right padding cannot affect earlier positions
    for i, w in enumerate(batch):
        x[i, : w.hi - 1 - w.begin] = ids[w.begin: w.hi - 1]
    with autocast(device, dtype):
        if has_projection(model):  # the builtin GPT: project only the rows scored
            h = model.hidden(torch.from_numpy(x).to(device), rope_len=seq_len)  # (b, width, C)
            rows = torch.cat([h[i, w.lo - 1 - w.begin: w.hi - 1 - w.begin] for i, w in enumerate(batch)])
            logits = model.head(rows)
        else:  # any causal LM (pgolf_core.causal_lm): its logits at every position, then the rows
            out = model.logits(torch.from_numpy(x).to(device))  # (b, width, V)
            if tuple(out.shape) != (len(batch), width, model.vocab_size):
                raise UsageError(f"model {type(model).__name__}: logits of {tuple(x.shape)} ids have shape "
                                 f"{tuple(out.shape)}, expected {(len(batch), width, model.vocab_size)} "
                                 f"(pgolf_core.causal_lm)")
            logits = torch.cat([out[i, w.lo - 1 - w.begin: w.hi - 1 - w.begin] for i, w in enumerate(batch)]).float()
        logits = adaptive_temperature(logits, temperature)  # (n, V) float32
    t1 = time.perf_counter()
    logp = F.log_softmax(logits.double(), dim=-1)
    if timers is not None:
        timers["forward"] = timers.get("forward", 0.0) + t1 - t0
        timers["softmax"] = timers.get("softmax", 0.0) + time.perf_counter() - t1
    return list(torch.split(logp, [w.hi - w.lo for w in batch]))


def score_windows(model, tokens: np.ndarray, windows: list[Window], *, seq_len: int = DEFAULT_SEQ_LEN,
                  batch: int = DEFAULT_BATCH, device=None, dtype: Optional[torch.dtype] = None,
                  distributions: bool = False, timers: Optional[dict] = None, temperature: float = 1.0):
    """Score a list of windows (any subset of a plan, in any order).

    Returns the log-probs of their targets (float64, concatenated in list order) and, with
    ``distributions=True``, also the full float64 distributions ``(n, V)`` whose rows sum to 1
    (``distributions="log"``: their logs, float32, for mixers that mix in log space).
    ``tokens`` must hold the stream at least up to ``max(w.hi)`` (exclusive); only tokens before
    each target are read to predict it. ``timers`` (a dict) accumulates the seconds of the forward,
    the softmax and the row copies (``_run_batch``, ``_fill``).
    """
    device = _device_of(model, device)
    ids = np.asarray(tokens)
    n = sum(w.hi - w.lo for w in windows)
    logp = np.empty(n, dtype=np.float64)
    rows_dtype = np.float32 if distributions == "log" else np.float64
    dists = np.empty((n, model.vocab_size), dtype=rows_dtype) if distributions else None
    with _eval_mode(model):
        _fill(model, ids, windows, seq_len, batch, device, dtype, logp, dists, timers, temperature,
              log_rows=distributions == "log")
    return (logp, dists) if distributions else logp


def predict_row(model, tokens: np.ndarray, t: int, *, seq_len: int = DEFAULT_SEQ_LEN, stride: int = DEFAULT_STRIDE,
                device=None, dtype: Optional[torch.dtype] = None, bos: Optional[int] = None,
                temperature: float = 1.0) -> np.ndarray:
    """The float64 distribution of target ``t`` from ``tokens[:t]`` alone (the decoder's view).

    It runs the window that scores ``t`` in the sliding-window plan, whole (``seq_len`` inputs, every
    target of the window projected by the head, as a batch of one), with the inputs from position
    ``t`` on, not known yet, set to token 0. The model is causal, so the rows up to ``t`` are the
    plan's; the rows after it are discarded. Running the window whole rather than only up to ``t``
    keeps the kernels' shapes those of the plan (a one-row head product rounds differently). With
    ``bos`` set the window is the one ``plan_document_windows`` gives t, inside its document."""
    check_geometry(seq_len, stride)
    if not 1 <= t <= len(tokens):
        raise ValueError(f"target {t} needs the {t} tokens before it, got {len(tokens)}")
    d = 0 if bos is None else document_start(tokens, t, bos)  # windows start at the document's start
    k = window_index(t - d, seq_len, stride)
    begin = d + k * stride
    lo, hi = (d + x for x in window_targets(k, seq_len, stride))
    inputs = np.zeros(seq_len, dtype=np.int64)  # the window's inputs, in its own coordinates
    inputs[: t - begin] = tokens[begin:t]  # known; the rest stays 0 (placeholder)
    with _eval_mode(model), torch.no_grad():
        rows = _run_batch(model, inputs, [Window(0, lo - begin, hi - begin)], seq_len, _device_of(model, device),
                          dtype, temperature=temperature)[0]
        return rows[t - lo].exp().cpu().numpy()


def _device_of(model, device) -> torch.device:
    return torch.device(device) if device is not None else next(model.parameters()).device


@contextlib.contextmanager
def _eval_mode(model):
    """The model in eval mode for the block (training-only behaviour, e.g. fake quantization during
    QAT, stays off), back to its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _fill(model, ids, windows, seq_len, batch, device, dtype, logp, dists, timers=None, temperature=1.0,
          log_rows: bool = False) -> None:
    """Write each window's target log-probs (and distributions, or their logs with ``log_rows``)
    into the preallocated outputs; ``timers`` also gets the seconds of copying them out ("rows":
    gather, exp, to NumPy)."""
    pos = 0
    with torch.no_grad():  # not inference_mode: a TTT adapter trains this model between spans
        for b0 in range(0, len(windows), batch):
            chunk = windows[b0: b0 + batch]
            for w, rows in zip(chunk, _run_batch(model, ids, chunk, seq_len, device, dtype, timers, temperature)):
                t0 = time.perf_counter()
                m = w.hi - w.lo
                targets = torch.from_numpy(ids[w.lo: w.hi].astype(np.int64)).to(rows.device)
                logp[pos: pos + m] = rows.gather(1, targets[:, None])[:, 0].cpu().numpy()
                if dists is not None:
                    dists[pos: pos + m] = (rows if log_rows else rows.exp()).cpu().numpy()
                pos += m
                if timers is not None:
                    timers["rows"] = timers.get("rows", 0.0) + time.perf_counter() - t0


def score_span(model, tokens: np.ndarray, start: int, end: int, *, seq_len: int = DEFAULT_SEQ_LEN,
               stride: int = DEFAULT_STRIDE, batch: int = DEFAULT_BATCH, device=None,
               dtype: Optional[torch.dtype] = None, distributions: bool = False, split: bool = False,
               timers: Optional[dict] = None, bos: Optional[int] = None, temperature: float = 1.0):
    """Log-probs (and optionally distributions) of targets ``[start, end)`` of ``tokens``; with
    ``bos`` set, each document gets its own windows (``plan_document_windows``).

    ``split=True`` shares the windows across the ranks of the torch.distributed process group
    (every rank must make the same call) and gives every rank the whole result.
    """
    check_geometry(seq_len, stride, batch)
    if len(tokens) < end:
        raise ValueError(f"tokens has {len(tokens)} entries but the span ends at {end}")
    windows = (plan_windows(start, end, seq_len, stride) if bos is None
               else plan_document_windows(tokens, start, end, seq_len, stride, bos))
    score = score_windows_split if split else score_windows
    return score(model, tokens, windows, seq_len=seq_len, batch=batch, device=device, dtype=dtype,
                 distributions=distributions, timers=timers, temperature=temperature)


def score_windows_split(model, tokens: np.ndarray, windows: list[Window], *, seq_len: int, batch: int,
                        device=None, dtype: Optional[torch.dtype] = None, distributions: bool = False,
                        timers: Optional[dict] = None, temperature: float = 1.0):
    """``score_windows`` with the windows shared across the torch.distributed ranks.

    Rank r scores the contiguous share ``pgolf_core.run.distributed.share(len(windows), r, world)``;
    the rows are gathered in rank order, which is stream order, so every rank returns what one
    process would (up to float rounding: a window's batch, hence its padded width, may differ).
    """
    from pgolf_core.run.distributed import gather_rows, share, world

    rank, size = world()
    lo, hi = share(len(windows), rank, size)
    counts = [sum(w.hi - w.lo for w in windows[slice(*share(len(windows), r, size))]) for r in range(size)]
    out = score_windows(model, tokens, windows[lo:hi], seq_len=seq_len, batch=batch, device=device,
                        dtype=dtype, distributions=distributions, timers=timers, temperature=temperature)
    logp, dists = out if distributions else (out, None)
    logp = gather_rows(torch.from_numpy(logp), counts).numpy()
    if not distributions:
        return logp
    return logp, gather_rows(torch.from_numpy(dists), counts).numpy()
