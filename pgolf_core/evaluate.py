"""The streaming, score-first evaluator: ``evaluate(...)`` is the Python API behind ``pgolf-core eval``.

The evaluator owns the loop (DESIGN.md section 3). For each chunk ``[start, end)`` of targets:
every expert scores it from ``tokens[:end]`` only, the mixer mixes, the sums accumulate, every
expert absorbs the chunk, then every adapter runs on the scored tokens. Chunks tile the targets
``1 .. N-1`` exactly once (C4), the stream's tail included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .api import Adapter, BuildContext, Expert, Mixer
from .bytes import ByteTable, byte_table_from_sentencepiece, load_sentencepiece
from .distributed import init_distributed
from .errors import DataError, InvalidConfigurationError, PgolfError, UsageError
from .plugins import load_plugins
from .report import Results, collect_versions

DEFAULT_CHUNK = 8192  # targets per chunk: small enough for per-chunk weight trajectories
FULL_BLOCK_BYTES = 64 << 20  # cap on the (K, n, V) float64 block when full distributions are needed
FULL_BLOCK_TARGETS = 4096  # and on its length: a block that stays in cache mixes faster
TRAJECTORY_POINTS = 1000  # how many points of the weight / running-BPB curves a result keeps
LOGP_TOLERANCE = 1e-9  # a log-probability above this is a probability above 1: never legal


@dataclass
class Component:
    """A requested component: a registered name and its options, or a ready instance."""

    name: str
    options: dict = field(default_factory=dict)
    instance: Any = None
    label: str = ""  # key in results (defaults to name; made unique when a name repeats)


def _as_components(items, options_by_name: Optional[Mapping] = None) -> list:
    options_by_name = dict(options_by_name or {})
    out, seen = [], {}
    for item in items:
        if isinstance(item, Component):
            comp = item
        elif isinstance(item, str):
            comp = Component(item, dict(options_by_name.get(item, {})))
        else:  # an instance built by the caller
            comp = Component(getattr(item, "name", "") or type(item).__name__, {}, instance=item)
        base = comp.label or comp.name
        seen[base] = seen.get(base, 0) + 1
        comp.label = base if seen[base] == 1 else f"{base}#{seen[base]}"
        out.append(comp)
    unused = set(options_by_name) - {c.name for c in out} - {c.label for c in out}
    if unused:
        raise UsageError(f"options given for {', '.join(sorted(unused))}, which is not among the requested components")
    return out


def resolve_stream(tokens, tokenizer, limit: Optional[int] = None, trim_seq_len: Optional[int] = None):
    """Return (tokens, byte table, tokenizer path, dataset label) with vocab checks."""
    from .data import load_tokens, official_trim

    dataset = None
    if tokens is None:
        if tokenizer is not None:
            raise UsageError("a tokenizer was given without data; pass the data too (or neither for the demo)")
        from .demo import demo_tokenizer_path, demo_tokens

        tokens, tokenizer, dataset = demo_tokens("val"), demo_tokenizer_path(), "demo"
    if tokenizer is None:
        raise UsageError("the tokenizer is needed to count bytes: pass tokenizer=PATH (--tokenizer)")
    sp = load_sentencepiece(tokenizer)
    table = byte_table_from_sentencepiece(sp)
    if isinstance(tokens, (str, Path)):
        dataset = dataset or str(tokens)
        tokens = load_tokens(tokens, vocab_size=table.vocab_size)
    else:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise DataError(f"tokens must be a 1-D integer array, got {tokens.dtype} of shape {tokens.shape}")
        from .data import check_vocab

        check_vocab(tokens, table.vocab_size, "tokens")
        dataset = dataset or "array"
    if trim_seq_len:
        tokens = official_trim(tokens, trim_seq_len)
    if limit is not None:
        if limit < 2:
            raise UsageError(f"limit must be at least 2 tokens (one target), got {limit}")
        tokens = tokens[:limit]
    if len(tokens) < 2:
        raise DataError(f"the stream has {len(tokens)} tokens; at least 2 are needed for one target")
    tokens = np.array(tokens, dtype=np.int64 if tokens.dtype.itemsize > 2 else np.uint16)
    tokens.flags.writeable = False  # plugins get views of this array and must not write to it
    return tokens, table, str(tokenizer), dataset


def _build(registry, comp: Component, ctx: BuildContext, kind_cls):
    obj = comp.instance if comp.instance is not None else registry.create(comp.name, ctx, **comp.options)
    if not isinstance(obj, kind_cls):
        raise PgolfError(f"{registry.kind} {comp.name!r} factory returned {type(obj).__name__}, not a {kind_cls.__name__}")
    return obj


def _check_logp(logp, n: int, who: str) -> np.ndarray:
    logp = np.asarray(logp, dtype=np.float64)
    if logp.shape != (n,):
        raise PgolfError(f"{who} returned log-probabilities of shape {logp.shape}, expected ({n},)")
    if not np.all(np.isfinite(logp)):
        bad = int(np.argmin(np.isfinite(logp)))
        raise PgolfError(f"{who} returned a non-finite log-probability ({logp[bad]}) at chunk offset {bad}")
    return logp


class _Validity:
    """Collects the checks that ran during the pass and any violation found."""

    def __init__(self):
        self.checks = ["C1: plugins are handed tokens[:end] only (reaching past it is caught by the audit's C1)",
                       "C4: chunks tile the targets exactly once (construction)",
                       "C2: every log-probability <= 0 (runtime)"]
        self.violations = []
        self.audited = None  # the audit report (a dict) when one ran

    def invalid_component(self, kind, name, reason):
        self.violations.append(f"{kind} {name!r} is known invalid: {reason}")

    def check_mass(self, logp, who):
        worst = float(np.max(logp))
        if worst > LOGP_TOLERANCE:
            msg = f"C2: {who} gave probability {np.exp(worst):.6g} > 1 to a target"
            if msg not in self.violations:
                self.violations.append(msg)

    def check_rows(self, dists, who):
        sums = dists.sum(axis=-1, dtype=np.float64)
        worst = float(np.max(np.abs(sums - 1.0))) if sums.size else 0.0
        if worst > 1e-6 or (dists.size and float(dists.min()) < 0):
            self.violations.append(f"C2: {who} distribution mass off by {worst:.3g} (or negative entries)")

    def verdict(self) -> dict:
        return {"valid": not self.violations, "violations": list(self.violations),
                "checks": list(self.checks), "audit": self.audited}


def _score_chunk(experts, labels, tokens, start, end, need_full, validity, timers):
    """Every expert scores targets start..end-1 from tokens[:end]; returns (logp (K,n), dists or None)."""
    n, view = end - start, tokens[:end]
    logp = np.empty((len(experts), n), dtype=np.float64)
    rows = []
    for k, (e, label) in enumerate(zip(experts, labels)):
        t0 = time.perf_counter()
        if need_full:
            d = np.asarray(e.distributions(view, start, end))
            if d.shape != (n, e.vocab_size):
                raise PgolfError(f"expert {label!r} returned distributions of shape {d.shape}, expected {(n, e.vocab_size)}")
            validity.check_rows(d, f"expert {label!r}")
            rows.append(d)
            with np.errstate(divide="ignore"):
                logp[k] = np.log(d[np.arange(n), np.asarray(view[start:end], dtype=np.int64)])
        else:
            logp[k] = _check_logp(e.score(view, start, end), n, f"expert {label!r}")
        timers[label] = timers.get(label, 0.0) + time.perf_counter() - t0
        validity.check_mass(logp[k], f"expert {label!r}")
    dists = None
    if rows:
        # float32 when any expert works in float32: the mixer's inputs then cost half the memory
        # traffic. Each expert's target log-probability above came from its own rows, at the
        # precision the expert chose (float32 rows move a BPB by about 1e-7 relative).
        dtype = np.float32 if any(d.dtype == np.float32 for d in rows) else np.float64
        dists = np.empty((len(rows), n, rows[0].shape[1]), dtype=dtype)
        for k, d in enumerate(rows):
            dists[k] = d
    return logp, dists


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
) -> Results:
    """Score a token stream and return a ``Results`` (``bpb``, ``loss``, ``targets``, ``bytes``,
    ``expert_bpb``, ``weights``, ``valid``, ...).

    ``experts`` are registered names (or ready ``Expert`` instances); ``mixer`` a name or instance
    (None: ``hedge`` for several experts, no mixer for one); ``tokens`` an array or a path (.npy, shard, shard
    directory or glob); ``tokenizer`` the SentencePiece model (needed to count bytes). With neither
    tokens nor tokenizer the built-in demo stream is scored. ``limit`` keeps the first N tokens
    (N-1 targets); ``trim_seq_len`` applies the official scripts' cut for parity with their logs.
    ``audit=True`` also runs the C1-C4 audit (``pgolf_core.audit``) on the same configuration and
    data; a failed check makes the result invalid.
    """
    t_start = time.perf_counter()
    if chunk_size < 1:
        raise UsageError(f"chunk_size must be positive, got {chunk_size}")
    plugins = plugins if plugins is not None else load_plugins(plugin_modules)
    dist = init_distributed(device)
    stream, table, tok_path, dataset = resolve_stream(tokens, tokenizer, limit, trim_seq_len)
    expert_specs = _as_components(experts, expert_options)
    if not expert_specs:
        raise UsageError("at least one expert is needed")
    adapter_specs = _as_components(adapters, adapter_options)
    labels = [c.label for c in expert_specs]
    ctx = BuildContext(vocab_size=table.vocab_size, byte_counts=table, tokenizer_path=tok_path,
                       expert_names=tuple(labels), device=device, seed=seed,
                       rank=dist.rank, world_size=dist.world_size,
                       extra={"plugins": plugins, "dataset": dataset,
                              # the stream's length is public (not its content): schedules such as
                              # TTT's cosine across chunks span the stream actually scored
                              "stream_targets": len(stream) - 1})
    validity = _Validity()
    t_build = time.perf_counter()
    built, mix, ads = _build_components(plugins, ctx, expert_specs, mixer, mixer_options, adapter_specs, validity)
    if validity.violations and not allow_invalid:
        raise InvalidConfigurationError("; ".join(validity.violations) + " (pass allow_invalid / --allow-invalid to run it anyway, scored as INVALID)")
    for a in ads:
        a.setup(dict(zip(labels, built)))
    build_seconds = time.perf_counter() - t_build

    loop = _Loop(stream, table, built, labels, mix, ads, chunk_size, validity, keep_logprobs)
    loop.run(progress and dist.is_main)
    if audit:
        _audit_into(validity, expert_specs, mix, mixer_options, adapter_specs, tokens, tokenizer, plugins, device, seed)

    return loop.results(
        config={
            "experts": [{"name": c.name, "label": c.label, "options": c.options, "resolved": e.describe()} for c, e in zip(expert_specs, built)],
            "mixer": None if mix is None else {"name": mix.name, "resolved": mix.describe()},
            "adapters": [{"name": c.name, "options": c.options, "resolved": a.describe()} for c, a in zip(adapter_specs, ads)],
            "data": dataset, "tokenizer": tok_path, "chunk_size": chunk_size, "limit": limit,
            "trim_seq_len": trim_seq_len, "device": device, "seed": seed, "allow_invalid": allow_invalid,
            "world_size": dist.world_size,
        },
        versions=collect_versions(plugins),
        timings={"total_seconds": time.perf_counter() - t_start, "build_seconds": build_seconds},
    )


def _build_components(plugins, ctx, expert_specs, mixer, mixer_options, adapter_specs, validity):
    """Build experts, the mixer (hedge by default for several experts) and adapters; note known-invalid ones.

    Adapters are set up by the caller, once the configuration has been accepted."""
    labels = list(ctx.expert_names)
    built = [_build(plugins.experts, c, ctx, Expert) for c in expert_specs]
    for e, label in zip(built, labels):
        if e.vocab_size != ctx.vocab_size:
            raise DataError(f"expert {label!r} has vocabulary {e.vocab_size}, the tokenizer {ctx.tokenizer_path} "
                            f"has {ctx.vocab_size}")
    mix = None
    if mixer is not None or len(built) > 1:
        mspec = _as_components([mixer if mixer is not None else "hedge"])[0]
        if mixer_options:
            mspec.options.update(mixer_options)
        mix = _build(plugins.mixers, mspec, ctx, Mixer)
    ads = [_build(plugins.adapters, c, ctx, Adapter) for c in adapter_specs]
    for kind, objs, names in (("expert", built, labels), ("mixer", [mix] if mix else [], [getattr(mix, "name", "")]),
                              ("adapter", ads, [c.label for c in adapter_specs])):
        for obj, name in zip(objs, names):
            if obj.known_invalid:
                validity.invalid_component(kind, name, obj.invalid_reason)
    return built, mix, ads


def _audit_into(validity, expert_specs, mix, mixer_options, adapter_specs, tokens, tokenizer, plugins, device, seed):
    """Run the audit on fresh copies of the same components and record it in the verdict."""
    from .audit import audit

    if any(c.instance is not None for c in expert_specs + adapter_specs):
        raise UsageError("audit=True needs components given by registered name, not instances")
    report = audit([c.name for c in expert_specs], mixer=None if mix is None else mix.name,
                   adapters=[c.name for c in adapter_specs],
                   tokens=tokens, tokenizer=tokenizer, plugins=plugins, device=device, seed=seed,
                   expert_options={c.name: c.options for c in expert_specs if c.options},
                   mixer_options=mixer_options, adapter_options={c.name: c.options for c in adapter_specs if c.options})
    validity.checks.append("C1-C4 and no hypercompression: audit")
    validity.audited = report.to_dict()
    if not report.passed:
        validity.violations.append("audit: " + "; ".join(
            f"{c['component']} {c['rule']}" for c in validity.audited["checks"] if c["status"] == "FAIL"))


class _Loop:
    """The chunk loop and its accumulators (float64 sums, ratio of sums at the end)."""

    def __init__(self, stream, table: ByteTable, experts, labels, mixer, adapters, chunk_size, validity, keep):
        self.stream, self.table, self.experts, self.labels = stream, table, experts, labels
        self.mixer, self.adapters, self.chunk, self.validity, self.keep = mixer, adapters, chunk_size, validity, keep
        self.need_full = bool(mixer is not None and mixer.needs_distributions)
        self.nll = 0.0
        self.expert_nll = np.zeros(len(experts), dtype=np.float64)
        self.n_bytes = 0
        self.n_targets = 0
        self.timers: dict = {}
        self.trajectory_pos: list = []
        self.trajectory_w: list = []
        self.saved = {"mixture": [], "experts": [], "bytes": []}
        self.last_recorded = 0
        self.cum: list = []  # [bytes, mixture nll, expert nll...] at each trajectory position

    def _spans(self):
        n = len(self.stream)
        start = 1
        while start < n:
            end = min(start + self.chunk, n)
            if self.need_full:  # bound the (K, n, V) block: split the chunk for the mixer
                step = max(1, FULL_BLOCK_BYTES // (8 * self.experts[0].vocab_size * len(self.experts)))
                step = min(step, FULL_BLOCK_TARGETS)
                for s in range(start, end, step):
                    yield s, min(s + step, end), end == n and min(s + step, end) == end
            else:
                yield start, end, end == n
            start = end

    def run(self, progress: bool) -> None:
        from .report import progress_bar

        t0 = time.perf_counter()
        with progress_bar(len(self.stream) - 1, enabled=progress) as advance:
            for start, end, final in self._spans():
                self._step(start, end, final)
                advance(end - start)
        self.loop_seconds = time.perf_counter() - t0

    def _step(self, start, end, final) -> None:
        logp, dists = _score_chunk(self.experts, self.labels, self.stream, start, end, self.need_full, self.validity, self.timers)
        targets = np.asarray(self.stream[start:end], dtype=np.int64)
        if self.mixer is None:
            mixed = logp[0]
        else:
            t0 = time.perf_counter()
            mixed = _check_logp(self.mixer.mix(logp, targets, dists), end - start, f"mixer {self.mixer.name!r}")
            self.timers["mixer"] = self.timers.get("mixer", 0.0) + time.perf_counter() - t0
        self.validity.check_mass(mixed, "the mixture")
        nbytes = self.table.target_bytes(self.stream, start, end)
        self.nll -= float(mixed.sum())
        self.expert_nll -= logp.sum(axis=1)
        self.n_bytes += int(nbytes.sum())
        self.n_targets += end - start
        if self.keep:
            self.saved["mixture"].append(mixed)
            self.saved["experts"].append(logp)
            self.saved["bytes"].append(nbytes)
        view = self.stream[:end]
        for e, label in zip(self.experts, self.labels):
            t1 = time.perf_counter()
            e.update(view, start, end)
            self.timers[label] = self.timers.get(label, 0.0) + time.perf_counter() - t1
        for a in self.adapters:
            t1 = time.perf_counter()
            a.after_chunk(view, start, end, final)
            key = f"adapter:{a.name}"
            self.timers[key] = self.timers.get(key, 0.0) + time.perf_counter() - t1
        self._record(end, final)

    def _record(self, end, final) -> None:
        """Sample the weights and running sums along the stream (at most ~TRAJECTORY_POINTS points)."""
        if not final and end - self.last_recorded < len(self.stream) / TRAJECTORY_POINTS:
            return
        self.last_recorded = end
        self.trajectory_pos.append(end)
        self.cum.append([self.n_bytes, self.nll, *self.expert_nll.tolist()])
        if self.mixer is not None:
            self.trajectory_w.append(np.array(self.mixer.weights, dtype=np.float64))

    def results(self, config, versions, timings) -> Results:
        from .bytes import bits_per_byte

        assert self.n_targets == len(self.stream) - 1, "every target must be scored exactly once"
        timings = dict(timings, loop_seconds=self.loop_seconds, components=self.timers,
                       targets_per_second=self.n_targets / max(self.loop_seconds, 1e-12))
        weights = None
        if self.mixer is not None:
            w = np.asarray(self.mixer.weights, dtype=np.float64)
            names = self.labels if len(w) == len(self.labels) else [f"w{i}" for i in range(len(w))]
            weights = {k: float(v) for k, v in zip(names, w)}
        logprobs = None
        if self.keep:
            logprobs = {"mixture": np.concatenate(self.saved["mixture"]),
                        "experts": np.concatenate(self.saved["experts"], axis=1),
                        "bytes": np.concatenate(self.saved["bytes"]), "expert_names": list(self.labels)}
        return Results(
            bpb=bits_per_byte(self.nll, self.n_bytes),
            loss=self.nll / self.n_targets,
            targets=self.n_targets,
            bytes=self.n_bytes,
            expert_bpb={l: bits_per_byte(v, self.n_bytes) for l, v in zip(self.labels, self.expert_nll)},
            expert_loss={l: float(v) / self.n_targets for l, v in zip(self.labels, self.expert_nll)},
            weights=weights,
            trajectory={"positions": self.trajectory_pos, "weights": [w.tolist() for w in self.trajectory_w],
                        "cumulative": {"bytes": [c[0] for c in self.cum], "mixture_nll": [c[1] for c in self.cum],
                                       "expert_nll": [c[2:] for c in self.cum]}},
            validity=self.validity.verdict(),
            config=config,
            versions=versions,
            timings=timings,
            adapters={a.name: a.stats() for a in self.adapters},
            logprobs=logprobs,
        )
