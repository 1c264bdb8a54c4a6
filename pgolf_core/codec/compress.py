"""``compress`` / ``decompress``: a file whose size is the score, decoded without the data.

The compressor runs the one loop (``pgolf_core.run.loop``) target by target (``step_targets``): each
expert's ``predict`` row, the mixer's ``predict`` row, the token range-coded with the mixture's row
(``pgolf_core.codec.coding``), then ``observe``/``update``/adapters exactly as in an evaluation. The
decompressor builds the same components from the file's header alone and makes the same calls in
the same order, except that each token comes out of the decoder; its stream holds only tokens
already decoded, so no component can have used a token before it existed. A deterministic
configuration therefore decodes bit for bit; anything else (another machine's arithmetic, library
or thread count, a nondeterministic plugin) is caught by the per-chunk checksums in the header and
reported with the first chunk that differs (and the exact position, given the original data).

The file (``pgolf_core.codec.container``): a JSON header with the format, the resolved configuration and
every option, the sha256 of the tokenizer and of every file an option names (checkpoints,
artifacts), the token count, the first token (position 0 is context, never a target), the
chunking, library versions, thread counts and checksums of the tokens; then the payload.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..stream.bytes import bits_per_byte
from .coderformat import CODER
from .coding import CodingError
from ..digest import sha256_file
from ..errors import DataError, PgolfError, UsageError
from ..run.loop import Guards, Loop
from ..run.session import DEFAULT_CHUNK as DEFAULT_CODE_CHUNK  # targets between adapter calls and checksums

FORMAT = "pgolf-core/compressed"
FORMAT_VERSION = 2  # 2: the project's range coder (1 was constriction's)


class RoundTripError(PgolfError):
    """A decoded stream is not the stream that was coded. ``decoded`` holds the tokens decoded up
    to the failure (the caller may compare them with the original to name the first difference)."""

    decoded = None


def _chunk_digest(tokens: np.ndarray) -> str:
    """A short digest of one chunk's tokens (int64 little-endian), for locating a divergence."""
    return hashlib.sha256(np.ascontiguousarray(tokens, dtype="<i8").tobytes()).hexdigest()[:16]


def _file_options(specs) -> dict:
    """{label: {option: sha256}} for every option whose value names an existing file."""
    out = {}
    for c in specs:
        for k, v in c.options.items():
            if isinstance(v, (str, os.PathLike)) and str(v) and Path(v).is_file():
                out.setdefault(c.label, {})[k] = sha256_file(v)
    return out


def _resolved_files(comps) -> dict:
    """{label: {key: {"path", "sha256"}}} for every file a built component says it uses (top-level
    strings of its ``describe()`` that name a file: e.g. the demo checkpoint the neural expert picks
    by default). The decoder may read these, and the description length counts them."""
    out = {}
    for label, c in zip([*comps.labels, *comps.adapter_labels], [*comps.experts, *comps.adapters]):
        for k, v in (c.describe() or {}).items():
            if isinstance(v, str) and v and Path(v).is_file():
                out.setdefault(label, {})[k] = {"path": os.path.realpath(v), "sha256": sha256_file(v)}
    return out


def _digests(resolved: dict) -> dict:
    return {lb: {k: e["sha256"] for k, e in keys.items()} for lb, keys in resolved.items()}


def _threads() -> dict:
    out = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    import sys

    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    return out


def _set_threads(threads: dict) -> None:
    """Pin the thread count the encoder used: a matrix product's rounding may depend on it."""
    n = threads.get("torch")
    if n:
        import torch

        torch.set_num_threads(int(n))


