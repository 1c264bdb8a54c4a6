"""Tokenizers behind one interface: what the engine needs to know of the tokenizer that wrote a stream.

The engine needs four things from a tokenizer: its vocabulary size (the id range every expert
predicts over), its byte table (the metric's denominator, ``pgolf_core.stream.bytes.ByteTable``), and
``encode``/``decode`` (to check that it is the tokenizer that wrote the data, by re-encoding a few
documents). SentencePiece, the format of every record in the field, is builtin
(``pgolf_core.builtin``). A plugin adds another format through the ``pgolf_register_tokenizers``
hook: ``register(name, loader)``, where ``loader(path)`` returns a ``Tokenizer`` for a file of its
format and None for any other file, so each format recognizes its own files.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from .errors import DataError


class Tokenizer(Protocol):
    path: str
    vocab_size: int

    def byte_table(self):  # -> pgolf_core.stream.bytes.ByteTable
        ...

    def encode(self, text: str) -> list:
        ...

    def decode(self, ids: Sequence[int]) -> str:
        ...


class SentencePieceTokenizer:
    """A SentencePiece model file (``.model``): the builtin format."""

    def __init__(self, path):
        from .stream.bytes import load_sentencepiece

        self.path = str(path)
        self.sp = load_sentencepiece(path)
        self.vocab_size = int(self.sp.GetPieceSize())

    def byte_table(self):
        from .stream.bytes import byte_table_from_sentencepiece

        return byte_table_from_sentencepiece(self.sp)

    def encode(self, text: str) -> list:
        return self.sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids])


def load_sentencepiece_tokenizer(path):
    """The builtin loader: any file that is not claimed by another format is read as SentencePiece
    (which says clearly when it is not one)."""
    return SentencePieceTokenizer(path)


def load_tokenizer(path, plugins=None) -> Tokenizer:
    """The tokenizer of ``path``: the first registered loader (plugins first, the builtin
    SentencePiece loader last) that recognizes the file."""
    if plugins is None:
        from .plugins import load_plugins

        plugins = load_plugins()
    entries = sorted(plugins.tokenizers.entries.values(), key=lambda e: e.name == "sentencepiece")
    for entry in entries:
        tok = entry.factory(path)
        if tok is not None:
            return tok
    raise DataError(f"tokenizer {path}: no registered tokenizer format recognizes it "
                    f"(formats: {', '.join(e.name for e in entries) or 'none'})")
