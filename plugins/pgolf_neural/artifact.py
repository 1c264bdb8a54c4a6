"""Checkpoints of the neural expert: plain fp32 files and the seed's compressed artifact.

Two formats, told apart by their first bytes:

- **fp32 checkpoint** (``save_checkpoint``): ``torch.save({"format": "pgolf-fp32/1", "config": ...,
  "state_dict": ...})``, exact, for resuming and for analysis.
- **artifact** (``export_artifact``): the seed record's submission format, a torch-saved dict
  ``{"w": tensors, "m": meta}`` compressed with zstd level 22. Per tensor name:

  ============  ====================================================  ============================
  kind          which tensors                                         stored as
  ============  ====================================================  ============================
  fp32          control tensors (name contains a CONTROL_PATTERNS)    ``w[name]`` fp32
  fp16          any other tensor of <= 65,536 values                  ``w[name]`` fp16
  int5          attention and MLP matrices (``.attn.`` / ``.mlp.``)   ``w[name.q]`` int8 in -15..15,
                                                                      ``w[name.scale]`` fp16 per row
  int8          other large tensors (embeddings)                      same keys, -127..127, clip at
                                                                      the 0.9999984 row quantile
  ============  ====================================================  ============================

  ``m[name] = {"type": kind, "shape": [...]}``; ``m["__format__"]`` names the format and
  ``m["__config__"]`` carries the model config. Dequantization is ``q * scale`` per row. The seed's own
  files (meta strings ``"passthrough"`` / ``"passthrough_ctrl"``, no config) load as well; their config
  is the ``pr700`` preset, the only model such files were written for.

Loading always uses ``torch.load(..., weights_only=True)``: a checkpoint can never run code.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from pgolf_core.errors import DataError

FP32_FORMAT = "pgolf-fp32/1"
ARTIFACT_FORMAT = "pgolf-int5/1"
ZSTD_LEVEL = 22
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SUBMISSION_LIMIT = 16_000_000
FP16_MAX_NUMEL = 65_536
INT8_CLIP_QUANTILE = 0.9999984
INT8_CLIP_RANGE = 127
INT5_CLIP_RANGE = 15
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight", "smear",
                    "ve_layer_scales", "ve_shared.scale")
_BLOCK_MATRIX = re.compile(r"(^|\.)(attn|mlp)\.")  # a module path through an attention or MLP block
KINDS = ("int5", "int8", "fp16", "fp32")
# ".pt" so that the package data pattern demo/*.pt ships it; the content is the zstd artifact.
DEMO_FILE = Path(__file__).resolve().parent / "demo" / "tiny_demo_int5.pt"
# Meta tags of the seed's files, mapped to our kinds.
_SEED_TAGS = {"passthrough": "fp16", "passthrough_fp16": "fp16", "passthrough_ctrl": "fp32"}


class ArtifactError(DataError):
    """A checkpoint or artifact file is missing, corrupted or not in a known format."""


def demo_checkpoint_path() -> Path:
    """The committed demo artifact (tiny model trained on the built-in demo stream)."""
    if not DEMO_FILE.is_file():
        raise ArtifactError(f"demo checkpoint {DEMO_FILE} is missing from the installation")
    return DEMO_FILE


def tensor_kind(name: str, tensor) -> str:
    """Storage kind of one tensor of a state dict (see the module docstring)."""
    if not tensor.is_floating_point():
        return "raw"
    if any(p in name for p in CONTROL_PATTERNS):
        return "fp32"
    if tensor.numel() <= FP16_MAX_NUMEL:
        return "fp16"
    if tensor.ndim == 2 and _BLOCK_MATRIX.search(name):
        return "int5"
    return "int8"


# ----------------------------------------------------------------------------- fp32 checkpoints

def save_checkpoint(path, state_dict: dict, config: dict, tokenizer: dict | None = None) -> None:
    """Exact fp32 checkpoint (floating tensors as fp32, others unchanged); ``tokenizer`` is the
    record of the tokenizer the model was trained with (``tokenizer_record``)."""
    import torch

    sd = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
          for k, v in state_dict.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FP32_FORMAT, "config": dict(config), "state_dict": sd}
    if tokenizer:
        obj["tokenizer"] = dict(tokenizer)
    torch.save(obj, str(path))


def tokenizer_record(path) -> dict:
    """What an artifact keeps of its tokenizer: the file name, its sha256 and its vocabulary size."""
    from pgolf_core.stream.bytes import load_sentencepiece
    from pgolf_core.digest import sha256_file

    return {"file": Path(path).name, "sha256": sha256_file(path),
            "vocab_size": int(load_sentencepiece(path).get_piece_size())}


def checkpoint_tokenizer(path) -> dict | None:
    """The tokenizer record of a checkpoint or artifact, or None when it has none (older files, the
    seed's own artifacts)."""
    return read_checkpoint(path)[2]


# ----------------------------------------------------------------------------- quantization

def quantize_int8_rows(t):
    """Per-row int8: clip at the 0.9999984 quantile of |w| in the row, scale = clip / 127 (fp16)."""
    import torch

    from .gptq import MIN_SCALE

    t2 = t.float().reshape(t.shape[0], -1) if t.ndim != 1 else t.float().reshape(1, -1)
    clip = torch.quantile(t2.abs(), INT8_CLIP_QUANTILE, dim=1)
    scale = (clip / INT8_CLIP_RANGE).clamp_min(MIN_SCALE).to(torch.float16)
    s = scale.float()[:, None]
    q = torch.clamp(torch.round(torch.clamp(t2, -clip[:, None], clip[:, None]) / s),
                    -INT8_CLIP_RANGE, INT8_CLIP_RANGE)
    return q.to(torch.int8), scale


def magnitude_prune(state_dict: dict, fraction: float) -> dict:
    """Zero the smallest ``fraction`` of |w| in every large matrix (2-D, > 65,536 values)."""
    import torch

    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune fraction must be in [0, 1), got {fraction}")
    out = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if fraction > 0 and t.is_floating_point() and t.ndim == 2 and t.numel() > FP16_MAX_NUMEL:
            thresh = torch.quantile(t.abs().float().flatten()[: 16_000_000], fraction)
            t = torch.where(t.abs() < thresh, torch.zeros_like(t), t)
        out[name] = t
    return out


def _hessian_for(hessians, name):
    if not hessians:
        return None
    base = name[: -len(".weight")] if name.endswith(".weight") else name
    return hessians.get(base, hessians.get(name))


def quantize_state_dict(state_dict: dict, hessians: dict | None = None) -> tuple[dict, dict]:
    """The artifact's ``(w, m)`` pair, without config or compression."""
    from .gptq import gptq_quantize, quantize_rtn

    w, m = {}, {}
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        kind = tensor_kind(name, t)
        m[name] = {"type": kind, "shape": list(t.shape)}
        if kind in ("raw", "fp32", "fp16"):
            w[name] = {"raw": t, "fp32": t.float(), "fp16": t.half()}[kind]
            continue
        if kind == "int5":
            h = _hessian_for(hessians, name)
            q, s = gptq_quantize(t, h, INT5_CLIP_RANGE) if h is not None else quantize_rtn(t, INT5_CLIP_RANGE)
            m[name]["gptq"] = h is not None
        else:
            q, s = quantize_int8_rows(t)
        w[name + ".q"], w[name + ".scale"] = q.contiguous(), s.contiguous()
    return w, m


def dequantize(w: dict, m: dict, source="artifact") -> dict:
    """fp32 state dict from an artifact's ``(w, m)``; raises ArtifactError on missing keys."""
    out = {}
    for name, info in m.items():
        if name.startswith("__"):
            continue
        kind = _SEED_TAGS.get(info) if isinstance(info, str) else (info or {}).get("type") if isinstance(info, dict) else None
        if kind is None:
            raise ArtifactError(f"{source}: tensor {name!r} has unknown meta entry {info!r}")
        try:
            if kind in ("raw", "fp16", "fp32"):
                t = w[name]
                out[name] = t.float() if t.is_floating_point() else t
                continue
            q, s = w[name + ".q"], w[name + ".scale"]
        except KeyError as exc:
            raise ArtifactError(f"{source}: missing tensor {exc.args[0]!r} for {name!r} ({kind})") from None
        deq = q.float() * (s.float().reshape(-1, *([1] * (q.ndim - 1))) if s.ndim else s.float())
        shape = info.get("shape") if isinstance(info, dict) else None
        out[name] = deq.reshape(shape) if shape is not None else deq
    return out


# ----------------------------------------------------------------------------- artifact files

def pack_artifact(state_dict: dict, config: dict, hessians: dict | None = None,
                  tokenizer: dict | None = None) -> tuple[bytes, dict, dict]:
    """Compressed artifact bytes, plus the uncompressed ``(w, m)`` for statistics."""
    import torch
    import zstandard

    w, m = quantize_state_dict(state_dict, hessians)
    m["__format__"] = ARTIFACT_FORMAT
    m["__config__"] = dict(config)
    if tokenizer:
        m["__tokenizer__"] = dict(tokenizer)
    buf = io.BytesIO()
    torch.save({"w": w, "m": m}, buf)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(buf.getvalue()), w, m


def export_artifact(path, state_dict: dict, config: dict, hessians: dict | None = None,
                    prune: float = 0.0, tokenizer: dict | None = None) -> dict:
    """Prune, quantize (GPTQ when ``hessians`` are given, else round-to-nearest), compress, write.

    Returns the statistics of ``artifact_info`` (counts by kind, compressed/code/submission bytes).
    """
    sd = magnitude_prune(state_dict, prune)
    blob, w, m = pack_artifact(sd, config, hessians, tokenizer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    stats = _stats_from(path, len(blob), w, m)
    stats["pruned_fraction"] = prune
    stats["gptq_tensors"] = sum(1 for v in m.values() if isinstance(v, dict) and v.get("gptq"))
    return stats


def _read_bytes(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"checkpoint {path}: no such file")
    data = path.read_bytes()
    if not data:
        raise ArtifactError(f"checkpoint {path}: empty file")
    return data


def _torch_load(raw: bytes, path):
    import torch

    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise ArtifactError(f"checkpoint {path}: not a readable torch file (truncated or corrupted? {exc})") from exc
    except Exception as exc:  # weights_only refusals (pickled objects) land here
        # torch's own text advises weights_only=False, which would run the file's code: keep only
        # the line that names what the file holds
        what = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        raise ArtifactError(f"checkpoint {path}: refused: it holds pickled Python objects, not only tensors"
                            f"{' (' + what + ')' if what else ''}; pgolf-core never runs code from a checkpoint. "
                            f"Save a plain state_dict of tensors instead") from None


def read_artifact(path) -> tuple[dict, dict]:
    """The raw ``(w, m)`` of an artifact file, with clear errors."""
    import zstandard

    data = _read_bytes(path)
    if not data.startswith(ZSTD_MAGIC):
        raise ArtifactError(f"checkpoint {path}: not a zstd-compressed artifact")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 32)
    except zstandard.ZstdError as exc:
        raise ArtifactError(f"checkpoint {path}: zstd data is truncated or corrupted ({exc})") from exc
    obj = _torch_load(raw, path)
    if not (isinstance(obj, dict) and isinstance(obj.get("w"), dict) and isinstance(obj.get("m"), dict)):
        raise ArtifactError(f"checkpoint {path}: expected a dict with 'w' (tensors) and 'm' (meta)")
    return obj["w"], obj["m"]


def load_checkpoint(path) -> tuple[dict | None, dict]:
    """``(config_dict, state_dict_fp32)`` from an fp32 checkpoint or an artifact; the config is None
    for an artifact that carries none (the seed's own files: ``neural.config=`` says what they are)."""
    return read_checkpoint(path)[:2]


def read_checkpoint(path) -> tuple[dict | None, dict, dict | None]:
    """``load_checkpoint`` plus the file's tokenizer record (``tokenizer_record``; None when it has
    none), from one read of the file."""
    data = _read_bytes(path)
    if data.startswith(ZSTD_MAGIC):
        w, m = read_artifact(path)
        config, record = m.get("__config__"), m.get("__tokenizer__")
        return ((dict(config) if config is not None else None), dequantize(w, m, source=f"checkpoint {path}"),
                dict(record) if isinstance(record, dict) else None)
    if not data.startswith(b"PK"):
        raise ArtifactError(f"checkpoint {path}: unknown format (neither a torch file nor a zstd artifact)")
    obj = _torch_load(data, path)
    if not isinstance(obj, dict) or obj.get("format") != FP32_FORMAT:
        raise ArtifactError(f"checkpoint {path}: not a {FP32_FORMAT} checkpoint (no 'format' entry)")
    for key in ("config", "state_dict"):
        if not isinstance(obj.get(key), dict):
            raise ArtifactError(f"checkpoint {path}: missing {key!r}")
    record = obj.get("tokenizer")
    return dict(obj["config"]), dict(obj["state_dict"]), dict(record) if isinstance(record, dict) else None


# ----------------------------------------------------------------------------- the seed's own format

SEED_META = {"fp16": "passthrough", "raw": "passthrough", "fp32": "passthrough_ctrl"}


def export_seed_artifact(src, dst) -> dict:
    """Rewrite an artifact in the seed's own format (PR #700: tags ``passthrough`` /
    ``passthrough_ctrl`` / ``{"type": "int6"}`` / ``{"type": "int8"}``, per-row scales, no config),
    so that the seed's ``train_gpt.py`` loads it with ``dequantize_mixed_int6``. Values are unchanged
    (int5 values fit the int6 range). Returns the environment variables that make the seed build
    the model (``config.seed_env``)."""
    import torch
    import zstandard

    from .config import GPTConfig, seed_env

    w, m = read_artifact(src)
    if m.get("__config__") is None:
        raise ArtifactError(f"checkpoint {src}: carries no config, so the seed's settings for it are unknown")
    env = seed_env(GPTConfig.from_dict(m["__config__"]))
    out_w, out_m = {}, {}
    for name, info in m.items():
        if name.startswith("__"):
            continue
        kind = info.get("type") if isinstance(info, dict) else _SEED_TAGS.get(info)
        if kind in SEED_META:
            out_w[name], out_m[name] = w[name], SEED_META[kind]
            continue
        q, scale = w[f"{name}.q"], w[f"{name}.scale"]
        shape = info.get("shape") if isinstance(info, dict) else None
        if shape is not None and list(q.shape) != list(shape):
            raise ArtifactError(f"checkpoint {src}: tensor {name!r} is stored as {tuple(q.shape)}, not in its "
                                f"shape {tuple(shape)}: the seed's loader cannot reshape it")
        out_w[f"{name}.q"], out_w[f"{name}.scale"] = q, scale
        out_m[name] = {"type": "int6" if kind == "int5" else "int8"}
    buf = io.BytesIO()
    torch.save({"w": out_w, "m": out_m}, buf)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(buf.getvalue()))
    return env