@dataclass
class CodingReport:
    """What one direction measured: sizes, ideal and coded BPB, speed."""

    path: str
    targets: int
    bytes: int  # UTF-8 bytes the targets stand for
    file_bytes: int
    payload_bytes: int
    header_bytes: int
    ideal_bpb: float  # from the mixture's rows at the targets (what an evaluation prints)
    coded_bpb: float  # 8 x payload bytes / stream bytes
    seconds: float
    timers: dict

    @property
    def targets_per_second(self) -> float:
        return self.targets / max(self.seconds, 1e-12)

    def to_dict(self) -> dict:
        return {"file": self.path, "targets": self.targets, "bytes": self.bytes, "file_bytes": self.file_bytes,
                "payload_bytes": self.payload_bytes, "header_bytes": self.header_bytes, "ideal_bpb": self.ideal_bpb,
                "coded_bpb": self.coded_bpb, "file_bpb": 8.0 * self.file_bytes / self.bytes, "seconds": self.seconds,
                "targets_per_second": self.targets_per_second, "components": self.timers}


def refuse_undecodable(comps) -> None:
    """A usage error, before anything is coded, when a component cannot take part in the round trip."""
    from ..api import require

    require(comps.experts, comps.labels, "decodable",
            "the compressed round trip (compress, --prove) cannot decode without predict/observe from every expert")
    for a, lb in zip(comps.adapters, comps.adapter_labels or [a.name for a in comps.adapters]):
        if not getattr(a, "decodable", True):
            raise UsageError(f"adapter {lb!r} cannot take part in the compressed round trip: "
                             f"{getattr(a, 'decode_refusal', '') or 'it declares itself not decodable'}")



def _run_chunks(loop: Loop, chunk: int, step, digests: Optional[list], progress: bool, label: str,
                expected: Optional[list] = None, reference: Optional[np.ndarray] = None) -> None:
    """Drive the loop chunk by chunk with ``step(start, end, final)``; check chunk digests when
    ``expected``."""
    from ..run.report import progress_bar

    with progress_bar(loop.n_tokens - 1, enabled=progress, label=label) as advance:
        for i, (start, end, final) in enumerate(loop.chunk_spans(chunk)):
            try:
                step(start, end, final)
            except CodingError:
                if expected is None:
                    raise
                err = RoundTripError(_divergence(loop, start, loop.stream.revealed, reference,
                                                 failed_at=loop.stream.revealed))
                err.decoded = loop.stream.view(loop.stream.revealed).copy()
                raise err from None
            d = _chunk_digest(loop.stream.view(end)[start:end])
            if digests is not None:
                digests.append(d)
            if expected is not None and d != expected[i]:
                err = RoundTripError(_divergence(loop, start, end, reference))
                err.decoded = loop.stream.view(end).copy()
                raise err
            advance(end - start)


def _stepper(loop: Loop, comps, compiled: bool, coder, first: int, choose, source=None):
    """The chunk step: the compiled coding loop, or the loop's target-by-target Python step."""
    if compiled:
        from .compiled import CompiledCoding

        coding = CompiledCoding(comps, loop.n_tokens, first, coder, source)
        return lambda start, end, final: loop.step_compiled(start, end, final=final, coding=coding)
    return lambda start, end, final: loop.step_targets(start, end, final=final, choose=choose)


def _use_compiled(comps, requested: str) -> bool:
    """Whether to code with the compiled loop: ``auto`` when every component offers a kernel."""
    from .compiled import available

    if requested not in ("auto", "compiled", "python"):
        raise UsageError(f"coding loop must be auto, compiled or python, got {requested!r}")
    if requested == "python":
        return False
    if available(comps):
        return True
    if requested == "compiled":
        raise UsageError("the compiled coding loop needs a step kernel from every expert and the mixer "
                         "(Expert.step_kernel / Mixer.step_kernel); some component offers none")
    return False


def _divergence(loop: Loop, start: int, end: int, reference: Optional[np.ndarray], failed_at: Optional[int] = None) -> str:
    msg = f"the decoded stream differs from the coded one within targets [{start}, {end})"
    if failed_at is not None:
        msg = f"the payload stopped decoding at target {failed_at} (so the stream differs at or before it)"
    if reference is not None:
        end = min(end, loop.stream.revealed)
        got = loop.stream.view(end)[start:end]
        bad = np.nonzero(np.asarray(got, dtype=np.int64) != np.asarray(reference[start:end], dtype=np.int64))[0]
        if len(bad) or failed_at is not None:
            first = start + int(bad[0]) if len(bad) else failed_at
            msg = f"the decoded stream first differs from the original at position {first}"
    return (msg + ": the components did not predict bit for bit what they predicted when coding (another "
            "machine, library version or thread count, a nondeterministic component, or one that used something the "
            "decoder cannot reach, such as the data)")


