"""Entropy coding of token streams under per-symbol probability rows.

The checked Python face of the range coder in ``pgolf_core.codec.rangecoder`` (numba kernels; why the
project has its own coder is said there). The encoder codes each token with the probability row
the model assigned to it; the decoder, given the same rows in the same order, recovers the tokens.

Quantization contract (what makes encoder and decoder agree bit for bit):

* Every row is converted to float64 (exact for float16/float32 input) and made C-contiguous, so
  the model depends only on the row's values, not on its dtype.
* The row is summed in float64 in the fixed order of ``pgolf_core.codec.coderformat`` (step 1, where
  the whole payload format is stated) and scaled by ``(2**24 - V) / sum``; each symbol's count
  is ``floor(p * scale)`` plus one. Only IEEE add/mul/div and float-to-int truncation are
  involved, so the model is a deterministic function of the row's bits on any platform.
* The "plus one" is the leak: every symbol of the row, including ones with probability exactly 0,
  gets at least ``2**-24``, so any symbol in ``range(V)`` can be coded (at a cost of at most about
  24 bits). The leak takes ``V * 2**-24`` of mass from the other symbols (about 1e-4 bits per
  symbol for V=1024, 7e-4 for V=8192).

Rows are validated before coding (shape, NaN, negative or infinite entries, sum within
``SUM_TOLERANCE`` of 1): a row with a negative entry and a positive sum would otherwise be coded
under a wrong model.

The payload is the coder's 32-bit words in little-endian order.
"""

from __future__ import annotations

import operator

import numpy as np

from ..errors import PgolfError

from .coderformat import PRECISION as QUANTIZATION_BITS  # the coder's counts are 24-bit fixed point

# a row whose sum is further than SUM_TOLERANCE from 1 is refused, not renormalized (see tolerances)
from ..tolerances import SUM_TOLERANCE  # noqa: E402

# an alphabet of 2**24 - 1 symbols or more leaves no room for the leak
MAX_VOCAB = 2**QUANTIZATION_BITS - 2

_WORD = np.dtype("<u4")


class CodingError(PgolfError):
    """A probability row, a symbol or a payload cannot be entropy-coded."""


def _check_vocab(vocab: int, expected: int | None, what: str) -> None:
    """Raise unless ``vocab`` is a legal alphabet size matching ``expected`` (when set)."""
    if expected is not None and vocab != expected:
        raise CodingError(f"{what} has {vocab} entries, expected {expected} (the vocabulary size)")
    if not 2 <= vocab <= MAX_VOCAB:
        raise CodingError(f"{what} has {vocab} entries; the coder needs 2 to {MAX_VOCAB}")


def _vocab_arg(vocab_size: int | None) -> int | None:
    """Validate an optional ``vocab_size`` constructor argument."""
    if vocab_size is None:
        return None
    value = operator.index(vocab_size)
    if not 2 <= value <= MAX_VOCAB:
        raise CodingError(f"vocab_size must be 2 to {MAX_VOCAB}, got {value}")
    return value


