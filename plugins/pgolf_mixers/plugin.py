"""Registration of the builtin mixers: hedge, logistic (alias geometric), stack and tilt.

This module must import quickly: the mixer classes (and numba, through their kernels) are imported
inside the factories. Every option may arrive as a string from ``--mixer-opt key=value``.
"""

from __future__ import annotations

from pgolf_core import hookimpl
from pgolf_core.errors import UsageError

from pgolf_core.options import Option, declared

from .options import HEDGE_OPTIONS, input_count, parse_vector


@declared("mixer 'hedge'", **HEDGE_OPTIONS)
def make_hedge(ctx, eta, prior, update, share, bias, batch_loss, solo_first, batch, window, stride):
    """Hedge / Bayesian mixture. The seed record's variant: eta=0.1 update=batch batch_loss=window
    bias=2 solo_first=131072."""
    from .hedge import HedgeMixer

    m = "mixer 'hedge'"
    k = input_count(ctx, m)
    prior_vec = None if prior == "uniform" else parse_vector(prior, m, "prior", k, ctx.expert_names, positive=True)
    return HedgeMixer(k, ctx.vocab_size, eta=eta, prior=prior_vec, update=update, share=share, bias=bias,
                      batch_loss=batch_loss, solo_first=solo_first, batch=batch, window=window, stride=stride,
                      input_names=ctx.expert_names)


@declared(
    "mixer 'logistic'",
    lr=Option("float", 0.003, "gradient step on each target's log loss", low=0.0),
    init=Option("list", "uniform", "starting weights: uniform (1/K each), or K comma-separated numbers",
                item="float", choices=("uniform",)),
    bias=Option("bool", False, "also learn a per-token logit bias"),
    context=Option("choice", "none", "weight sets chosen by the first input's entropy or confidence",
                   choices=("none", "entropy", "confidence")),
    buckets=Option("int", 8, "weight sets when context is not none", low=1),
)
def make_logistic(ctx, lr, init, bias, context, buckets):
    """Online geometric mixture renormalized over the vocabulary (needs full distributions)."""
    from .logistic import LogisticMixer

    m = "mixer 'logistic'"
    k = input_count(ctx, m)
    init_vec = None if init == "uniform" else parse_vector(init, m, "init", k, ctx.expert_names)
    return LogisticMixer(k, ctx.vocab_size, lr=lr, init=init_vec, bias=bias, context=context, buckets=buckets,
                         input_names=ctx.expert_names)


@declared(
    "mixer 'stack'",
    inputs=Option("text", "", "sub-mixers over all inputs, ';'-separated: 'hedge:share=0.01;logistic:lr=0.02'"),
    top=Option("text", "hedge", "the mixer over the sub-mixers"),
    top_opts=Option("text", "", "the top mixer's options: 'key=value:key=value'"),
)
def make_stack(ctx, inputs, top, top_opts):
    """Top mixer over sub-mixers; syntax in ``pgolf_mixers.stack``."""
    from .stack import build_stack

    input_count(ctx, "mixer 'stack'")
    return build_stack(ctx, inputs, top, top_opts)


@declared(
    "mixer 'tilt'",
    inner=Option("text", "", "mixer of all inputs under the tilt (name:key=value...); default hedge for several"),
    order=Option("int", 16, "length of the context the hint keys on, plus one", low=1),
    threshold=Option("float", 0.8, "the hinted token's frequency needed to fire", low=0.0, high=1.0),
    beta=Option("float", 2.625, "logit boost of the hinted token"),
)
def make_tilt(ctx, inner, order, threshold, beta):
    """The token-only n-gram tilt over input 0, or over an ``inner`` mixer of all inputs."""
    from .stack import parse_spec
    from .tilt import TiltMixer

    m = "mixer 'tilt'"
    k = input_count(ctx, m)
    order_n, thr, boost = order, threshold, beta
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
    register("hedge", make_hedge, description="Hedge / Bayesian mixture (fixed share, the seed's batch variant)")
    register("logistic", make_logistic, aliases=["geometric"],
             description="online geometric mixture, exactly renormalized")
    register("tilt", make_tilt,
             description="token-only n-gram tilt: +beta on the logit of the token that followed the last "
                         "order-1 targets most often, when its frequency >= threshold, renormalized exactly")
    register("stack", make_stack, description="top mixer over sub-mixers")