def compress(experts: Sequence, mixer=None, adapters: Sequence = (), tokens=None, tokenizer=None, output=None, *,
             coding_loop: str = "auto", **spec_options) -> CodingReport:
    """Code a token stream into ``output``; returns the report. The other keywords are the
    ``RunSpec`` fields (as ``evaluate``'s: options, ``byte_counts``, ``limit``, ``device``, ...).

    ``coding_loop``: ``auto`` codes with the compiled loop (``pgolf_core.codec.compiled``) when every
    component offers a step kernel, ``python`` always target by target from Python, ``compiled``
    insists; the file records which, and the decoder runs the same one."""
    from ..plugins import pin_plugin_code
    from ..run.spine import RunSpec, open_run

    if output is None:
        raise UsageError("compress needs an output file (-o FILE)")
    spec_options.setdefault("chunk_size", DEFAULT_CODE_CHUNK)
    spec = RunSpec(experts, mixer, adapters, tokens, tokenizer, **spec_options)
    pinned = pin_plugin_code(spec.plugin_modules)  # before this call loads any plugin
    return encode_run(open_run(spec, strict=True, distributed=False), output, coding_loop=coding_loop, pinned=pinned,
                      progress=spec.progress)


def encode_run(run, output, *, coding_loop: str = "auto", pinned: Optional[dict] = None,
               progress: bool = False) -> CodingReport:
    """Code an opened run's stream (``run.spine.open_run``; its components fresh) into ``output``.
    ``pinned``: the plugin modules' files as they were before any plugin was loaded
    (``plugins.pin_plugin_code``); modules found only now are pinned now."""
    from .coding import RowEncoder
    from .container import header_bytes, tokens_checksum, write_container
    from ..plugins import pin_plugin_code
    from ..run.report import collect_versions
    from ..run.session import stream_kind

    t0 = time.perf_counter()
    especs, aspecs, mspec, comps, stream, counter = run.experts, run.adapters, run.mixer, run.comps, run.tokens, run.counter
    table, tok_path, dataset, plugins = run.table, run.tokenizer, run.dataset, run.plugins
    device, seed, chunk_size = run.spec.device, run.spec.seed, run.spec.chunk_size
    pinned = dict(pinned or {})
    for c in [*especs, *aspecs, *([mspec] if mspec else [])]:
        if c.instance is not None:
            raise UsageError(f"{c.label!r} was passed as a built instance: the decompressor rebuilds every component "
                             f"from the file's header, so give registered names and options")
    if run.guards.violations:
        raise UsageError("; ".join(run.guards.violations) + ": an invalid configuration cannot be proven")
    refuse_undecodable(comps)
    compiled = _use_compiled(comps, coding_loop)
    for a in comps.adapters:
        a.setup(dict(zip(comps.labels, comps.experts)))
    threads = _threads()
    loop = Loop(comps, counter, len(stream), stream.dtype, strict=True, guards=Guards())
    loop.stream.reveal(stream[:1], 0)
    enc, digests = RowEncoder(table.vocab_size), []

    def choose(t, row):
        enc.encode(int(stream[t]), row)
        return int(stream[t])

    step = _stepper(loop, comps, compiled, enc, int(stream[0]), choose, stream)
    _run_chunks(loop, chunk_size, step, digests, progress, "compressing")
    if loop.guards.violations:
        raise PgolfError("the mixture broke a runtime guard while coding: " + "; ".join(loop.guards.violations))
    payload = enc.finish()
    needed = needed_plugins(plugins, [("expert", c) for c in especs] + [("adapter", c) for c in aspecs]
                            + ([("mixer", mspec)] if mspec else []))
    code = sorted({*local_imports(needed), *option_modules([*especs, *aspecs])})
    pinned.update(pin_plugin_code([m for m in [*needed, *code] if m not in pinned]))  # found only now: pinned now
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "config": {
            "experts": [{"name": c.name, "label": c.label, "options": c.options} for c in especs],
            "mixer": None if mspec is None else {"name": mspec.name, "options": mspec.options},
            "adapters": [{"name": c.name, "label": c.label, "options": c.options} for c in aspecs],
            "resolved": {"experts": [e.describe() for e in comps.experts],
                         "mixer": None if comps.mixer is None else comps.mixer.describe(),
                         "adapters": [a.describe() for a in comps.adapters]},
            "dataset": stream_kind(dataset), "device": device, "seed": seed,
            "needed_plugins": needed,
            "plugin_code": code,
        },
        "plugin_files": {m: pinned[m] for m in sorted({*needed, *code}) if m in pinned},
        "tokenizer": {"path": tok_path, "sha256": sha256_file(tok_path), "vocab_size": table.vocab_size},
        "files": _file_options([*especs, *aspecs]),
        "resolved_files": _resolved_files(comps),
        "tokens": {"count": int(len(stream)), "first": int(stream[0]), "dtype": str(stream.dtype),
                   "sha256": tokens_checksum(stream), "chunk_size": int(chunk_size), "chunk_digests": digests},
        "byte_counting": _byte_counting(counter, len(stream)),
        "versions": collect_versions(plugins), "threads": threads,
        "coding": {"coder": CODER, "loop": "compiled" if compiled else "python"},
    }
    size = write_container(output, header, payload)
    return CodingReport(str(output), loop.n_targets, loop.n_bytes, size, len(payload), header_bytes(header),
                        bits_per_byte(loop.nll, loop.n_bytes), 8.0 * len(payload) / loop.n_bytes, time.perf_counter() - t0,
                        dict(loop.timers))


