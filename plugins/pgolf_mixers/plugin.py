"""Registration of the builtin mixers: hedge, logistic (alias geometric), stack and tilt.

This module must import quickly: the mixer classes (and numba, through their kernels) are imported
inside the factories. Every option may arrive as a string from ``--mixer-opt key=value``.
"""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.errors import UsageError

from .options import input_count, parse_bool, parse_choice, parse_float, parse_int, parse_vector


def make_hedge(ctx, eta="1.0", prior="uniform", update="token", share="0", bias="0", batch_loss="sum",
               solo_first="0", batch="2048", window="2048", stride="64"):
    """Hedge / Bayesian mixture. The seed record's variant: eta=0.1 update=batch batch_loss=window
    bias=2 solo_first=131072."""
    from .hedge import HedgeMixer

    m = "mixer 'hedge'"
    k = input_count(ctx, m)
    prior_vec = None if str(prior).strip().lower() == "uniform" else parse_vector(
        prior, m, "prior", k, ctx.expert_names, positive=True)
    return HedgeMixer(
        k, ctx.vocab_size,
        eta=parse_float(eta, m, "eta", low=0.0, low_open=True),
        prior=prior_vec,
        update=parse_choice(update, m, "update", ("token", "batch")),
        share=parse_float(share, m, "share", low=0.0, high=1.0, high_open=True),
        bias=parse_float(bias, m, "bias"),
        batch_loss=parse_choice(batch_loss, m, "batch_loss", ("sum", "mean", "window")),
        solo_first=parse_int(solo_first, m, "solo_first", low=0),
        batch=parse_int(batch, m, "batch", low=1),
        window=parse_int(window, m, "window", low=1),
        stride=parse_int(stride, m, "stride", low=1),
        input_names=ctx.expert_names,
    )


def make_logistic(ctx, lr="0.003", init="uniform", bias="0", context="none", buckets="8"):
    """Online geometric mixture renormalized over the vocabulary (needs full distributions)."""
    from .logistic import LogisticMixer

    m = "mixer 'logistic'"
    k = input_count(ctx, m)
    init_vec = None if str(init).strip().lower() == "uniform" else parse_vector(init, m, "init", k, ctx.expert_names)
    return LogisticMixer(
        k, ctx.vocab_size,
        lr=parse_float(lr, m, "lr", low=0.0),
        init=init_vec,
        bias=parse_bool(bias, m, "bias"),
        context=parse_choice(context, m, "context", ("none", "entropy", "confidence")),
        buckets=parse_int(buckets, m, "buckets", low=1),
        input_names=ctx.expert_names,
    )


def make_stack(ctx, inputs="", top="hedge", top_opts=""):
    """Top mixer over sub-mixers; syntax in ``pgolf_mixers.stack``."""
    from .stack import build_stack

    input_count(ctx, "mixer 'stack'")
    return build_stack(ctx, inputs, top, top_opts)


def make_tilt(ctx, inner="", order="16", threshold="0.8", beta="2.625"):
    """The token-only n-gram tilt over input 0, or over an ``inner`` mixer of all inputs."""
    from .stack import parse_spec
    from .tilt import TiltMixer

    m = "mixer 'tilt'"
    k = input_count(ctx, m)
    order_n = parse_int(order, m, "order", low=1)
    thr = parse_float(threshold, m, "threshold", low=0.0, high=1.0)
    boost = parse_float(beta, m, "beta")
    spec = str(inner).strip() if isinstance(inner, str) else inner
    if spec in ("", "none", None):
        spec = "hedge" if k > 1 else None
    inner_mixer = None
    if spec is not None:
        plugins = ctx.plugins
        if plugins is None:
            from pgolf_core.plugins import load_plugins

            plugins = load_plugins()
        name, opts = parse_spec(spec, "inner")
        if name == "tilt":
            raise UsageError(f"{m}: inner cannot be another tilt")
        inner_mixer = plugins.mixers.create(name, ctx, **opts)
    return TiltMixer(k, ctx.vocab_size, inner=inner_mixer, order=order_n, threshold=thr, beta=boost)


@hookimpl
def pgolf_register_mixers(register):
    register("hedge", make_hedge,
             description="Hedge / Bayesian mixture (options eta, prior, update=token|batch, share, bias, "
                         "batch_loss=sum|mean|window, batch, window, stride, solo_first)")
    register("logistic", make_logistic, aliases=["geometric"],
             description="online geometric mixture, exactly renormalized (options lr, init, bias, "
                         "context=none|entropy|confidence, buckets)")
    register("tilt", make_tilt,
             description="token-only n-gram tilt: +beta on the logit of the token that followed the last "
                         "order-1 targets most often, when its frequency >= threshold, renormalized exactly "
                         "(options order=16, threshold=0.8, beta=2.625, inner=hedge|logistic|... over several inputs)")
    register("stack", make_stack,
             description="top mixer over sub-mixers (options inputs='hedge:share=0.01;logistic:lr=0.02', "
                         "top, top_opts)")
