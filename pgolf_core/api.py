"""The three plugin interfaces: Expert, Mixer, Adapter.

These classes are the contract between the evaluator and every plugin. The evaluator owns the loop;
plugins never drive it. One chunk of the stream is processed as follows:

    for each chunk [start, end):
        every expert scores the chunk      -> Expert.score(tokens[:end], start, end)
                                              (or Expert.distributions(...) when the mixer needs them)
        the mixer mixes                    -> Mixer.mix(logp, targets, dists)
        bits and bytes accumulate
        every expert absorbs the chunk     -> Expert.update(tokens[:end], start, end)
        every adapter runs                 -> Adapter.after_chunk(tokens[:end], start, end, final)

Position ``t`` of the stream is a *target* for every ``t >= 1``; the prediction for target ``t`` may
depend on the artifact and on ``tokens[:t]`` only (rule C1). All log-probabilities are natural logs.

The rules every score obeys:

- C1 causal: the distribution for position t depends only on the artifact and tokens < t.
- C2 normalized: a full distribution over the vocabulary that sums to 1 before the target is seen.
- C3 score first: state changes only with tokens that are already scored.
- C4 one pass: one left-to-right pass; every target is scored exactly once.

Outside strict scoring the loop may ask for the same rows in a cheaper form: a geometric mixer gets
them as float32 logs (``Expert.log_distributions``, ``Mixer.mix_log``), and when every expert can
give them as a support over a count-shaped background (``Expert.sparse_rows``, ``SparseRows``) it
mixes over groups of tokens with equal values instead of the whole vocabulary
(``Mixer.mix_log_grouped``, ``GroupedLogRows``). Both give the dense result to rounding; experts
and mixers without them keep the dense path.

What a plugin must write and what is optional is stated in the types (``Capability``, the
``*_CAPABILITIES`` tables and the protocols next to them): an expert must give ``score`` (or only
``distributions``: ``RowsExpert`` derives ``score`` and ``predict``/``observe`` from them); full rows,
bit-exact ``predict``/``observe``, the fast paths (log rows, sparse rows, step kernels) and the
test-time-training hooks are tiers on top. ``capabilities(component)`` lists the tiers a component
has, and ``capability(name)`` says which methods make a tier and what needs it (strict scoring:
full rows; ``--prove``: decoding).

The evaluator enforces what it can by construction (an expert is only ever handed ``tokens[:end]``,
adapters only scored tokens, every target is in exactly one span); Python cannot stop a plugin
from reaching past the view it is given, so ``pgolf_core.checks.audit`` checks C1-C4 on any plugin.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np


@dataclass
class BuildContext:
    """What a plugin factory is told about the run it is built for.

    Factories are called as ``factory(ctx, **options)``.
    """

    vocab_size: int  # size of the token alphabet; every distribution has this many entries
    byte_counts: Optional[Any] = None  # pgolf_core.stream.bytes.ByteTable of the tokenizer, when known
    tokenizer_path: Optional[str] = None  # SentencePiece model of the stream, when known
    expert_names: Sequence[str] = ()  # for mixers: names of the K experts in input order
    device: str = "cpu"  # torch device string for experts that use torch
    seed: int = 0  # seed for anything random in a plugin
    rank: int = 0  # distributed evaluation: this process's rank
    world_size: int = 1  # distributed evaluation: number of processes
    # the run's plugin set (pgolf_core.plugins.Plugins), for factories that build other components
    # through the registry (a stack of mixers, an entropy expert's source); shared, never copied
    plugins: Optional[Any] = None
    dataset: Optional[str] = None  # "demo" for the built-in demo stream, else where the tokens came from
    # targets of the stream being scored (its length is public, not its content): schedules such as
    # TTT's cosine across chunks span the stream actually scored
    stream_targets: Optional[int] = None
    extra: dict = field(default_factory=dict)  # free-form, for third-party plugins that cooperate

    def __getstate__(self):
        """Saved (a resume point, ``pgolf_core.checks.statecodec``) without the plugin manager, which belongs to
        the process."""
        return {**self.__dict__, "plugins": None}

    def __deepcopy__(self, memo):
        """Deep copies (the audit's) keep sharing the process's plugin manager."""
        import copy

        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, v if k == "plugins" else copy.deepcopy(v, memo))
        return new


@dataclass
class StepKernel:
    """A component's target-by-target step as numba functions, for the compiled coding loop
    (``pgolf_core.codec.compiled``): the same rows and state changes as ``predict``/``observe``, without
    a Python call per target. Offered by ``Expert.step_kernel()`` / ``Mixer.step_kernel()``.

    Expert kernels (``state`` is any tuple numba can take; it is passed back as it is):

    - ``predict(state, tokens, t, out)`` writes target ``t``'s row into ``out`` (float64, V) from
      ``tokens[:t]``; ``tokens`` is the int64 stream buffer, whose entries from ``t`` on are not
      yet known (a decoder fills them as it goes), so a kernel that reads them breaks the round trip;
    - ``observe(state, tokens, t)`` absorbs target ``t``;
    - ``room(state)`` (optional) is False when ``observe`` could not take one more target without
      ``grow()`` (a Python callable); the kernel is then asked for again, with its new arrays.

    Mixer kernels: ``predict(state, dists, out)`` writes the mixture row from the inputs' rows
    ``dists`` (K, V) float64; ``observe(state, logp, token, dists)`` absorbs the target, ``logp``
    (K,) being the inputs' log-probabilities of it.

    ``done(end)`` (Python) runs after the compiled loop has stepped up to target ``end`` (exclusive),
    to bring scalar state that lives outside the arrays up to date.
    """

    predict: Any
    observe: Any
    state: tuple
    room: Any = None
    grow: Any = None
    done: Any = None


@dataclass
class SparseRows:
    """A span's distributions as a few exceptions over a background that depends on counts alone.

    For target i of the span (stream position t = start + i) and token v::

        p(v) = values[j]                          if v == ids[j] for some j in offsets[i] .. offsets[i+1]-1
        p(v) = base[i] + slope[i] * count_t(v)    otherwise,

    where ``count_t(v)`` is how many of the targets before t are v (occurrences of v in
    ``tokens[1:t]``: position 0 is context, never a target). An interpolated n-gram has this form
    exactly: below its unigram level every order only adds mass to the tokens seen after its
    context (its *support*), and the unigram row is affine in the counts. ``ids`` are distinct
    within a target. The rows described are the rows ``distributions()`` gives, to float64 rounding.
    """

    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0, non-decreasing
    ids: np.ndarray  # (offsets[-1],) int64 token ids of the supports, target by target
    values: np.ndarray  # (offsets[-1],) float64 probabilities of those tokens
    base: np.ndarray  # (n,) float64
    slope: np.ndarray  # (n,) float64

    def dense(self, tokens: np.ndarray, start: int, vocab_size: int) -> np.ndarray:
        """The (n, V) float64 rows described, for targets ``start ..`` of ``tokens`` (the stream up
        to the span's end at least), count_t taken from the stream itself (for checks: O(n V))."""
        n = len(self.base)
        counts = np.bincount(np.asarray(tokens[1:start], dtype=np.int64), minlength=vocab_size).astype(np.int64)
        rows = np.empty((n, vocab_size))
        for i in range(n):
            rows[i] = self.base[i] + self.slope[i] * counts
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            rows[i, np.asarray(self.ids[a:b], dtype=np.int64)] = self.values[a:b]
            counts[int(tokens[start + i])] += 1
        return rows


@dataclass
class GroupedLogRows:
    """The K inputs' log rows of a span with the vocabulary partitioned into groups of tokens to
    which every input gives the same value, so a mixer can sum over groups instead of tokens.

    Target i's groups are ``offsets[i] .. offsets[i+1]-1``; group g holds ``sizes[g]`` tokens
    (>= 1; a target's sizes sum to V) to each of which input k gives the log-probability
    ``log_values[k, g]`` (float32, floored at float32's smallest normal number like ``mix_log``'s
    ``log_dists``); ``target_group[i]`` is the group that holds target i's token. Which tokens a
    group holds is not needed by a mixer whose per-token terms depend on the inputs' values only.
    """

    log_values: np.ndarray  # (K, G) float32
    sizes: np.ndarray  # (G,) float64 (whole numbers)
    offsets: np.ndarray  # (n + 1,) int64
    target_group: np.ndarray  # (n,) int64


class Expert(ABC):
    """A sequential predictor of the next token.

    An expert consumes the token stream left to right, one span at a time, in increasing order and
    without gaps, starting at target 1 (position 0 is context only).

    ``score(tokens, start, end)`` returns ``log p(tokens[t] | tokens[:t])`` for every ``t`` in
    ``[start, end)`` as float64. ``tokens`` is the stream up to ``end`` (exclusive); the expert must
    not use ``tokens[t]`` to form the prediction for ``t``. Within a span, the prediction for ``t``
    may use state built from targets ``< t`` (an n-gram expert counts token by token: score, then
    count). After ``score`` (and ``update``) return, the expert's state includes the whole span.

    ``distributions(tokens, start, end)`` does the same as ``score`` but returns the full normalized
    distribution for each target, shape ``(end - start, vocab_size)``, float64 or float32, rows
    summing to 1. It is called *instead of* ``score`` for a span, never as well, and advances the
    state in the same way. ``score`` must equal ``log`` of the distribution's entry for the target.

    ``update(tokens, start, end)`` is called once per span after the mixer has scored it. Experts
    that absorb targets inside ``score`` leave it as a no-op.

    ``state_fingerprint()`` summarises the mutable state (for the score-first audit); experts with
    no state return ``None``.

    Bit-exact prediction (the compressor's contract). To decode, the loop works target by target:
    ``predict(tokens[:t], t)`` gives the row for target ``t`` from exactly the tokens before it, the
    token is coded with that row, then ``observe(tokens[:t + 1], t)`` absorbs it; ``update`` still
    follows once per chunk and adapters still run after it. The compressor and the decompressor
    make the same calls in the same order, so a *deterministic* expert gives bitwise identical rows
    in both directions; nondeterminism (threads, unseeded randomness, time) breaks the round trip
    and is caught by the file's checksum. The rows must equal ``distributions()``'s to rounding.
    ``step_kernel`` may offer the same two steps compiled (see ``StepKernel``).
    """

    #: registered name, set by the registry when the expert is built
    name: str = ""
    #: True when the expert is known to break a rule (it is kept to reproduce a published result);
    #: the evaluator refuses it unless the user allows invalid configurations.
    known_invalid: bool = False
    #: human-readable reason for ``known_invalid``
    invalid_reason: str = ""

    def __init__(self, vocab_size: int):
        self.vocab_size = int(vocab_size)

    @abstractmethod
    def score(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """Log-probabilities (float64, shape ``(end - start,)``) of targets ``start..end-1``."""

    def distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """Full distributions for targets ``start..end-1``, shape ``(end - start, vocab_size)``."""
        raise NotImplementedError(f"expert {self.name!r} does not provide full distributions")

    def log_distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """Optional: the logs of ``distributions()``'s rows, ``(end - start, vocab_size)`` float32
        or float64, for an expert that has them without a log (a network's log-softmax). Outside
        strict scoring the loop calls it instead of ``distributions`` when the mixer mixes in log
        space (``Mixer.mix_log``); otherwise it takes the log of ``distributions()`` itself."""
        raise NotImplementedError(f"expert {self.name!r} does not provide log distributions")

    def sparse_rows(self, tokens: np.ndarray, start: int, end: int) -> SparseRows:
        """Optional: the rows of ``distributions()`` as ``SparseRows`` (a support per target over a
        background affine in the stream's token counts), advancing the state in the same way. Outside
        strict scoring, when every expert has them and the mixer mixes grouped rows
        (``Mixer.mix_log_grouped``), the loop calls it instead of ``distributions`` and mixes over
        the support and the count classes of the background in O(support + distinct counts) per
        target instead of O(V); every row's mass is checked. Strict scoring never calls it."""
        raise NotImplementedError(f"expert {self.name!r} does not provide sparse rows")

    def update(self, tokens: np.ndarray, start: int, end: int) -> None:
        """Absorb the already-scored targets ``start..end-1`` (default: nothing to do)."""

    # --- decoding (target by target): see "Bit-exact prediction" in the class docstring

    def predict(self, tokens: np.ndarray, t: int) -> np.ndarray:
        """The distribution for target ``t`` (shape ``(vocab_size,)``) from ``tokens`` = the stream's
        first ``t`` tokens exactly (target ``t`` does not exist yet); must not change the state."""
        raise NotImplementedError(f"expert {self.name!r} cannot decode: it has no predict()")

    def observe(self, tokens: np.ndarray, t: int) -> None:
        """Absorb target ``t`` (``tokens`` = the stream's first ``t + 1`` tokens) right after
        ``predict(tokens[:t], t)``; experts that absorb only in ``update`` leave it as a no-op."""

    @property
    def decodable(self) -> bool:
        """True when the expert implements the target-by-target protocol (``predict``/``observe``)."""
        return overrides(type(self), Expert, "predict")

    def step_kernel(self) -> Optional[StepKernel]:
        """Optional: ``predict``/``observe`` as numba functions (``StepKernel``), so that coding runs
        without a Python call per target. None (the default) keeps the Python loop. Asked at the
        start of every coded chunk; the rows must be ``predict``'s, bit for bit."""
        return None

    def reset(self) -> None:
        """Forget everything learned from the stream (back to the state right after building)."""

    # --- test-time training: what an adapter may train (see ``Adapter``)

    def adaptable_model(self):
        """``(model, seq_len)``: the torch causal LM this expert scores with (``pgolf_core.causal_lm``)
        and the window length it scores with, for adapters that train it in place; None (the
        default) for an expert with no such model."""
        return None

    def weights_changed(self) -> None:
        """Called by an adapter right after it changed ``adaptable_model()``'s weights (an expert
        that caches activations of the old weights drops them)."""

    def delegate_scoring(self, scorer) -> None:
        """For an adapter whose training happens *inside* the scoring of a span (dynamic evaluation
        finer than the loop's chunk, e.g. a per-document LoRA stepped between 48-token pieces of a
        document: ``pgolf_ttt.phased``): from now on ``score``/``distributions`` return
        ``scorer(model, tokens, start, end, distributions)`` for ``adaptable_model()``'s model. The
        scorer is then bound by this contract like the expert itself (target ``t`` from
        ``tokens[:t]`` and state built from earlier targets only). A scorer with ``decodable = True``
        also has ``predict_row(model, tokens, t)`` (a float64 log row) and ``observe(model, tokens,
        t)``, which the expert's ``predict``/``observe`` hand on, so the run stays decodable. The
        default refuses."""
        from .errors import UsageError

        raise UsageError(f"expert {self.name!r} cannot hand its scoring to an adapter (Expert.delegate_scoring)")

    def state_fingerprint(self) -> Optional[bytes]:
        """A digest of the mutable state, or None for a stateless expert."""
        return None

    def stats(self) -> dict:
        """Timings and counters reported in results (e.g. seconds of a network's forward)."""
        return {}

    # --- what this expert offers beyond ``score`` (``EXPERT_CAPABILITIES``): a method counts when the
    # class overrides Expert's default; a wrapper or an expert that depends on another overrides the
    # property itself (``decodable`` of an expert over a source, a recorder)

    @property
    def provides_distributions(self) -> bool:
        return overrides(type(self), Expert, "distributions")

    @property
    def provides_log_distributions(self) -> bool:
        return overrides(type(self), Expert, "log_distributions")

    @property
    def provides_sparse_rows(self) -> bool:
        return overrides(type(self), Expert, "sparse_rows")

    @property
    def adaptable(self) -> bool:
        """True when the expert declares a torch model an adapter may train (``adaptable_model``)."""
        return overrides(type(self), Expert, "adaptable_model")

    def describe(self) -> dict:
        """Resolved configuration, recorded in results."""
        return {}


class Mixer(ABC):
    """Combines the K experts' predictions of each target into one.

    ``mix(logp, targets, dists)`` receives the experts' log-probabilities of a span of targets,
    ``logp`` of shape ``(K, n)``, the target ids (shape ``(n,)``), and, when ``needs_distributions``
    is True, the full distributions ``dists`` of shape ``(K, n, V)``. It returns the mixture's
    log-probability of each target (float64, ``(n,)``). The weights used for target ``i`` may depend
    only on targets ``< i`` of the span and earlier spans (update after scoring: per token, or once
    after the span for batch updates). The mixture must be a normalized distribution over the
    vocabulary: a convex combination of the experts' distributions, or renormalized over the full
    vocabulary using ``dists``.

    With ``return_distribution=True`` it also returns the full mixture distribution for each target
    ``(n, V)`` (requires ``dists``); the audit uses this.

    ``weights`` is the current weight vector (shape ``(K,)``, on the simplex for linear mixers).
    """

    name: str = ""
    known_invalid: bool = False
    invalid_reason: str = ""
    #: True when ``mix`` needs the experts' full distributions
    needs_distributions: bool = False

    def __init__(self, n_experts: int, vocab_size: int):
        self.n_experts = int(n_experts)
        self.vocab_size = int(vocab_size)

    @abstractmethod
    def mix(
        self,
        logp: np.ndarray,
        targets: np.ndarray,
        dists: Optional[np.ndarray] = None,
        return_distribution: bool = False,
    ):
        """Mixture log-probabilities of the targets; see the class docstring."""

    def mix_log(self, logp: np.ndarray, targets: np.ndarray, log_dists: np.ndarray) -> np.ndarray:
        """Optional fast path of ``mix`` for mixers that work on log-probabilities (a geometric pool):
        ``log_dists`` (K, n, V) float32 holds the logs of the inputs' rows, floored at float32's
        smallest normal number. Same result as ``mix(logp, targets, dists)`` to float32 rounding
        of the inputs, same state change. The loop uses it outside strict scoring; strict scoring,
        the audit and decoding use ``mix``/``predict``."""
        raise NotImplementedError(f"mixer {self.name!r} has no log-space fast path")

    @property
    def mixes_log_rows(self) -> bool:
        return overrides(type(self), Mixer, "mix_log")

    def mix_log_grouped(self, logp: np.ndarray, targets: np.ndarray, grouped: GroupedLogRows) -> np.ndarray:
        """Optional: ``mix_log`` on rows given by groups of equal tokens (``GroupedLogRows``, built by
        the loop from the experts' ``sparse_rows``). Same result as ``mix_log`` on the expanded rows
        to float64 summation order (sums over groups weight each group by its size), same state
        change. Only for a mixer whose per-token terms depend on the inputs' values alone (no
        per-token parameter): ``mixes_grouped_rows`` says whether this instance qualifies."""
        raise NotImplementedError(f"mixer {self.name!r} cannot mix grouped rows")

    @property
    def mixes_grouped_rows(self) -> bool:
        return overrides(type(self), Mixer, "mix_log_grouped")

    @property
    @abstractmethod
    def weights(self) -> np.ndarray:
        """Current weights, shape ``(K,)`` (or a summary vector for mixers with many weight sets)."""

    def reset(self) -> None:
        """Back to the initial weights."""

    def predict(self, dists: np.ndarray) -> np.ndarray:
        """Decoding step: the mixture's distribution ``(V,)`` for the next target from the experts'
        rows ``dists`` ``(K, V)``, without changing the state (``observe`` then absorbs the target).

        The default mixes a deep copy with a placeholder target; mixers override it with a cheaper
        equivalent. It must equal the row ``mix(..., return_distribution=True)`` gives."""
        import copy

        dists = np.asarray(dists)
        with np.errstate(divide="ignore"):
            logp = np.log(np.asarray(dists[:, :1], dtype=np.float64))
        _, rows = copy.deepcopy(self).mix(logp, np.zeros(1, dtype=np.int64), dists[:, None, :], return_distribution=True)
        return np.asarray(rows)[0]

    def observe(self, logp: np.ndarray, target: int, dists: Optional[np.ndarray] = None) -> None:
        """Absorb one scored target: ``logp`` ``(K,)`` the experts' log-probabilities of it, ``dists``
        ``(K, V)`` their rows (when the mixer needs them). The default is a one-target ``mix``."""
        self.mix(np.asarray(logp, dtype=np.float64)[:, None], np.array([target], dtype=np.int64),
                 None if dists is None else np.asarray(dists)[:, None, :])

    def step_kernel(self) -> Optional[StepKernel]:
        """Optional: ``predict``/``observe`` as numba functions (see ``StepKernel`` and
        ``Expert.step_kernel``); None (the default) keeps the Python loop."""
        return None

    def state_fingerprint(self) -> Optional[bytes]:
        return np.asarray(self.weights, dtype=np.float64).tobytes()

    def describe(self) -> dict:
        return {}


class Adapter(ABC):
    """Test-time training: changes an expert's parameters using tokens already scored.

    ``setup(experts)`` is called once with the built experts by name; the adapter picks the one it
    adapts and trains the model that expert declares (``Expert.adaptable_model``), telling the
    expert after each change (``Expert.weights_changed``). ``after_chunk(tokens, start, end,
    final)`` is called after targets ``start..end-1`` have been scored and every expert has
    absorbed them; ``tokens`` is the stream up to ``end`` (every one of those tokens is scored).
    ``final`` is True for the last chunk of the stream: there is nothing left to score, so an
    adapter must not spend time training on it.
    """

    name: str = ""
    known_invalid: bool = False
    invalid_reason: str = ""

    def setup(self, experts: dict) -> None:
        """Pick the expert(s) to adapt from ``{name: Expert}``."""

    @abstractmethod
    def after_chunk(self, tokens: np.ndarray, start: int, end: int, final: bool) -> None:
        """Adapt on already-scored tokens; see the class docstring."""

    #: False for an adapter whose effect cannot be replayed target by target (the compressor's
    #: round trip); ``decode_refusal`` says why. The compressor refuses it before encoding.
    decodable: bool = True
    decode_refusal: str = ""

    def state_fingerprint(self) -> Optional[bytes]:
        return None

    def describe(self) -> dict:
        return {}

    def stats(self) -> dict:
        """Timings and counters reported in results (e.g. seconds per chunk)."""
        return {}


# ----------------------------------------------------------------------------- capability tiers
#
# Every expert has the required tier: ``score`` plus the lifecycle (``update``, ``reset``,
# ``state_fingerprint``, ``stats``, ``describe``), all but ``score`` with working defaults. Each
# other tier is a small protocol below, listed in ``EXPERT_CAPABILITIES`` / ``MIXER_CAPABILITIES``
# with the flag that reports it and what needs it; ``Expert`` and ``Mixer`` keep a default for each
# of their methods (refusing, or the slow general way), so a plugin writes only the tiers it has.


def overrides(cls: type, base: type, method: str) -> bool:
    """True when ``cls`` has its own ``method`` rather than ``base``'s default (its tier is offered)."""
    return getattr(cls, method, None) is not getattr(base, method)


class Scores(Protocol):
    """Required: the log-probability of every target of a span (``Expert.score``)."""

    def score(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray: ...


class GivesRows(Protocol):
    """Full normalized rows (``Expert.distributions``): needed by strict scoring (``--strict``,
    ``--audit``), the audit's row checks and mixers that need distributions."""

    def distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray: ...


class Decodes(Protocol):
    """Bit-exact target-by-target rows (``Expert.predict``/``observe``): needed by the compressor
    and ``--prove``."""

    def predict(self, tokens: np.ndarray, t: int) -> np.ndarray: ...

    def observe(self, tokens: np.ndarray, t: int) -> None: ...


class GivesLogRows(Protocol):
    """Fast path: the rows' logs (``Expert.log_distributions``) for a log-space mixer."""

    def log_distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray: ...


class GivesSparseRows(Protocol):
    """Fast path: the rows as a support over a count-shaped background (``Expert.sparse_rows``)."""

    def sparse_rows(self, tokens: np.ndarray, start: int, end: int) -> SparseRows: ...


class HasStepKernel(Protocol):
    """Fast path: ``predict``/``observe`` as numba functions (``Expert.step_kernel``, ``Mixer.step_kernel``)."""

    def step_kernel(self) -> Optional[StepKernel]: ...


class TrainableAtTestTime(Protocol):
    """Test-time training: the model an adapter trains and the hooks it calls (``Adapter``)."""

    def adaptable_model(self): ...

    def weights_changed(self) -> None: ...

    def delegate_scoring(self, scorer) -> None: ...


class MixesLogRows(Protocol):
    """Mixer fast path: mixing the inputs' float32 log rows (``Mixer.mix_log``)."""

    def mix_log(self, logp: np.ndarray, targets: np.ndarray, log_dists: np.ndarray) -> np.ndarray: ...


class MixesGroupedRows(Protocol):
    """Mixer fast path: mixing over groups of equal tokens (``Mixer.mix_log_grouped``)."""

    def mix_log_grouped(self, logp: np.ndarray, targets: np.ndarray, grouped: GroupedLogRows) -> np.ndarray: ...


@dataclass(frozen=True)
class Capability:
    """One optional tier of a component: the flag (a property) that reports whether an instance has
    it, the methods a plugin writes for it, the protocol that states them, and what needs it."""

    name: str  # short name, used in ``capabilities()`` and requirement messages
    flag: str  # the property that answers for an instance
    methods: tuple  # what a plugin implements (the first is the one named when it is missing)
    protocol: type
    tier: str  # "rows", "decoding", "fast path" or "test-time training"
    needed_by: str = ""


EXPERT_CAPABILITIES = (
    Capability("distributions", "provides_distributions", ("distributions",), GivesRows, "rows",
               "strict scoring (--strict, --audit) and mixers that need distributions"),
    Capability("decodable", "decodable", ("predict", "observe"), Decodes, "decoding",
               "the compressor and --prove"),
    Capability("log_distributions", "provides_log_distributions", ("log_distributions",), GivesLogRows, "fast path"),
    Capability("sparse_rows", "provides_sparse_rows", ("sparse_rows",), GivesSparseRows, "fast path"),
    Capability("adaptable", "adaptable", ("adaptable_model", "weights_changed", "delegate_scoring"),
               TrainableAtTestTime, "test-time training", "adapters that train the expert's model"),
)

MIXER_CAPABILITIES = (
    Capability("log_rows", "mixes_log_rows", ("mix_log",), MixesLogRows, "fast path"),
    Capability("grouped_rows", "mixes_grouped_rows", ("mix_log_grouped",), MixesGroupedRows, "fast path"),
)


def capability_table(component) -> tuple:
    """The capability table of an expert or a mixer (``()`` for anything else)."""
    if isinstance(component, Mixer):
        return MIXER_CAPABILITIES
    if isinstance(component, Expert):
        return EXPERT_CAPABILITIES
    return ()


def capabilities(component) -> frozenset:
    """The names of the tiers ``component`` offers (each answered by its flag property)."""
    return frozenset(c.name for c in capability_table(component) if getattr(component, c.flag))


def capability(name: str, table: Sequence[Capability] = EXPERT_CAPABILITIES) -> Capability:
    for c in table:
        if c.name == name:
            return c
    raise KeyError(f"no capability {name!r}; known: {', '.join(c.name for c in table)}")


def missing(component, name: str) -> tuple:
    """The methods ``component`` lacks for capability ``name`` (``()`` when it has it)."""
    cap = capability(name, capability_table(component))
    if getattr(component, cap.flag):
        return ()
    return tuple(m for m in cap.methods if not overrides(type(component), _base_of(component), m)) or cap.methods


def _base_of(component) -> type:
    return Mixer if isinstance(component, Mixer) else Expert


def require(components: Sequence, labels: Sequence[str], name: str, why: str) -> None:
    """Refuse, before anything is scored, a run in which a component lacks capability ``name`` that
    ``why`` (the part of the configuration that needs it, worded as the error's start) needs: the
    error names the component, the capability and the methods to write, instead of a failure deep in the loop or the coder."""
    from .errors import UsageError

    for comp, label in zip(components, labels):
        lacks = missing(comp, name)
        if lacks:
            kind = "mixer" if isinstance(comp, Mixer) else "expert"
            cap = capability(name, capability_table(comp))
            raise UsageError(f"{why}: {kind} {label!r} lacks capability {name!r} (implement "
                             f"{', '.join(m + '()' for m in lacks)}; see pgolf_core.api.{cap.protocol.__name__})")


def refuse_missing_capabilities(comps, strict: bool) -> None:
    """What a run's configuration needs of its components (``comps``: experts, labels, mixer):
    strict scoring and a mixer that mixes full rows need ``distributions`` from every expert. Called
    when the run is built and again by every ``Loop`` (loops are also made outside a run); the
    round trip's need for decoding is refused where it attaches (``compress.refuse_undecodable``)."""
    if strict:
        require(comps.experts, comps.labels, "distributions",
                "strict scoring (--strict, --audit, --prove) needs full distributions from every expert")
    mixer = comps.mixer
    if mixer is not None and mixer.needs_distributions:
        require(comps.experts, comps.labels, "distributions",
                f"mixer {getattr(mixer, 'name', '')!r} needs full distributions from every expert")


# ----------------------------------------------------------------------------- rows only


def _with_next_slot(tokens: np.ndarray, t: int) -> np.ndarray:
    """``tokens[:t]`` as a read-only array of ``t + 1`` entries (a span (t, t + 1) is handed the stream
    up to ``t + 1``). Entry ``t`` is not known when predicting and a causal expert never reads it for
    target t's row: the loop's view of its sealed stream extends into the buffer behind it (zero past
    the revealed tokens), any other array is copied with a zero there."""
    base = getattr(tokens, "base", None)
    if (isinstance(base, np.ndarray) and base.ndim == 1 and len(base) > t and len(tokens) == t and tokens.flags.c_contiguous
            and base.flags.c_contiguous and base.dtype == tokens.dtype
            and base.__array_interface__["data"][0] == tokens.__array_interface__["data"][0]
            and not base.flags.writeable):
        return base[:t + 1]
    out = np.zeros(t + 1, dtype=np.asarray(tokens).dtype)
    out[:t] = np.asarray(tokens)[:t]
    out.flags.writeable = False
    return out


class RowsExpert(Expert):
    """An expert that writes its prediction once, as full rows: ``distributions`` only.

    Derived from it, to the bit:

    - ``score(tokens, start, end)``: the log (float64) of each row's entry at the target;
    - ``predict(tokens, t)``: the row ``distributions`` gives over the one-target span (t, t + 1),
      computed on a copy of the state (``predict`` must not change the state; target t's token is not
      known yet and a causal expert does not read it);
    - ``observe(tokens, t)``: ``distributions`` over (t, t + 1) on the expert itself, the row dropped:
      the state advances exactly as a span's ``distributions`` advances it. It does not call
      ``update``: the loop still calls ``update`` once per chunk after the targets are observed, as
      it does after a chunk's ``distributions`` (the contract in ``Expert``'s docstring).

    Decoding a span target by target is then the same computation as scoring it in one-target spans,
    so the rows agree with ``distributions()`` over longer spans to the expert's own rounding (exactly,
    for an expert whose rows are computed target by target). The derived ``predict`` copies the
    state once per target: an expert with a large state that must decode fast writes ``predict`` and
    ``observe`` itself (they override these).
    """

    @abstractmethod
    def distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """Full distributions for targets ``start..end-1``, shape ``(end - start, vocab_size)``."""

    def score(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        rows = np.asarray(self.distributions(tokens, start, end))
        picked = rows[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)].astype(np.float64)
        with np.errstate(divide="ignore"):  # a zero entry is -inf: an invalid score the loop's guards report
            return np.log(picked)

    def predict(self, tokens: np.ndarray, t: int) -> np.ndarray:
        return np.asarray(copy.deepcopy(self).distributions(_with_next_slot(tokens, t), t, t + 1))[0]

    def observe(self, tokens: np.ndarray, t: int) -> None:
        self.distributions(tokens, t, t + 1)