def needed_plugins(plugins, specs) -> list:
    """The modules of the non-builtin plugins that registered the components of ``specs``: what
    ``decompress -p MODULE`` has to load (the header says so; the decoder never imports on its own)."""
    from ..plugins import builtin_modules

    builtin = set(builtin_modules())
    modules = {i.name: i.module for i in plugins.info}
    out = []
    for kind, c in specs:
        entry = plugins.registry(kind).get(c.name)
        module = modules.get(entry.plugin, entry.plugin)
        if module not in builtin and module not in out:
            out.append(module)
    return out


def option_modules(specs) -> list:
    """Top-level modules that options name as ``module:attribute`` (the neural expert's ``model=``, a
    user's network): code the decoder must read, counted as plugin code."""
    import importlib.util
    import re

    from ..plugins import builtin_modules

    builtin = {m.split(".")[0] for m in builtin_modules()}
    out = set()
    for c in specs:
        for v in c.options.values():
            m = re.fullmatch(r"([A-Za-z_][\w.]*):[A-Za-z_][\w.]*", str(v))
            top = m.group(1).split(".")[0] if m else None
            if top and top not in builtin and importlib.util.find_spec(top) is not None:
                out.add(top)
    return sorted(out)


def local_imports(modules) -> list:
    """Modules that single-file plugin ``modules`` brought in from their own folder (``import helper``
    beside ``my_plugin.py``): the decoder must read them too, and they count as plugin code."""
    import sys

    folders = {}
    for m in modules:
        mod = sys.modules.get(m)
        f = getattr(mod, "__file__", None)
        if f and not hasattr(mod, "__path__"):
            folders[os.path.dirname(os.path.realpath(f))] = m
    out = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if name in modules or "." in name or not f or hasattr(mod, "__path__"):
            continue
        if os.path.dirname(os.path.realpath(f)) in folders:
            out.append(name)
    return sorted(out)


def _byte_counting(counter, n: int) -> dict:
    """How the stream's bytes are counted, without naming a data file: a sidecar by the sha256 of
    its counts (the decoder's scorer recounts from the sidecar it is given, checked against it)."""
    from ..digest import counts_digest

    d = counter.describe()
    if d.get("method") == "sidecar":
        return {"method": "sidecar", "sha256": counts_digest(counter.counts[:n])}
    return {"method": d.get("method", "tokenizer table")}


