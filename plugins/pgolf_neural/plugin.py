"""Registration of the ``neural`` expert (the seed's GPT, sliding-window scoring).

This module must import quickly: torch and the model are imported inside the factory. Options
arrive as strings from the command line, so each is converted and checked here with an error that
names the option.
"""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.errors import UsageError
from pgolf_core.options import Option, declared

_DTYPES = {"auto": None, "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}
DEFAULT_STRIDE = 64  # the seed's evaluation stride
DEFAULT_BATCH = 32  # windows per forward pass


def _device(value, default: str):
    import torch

    text = str(value if value is not None else default).strip()
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"expert 'neural': option device must be a torch device such as cpu or cuda:0, "
                         f"got {text!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"expert 'neural': device {text!r} requested but CUDA is not available")
    return device


def _dtype(value, device):
    import torch

    key = str(value).strip().lower()
    if key not in _DTYPES:
        raise UsageError(f"expert 'neural': option dtype must be one of auto, float32, bfloat16; got {value!r}")
    if _DTYPES[key] is None:
        return None
    if _DTYPES[key] == "bfloat16" and device.type != "cuda":
        raise UsageError("expert 'neural': dtype=bfloat16 needs a CUDA device (CPU scoring is float32)")
    return getattr(torch, _DTYPES[key])


def _build_model(ctx, checkpoint, preset, init_seed, config=None):
    """(model, description of where it came from)."""
    from .config import preset as get_preset
    from .expert import default_checkpoint, load_model, random_model

    if checkpoint is not None and (preset is not None or init_seed is not None):
        raise UsageError("expert 'neural': give either checkpoint=PATH or preset=NAME with init_seed=N, not both")
    if preset is not None and config is not None:
        raise UsageError("expert 'neural': give either preset=NAME or config=..., not both")
    if preset is not None or init_seed is not None:
        if (preset is None and config is None) or init_seed is None:
            raise UsageError("expert 'neural': a random model needs init_seed=N and preset=NAME (or config=...)")
        seed = init_seed  # an int >= 0: parsed by the declaration
        cfg = config if config is not None else get_preset(str(preset).strip())
        return random_model(cfg, seed), f"{'config' if preset is None else 'preset ' + str(preset)} (random, seed {seed})"
    path = checkpoint if checkpoint is not None else default_checkpoint(ctx.dataset)
    model = load_model(path, config)
    check_tokenizer(path, model.tokenizer_record, ctx.tokenizer_path)
    if model.config_source == "assumed pr700":
        import warnings

        warnings.warn(f"checkpoint {path} carries no model config; assumed the seed's default (pr700: "
                      f"{model.config.to_dict()}); pass neural.config=... if it was trained with other settings",
                      stacklevel=2)
    return model, f"checkpoint {path}"


def _user_model(spec, checkpoint, device, builtin_options):
    """(model, description) from ``model=package.module:factory``: a user's causal LM."""
    from pgolf_core.causal_lm import check_causal_lm, load_factory

    if any(v is not None for v in builtin_options):
        raise UsageError("expert 'neural': options preset, init_seed and config describe the builtin GPT; "
                         "with model=... the factory builds the model")
    factory = load_factory(spec)
    try:
        lm = factory(checkpoint=checkpoint, device=str(device))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(f"expert 'neural': model={spec} could not load checkpoint={checkpoint}: {exc}") from None
    source = f"model {spec}" + (f" (checkpoint {checkpoint})" if checkpoint is not None else "")
    check_causal_lm(lm, f"expert 'neural': {source}")
    return lm, source


def check_tokenizer(path, record, tokenizer_path) -> None:
    """A checkpoint that records its tokenizer's sha256 (``record``) refuses a run with another
    tokenizer: its token ids would mean other pieces, and the score would be a confident wrong number."""
    if not record or not record.get("sha256") or tokenizer_path is None:
        return
    from pgolf_core.digest import sha256_file

    actual = sha256_file(tokenizer_path)
    if actual != record["sha256"]:
        raise UsageError(f"expert 'neural': checkpoint {path} was trained with tokenizer {record.get('file')} "
                         f"(sha256 {record['sha256'][:12]}...) but this run's tokenizer {tokenizer_path} has "
                         f"sha256 {actual[:12]}...")


@declared(
    "expert 'neural'",
    checkpoint=Option("text", None, "an fp32 checkpoint or an int5 artifact (a user model: its factory's file)"),
    preset=Option("text", None, "a random model of this preset (with init_seed)"),
    init_seed=Option("int", None, "seed of a random model", low=0),
    seq_len=Option("int", None, "window length (default: the model's training length)", low=1),
    stride=Option("int", None, "windows: scored targets per window (default 64)", low=1),
    batch=Option("int", DEFAULT_BATCH, "windows per forward", low=1),
    device=Option("text", None, "torch device (default: the run's)"),
    dtype=Option("choice", "auto", "autocast dtype (bfloat16 on CUDA only)", choices=tuple(_DTYPES)),
    dist_dtype=Option("choice", "float64", "precision of full distributions", choices=("float64", "float32")),
    scorer=Option("choice", "windows", "sliding windows (the seed's) or the cached scorer (each position once)",
                  choices=("windows", "cache")),
    block=Option("int", None, "cache: positions per forward (default seq_len; longer: a multiple of it)", low=1),
    isolate_docs=Option("bool", False, "attention never crosses a BOS"),
    config=Option("text", None, "a checkpoint's model settings: FILE.json | PRESET | seed, with :key=value"),
    temperature=Option("float", 1.0, "the seed's entropy-adaptive temperature (1: off; the seed used 0.98)",
                       low=0.0, low_open=True),
    model=Option("text", None, "package.module:factory of any causal LM (pgolf_core.causal_lm)"),
)
def make_neural(ctx, checkpoint, preset, init_seed, seq_len, stride, batch, device, dtype, dist_dtype, scorer,
                block, isolate_docs, config, temperature, model):
    """The GPT expert, or any causal LM: ``model=package.module:factory`` is called as
    ``factory(checkpoint=..., device=...)`` and must return a model that follows
    ``pgolf_core.causal_lm``. seq_len defaults to the model's training length, stride to 64 (or seq_len).
    ``dist_dtype=float32`` halves the cost of full distributions for mixers that need them (rows
    still sum to 1 within 1e-6; log-probabilities then carry float32 precision, ~1e-7).
    ``scorer=cache`` computes each position once (attention over the last seq_len positions,
    ``block`` positions per forward, default seq_len); ``scorer=windows`` (the default) is the
    seed's stride-64 sliding windows, kept as the reference. ``isolate_docs=true``: attention never
    crosses a BOS token. ``config=`` describes a checkpoint without an embedded config (the seed's
    artifacts): a JSON file, a preset name or ``seed`` (this process's seed environment variables),
    each with optional ``:key=value`` overrides (``pgolf_neural.config.resolve_config``).
    ``temperature`` (1 = off) applies the seed's entropy-adaptive temperature to every row
    (``scoring.adaptive_temperature``; the seed used 0.98)."""
    from pgolf_core.stream.data import BOS_ID

    from .expert import NeuralExpert, check_vocab

    if block is not None and scorer != "cache":
        raise UsageError("expert 'neural': option block is the cached scorer's; add scorer=cache or drop it")
    if stride is not None and scorer == "cache":
        raise UsageError("expert 'neural': option stride is the window scorer's; the cached scorer has block=N")
    dev = _device(device, getattr(ctx, "device", "cpu"))
    torch_dtype = _dtype(dtype, dev)
    from .config import resolve_config

    if model is not None:
        lm, source = _user_model(model, checkpoint, dev, (preset, init_seed, config))
    else:
        model_config = resolve_config(config) if config is not None else None  # checked before any file is read
        lm, source = _build_model(ctx, checkpoint, preset, init_seed, model_config)
    check_vocab(lm, ctx.vocab_size, source)
    seq_len = seq_len or lm.context_length
    if seq_len > lm.context_length:  # positions it never saw in training (the demo model's are 256)
        raise UsageError(f"expert 'neural': seq_len={seq_len} exceeds the context length of {source} "
                         f"({lm.context_length} positions, the length it was trained at)")
    stride = stride or min(DEFAULT_STRIDE, seq_len)
    if stride > seq_len:
        raise UsageError(f"expert 'neural': option stride ({stride}) must not exceed seq_len ({seq_len})")
    if block is not None and block > seq_len and block % seq_len:
        raise UsageError(f"expert 'neural': a block longer than seq_len ({seq_len}) must be a multiple of it "
                         f"(its attention runs in tiles of seq_len), got block={block}")
    return NeuralExpert(lm, seq_len=seq_len, stride=stride, batch=batch, device=dev, dtype=torch_dtype,
                        source=source,
                        dist_dtype=dist_dtype, scorer=scorer, block=block, bos=BOS_ID if isolate_docs else None,
                        temperature=temperature)


@hookimpl
def pgolf_register_experts(register):
    register("neural", make_neural,
             description="the seed's GPT or any causal LM (model=...), scored by sliding windows or the cache")


@hookimpl
def pgolf_register_presets(register):
    from .presets import pr700, pr700_legal

    register("pr700", pr700, description="PR #700 as published: 5-expert Hedge, stride 64, TTT (INVALID: its "
                                         "entropy expert and hashed trigram break C2)")
    register("pr700-legal", pr700_legal, description="PR #700 with the legal entropy expert and trigram")
