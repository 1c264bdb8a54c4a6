"""The built-in demo: a token stream built from text that ships with Python itself.

The demo must run on a fresh machine with nothing but this package, so its text is
``pydoc_data.topics`` (the reference-manual topics behind ``help()``), and its tokenizer is a
SentencePiece BPE with the official settings (vocab 1024, byte fallback, split digits, nmt_nfkc,
no dummy prefix, pad/bos/eos/unk = 0/1/2/3) trained on that text and committed beside this file
(``python -m pgolf_core.demo`` rebuilds it). Every 8th topic (in sorted order) is held out as the
"val" split the demo scores; the rest is the "train" split the demo checkpoint learned from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

DEMO_DIR = Path(__file__).resolve().parent
TOKENIZER_FILE = DEMO_DIR / "pydoc_bpe1024.model"
VAL_EVERY = 8  # every VAL_EVERY-th topic is held out
SPLITS = ("train", "val")


def demo_texts(split: str) -> list:
    """The documents of a split: one per pydoc topic, in sorted topic order."""
    from pydoc_data.topics import topics

    if split not in SPLITS:
        raise ValueError(f"demo split must be one of {SPLITS}, got {split!r}")
    names = sorted(topics)
    keep = [(i % VAL_EVERY == VAL_EVERY - 1) == (split == "val") for i in range(len(names))]
    return [topics[n] for n, k in zip(names, keep) if k]


def demo_tokenizer_path() -> Path:
    if not TOKENIZER_FILE.is_file():
        raise FileNotFoundError(f"demo tokenizer {TOKENIZER_FILE} is missing; run `python -m pgolf_core.demo`")
    return TOKENIZER_FILE


@lru_cache(maxsize=None)
def _demo_tokens(split: str) -> np.ndarray:
    from ..stream.bytes import load_sentencepiece
    from ..stream.data import encode_documents

    sp = load_sentencepiece(demo_tokenizer_path())
    return encode_documents(demo_texts(split), sp)


def demo_tokens(split: str = "val") -> np.ndarray:
    """The split as one uint16 stream, BOS (1) before each document (a read-only array)."""
    arr = _demo_tokens(split)
    arr.flags.writeable = False
    return arr


def build_tokenizer(out: Path = TOKENIZER_FILE) -> Path:
    """Train the demo tokenizer on the train split (deterministic: one thread, fixed settings)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(demo_texts("train")),
        model_writer=model,
        model_type="bpe",
        vocab_size=1024,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=False,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        character_coverage=0.9995,
        max_sentence_length=1_000_000,
        num_threads=1,
        minloglevel=2,
    )
    out.write_bytes(model.getvalue())
    return out