def header_files(header: dict, path, tokenizer=None, overrides: Optional[Mapping] = None) -> dict:
    """Every file the header names, at its place (``tokenizer`` and ``overrides`` {label: {option:
    path}} move them), each checked by sha256: {"tokenizer": path, "<label>.<option>": path, ...}."""
    _check_format(header, path)
    tok = header["tokenizer"]
    out = {"tokenizer": str(tokenizer or tok["path"])}
    _check_file(out["tokenizer"], tok["sha256"], "the tokenizer", path)
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    cfg = header["config"]
    for entry in [*cfg["experts"], *cfg["adapters"]]:
        moved = overrides.pop(entry["label"], overrides.pop(entry["name"], {}))
        named = header.get("files", {}).get(entry["label"], {})
        for k in moved:
            if k not in named:
                raise UsageError(f"{entry['label']}.{k}: only options that name a file may be changed when decoding "
                                 f"(the file's configuration is fixed)")
        for k, digest in named.items():
            where = str(moved.get(k, entry["options"][k]))
            _check_file(where, digest, f"{entry['label']}.{k}", path)
            out[f"{entry['label']}.{k}"] = where
    if overrides:
        raise UsageError(f"options given for {', '.join(sorted(overrides))}, which is not among the file's components")
    for label, keys in header.get("resolved_files", {}).items():
        for k, entry in keys.items():
            if f"{label}.{k}" not in out:
                _check_file(entry["path"], entry["sha256"], f"{label}.{k} (a file the component chose)", path)
                out[f"resolved:{label}.{k}"] = entry["path"]
    return out


def _check_format(header: dict, path) -> None:
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} file (header says {header.get('format')!r} "
                        f"v{header.get('format_version')!r})")


def decode_container(header: dict, payload: bytes, path, files: dict, plugins, reference: Optional[np.ndarray] = None,
                     progress: bool = False, byte_counts=None):
    """Decode a container's payload with the components its header describes, built from
    ``plugins`` and the checked ``files`` (``header_files``); returns (tokens, report).

    This is the decoder itself: ``pgolf_core.proof.sandbox`` runs it in a confined process, and
    ``decompress`` in this one. The report's byte count and BPB come from the tokenizer's table;
    for a stream counted by a sidecar they come from ``byte_counts`` (the sidecar, checked against the
    header's digest) or are left out (NaN): the scorer (``pgolf_core.proof.score``) recounts them."""
    from ..run.build import ComponentSpec
    from .coding import RowDecoder
    from .container import tokens_checksum
    from ..run.spine import RunSpec, open_decoder
    from ..run.session import stream_kind
    from ..tokenizers import load_tokenizer

    t0 = time.perf_counter()
    cfg = header["config"]
    table = load_tokenizer(files["tokenizer"], plugins).byte_table()
    especs = _specs(cfg["experts"], files)
    mixer = None if cfg["mixer"] is None else ComponentSpec(cfg["mixer"]["name"], dict(cfg["mixer"]["options"]))
    spec = RunSpec(especs, mixer, _specs(cfg["adapters"], files), tokenizer=files["tokenizer"], plugins=plugins,
                   device=cfg["device"], seed=cfg["seed"])
    n = int(header["tokens"]["count"])
    try:
        run = open_decoder(spec, plugins, table, n, stream_kind(cfg["dataset"]))
    except PgolfError as exc:
        needed = cfg.get("needed_plugins") or []
        hint = f" (the file needs plugin module(s) {', '.join(needed)}: load them with -p MODULE)" if needed else ""
        raise type(exc)(f"{exc}{hint}") from None
    comps = run.comps
    refuse_undecodable(comps)
    if _digests(_resolved_files(comps)) != _digests(header.get("resolved_files", {})):
        raise DataError(f"{path}: a file the components use is not the one the stream was coded with (sha256 "
                        f"differs): {header.get('resolved_files')}")
    for a in comps.adapters:
        a.setup(dict(zip(comps.labels, comps.experts)))
    _set_threads(header.get("threads", {}))
    loop = Loop(comps, table, n, np.dtype(header["tokens"]["dtype"]), strict=True, guards=Guards())
    loop.stream.reveal(np.array([header["tokens"]["first"]]), 0)
    dec = RowDecoder(payload, n_symbols=n - 1, vocab_size=table.vocab_size)
    compiled = header["coding"]["loop"] == "compiled"
    if compiled and not _use_compiled(comps, "compiled"):
        raise DataError(f"{path}: the stream was coded with the compiled loop, but these components offer no step kernel")
    step = _stepper(loop, comps, compiled, dec, int(header["tokens"]["first"]), lambda t, row: dec.decode(row))
    _run_chunks(loop, int(header["tokens"]["chunk_size"]), step, None, progress, "decompressing",
                expected=header["tokens"]["chunk_digests"], reference=reference)
    tokens = loop.stream.copy()
    if tokens_checksum(tokens) != header["tokens"]["sha256"]:
        raise RoundTripError(f"{path}: the decoded stream's checksum differs from the header's")
    size = Path(path).stat().st_size
    n_bytes = loop.n_bytes
    if header.get("byte_counting", {}).get("method") == "sidecar":
        from ..stream.data import sidecar_target_bytes

        n_bytes = sidecar_target_bytes(byte_counts, tokens, header, path) if byte_counts is not None else 0
    report = CodingReport(str(path), loop.n_targets, n_bytes, size, len(payload), size - len(payload),
                          bits_per_byte(loop.nll, n_bytes) if n_bytes else float("nan"),
                          8.0 * len(payload) / n_bytes if n_bytes else float("nan"), time.perf_counter() - t0,
                          dict(loop.timers))
    return tokens, report


