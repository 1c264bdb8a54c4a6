"""The score of a compressed file, computed without any plugin: the file's size is the score.

``score_file`` takes the compressed file and the tokens a decoder wrote, and counts, from the
tokenizer's own table (the builtin SentencePiece reader, never a plugin's) or from a byte sidecar
checked against the file, the UTF-8 bytes those tokens stand for. BPB = 8 x payload bytes / bytes.
Nothing of the header is believed but the sha256 digests it is checked against: byte counts in
the header, had it any, would be ignored. ``python -I -m pgolf_core.proof.score`` runs it in a
fresh process that imports no plugin, which is how ``eval --prove`` uses it: the evaluating
process has plugins in it, and they could have changed anything computed there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..codec.coderformat import overhead_bound_bits  # the coder's documented overhead (docs/proofs.md)
from ..errors import DataError, PgolfError

from ..tolerances import AGREEMENT_SLACK  # noqa: F401 (re-exported: float rounding between two sums)


def score_file(path, tokens_path, tokenizer=None, byte_counts=None) -> dict:
    """{"targets", "bytes", "payload_bytes", "file_bytes", "coded_bpb", "file_bpb", "overhead_bpb",
    "byte_counting"} of ``path`` decoded to the tokens in ``tokens_path`` (.npy)."""
    from ..stream.bytes import byte_table_from_sentencepiece
    from ..stream.data import sidecar_target_bytes
    from ..codec.container import read_container, tokens_checksum
    from ..digest import sha256_file

    header, payload = read_container(path)
    tokens = np.load(tokens_path, allow_pickle=False)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise DataError(f"{tokens_path}: expected a 1-D integer array of tokens, found {tokens.dtype} {tokens.shape}")
    if tokens_checksum(tokens) != header["tokens"]["sha256"]:
        raise DataError(f"{path}: the decoded tokens are not the stream the file was coded from (sha256 differs)")
    method = header.get("byte_counting", {}).get("method", "tokenizer table")
    if method == "sidecar":
        if byte_counts is None:
            raise DataError(f"{path}: the stream's bytes are counted by a sidecar; give it (--bytes SIDECAR) so "
                            f"that they can be recounted")
        n_bytes = sidecar_target_bytes(byte_counts, tokens, header, path)
    else:
        tok = str(tokenizer or header["tokenizer"]["path"])
        if sha256_file(tok) != header["tokenizer"]["sha256"]:
            raise DataError(f"{path}: the tokenizer {tok} is not the one the stream was coded with (sha256 differs)")
        try:
            table = byte_table_from_sentencepiece(tok)
        except DataError as exc:
            raise DataError(f"{exc}: bytes are recounted without plugins, from a SentencePiece model only") from None
        n_bytes = int(table.target_bytes(tokens).sum())
    size = Path(path).stat().st_size
    n = len(tokens) - 1
    return {"targets": n, "bytes": n_bytes, "payload_bytes": len(payload), "file_bytes": size,
            "header_bytes": size - len(payload), "coded_bpb": 8.0 * len(payload) / n_bytes,
            "file_bpb": 8.0 * size / n_bytes,
            "overhead_bpb": overhead_bound_bits(n, int(header["tokenizer"]["vocab_size"])) / n_bytes,
            "byte_counting": method}


def score_in_fresh_process(path, tokens_path, tokenizer=None, byte_counts=None, timeout: float = 600) -> dict:
    """``score_file`` in a new interpreter that loads no plugin (isolated mode, nothing inherited)."""
    args = [sys.executable, "-I", "-m", "pgolf_core.proof.score", str(path), str(tokens_path),
            "" if tokenizer is None else str(tokenizer), "" if byte_counts is None else str(byte_counts)]
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, close_fds=True,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, timeout=timeout)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise PgolfError(f"{path}: the scorer failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}") from None
    if "error" in out:
        raise DataError(out["error"])
    return out


def _main(argv) -> int:
    path, tokens, tok, sidecar = argv
    try:
        out = score_file(path, tokens, tok or None, sidecar or None)
    except PgolfError as exc:
        out = {"error": str(exc)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
