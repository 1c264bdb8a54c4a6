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
    from ..config import PRESETS as MODEL_PRESETS, GPTConfig, apply_overrides

    if preset_name not in MODEL_PRESETS:
        raise UsageError(f"unknown model preset {preset_name!r}; known: {', '.join(sorted(MODEL_PRESETS))}")
    return GPTConfig.from_dict(apply_overrides(MODEL_PRESETS[preset_name].to_dict(), sets, "--model-set")).to_dict()


def vocab_from_tokenizer(sets, tokenizer: dict, path) -> tuple:
    """The ``--model-set`` list with ``vocab_size`` taken from the tokenizer; an explicit different
    ``vocab_size`` is an error (a model whose alphabet is not the tokenizer's scores nothing right)."""
    for item in sets:
        key, _, value = item.partition("=")
        if key == "vocab_size" and value.strip() != str(tokenizer["vocab_size"]):
            raise UsageError(f"--model-set {item} but tokenizer {path} has {tokenizer['vocab_size']} pieces; "
                             f"drop the override (vocab_size follows --tokenizer)")
    return (*[s for s in sets if s.partition("=")[0] != "vocab_size"], f"vocab_size={tokenizer['vocab_size']}")


@click.command("train")
@click.argument("data", type=click.Path())
@click.option("--out", "out_dir", default="runs/train", show_default=True, help="Output directory.")
@click.option("--preset", default="pr700", show_default=True, type=click.Choice(sorted(PRESETS)),
              help="Training and model preset.")
@click.option("--model-set", "model_sets", multiple=True, metavar="KEY=VALUE", help="Model config override.")
@click.option("--tokenizer", "tokenizer_path", default=None, type=click.Path(),
              help="SentencePiece model of DATA: the model's vocab_size follows it, and its sha256 is "
                   "recorded in the artifact (evaluation then refuses another tokenizer).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@_field_options
def train_cmd(data, out_dir, preset, model_sets, tokenizer_path, as_json, **overrides):
    """Train the neural expert on DATA (.npy or training shards) and export its int5 artifact.

    Also runs under torchrun: ``torchrun --nproc_per_node=8 -m pgolf_core train DATA ...``.
    """
    try:
        from .loop import run_training
        from .options import resolve

        cfg = resolve(preset, {k: v for k, v in overrides.items() if v is not None})
        tokenizer = None
        if tokenizer_path is not None:
            from ..artifact import tokenizer_record

            tokenizer = tokenizer_record(tokenizer_path)
            model_sets = vocab_from_tokenizer(model_sets, tokenizer, tokenizer_path)
        model_cfg = model_config_for(cfg.model_preset, model_sets)
        summary = run_training(data, out_dir, cfg, model_cfg, tokenizer=tokenizer)
    except PgolfError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = exc.exit_code
        raise err from exc
    if as_json and summary.get("artifact") is not None:
        click.echo(json.dumps({k: v for k, v in summary.items() if k != "losses"} | {"final_loss": summary["losses"][-1]}))