def decompress(path, *, tokenizer=None, expert_options: Optional[Mapping] = None,
               adapter_options: Optional[Mapping] = None, plugins=None, plugin_modules: Sequence[str] = (),
               reference: Optional[np.ndarray] = None, byte_counts=None, progress: bool = False):
    """Decode ``path`` in this process from its header and payload alone; returns (tokens, report).

    This is the decoder's engine, not a proof: plugins run in this process, where the data may be
    in reach. ``pgolf_core.proof.prove.prove_file`` (``pgolf-core decompress``, ``eval --prove``) runs the
    same decoder in a sandbox. Only pgolf-core's builtins and ``plugin_modules`` are loaded (or the
    given ``plugins``); never a module the header names. ``tokenizer`` and ``expert_options``/
    ``adapter_options`` may point files named in the header to another place (sha256 checked).
    ``byte_counts`` gives the sidecar of a stream counted by one (sha256 checked), so that its
    bytes are recounted; ``reference`` (the original stream) names the first diverging position."""
    from .container import read_container

    header, payload = read_container(path)
    files = header_files(header, path, tokenizer, {**dict(expert_options or {}), **dict(adapter_options or {})})
    if plugins is None:
        from ..plugins import builtin_modules, load_plugins

        plugins = load_plugins([*builtin_modules(), *plugin_modules], env={}, autoload=False)
    return decode_container(header, payload, path, files, plugins, reference=reference, progress=progress,
                            byte_counts=byte_counts)


def _specs(entries, files: dict) -> list:
    """Components from the header, with their file options at the places ``header_files`` checked."""
    specs = []
    for entry in entries:
        options = dict(entry["options"])
        for key, where in files.items():
            label, _, option = key.partition(".")
            if label == entry["label"]:
                options[option] = where
        specs.append(entry | {"options": options})
    return [_component(e) for e in specs]


def _component(entry):
    from ..run.build import ComponentSpec

    return ComponentSpec(entry["name"], entry["options"], label=entry["label"] if entry["label"] != entry["name"] else "")


def _check_file(p, digest: str, what: str, path) -> None:
    if not Path(p).is_file():
        raise DataError(f"{path}: {what} {p} is not there (give its new place with the matching option)")
    if sha256_file(p) != digest:
        raise DataError(f"{path}: {what} {p} is not the file the stream was coded with (sha256 differs)")
