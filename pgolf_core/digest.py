"""File digests: what a proof header, an artifact's tokenizer record and a resume point compare."""

from __future__ import annotations

import hashlib


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def counts_digest(counts) -> str:
    """sha256 of per-token byte counts (int64 little-endian), as the header records a sidecar."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(counts, dtype="<i8").tobytes()).hexdigest()
