"""What a run is made of, below the commands that run it: the stream and its byte counter
(``resolve_stream``), the ``BuildContext`` every component of the run is built with
(``run_context``), and one plain pass of the loop over built components (``run_pass``).

The run's spine (``pgolf_core.run.spine``) stands on this module, and ``evaluate``, the audit, the
compressor and the decoder stand on the spine; the checks (``pgolf_core.checks``) call the audit
and the compressor, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..api import BuildContext
from ..errors import DataError, UsageError
from .loop import Components, Guards, Loop

DEFAULT_CHUNK = 8192  # targets per chunk: small enough for per-chunk weight trajectories


def resolve_stream(tokens, tokenizer, limit: Optional[int] = None, trim_seq_len: Optional[int] = None,
                   check_tokenizer: Optional[bool] = None, byte_counts=None, plugins=None):
    """Return (tokens, byte table, tokenizer path, dataset label, byte counter) with vocab checks.

    The byte counter is the tokenizer's table, or a per-token sidecar (``byte_counts``: a sidecar
    shard, directory or glob; by default the ``fineweb_*_bytes_*`` files beside the token shards,
    when there are any); see ``pgolf_core.stream.bytes``.

    ``check_tokenizer`` (default: for data read from files) decodes and re-encodes a few complete
    documents to make sure the tokenizer is the one that wrote them (``data.check_tokenizer_matches``).
    The tokenizer file is read by the format that recognizes it (``pgolf_core.tokenizers``)."""
    from ..stream.data import load_tokens, official_trim

    dataset = None
    if tokens is None:
        if tokenizer is not None:
            raise UsageError("a tokenizer was given without data; pass the data too (or neither for the demo)")
        from ..demo import demo_tokenizer_path, demo_tokens

        tokens, tokenizer, dataset = demo_tokens("val"), demo_tokenizer_path(), "demo"
    if tokenizer is None:
        if isinstance(tokens, (str, Path)):  # a mistyped data path is the first thing to hear about
            from ..stream.data import check_data_path

            check_data_path(tokens)
        raise UsageError("the tokenizer is needed to count bytes: pass tokenizer=PATH (--tokenizer)")
    from ..tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer, plugins)
    table = tok.byte_table()
    from_file = isinstance(tokens, (str, Path))
    counter = table
    if from_file:
        dataset = dataset or str(tokens)
        source, tokens = tokens, load_tokens(tokens, vocab_size=table.vocab_size)
        from ..stream.data import load_byte_sidecar

        counter = load_byte_sidecar(source, len(tokens), byte_counts) or table
    else:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise DataError(f"tokens must be a 1-D integer array, got {tokens.dtype} of shape {tokens.shape}")
        from ..stream.data import check_vocab

        check_vocab(tokens, table.vocab_size, "tokens")
        dataset = dataset or "array"
    if check_tokenizer or (check_tokenizer is None and from_file):
        from ..stream.data import check_tokenizer_matches

        check_tokenizer_matches(tokens, tok, dataset, tokenizer)
    if byte_counts is not None and counter is table:
        raise UsageError("a byte sidecar was given for data that is not read from files; pass the token shards as --data")
    if trim_seq_len is not None:
        tokens = official_trim(tokens, trim_seq_len)
    if limit is not None:
        if limit < 2:
            raise UsageError(f"limit must be at least 2 tokens (one target), got {limit}")
        tokens = tokens[:limit]
    if counter is not table:
        counter = counter.head(len(tokens))
    if len(tokens) < 2:
        raise DataError(f"the stream has {len(tokens)} tokens; at least 2 are needed for one target")
    tokens = np.array(tokens, dtype=np.int64 if tokens.dtype.itemsize > 2 else np.uint16)
    tokens.flags.writeable = False  # the source the loop reveals from; plugins only see the sealed stream
    return tokens, table, str(tokenizer), dataset, counter


def run_context(table, tok_path, dataset, n_tokens: int, plugins, device, seed, dist=None) -> BuildContext:
    """The ``BuildContext`` of a run: the audit and the compressor build with this same context,
    on a device this machine has (``pgolf_core.run.device``).

    Components get their own read-only copy of the byte table (changing it cannot change the
    engine's count) and the kind of stream ("demo", "file", "array"), never where the data lies."""
    from .device import check_device

    check_device(device)
    return BuildContext(vocab_size=table.vocab_size, byte_counts=read_only_copy(table), tokenizer_path=tok_path,
                        device=device, seed=seed, rank=getattr(dist, "rank", 0), world_size=getattr(dist, "world_size", 1),
                        plugins=plugins, dataset=stream_kind(dataset), stream_targets=n_tokens - 1)


def stream_kind(dataset) -> str:
    """What a component may know of where the stream came from: "demo", "file" or "array", never a
    path (a decoder must not be told where the data lies)."""
    return dataset if dataset in ("demo", "array") else "file"


def read_only_copy(table):
    """A copy of a byte table with read-only arrays: a component that changes its copy (it can make
    it writable again) changes only its own view; the engine counts from its own table, and a proof
    recounts from the tokenizer in a process without plugins."""
    import dataclasses

    fields = {}
    for f in dataclasses.fields(table):
        v = getattr(table, f.name)
        if isinstance(v, np.ndarray):
            v = np.array(v, copy=True)
            v.flags.writeable = False
        fields[f.name] = v
    return type(table)(**fields)


def setup_adapters(comps: Components) -> None:
    """Give every adapter the run's experts, by label (before the first chunk)."""
    for a in comps.adapters:
        a.setup(dict(zip(comps.labels, comps.experts)))


def run_pass(comps: Components, counter, stream: np.ndarray, chunk_size: int = DEFAULT_CHUNK, *,
             strict: bool = False, guards: Optional[Guards] = None, observers: Sequence = ()) -> Loop:
    """One pass of the loop over built components, as ``evaluate`` runs it (adapters set up first);
    returns the loop (``loop.summary()`` holds the sums)."""
    setup_adapters(comps)
    loop = Loop(comps, counter, len(stream), stream.dtype, strict=strict, guards=guards or Guards(),
                observers=observers)
    loop.run(stream, chunk_size)
    return loop
