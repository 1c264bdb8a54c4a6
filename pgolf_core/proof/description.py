"""Description length: every byte a decoder needed besides the interpreter and the declared
third-party libraries, so that nothing can hide in a side file.

- the payload and the header of the compressed file;
- artifacts: each file an option names (checkpoints, tables) and each file a component chose
  itself (the demo checkpoint), at its size on disk;
- the tokenizer;
- plugin code: every file of each non-builtin plugin module's package (its sources and anything
  else it keeps there), raw and zstd-compressed;
- the decompressor: pgolf-core's own sources, raw and compressed.

Two totals answer two questions. The competition's count (Parameter Golf's rule: code + compressed
model <= 16,000,000 bytes) is artifacts + plugin code; the strict count adds the tokenizer and the
decompressor, which the field's records left out. The description length in bits per byte is
(payload + header + artifacts + compressed plugin code) x 8 / the stream's bytes: a copy of the data
in a side file costs its own size there.
"""

from __future__ import annotations

import os

import zstandard

CAP_BYTES = 16_000_000  # Parameter Golf's limit on code + artifact
ZSTD_LEVEL = 22


def _code_size(files) -> dict:
    files = sorted(set(files))
    blob = b"".join(open(f, "rb").read() for f in files)
    return {"files": len(files), "raw": len(blob),
            "compressed": len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(blob)) if blob else 0}


def description_length(score: dict, files: dict, code: dict) -> dict:
    """``score`` from ``pgolf_core.proof.score``, ``files`` from ``compress.header_files``, ``code``
    the read plan's code by owner (``pgolf_core.proof.plan``)."""
    artifacts = {k.removeprefix("resolved:"): os.path.getsize(p) for k, p in files.items() if k != "tokenizer"}
    plugin_files = [f for owner, fs in code.items() if owner != "pgolf-core" for f in fs]
    plugin = _code_size(plugin_files) | {"modules": sorted(o for o in code if o != "pgolf-core")}
    core = _code_size([f for f in code.get("pgolf-core", []) if f.endswith(".py")])
    art = sum(artifacts.values())
    tokenizer = os.path.getsize(files["tokenizer"])
    competition = art + plugin["raw"]
    total = score["payload_bytes"] + score["header_bytes"] + art + plugin["compressed"]
    return {"payload_bytes": score["payload_bytes"], "header_bytes": score["header_bytes"], "artifacts": artifacts,
            "artifact_bytes": art, "tokenizer_bytes": tokenizer, "plugin_code": plugin, "decompressor": core,
            "competition_bytes": competition, "competition_cap": CAP_BYTES, "within_cap": competition <= CAP_BYTES,
            "strict_bytes": competition + tokenizer + core["raw"], "total_bytes": total,
            "total_bpb": 8.0 * total / score["bytes"]}
