"""The spine of every run: ``RunSpec`` says what to run, ``open_run`` does the preamble once.

The preamble is the same for an evaluation, the compressor, the decoder and the audit: load the
plugins, resolve the stream and its byte counter, turn the requested components into specs, make
the ``BuildContext`` and build the components with it. Everything that verifies a run (the audit,
live spot checks, resume, the proof) attaches to the opened ``Run`` from ``pgolf_core.checks``;
nothing here knows about them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .. import api
from ..api import BuildContext
from .build import ComponentSpec, as_components, build_components, build_twin, mixer_spec, refuse_repeats
from ..errors import InvalidConfigurationError, UsageError
from .loop import Components, Guards, Loop
from .session import DEFAULT_CHUNK, resolve_stream, run_context, setup_adapters


@dataclass(frozen=True)
class RunSpec:
    """What to run: the components with their options, the data, its tokenizer and byte counts,
    the chunking, the device and the seed, and how the loop scores (strict, sparse rows).

    ``experts`` are registered names, ready instances or ``ComponentSpec``s; ``mixer`` a name or an
    instance (None: ``hedge`` for several experts, no mixer for one); ``tokens`` an array or a path
    (.npy, shard, shard directory or glob; None with no tokenizer: the built-in demo stream).
    ``strict`` None lets the checks decide (the audit and the proof need strict scoring)."""

    experts: Sequence = ()
    mixer: Any = None
    adapters: Sequence = ()
    tokens: Union[np.ndarray, str, Path, None] = None
    tokenizer: Union[str, Path, None] = None
    expert_options: Optional[Mapping[str, dict]] = None
    mixer_options: Optional[dict] = None
    adapter_options: Optional[Mapping[str, dict]] = None
    chunk_size: int = DEFAULT_CHUNK
    limit: Optional[int] = None
    trim_seq_len: Optional[int] = None
    check_tokenizer: Optional[bool] = None
    byte_counts: Union[str, Path, None] = None
    allow_invalid: bool = False
    plugins: Any = None
    plugin_modules: Sequence[str] = ()
    device: str = "cpu"
    seed: int = 0
    strict: Optional[bool] = None
    sparse_rows: bool = True
    keep_logprobs: bool = False
    progress: bool = False

    def __post_init__(self):  # bad input is refused before any work starts
        from .device import check_device

        check_device(self.device)  # an impossible device never falls back to the CPU
        if self.chunk_size < 1:
            raise UsageError(f"chunk_size must be positive, got {self.chunk_size}")

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)


@dataclass
class _Stream:
    """What a run scores, resolved once: the tokens (None in a decoder, which has only their count),
    the byte table and counter, the tokenizer's path and the dataset's name."""

    tokens: Optional[np.ndarray]
    n_tokens: int
    table: Any
    tokenizer: str
    dataset: str
    counter: Any

    def stream(self) -> "_Stream":
        """These fields alone (of a ``Run``: the stream it was opened on)."""
        return _Stream(*(getattr(self, f.name) for f in dataclasses.fields(_Stream)))


@dataclass
class Run(_Stream):
    """An opened run: its stream, context and built components (adapters not yet set up: a check
    may copy the components first)."""

    spec: RunSpec
    plugins: Any
    ctx: BuildContext
    experts: list  # ComponentSpec of each expert, adapter and the mixer, as requested
    mixer: Optional[ComponentSpec]
    adapters: list
    comps: Components
    strict: bool
    guards: Guards
    dist: Any = None
    bytes_before_build: Optional[int] = None  # the stream's bytes, counted before any component existed
    t_start: float = field(default_factory=time.perf_counter)
    build_seconds: float = 0.0

    def twin(self) -> tuple:
        """A second build from the factories (``build.build_twin``); call it before the run advances."""
        return build_twin(self.plugins, self.ctx, self.experts, self.mixer, self.adapters)

    def rebuilt(self) -> "Run":
        """The same run with fresh components, built from the specs with a fresh context (what the
        compressor codes with after an evaluation has advanced this run's components)."""
        return _build(self.spec, self.plugins, self.stream(), strict=self.strict, dist=None)

    def loop(self, observers: Sequence = ()) -> Loop:
        """The loop over this run's components, adapters set up first."""
        setup_adapters(self.comps)
        return Loop(self.comps, self.counter, self.n_tokens, self.tokens.dtype, strict=self.strict, guards=self.guards,
                    keep_logprobs=self.spec.keep_logprobs, observers=list(observers), sparse_rows=self.spec.sparse_rows)

    @property
    def is_main(self) -> bool:
        return getattr(self.dist, "is_main", True)

    def describe(self) -> dict:
        """What makes two runs the same computation (a resume point is restored only into its own)."""
        s = self.spec
        return {"experts": [(c.name, c.label, c.options) for c in self.experts],
                "mixer": [str(s.mixer), s.mixer_options],
                "adapters": [(c.name, c.label, c.options) for c in self.adapters],
                "chunk": s.chunk_size, "strict": self.strict, "sparse_rows": s.sparse_rows, "seed": s.seed,
                "device": s.device, "keep_logprobs": s.keep_logprobs, "bytes": self.counter.describe()}


def open_run(spec: RunSpec, *, strict: bool = False, distributed: bool = True) -> Run:
    """Load the plugins, resolve the stream and build the components: the preamble of every run.

    A configuration with a component known to break a rule is refused unless ``spec.allow_invalid``
    (then its problems are guard violations, and the verdict says INVALID). ``distributed`` joins
    the torchrun process group (an evaluation; the compressor runs in one process)."""
    from .distributed import init_distributed
    from ..plugins import load_plugins

    plugins = spec.plugins if spec.plugins is not None else load_plugins(spec.plugin_modules)
    dist = init_distributed(spec.device) if distributed else None
    tokens, table, tok_path, dataset, counter = resolve_stream(spec.tokens, spec.tokenizer, spec.limit, spec.trim_seq_len,
                                                               spec.check_tokenizer, spec.byte_counts, plugins)
    stream = _Stream(tokens, len(tokens), table, tok_path, dataset, counter)
    return _build(spec, plugins, stream, strict=spec.strict if spec.strict is not None else strict, dist=dist)


def open_decoder(spec: RunSpec, plugins, table, n_tokens: int, dataset: str) -> Run:
    """The decoder's run: the components a file's header names, built with the context the coder
    had, over a stream of which only the length is known."""
    return _build(spec, plugins, _Stream(None, n_tokens, table, str(spec.tokenizer), dataset, table), strict=True,
                  dist=None, count_bytes=False)


def _build(spec: RunSpec, plugins, stream: _Stream, *, strict: bool, dist, count_bytes: bool = True) -> Run:
    """The one place a run's components are built."""
    experts = as_components(spec.experts, spec.expert_options)
    adapters = as_components(spec.adapters, spec.adapter_options)
    refuse_repeats(experts, same_options=not adapters)
    refuse_repeats(adapters)
    ctx = run_context(stream.table, stream.tokenizer, stream.dataset, stream.n_tokens, plugins, spec.device, spec.seed, dist)
    # counted before any component exists: a component that changes the byte table is caught after the run
    counted = int(np.sum(stream.counter.target_bytes(stream.tokens))) if count_bytes else None
    t_build = time.perf_counter()
    mixer = mixer_spec(spec.mixer, spec.mixer_options, len(experts))
    comps, problems = build_components(plugins, ctx, experts, mixer, adapters)
    guards = Guards()
    for p in problems:
        guards.violation(p, p)
    if problems and not spec.allow_invalid:
        raise InvalidConfigurationError("; ".join(problems) + " (pass allow_invalid / --allow-invalid to run it "
                                        "anyway, scored as INVALID)")
    api.refuse_missing_capabilities(comps, bool(strict))  # refused here, before any target is scored
    return Run(**vars(stream), spec=spec, plugins=plugins, ctx=ctx, experts=experts, mixer=mixer,
               adapters=adapters, comps=comps, strict=bool(strict), guards=guards, dist=dist,
               bytes_before_build=counted, build_seconds=time.perf_counter() - t_build)