# ----------------------------------------------------------------------------- size report

def code_bytes() -> dict:
    """Bytes of the source the artifact needs to run: pgolf_neural's .py files outside ``train/``.

    Training code is not needed to score with an artifact, and the engine (pgolf_core) plays the
    part of the challenge's evaluation harness, so neither is counted.
    """
    root = Path(__file__).resolve().parent
    files = sorted(p for p in root.rglob("*.py") if "train" not in p.relative_to(root).parts[:-1])
    return {"files": [str(p.relative_to(root.parent)) for p in files],
            "bytes": sum(p.stat().st_size for p in files)}


def _stats_from(path, compressed: int, w: dict, m: dict, code_file=None) -> dict:
    """Counts and values by kind (values from the stored tensors: a quantized tensor's ``.q``), and
    the submission size with the code bytes of ``code_file`` (the script the artifact belongs to,
    e.g. the seed's ``train_gpt.py``) or of pgolf_neural's scoring code."""
    counts = {k: 0 for k in KINDS}
    values = {k: 0 for k in KINDS}
    for name, info in m.items():
        if name.startswith("__"):
            continue
        kind = _SEED_TAGS.get(info) if isinstance(info, str) else info.get("type")
        kind = "int5" if kind == "int6" else kind
        if kind in counts:
            counts[kind] += 1
            stored = w.get(f"{name}.q", w.get(name))
            values[kind] += int(stored.numel()) if hasattr(stored, "numel") else 0
    code = Path(code_file).stat().st_size if code_file is not None else code_bytes()["bytes"]
    return {"path": str(path), "format": m.get("__format__", "seed"), "tensors": counts,
            "values": values, "compressed_bytes": compressed, "code_bytes": code,
            "submission_bytes": compressed + code, "limit_bytes": SUBMISSION_LIMIT,
            "fits": compressed + code <= SUBMISSION_LIMIT, "config": m.get("__config__"),
            "tokenizer": m.get("__tokenizer__")}


def artifact_info(path, code_file=None) -> dict:
    """Tensor counts and values by kind, compressed bytes, code bytes (of ``code_file`` when given),
    and the submission size vs 16,000,000."""
    if code_file is not None and not Path(code_file).is_file():
        raise ArtifactError(f"code file {code_file}: no such file")
    w, m = read_artifact(path)
    info = _stats_from(path, Path(path).stat().st_size, w, m, code_file)
    info["code_file"] = str(code_file) if code_file is not None else None
    return info
