"""``evaluate(...)``: the Python API behind ``pgolf-core eval``.

It resolves the stream and the tokenizer, builds the components (``pgolf_core.build``), runs the
one loop (``pgolf_core.loop``: chunks tile the targets ``1 .. N-1`` exactly once, the tail
included) and turns what the guards, the audit and the live spot checks saw into a verdict with a
level (``pgolf_core.verdict``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .api import Adapter, Expert, Mixer
from .build import Component, as_components as _as_components, build_components, mixer_spec, refuse_repeats
from .device import check_device
from .distributed import init_distributed
from .errors import InvalidConfigurationError, UsageError
from .loop import Guards, Loop
from .plugins import load_plugins
from .report import Results, collect_versions
from .session import DEFAULT_CHUNK, resolve_stream, run_context, setup_adapters
from .verdict import DEFAULT_SPOT_CHECKS, make_verdict

__all__ = ["Component", "DEFAULT_CHUNK", "evaluate", "resolve_stream", "run_context"]


def evaluate(
    experts: Sequence[Union[str, Expert, Component]],
    mixer: Union[str, Mixer, Component, None] = None,
    adapters: Sequence[Union[str, Adapter, Component]] = (),
    tokens: Union[np.ndarray, str, Path, None] = None,
    tokenizer: Union[str, Path, None] = None,
    *,
    expert_options: Optional[Mapping[str, dict]] = None,
    mixer_options: Optional[dict] = None,
    adapter_options: Optional[Mapping[str, dict]] = None,
    chunk_size: int = DEFAULT_CHUNK,
    limit: Optional[int] = None,
    trim_seq_len: Optional[int] = None,
    allow_invalid: bool = False,
    plugins=None,
    plugin_modules: Sequence[str] = (),
    device: str = "cpu",
    seed: int = 0,
    keep_logprobs: bool = False,
    progress: bool = False,
    audit: bool = False,
    strict: Optional[bool] = None,
    spot_checks: int = DEFAULT_SPOT_CHECKS,
    prove: bool = False,
    proof_path: Union[str, Path, None] = None,
    check_tokenizer: Optional[bool] = None,
    byte_counts: Union[str, Path, None] = None,
    resume: Union[str, Path, None] = None,
    checkpoint_every: Optional[int] = None,
    sparse_rows: bool = True,
) -> Results:
    """Score a token stream and return a ``Results`` (``bpb``, ``loss``, ``targets``, ``bytes``,
    ``expert_bpb``, ``weights``, ``level``, ...).

    ``experts`` are registered names (or ready ``Expert`` instances); ``mixer`` a name or instance
    (None: ``hedge`` for several experts, no mixer for one); ``tokens`` an array or a path (.npy, shard, shard
    directory or glob); ``tokenizer`` the SentencePiece model (needed to count bytes). With neither
    tokens nor tokenizer the built-in demo stream is scored. ``limit`` keeps the first N tokens
    (N-1 targets); ``trim_seq_len`` applies the official scripts' cut for parity with their logs.

    ``strict=True`` reads every score from the mixture's full distribution (``pgolf_core.loop``).
    ``audit=True`` (strict by default) audits this run's own components with this run's context
    before the pass and spot-checks the live pass at secret positions (each target with probability
    ``spot_checks / targets``, drawn after its block is scored; ``pgolf_core.spotcheck``); a passing
    audit makes the result ``audited``, a failing one ``invalid``; ``spot_checks=0`` leaves it
    ``unchecked``. ``prove=True`` also
    codes the stream into a file (``proof_path``, or a temporary one) and decodes it back from the
    file alone (``pgolf_core.compress``); when the tokens come back identical and the coded run's
    BPB equals this one, the result is ``proven``. Without either the result is ``unchecked``: only
    the runtime guards ran.

    ``resume=FILE`` makes a long run resumable (``pgolf_core.resume``): a resume point of the whole
    loop state is written to FILE every ``checkpoint_every`` targets and at Ctrl-C (which then raises
    ``Interrupted``), and a run given a FILE that holds a resume point of the same configuration and
    stream continues from it, to exactly the BPB of an uninterrupted run.

    ``sparse_rows`` (default True): outside strict scoring, a mixer with ``mix_log_grouped`` over
    experts that all give ``sparse_rows`` (the n-grams) mixes over groups of tokens, at O(support)
    per target instead of O(V), to the same score (``pgolf_core.loop``); False mixes full rows.
    """
    t_start = time.perf_counter()
    check_device(device)  # before any work: an impossible device never falls back to the CPU
    if chunk_size < 1:
        raise UsageError(f"chunk_size must be positive, got {chunk_size}")
    if strict is None:
        strict = bool(audit or prove)
    if audit and not strict:
        raise UsageError("an audited result needs strict scoring: drop strict=False (--no-strict)")
    if checkpoint_every is not None and (resume is None or checkpoint_every < 1):
        raise UsageError("checkpoint_every needs a positive number of targets and resume=FILE (--resume) to write to")
    if resume is not None and (audit or prove):
        raise UsageError("a resumable run cannot also be audited or proven in the same pass; audit or prove it separately")
    pinned = None
    if prove:  # the plugins' files as they are before any is imported: what the decoder may read back
        from .plugins import pin_plugin_code

        pinned = pin_plugin_code(plugin_modules)
    plugins = plugins if plugins is not None else load_plugins(plugin_modules)
    dist = init_distributed(device)
    stream, table, tok_path, dataset, counter = resolve_stream(tokens, tokenizer, limit, trim_seq_len, check_tokenizer,
                                                               byte_counts, plugins)
    data_checks = _data_checks(stream, table, tok_path, counter)
    expert_specs = _as_components(experts, expert_options)
    adapter_specs = _as_components(adapters, adapter_options)
    refuse_repeats(expert_specs, same_options=not adapter_specs)
    refuse_repeats(adapter_specs)
    ctx = run_context(table, tok_path, dataset, len(stream), plugins, device, seed, dist)
    counted = int(np.sum(counter.target_bytes(stream)))  # before any component exists (see _tampering)
    t_build = time.perf_counter()
    mspec = mixer_spec(mixer, mixer_options, len(expert_specs))
    comps, problems = build_components(plugins, ctx, expert_specs, mspec, adapter_specs)
    guards = Guards()
    for p in problems:
        guards.violation(p, p)
    if problems and not allow_invalid:
        raise InvalidConfigurationError("; ".join(problems) + " (pass allow_invalid / --allow-invalid to run it anyway, scored as INVALID)")
    if prove:  # refuse an undecodable configuration now, not after the whole evaluation
        from .compress import check_decodable

        check_decodable(comps)
    audit_report, observers = None, []
    if audit:
        from .audit import audit_components
        from .build import build_twin
        from .spotcheck import SpotChecks

        twin, rebuilt = build_twin(plugins, ctx, expert_specs, mspec, adapter_specs)  # before anything advances comps
        setup_adapters(twin)
        audit_report = audit_components(comps, ctx, stream, tok_path, plugins, seed=seed)
        observers.append(SpotChecks(len(stream), spot_checks, twin=twin, rebuilt=rebuilt))
    setup_adapters(comps)
    build_seconds = time.perf_counter() - t_build

    loop = Loop(comps, counter, len(stream), stream.dtype, strict=strict, guards=guards, keep_logprobs=keep_logprobs,
                observers=observers, sparse_rows=sparse_rows)
    if resume is not None:
        from .resume import run_digest, run_resumable

        digest = run_digest({"experts": [(c.name, c.label, c.options) for c in expert_specs],
                             "mixer": [str(mixer), mixer_options], "adapters": [(c.name, c.label, c.options) for c in adapter_specs],
                             "chunk": chunk_size, "strict": strict, "sparse_rows": sparse_rows, "seed": seed, "device": device,
                             "keep_logprobs": keep_logprobs, "bytes": counter.describe()}, stream)
        run_resumable(loop, stream, chunk_size, resume, checkpoint_every or 0, digest, progress and dist.is_main,
                      plugins)
        comps, guards = loop.comps, loop.guards  # the resumed components and what their guards saw
    else:
        loop.run(stream, chunk_size, progress and dist.is_main)
    summary = loop.summary()
    for problem in _tampering(summary, counted):
        guards.violation(problem, problem)
    proof = None
    if prove:
        proof = _prove(expert_specs, mixer, mixer_options, adapter_specs, stream, counter, tok_path, dataset, plugins,
                       plugin_modules, device, seed, chunk_size, proof_path, summary["bpb"], progress and dist.is_main, pinned)
    verdict = make_verdict(guards, strict=strict, audit=audit_report, spot=observers[0] if observers else None,
                           proof=proof)
    return Results(
        **summary,
        validity=verdict,
        config={
            "experts": [{"name": c.name, "label": c.label, "options": c.options, "resolved": e.describe()}
                        for c, e in zip(expert_specs, comps.experts)],
            "mixer": None if comps.mixer is None else {"name": comps.mixer.name, "resolved": comps.mixer.describe()},
            "adapters": [{"name": c.name, "options": c.options, "resolved": a.describe()}
                         for c, a in zip(adapter_specs, comps.adapters)],
            "data": dataset, "tokenizer": tok_path, "bytes": counter.describe(), "chunk_size": chunk_size, "limit": limit,
            "trim_seq_len": trim_seq_len, "device": device, "seed": seed, "allow_invalid": allow_invalid,
            "world_size": dist.world_size, "strict": strict, "grouped_rows": loop.grouped,
        },
        versions=collect_versions(plugins),
        timings={"total_seconds": time.perf_counter() - t_start, "build_seconds": build_seconds,
                 "loop_seconds": loop.loop_seconds, "components": loop.timers,
                 "expert_stats": {lb: e.stats() for lb, e in zip(comps.labels, comps.experts) if e.stats()},
                 "targets_per_second": loop.n_targets / max(loop.loop_seconds, 1e-12),
                 **({"audit_seconds": audit_report.seconds} if audit_report is not None else {}),
                 **({"spot_check_seconds": observers[0].seconds,
                     "snapshot_seconds": observers[0].snapshot_seconds} if observers else {}),
                 **({"encode_seconds": proof["encode"]["seconds"]} if proof else {}),
                 **({"decode_seconds": proof["decode"]["seconds"]} if proof and "decode" in proof else {})},
        adapters={a.name: a.stats() for a in comps.adapters},
        data_checks=data_checks,
    )


_LN2 = 0.6931471805599453  # a literal: math.log is a module attribute a plugin could replace


def _tampering(summary: dict, counted: int) -> list:
    """Changes to the engine a plugin made during the run: the stream's bytes, counted before any
    component was built, against the loop's count (a byte table changed in place), and the printed
    BPB against the loop's own sums by plain arithmetic (``bits_per_byte`` replaced). In-process
    checks only raise the bar (a plugin can patch this function too); the file's score under
    ``prove`` is computed where no plugin runs."""
    out = []
    if summary["bytes"] != counted:
        out.append(f"the byte count changed during the run: {counted:,} bytes before the components were built, "
                   f"{summary['bytes']:,} after (a component changed the byte table)")
    nll = summary["loss"] * summary["targets"]
    direct = nll / (_LN2 * summary["bytes"]) if summary["bytes"] else 0.0
    if abs(summary["bpb"] - direct) > 1e-9 * max(1.0, abs(direct)):
        out.append(f"the BPB was changed inside the process: the loop's sums give {direct:.6f}, "
                   f"{summary['bpb']:.6f} was computed (the engine's BPB function was replaced)")
    return out


def _data_checks(stream, table, tok_path, counter) -> dict:
    """Coverage and bytes of the stream about to be scored (``datacheck.stream_checks``: vectorized,
    no decoding, a fraction of a second on the full split). They inform the results; they never stop
    a run (``pgolf-core data check`` is the command that fails on them)."""
    from .datacheck import stream_checks
    from .errors import PgolfError

    try:
        return stream_checks(stream, table, tok_path, counter)
    except (PgolfError, OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _prove(expert_specs, mixer, mixer_options, adapter_specs, stream, counter, tok_path, dataset, plugins, plugin_modules,
           device, seed, chunk_size, proof_path, bpb, progress, pinned) -> dict:
    """Compress the stream with the same configuration, then let ``pgolf_core.proof`` decode it in a
    sandbox, score the file without plugins and count its description."""
    import tempfile

    from .compress import compress
    from .container import read_container
    from .proof.prove import data_files, prove_file

    given = [c for c in [*expert_specs, *adapter_specs] if c.instance is not None]
    if given or not (mixer is None or isinstance(mixer, str)):
        raise UsageError("prove=True needs components given by registered name: the decoder rebuilds them from the file")
    with tempfile.TemporaryDirectory(prefix="pgolf-proof-") as tmp:
        path = Path(proof_path) if proof_path else Path(tmp) / "proof.pgz"
        enc = compress(expert_specs, mixer=mixer, adapters=adapter_specs, tokens=stream, tokenizer=tok_path,
                       output=path, mixer_options=mixer_options, byte_counter=counter, dataset=dataset, chunk_size=chunk_size,
                       plugins=plugins, plugin_modules=plugin_modules, device=device, seed=seed, progress=progress,
                       pinned_code=pinned)
        modules = read_container(path)[0]["config"]["needed_plugins"]
        sidecar = None
        if counter.describe().get("method") == "sidecar":
            sidecar = Path(tmp) / "counts.npy"
            np.save(sidecar, np.asarray(counter.counts, dtype=np.int64))
        _, proof = prove_file(path, plugin_modules=modules, byte_counts=sidecar, reference=stream, printed_bpb=bpb,
                              data=data_files(dataset, counter.describe().get("source", "")))
    proof.update(file=str(path) if proof_path else None, encode=enc.to_dict(), ideal_bpb=enc.ideal_bpb,
                 plugin_modules=modules)
    return proof
