"""The ``neural`` expert: the GPT scored with sliding windows (``scorer=windows``, the seed's way)
or with the cached scorer (``scorer=cache``, each position computed once; ``cache.py``).

With windows the expert holds no state built from the stream; its only mutable state is the
network's parameters, which a test-time-training adapter may change between spans (through
``.model``). The cached scorer adds the keys and values of the last ``seq_len - 1`` positions,
built from scored tokens only. The fingerprint digests the parameters, and ``reset`` restores the
weights it was built with and empties the cache.

``isolate_docs`` (document isolation): attention never crosses a BOS token and the previous-token
paths restart at each BOS, with either scorer.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pgolf_core.api import Expert
from pgolf_core.causal_lm import check_causal_lm
from pgolf_core.errors import DataError, UsageError

from .config import GPTConfig
from .cache import CachedScorer
from .model import GPT
from .scoring import predict_row, score_span

SCORERS = ("windows", "cache")


class NeuralExpert(Expert):
    """Any causal language model (``pgolf_core.causal_lm``: the builtin GPT or a user's model),
    scored by sliding windows or, for the builtin GPT, by the cached scorer."""

    def __init__(self, model: GPT, *, seq_len: int, stride: int, batch: int, device: torch.device,
                 dtype: Optional[torch.dtype], source: str, dist_dtype: str = "float64", scorer: str = "windows",
                 block: Optional[int] = None, bos: Optional[int] = None, temperature: float = 1.0):
        check_causal_lm(model, f"expert 'neural': {source}")
        super().__init__(model.vocab_size)
        if scorer not in SCORERS:
            raise UsageError(f"expert 'neural': scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
        if scorer == "cache" and not isinstance(model, GPT):
            raise UsageError(f"expert 'neural': scorer=cache needs the builtin GPT's incremental attention; "
                             f"{source} ({type(model).__name__}) is scored with scorer=windows")
        self.model = model.to(device)
        self.seq_len, self.stride, self.batch = seq_len, stride, batch
        self.scorer, self.bos = scorer, bos  # bos: None = documents are not isolated
        self.block = (block or seq_len) if scorer == "cache" else None
        self.temperature = float(temperature)  # the seed's entropy-adaptive temperature (1: off)
        self.cache = CachedScorer(seq_len, self.block, bos, self.temperature) if scorer == "cache" else None
        self.device, self.dtype, self.source = device, dtype, source
        self.dist_dtype = np.dtype(dist_dtype)  # of the rows distributions() returns
        self._initial = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.delegate = None  # an adapter's scorer (Expert.delegate_scoring), when one took the scoring over
        self.timers: dict = {}  # seconds of the forward, the softmax and the row copies (stats())

    def _check_tokens(self, tokens: np.ndarray, start: int, end: int) -> None:
        if len(tokens) < end or not 1 <= start <= end:
            raise UsageError(f"expert {self.name!r}: bad span [{start}, {end}) of {len(tokens)} tokens")
        seen = tokens[max(0, start - self.seq_len): end]
        if seen.size and int(seen.max()) >= self.vocab_size:
            raise DataError(f"expert {self.name!r}: token id {int(seen.max())} in positions "
                            f"< {end} is outside the model's vocabulary of {self.vocab_size}")

    def _score(self, tokens, start, end, distributions: bool):
        self._check_tokens(tokens, start, end)
        if self.delegate is not None:
            return self.delegate(self.model, tokens, start, end, distributions)
        if self.cache is not None:
            return self._score_cached(tokens, start, end, distributions)
        return score_span(self.model, tokens, start, end, seq_len=self.seq_len, stride=self.stride,
                          batch=self.batch, device=self.device, dtype=self.dtype,
                          distributions=distributions, split=_distributed(), timers=self.timers, bos=self.bos,
                          temperature=self.temperature)

    def _score_cached(self, tokens, start, end, distributions: bool):
        """The cached scorer walks the stream in order, so it is not split across ranks: under
        torchrun every rank computes the same rows (no speed-up, same result)."""
        was_training = self.model.training
        self.model.eval()
        try:
            logp, rows = self.cache.rows(self.model, tokens, start, end, self.device, self.dtype, self.timers,
                                         targets=tokens[start:end] if len(tokens) >= end else None,
                                         distributions=distributions)
        finally:
            self.model.train(was_training)
        t0 = time.perf_counter()
        dists = None
        if distributions == "log":
            dists = rows.to(torch.float32).numpy()
        elif distributions:
            dists = rows.exp().numpy()
        self.timers["rows"] = self.timers.get("rows", 0.0) + time.perf_counter() - t0
        return (logp, dists) if distributions else logp

    def score(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        return self._score(tokens, start, end, distributions=False)

    def distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        rows = self._score(tokens, start, end, distributions=True)[1]  # float64
        return rows if rows.dtype == self.dist_dtype else rows.astype(self.dist_dtype)

    def log_distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """The log-softmax rows themselves, float32: no exp here and no log in the mixer."""
        return self._score(tokens, start, end, distributions="log")[1]

    def predict(self, tokens: np.ndarray, t: int) -> np.ndarray:
        """Row of target ``t`` from ``tokens[:t]``.

        Windows: the sliding window that scores ``t``, whole, as a batch of one, its positions from
        ``t`` on set to token 0 (``scoring.predict_row``). Nothing is cached between calls: reusing a
        window's earlier positions would change the kernels' shapes (and so the rounding) away from
        the batch path's. Cached scorer: the block holding input ``t - 1``, whole, with the inputs
        from ``t`` on set to 0; its keys and values are kept once the block is complete, as in the
        batch path. ``observe`` stays a no-op: the weights (and the cache, built from ``tokens``
        alone) are the only state. An adapter's scorer (``delegate_scoring``) that is ``decodable``
        predicts and observes itself (``predict_row``/``observe``)."""
        t = int(t)
        if self.delegate is not None and not self.decodable:
            raise UsageError(f"expert {self.name!r}: its scoring was handed to an adapter, which cannot predict "
                             f"target by target")
        self._check_tokens(tokens, t, t)
        if self.delegate is not None:
            row = self.delegate.predict_row(self.model, tokens, t).exp().numpy()
        elif self.cache is not None:
            row = self._score_cached(tokens[:t], t, t + 1, distributions=True)[1][0]
        else:
            row = predict_row(self.model, tokens, t, seq_len=self.seq_len, stride=self.stride, device=self.device,
                              dtype=self.dtype, bos=self.bos, temperature=self.temperature)
        return row if row.dtype == self.dist_dtype else row.astype(self.dist_dtype)

    def observe(self, tokens: np.ndarray, t: int) -> None:
        if self.delegate is not None and self.decodable:  # the scorer's state moves target by target
            self.delegate.observe(self.model, tokens, int(t))

    @property
    def decodable(self) -> bool:
        return self.delegate is None or bool(getattr(self.delegate, "decodable", False))

    def adaptable_model(self):
        return self.model, self.seq_len

    def delegate_scoring(self, scorer) -> None:
        """``scorer(model, tokens, start, end, distributions)`` scores every later span (``api.Expert``);
        it returns what ``_score`` returns: log-probabilities, or (them, rows) when asked."""
        if self.delegate is not None:
            raise UsageError(f"expert {self.name!r}: its scoring was already handed to another adapter")
        self.delegate = scorer

    def weights_changed(self) -> None:
        """Called by adapters that change the weights: the cached keys and values are stale."""
        if self.cache is not None:
            self.cache.invalidate()

    def stats(self) -> dict:
        """Where the expert's time went: {"forward", "softmax", "rows"} seconds."""
        return dict(self.timers)

    def reset(self) -> None:
        """Back to the weights the expert was built with (undoing any test-time training)."""
        self.model.load_state_dict(self._initial, strict=True)
        if self.cache is not None:
            self.cache.clear()

    def state_fingerprint(self) -> bytes:
        h = hashlib.sha256()
        for name, p in self.model.state_dict().items():
            h.update(name.encode())
            h.update(p.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        # The cache is left out: it memoizes activations that are a function of the weights and the
        # tokens already seen (cache.py), so keeping a block (even from predict) changes no result.
        return h.digest()

    def describe(self) -> dict:
        config = self.model.config.to_dict() if isinstance(self.model, GPT) else {
            "model": type(self.model).__module__ + "." + type(self.model).__name__,
            "vocab_size": self.model.vocab_size, "context_length": self.model.context_length}
        where = self.source.partition(" ")[2]
        file = {"checkpoint": where} if where and Path(where).is_file() else {}  # a proof counts (and checks) it
        return {"source": self.source, **file, "config": config,
                "config_source": getattr(self.model, "config_source", "preset"),
                "parameters": sum(p.numel() for p in self.model.parameters()), "seq_len": self.seq_len,
                "stride": self.stride,
                "batch": self.batch, "device": str(self.device), "dist_dtype": str(self.dist_dtype),
                "scorer": self.scorer, "block": self.block, "temperature": self.temperature,
                "isolate_docs": self.bos is not None, **({"bos": self.bos} if self.bos is not None else {}),
                "dtype": "auto" if self.dtype is None else str(self.dtype).replace("torch.", "")}


def _distributed() -> bool:
    """True under torchrun: every rank scores the same span, so each takes a share of the windows."""
    from pgolf_core.run.distributed import world

    return world()[1] > 1


# ----------------------------------------------------------------------------- building the model

def random_model(cfg: GPTConfig, seed: int) -> GPT:
    """A freshly initialised model; the global torch RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(cfg)


def _state_dict_problems(model: GPT, state_dict: dict) -> list:
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [f"{k}: shape {tuple(v.shape)} in the file, {tuple(expected[k].shape)} in the model"
                 for k, v in state_dict.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    return problems


def load_model(path, config: Optional[GPTConfig] = None) -> GPT:
    """GPT from an fp32 checkpoint or an int5 artifact, with errors that name the file.

    ``config`` describes a checkpoint that carries no config of its own (the seed's artifacts); one
    that does must agree with it. Without either the seed's default (``pr700``) is assumed. The
    model's ``config_source`` says which of the three it was: "embedded", "given" or "assumed pr700";
    its ``tokenizer_record`` is the file's record of its tokenizer (None when it has none).
    """
    from .artifact import ArtifactError, read_checkpoint
    from .config import PRESETS

    config_dict, state_dict, tokenizer = read_checkpoint(path)
    if config_dict is not None:
        try:
            cfg = GPTConfig.from_dict(config_dict)
        except UsageError as exc:
            raise ArtifactError(f"checkpoint {path}: its model config is not usable: {exc}") from None
        if config is not None and config != cfg:
            given = config.to_dict()
            diff = {k: (v, given[k]) for k, v in cfg.to_dict().items() if given[k] != v}
            raise UsageError(f"expert 'neural': checkpoint {path} carries its own config, which differs from "
                             f"neural.config in {', '.join(f'{k} ({a!r} in the file, {b!r} given)' for k, (a, b) in diff.items())}")
        source = "embedded"
    else:
        cfg, source = (config, "given") if config is not None else (PRESETS["pr700"], "assumed pr700")
    model = GPT(cfg)
    problems = _state_dict_problems(model, state_dict)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        hint = ("; the file carries no config, so pr700 was assumed: describe it with neural.config=FILE.json|PRESET"
                "[:key=value...] or neural.config=seed (the seed's environment variables)"
                if source == "assumed pr700" else "")
        raise ArtifactError(f"checkpoint {path}: weights do not match its config ({shown}){hint}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()},
                          strict=True)
    model.config_source, model.tokenizer_record = source, tokenizer
    return model


def check_vocab(model, vocab_size: int, source: str) -> None:
    if model.vocab_size != vocab_size:
        raise UsageError(f"expert 'neural': {source} has vocab_size {model.vocab_size} but the "
                         f"token stream's vocabulary has {vocab_size} tokens")


def default_checkpoint(dataset) -> Path:
    """The committed demo checkpoint for the built-in demo stream; otherwise a usage error."""
    if dataset == "demo":
        from .artifact import demo_checkpoint_path

        return demo_checkpoint_path()
    raise UsageError("expert 'neural' needs checkpoint=PATH (an fp32 checkpoint or an int5 artifact), "
                     "or preset=NAME with init_seed=N for a randomly initialised model")
