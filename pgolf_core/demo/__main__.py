"""Rebuild the demo tokenizer: ``python -m pgolf_core.demo``."""

from . import build_tokenizer, demo_tokens

if __name__ == "__main__":
    path = build_tokenizer()
    print(f"wrote {path}; demo val stream: {len(demo_tokens('val'))} tokens, train: {len(demo_tokens('train'))}")
