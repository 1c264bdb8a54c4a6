"""Experts driven by the entropy of another expert's distribution (the neural one by default)."""
