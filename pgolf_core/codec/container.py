"""The compressed-file container: one self-describing file per compressed stream.

Layout (all integers little-endian)::

    offset  size  field
    0       7     magic b"PGOLFZ\\0"
    7       2     format version (uint16), currently 1
    9       4     header length H (uint32)
    13      H     header: UTF-8 JSON object (sorted keys, compact separators)
    13+H    8     payload length P (uint64)
    21+H    P     payload (opaque bytes, e.g. a RowEncoder payload)
    21+H+P  32    sha256 of every preceding byte (magic through payload)

The checksum covers the framing as well as header and payload, so any flipped
byte is detected; a truncated or extended file is caught before that by the
size implied by the two length fields.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError

MAGIC = b"PGOLFZ\0"
VERSION = 1

_VERSION = struct.Struct("<H")
_HEADER_LEN = struct.Struct("<I")
_PAYLOAD_LEN = struct.Struct("<Q")
_DIGEST_LEN = hashlib.sha256().digest_size

# Bytes in every container besides the JSON header and the payload.
FIXED_OVERHEAD = len(MAGIC) + _VERSION.size + _HEADER_LEN.size + _PAYLOAD_LEN.size + _DIGEST_LEN


class ContainerError(DataError):
    """A container file is not a pgolf container, is truncated, corrupt or of another version."""


def encode_header(header: dict) -> bytes:
    """Return the canonical UTF-8 JSON encoding of ``header`` as stored in the file."""
    if not isinstance(header, dict):
        raise ContainerError(f"container header must be a dict, got {type(header).__name__}")
    try:
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ContainerError(f"container header is not JSON-serializable: {exc}") from exc
    return text.encode("utf-8")


def header_bytes(header: dict) -> int:
    """Return the bytes a container with ``header`` spends besides its payload.

    That is the JSON header plus the fixed framing (magic, version, lengths,
    checksum), so ``file size == header_bytes(header) + len(payload)``.
    """
    return FIXED_OVERHEAD + len(encode_header(header))


def pack_container(header: dict, payload: bytes) -> bytes:
    """Return the complete container bytes for ``header`` and ``payload``."""
    head = encode_header(header)
    body = b"".join((
        MAGIC,
        _VERSION.pack(VERSION),
        _HEADER_LEN.pack(len(head)),
        head,
        _PAYLOAD_LEN.pack(len(payload)),
        bytes(payload),
    ))
    return body + hashlib.sha256(body).digest()


def write_container(path: str | os.PathLike, header: dict, payload: bytes) -> int:
    """Write a container to ``path`` atomically and return the file size in bytes.

    The data goes to a temporary file in the same directory that is renamed
    over ``path`` only once fully written and synced, so a failed write never
    leaves a complete-looking file behind.
    """
    data = pack_container(header, payload)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        # Also on KeyboardInterrupt: never leave the temporary file behind.
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def read_container(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Read and verify the container at ``path``; return ``(header, payload)``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ContainerError(f"{path}: cannot read container: {exc.strerror or exc}") from exc
    return unpack_container(data, name=str(path))


def unpack_container(data: bytes, name: str = "<bytes>") -> tuple[dict, bytes]:
    """Verify container bytes ``data`` and return ``(header, payload)``; ``name`` labels errors."""
    _check_magic(data, name)
    _check_version(data, name)
    header_len, payload_len = _read_lengths(data, name)
    head_start = len(MAGIC) + _VERSION.size + _HEADER_LEN.size
    pay_start = head_start + header_len + _PAYLOAD_LEN.size
    body_end = pay_start + payload_len
    if hashlib.sha256(data[:body_end]).digest() != data[body_end:]:
        raise ContainerError(f"{name}: checksum mismatch: the file is corrupt")
    return _decode_header(data[head_start:head_start + header_len], name), data[pay_start:body_end]


def _check_magic(data: bytes, name: str) -> None:
    """Raise unless ``data`` starts with the container magic."""
    if data[:len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data):
            raise ContainerError(f"{name}: truncated: expected at least {FIXED_OVERHEAD} bytes, found {len(data)}")
        raise ContainerError(f"{name}: not a pgolf container (expected magic {MAGIC!r}, found {data[:len(MAGIC)]!r})")


def _check_version(data: bytes, name: str) -> None:
    """Raise unless the format version field is present and supported."""
    start = len(MAGIC)
    if len(data) < start + _VERSION.size:
        raise ContainerError(f"{name}: truncated: expected at least {FIXED_OVERHEAD} bytes, found {len(data)}")
    (version,) = _VERSION.unpack_from(data, start)
    if version != VERSION:
        raise ContainerError(f"{name}: unsupported container version {version} (this build reads version {VERSION})")


def _read_lengths(data: bytes, name: str) -> tuple[int, int]:
    """Return (header length, payload length), raising unless the file size matches them."""
    found = len(data)
    head_start = len(MAGIC) + _VERSION.size + _HEADER_LEN.size
    if found < head_start:
        raise ContainerError(f"{name}: truncated: expected at least {FIXED_OVERHEAD} bytes, found {found}")
    (header_len,) = _HEADER_LEN.unpack_from(data, head_start - _HEADER_LEN.size)
    pay_len_at = head_start + header_len
    if found < pay_len_at + _PAYLOAD_LEN.size:
        needed = FIXED_OVERHEAD + header_len
        raise ContainerError(f"{name}: truncated: expected at least {needed} bytes, found {found}")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(data, pay_len_at)
    expected = FIXED_OVERHEAD + header_len + payload_len
    if found < expected:
        raise ContainerError(f"{name}: truncated: expected {expected} bytes, found {found}")
    if found > expected:
        raise ContainerError(f"{name}: {found - expected} trailing bytes: expected {expected} bytes, found {found}")
    return header_len, payload_len


def _decode_header(raw: bytes, name: str) -> dict:
    """Parse the JSON header (only reached after the checksum passed)."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContainerError(f"{name}: header is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ContainerError(f"{name}: header must be a JSON object, found {type(header).__name__}")
    return header


def tokens_checksum(tokens) -> str:
    """Return the sha256 hex digest of a token sequence, independent of its dtype.

    Canonical encoding: the tokens flattened in C order, each as a
    little-endian signed 64-bit integer (``<i8``).  So uint16, int32 and int64
    arrays (or a list) holding the same ids give the same checksum.
    """
    arr = np.asarray(tokens)
    if arr.size == 0:
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty stream is still valid
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"tokens must be integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise DataError("tokens do not fit in int64, the canonical checksum encoding")
    canonical = np.ascontiguousarray(arr.ravel(), dtype="<i8")
    return hashlib.sha256(canonical.tobytes()).hexdigest()
