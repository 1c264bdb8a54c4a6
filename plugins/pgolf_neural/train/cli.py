"""``pgolf-core train``: the click layer over ``run_training`` (torch is imported only when it runs).

Every field of ``TrainConfig`` is an option (``--train-batch-tokens 786432``); the parameter-golf
environment names (``TRAIN_BATCH_TOKENS=786432``) and ``PGOLF_<FIELD>`` are accepted too. Model
settings go through ``--model-set key=value`` onto the preset's ``GPTConfig``.
"""

from __future__ import annotations

import json
from dataclasses import fields

import click

from pgolf_core.errors import PgolfError, UsageError

from .options import PRESETS, TrainConfig


def _field_options(func):
    for f in reversed(fields(TrainConfig)):
        func = click.option(f"--{f.name.replace('_', '-')}", f.name, default=None, metavar="VALUE",
                            help=f"(preset pr700: {getattr(PRESETS['pr700'], f.name)})")(func)
    return func


def model_config_for(preset_name: str, sets) -> dict:
    """The model preset's config dict with ``key=value`` overrides, validated by GPTConfig."""
    from ..config import PRESETS as MODEL_PRESETS, GPTConfig

    if preset_name not in MODEL_PRESETS:
        raise UsageError(f"unknown model preset {preset_name!r}; known: {', '.join(sorted(MODEL_PRESETS))}")
    cfg = MODEL_PRESETS[preset_name].to_dict()
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or key not in cfg:
            raise UsageError(f"--model-set {item!r}: expected key=value with key one of {', '.join(sorted(cfg))}")
        cfg[key] = _like(cfg[key], value, key)
    return GPTConfig.from_dict(cfg).to_dict()


def _like(old, value: str, key: str):
    try:
        if isinstance(old, bool):
            if value.lower() not in ("0", "1", "true", "false"):
                raise ValueError(value)
            return value.lower() in ("1", "true")
        if isinstance(old, int):
            return int(value)
        if isinstance(old, float):
            return float(value)
        if isinstance(old, (list, tuple)):
            return [int(v) for v in value.split(",") if v]
    except ValueError:
        raise UsageError(f"--model-set {key}={value}: expected a value like {old!r}") from None
    return value


@click.command("train")
@click.argument("data", type=click.Path())
@click.option("--out", "out_dir", default="runs/train", show_default=True, help="Output directory.")
@click.option("--preset", default="pr700", show_default=True, type=click.Choice(sorted(PRESETS)),
              help="Training and model preset.")
@click.option("--model-set", "model_sets", multiple=True, metavar="KEY=VALUE", help="Model config override.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@_field_options
def train_cmd(data, out_dir, preset, model_sets, as_json, **overrides):
    """Train the neural expert on DATA (.npy or training shards) and export its int5 artifact.

    Also runs under torchrun: ``torchrun --nproc_per_node=8 -m pgolf_core train DATA ...``.
    """
    try:
        from .loop import run_training
        from .options import resolve

        cfg = resolve(preset, {k: v for k, v in overrides.items() if v is not None})
        model_cfg = model_config_for(cfg.model_preset, model_sets)
        summary = run_training(data, out_dir, cfg, model_cfg)
    except PgolfError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = exc.exit_code
        raise err from exc
    if as_json and summary.get("artifact") is not None:
        click.echo(json.dumps({k: v for k, v in summary.items() if k != "losses"} | {"final_loss": summary["losses"][-1]}))
