"""The causal-LM protocol: what a torch language model must offer to be scored by pgolf-core.

The ``neural`` expert scores any model that follows it (``--expert-opt neural.model=pkg.mod:factory``),
with the same machinery as the builtin GPT: sliding windows (stride 64 by default), document
isolation (windows laid out inside each document), windows shared across torchrun ranks, the
entropy-adaptive temperature, test-time training and the compressor's target-by-target decoding.

Required (a ``torch.nn.Module`` with):

- ``vocab_size`` (int): token ids are ``0 .. vocab_size - 1``;
- ``context_length`` (int): the longest input it takes; scoring windows are this long;
- ``logits(ids)``: ``(B, T)`` int64 ids -> ``(B, T, vocab_size)`` float logits, where row ``t``
  depends on ``ids[:, :t + 1]`` only (causal). Scoring never relies on anything else: a row's
  probabilities are the softmax of its logits, so they sum to 1 by construction.

Optional:

- ``blocks``: the model's layers in order, input to output (an ``nn.ModuleList``), for the ``ttt``
  adapter's ``trained_blocks`` (the seed trains the last two); ``lora-ttt`` needs only the names of
  ``nn.Linear`` modules (its ``targets`` option);
- ``hidden(ids, rope_len=...)`` and ``head(h)``: the final hidden states and their projection, so that
  scoring projects only the rows it scores (the builtin GPT has them; without them ``logits`` is used).

The cached scorer (``neural.scorer=cache``) needs the builtin GPT's incremental attention and is
refused for other models. This module imports nothing heavy: checks read attributes only.
"""

from __future__ import annotations

from .errors import UsageError

REQUIRED = ("vocab_size", "context_length", "logits", "parameters")


def check_causal_lm(model, who: str = "model") -> None:
    """A clear error unless ``model`` offers the protocol's required parts (named in the message)."""
    missing = [name for name in REQUIRED if not hasattr(model, name)]
    if missing:
        raise UsageError(f"{who} ({type(model).__name__}) does not follow the causal-LM protocol: it lacks "
                         f"{', '.join(missing)} (pgolf_core.causal_lm lists what a model must offer)")
    for name in ("vocab_size", "context_length"):
        value = getattr(model, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{who} ({type(model).__name__}): {name} must be a positive int, got {value!r}")
    if not callable(model.logits):
        raise UsageError(f"{who} ({type(model).__name__}): logits must be a method ids (B, T) -> (B, T, V)")


def has_projection(model) -> bool:
    """True when the model can project only the scored rows (``hidden`` + ``head``)."""
    return callable(getattr(model, "hidden", None)) and callable(getattr(model, "head", None))


def load_factory(spec: str, who: str = "expert 'neural'"):
    """``package.module:function`` -> the function (imported now, with an error that names the spec)."""
    import importlib

    text = str(spec).strip()
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{who}: option model must be package.module:factory, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{who}: option model={text}: cannot import {module_name!r} ({exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"{who}: option model={text}: {module_name} has no callable {attr!r}")
    return factory