def _as_float64(rows, expected_vocab: int | None, ndim: int) -> np.ndarray:
    """Check the shape and dtype of ``rows`` and return them as C-contiguous float64."""
    arr = np.asarray(rows)
    what = "row" if ndim == 1 else "rows"
    if arr.ndim != ndim:
        shape = "(V,)" if ndim == 1 else "(n, V)"
        raise CodingError(f"{what} must have shape {shape}, got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise CodingError(f"{what} must be floating point (float32 or float64), got dtype {arr.dtype}")
    _check_vocab(arr.shape[-1], expected_vocab, what)
    # Exact widening: float32 -> float64 never rounds, so the model is dtype-independent.
    return np.ascontiguousarray(arr, dtype=np.float64)


def _as_row(row, expected_vocab: int | None) -> np.ndarray:
    """Return one validated probability row as C-contiguous float64 of shape (V,)."""
    arr = _as_float64(row, expected_vocab, ndim=1)
    # Scalar checks: this runs once per symbol, where numpy calls on tiny arrays cost more than coding.
    problem = _row_problem(float(arr.min()), float(arr.sum()))
    if problem:
        raise CodingError(f"row {problem}; rows must be probabilities")
    return arr


def _as_rows(rows, expected_vocab: int | None) -> np.ndarray:
    """Return validated probability rows as C-contiguous float64 of shape (n, V)."""
    arr = _as_float64(rows, expected_vocab, ndim=2)
    if arr.shape[0] == 0:
        return arr
    lowest = arr.min(axis=1)
    sums = arr.sum(axis=1)
    # Written as "not ok" so that NaN (which fails every comparison) is flagged too.
    bad = ~((lowest >= 0.0) & (np.abs(sums - 1.0) <= SUM_TOLERANCE))
    if bad.any():
        i = int(np.argmax(bad))
        problem = _row_problem(float(lowest[i]), float(sums[i]))
        raise CodingError(f"row {i} {problem}; rows must be probabilities")
    return arr


def _row_problem(lowest: float, total: float) -> str | None:
    """Describe what is wrong with a row of minimum ``lowest`` and sum ``total``, or None.

    NaN fails both comparisons; an infinite entry makes the sum infinite.
    """
    if not lowest >= 0.0:
        return f"has a NaN or negative entry (minimum {lowest!r})"
    if not abs(total - 1.0) <= SUM_TOLERANCE:
        return f"sums to {total!r}, not 1 (tolerance {SUM_TOLERANCE})"
    return None


def _as_symbol(symbol, vocab: int) -> int:
    """Return ``symbol`` as a Python int, raising unless it is in ``range(vocab)``."""
    try:
        value = operator.index(symbol)
    except TypeError:
        raise CodingError(f"symbol must be an integer, got {type(symbol).__name__}") from None
    if not 0 <= value < vocab:
        raise CodingError(f"symbol {value} is out of range for a row of {vocab} entries")
    return value


def _as_symbols(symbols, n: int, vocab: int) -> np.ndarray:
    """Return ``symbols`` as int32 of shape (n,), raising on a bad shape, dtype or range."""
    arr = np.asarray(symbols)
    if arr.shape != (n,):
        raise CodingError(f"symbols must have shape ({n},) to match the rows, got shape {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise CodingError(f"symbols must be integers, got dtype {arr.dtype}")
    if n:
        bad = (arr < 0) | (arr >= vocab)
        if bad.any():
            i = int(np.argmax(bad))
            raise CodingError(f"symbol {int(arr[i])} at position {i} is out of range for rows of {vocab} entries")
    return arr.astype(np.int32)


class RowEncoder:
    """Range-encode symbols, each under its own probability row (``pgolf_core.codec.rangecoder``).

    ``vocab_size`` fixes the row length; when omitted, the first row fixes it.
    Symbol-by-symbol ``encode`` and ``encode_block`` may be mixed freely: both
    produce the same bytes as coding every symbol on its own.
    """

    def __init__(self, vocab_size: int | None = None):
        from . import rangecoder

        self.vocab_size = _vocab_arg(vocab_size)
        self.n_symbols = 0
        self.state = rangecoder.new_encoder_state()
        self.words = np.zeros(1024, dtype=np.uint32)
        self._freq = np.empty(0, dtype=np.int64)
        self._payload: bytes | None = None

    def _check_open(self) -> None:
        """Raise if ``finish`` was already called (the payload is sealed)."""
        if self._payload is not None:
            raise CodingError("cannot encode after finish(): the payload is already sealed")

    def reserve(self, n_symbols: int, vocab: int) -> None:
        """Room for ``n_symbols`` more symbols (at most one word each) and the seal, and a
        frequency buffer of ``vocab`` entries (for a caller that runs the kernels itself)."""
        need = int(self.state[2]) + int(n_symbols) + 1
        if need > self.words.shape[0]:
            words = np.zeros(max(need, 2 * self.words.shape[0]), dtype=np.uint32)
            words[: self.words.shape[0]] = self.words
            self.words = words
        if self._freq.shape[0] != vocab:
            self._freq = np.empty(vocab, dtype=np.int64)

    @property
    def freq(self) -> np.ndarray:
        return self._freq

    def encode(self, symbol: int, row: np.ndarray) -> None:
        """Encode one ``symbol`` under the probability ``row`` of shape (V,)."""
        from .rangecoder import encode_symbol

        self._check_open()
        arr = _as_row(row, self.vocab_size)
        value = _as_symbol(symbol, arr.shape[0])
        self.reserve(1, arr.shape[0])
        encode_symbol(self.state, self.words, arr, value, self._freq)
        self.vocab_size = arr.shape[0]
        self.n_symbols += 1

    def encode_block(self, symbols: np.ndarray, rows: np.ndarray) -> None:
        """Encode ``symbols`` of shape (n,) under ``rows`` of shape (n, V), in order.

        Float32 rows are copied to float64 first (n * V * 8 bytes), so feed very
        large streams in blocks of a few thousand rows.
        """
        from .rangecoder import encode_rows

        self._check_open()
        arr = _as_rows(rows, self.vocab_size)
        syms = _as_symbols(symbols, arr.shape[0], arr.shape[1])
        if syms.size:
            self.reserve(syms.size, arr.shape[1])
            encode_rows(self.state, self.words, arr, syms.astype(np.int64), self._freq)
        self.vocab_size = arr.shape[1]
        self.n_symbols += int(syms.size)

    def finish(self) -> bytes:
        """Seal the stream and return the payload (little-endian 32-bit words).

        Calling it again returns the same bytes; encoding afterwards is an error.
        """
        from .rangecoder import seal

        if self._payload is None:
            self.reserve(0, self._freq.shape[0])
            n = seal(self.state, self.words)
            self._payload = self.words[:n].astype(_WORD, copy=False).tobytes()
        return self._payload


class RowDecoder:
    """Decode symbols from a ``RowEncoder`` payload, given the same rows in the same order.

    A range decoder cannot tell where the payload ends: past the end it keeps
    returning plausible symbols. Pass ``n_symbols`` (the count the encoder
    coded) to turn decoding past the end into a ``CodingError``.
    """

    def __init__(self, payload: bytes, n_symbols: int | None = None, vocab_size: int | None = None):
        from .rangecoder import decoder_state

        data = bytes(payload)
        if len(data) % _WORD.itemsize:
            raise CodingError(f"payload of {len(data)} bytes is not a whole number of 32-bit words")
        self.words = np.frombuffer(data, dtype=_WORD).astype(np.uint32)
        self.state = decoder_state(self.words)
        self.n_symbols = None if n_symbols is None else operator.index(n_symbols)
        self.vocab_size = _vocab_arg(vocab_size)
        self.freq = np.empty(0 if self.vocab_size is None else self.vocab_size, dtype=np.int64)
        self.decoded = 0

    def reserve(self, count: int, vocab: int) -> None:
        """Raise if decoding ``count`` more symbols would run past the known end."""
        if self.n_symbols is not None and self.decoded + count > self.n_symbols:
            raise CodingError(
                f"decoder ran past the end of its payload: it holds {self.n_symbols} symbols, "
                f"{self.decoded} already decoded, {count} more requested"
            )
        if self.freq.shape[0] != vocab:
            self.freq = np.empty(vocab, dtype=np.int64)

    def undecodable(self, index: int) -> CodingError:
        """The error for symbol ``index``, which the payload cannot have been coded under its row."""
        return CodingError(f"symbol {index}: the payload cannot be decoded under this row: the rows are not the "
                           f"ones it was coded with")

    def decode(self, row: np.ndarray) -> int:
        """Decode one symbol under the probability ``row`` of shape (V,)."""
        from .rangecoder import decode_symbol

        arr = _as_row(row, self.vocab_size)
        self.reserve(1, arr.shape[0])
        symbol = int(decode_symbol(self.state, self.words, arr, self.freq))
        if symbol < 0:
            raise self.undecodable(self.decoded)
        self.vocab_size = arr.shape[0]
        self.decoded += 1
        return symbol

    def decode_block(self, rows: np.ndarray) -> np.ndarray:
        """Decode ``len(rows)`` symbols under ``rows`` of shape (n, V); returns int64 (n,)."""
        from .rangecoder import decode_rows

        arr = _as_rows(rows, self.vocab_size)
        self.reserve(arr.shape[0], arr.shape[1])
        out = np.zeros(arr.shape[0], dtype=np.int64)
        if arr.shape[0] == 0:
            return out
        bad = int(decode_rows(self.state, self.words, arr, self.freq, out))
        if bad >= 0:
            raise self.undecodable(self.decoded + bad)
        self.vocab_size = arr.shape[1]
        self.decoded += arr.shape[0]
        return out


def ideal_bits(symbols: np.ndarray, rows: np.ndarray) -> float:
    """Return the ideal code length ``sum(-log2 rows[i, symbols[i]])`` in bits (float64).

    Uses the row entries as given (no renormalization); a symbol with
    probability 0 gives ``inf``.  Compare with ``8 * len(payload)``.
    """
    arr = np.asarray(rows, dtype=np.float64)
    if arr.ndim != 2:
        raise CodingError(f"rows must have shape (n, V), got shape {arr.shape}")
    syms = _as_symbols(symbols, arr.shape[0], arr.shape[1])
    picked = arr[np.arange(arr.shape[0]), syms]
    with np.errstate(divide="ignore"):
        return float(-np.log2(picked).sum())
