"""Shared fixtures. Tests that need the third-party corpus read it from ../shared and skip without it."""

from __future__ import annotations

import os
from pathlib import Path

# One torch/OpenMP thread per process: CI has 2 cores and several tests start 2 processes, where
# spinning OpenMP workers fight each other (measured: a 2 s test took 54 s with 2 threads each).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TOKENIZER = SHARED / "tokenizers" / "fineweb_1024_bpe.model"
CASEOPS_TOKENIZER = SHARED / "tokenizers" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
VAL_HEAD = SHARED / "corpus" / "fineweb_val_head_sp1024_tokens.npy"
VAL_DOCS = SHARED / "corpus" / "fineweb_val_head_sp1024.jsonl"
FINEWEB_SAMPLE = SHARED / "corpus" / "fineweb_sample.jsonl"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared corpus)")
    return path


@pytest.fixture(scope="session")
def tokenizer_path() -> Path:
    return _need(TOKENIZER)


@pytest.fixture(scope="session")
def caseops_tokenizer_path() -> Path:
    return _need(CASEOPS_TOKENIZER)


@pytest.fixture(scope="session")
def val_head_tokens() -> np.ndarray:
    return np.load(_need(VAL_HEAD))


@pytest.fixture(scope="session")
def val_docs_path() -> Path:
    return _need(VAL_DOCS)


@pytest.fixture(scope="session")
def byte_table(tokenizer_path):
    from pgolf_core.stream.bytes import byte_table_from_sentencepiece

    return byte_table_from_sentencepiece(tokenizer_path)


@pytest.fixture
def plugins():
    """A freshly loaded plugin set (entry points included)."""
    from pgolf_core.plugins import load_plugins

    return load_plugins()
