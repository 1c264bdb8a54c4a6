"""A plain GPT-2-style model (learned positions, LayerNorm, GELU) that pgolf-core scores through
its causal-LM protocol, with no change to pgolf-core: ``--expert-opt neural.model=pgolf_nanogpt:load``."""

from .model import NanoGPT, load

__all__ = ["NanoGPT", "load"]
