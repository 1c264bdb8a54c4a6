"""The sandboxed decoder: a fresh process that confines itself before it imports any plugin.

The parent (``run_decoder``) writes a small request into a fresh scratch folder and starts
``python -I -m pgolf_core.proof.sandbox REQUEST``: a new interpreter (exec'd, never a fork of the
encoder, so nothing of the encoder's memory is there), isolated mode (no ``PYTHONPATH``, no user
site), a scrubbed environment (the thread settings the file was coded with, and folders inside the
scratch folder), no inherited file descriptors, standard input closed, its own session.

The child then, before any plugin module is imported:

1. reads the compressed file's header and checks, by sha256, every file it names (tokenizer,
   checkpoints), so that these and only these can be read;
2. computes its read plan (``pgolf_core.proof.plan``) itself: the encoder cannot widen it;
3. ignores every catchable signal, then confines itself with Landlock (``pgolf_core.proof.landlock``:
   read the plan, write the scratch folder only, no TCP, no abstract sockets, no signals out) and
   seccomp (``pgolf_core.proof.seccomp``: no sockets of any kind, no shared memory, no other
   process's memory, no signal handlers);
4. loads pgolf-core's builtin plugins and the plugin modules it was asked to load, decodes
   (``pgolf_core.codec.compress.decode_container``), and writes the tokens (``tokens.npy``) and a report
   (``report.json``: what it enforced, its speed) into the scratch folder.

Where the kernel offers no Landlock, or seccomp cannot be installed, the child decodes anyway when
asked to (``require=False``) and says what it could not enforce: the round trip is then
"decoded, unsandboxed", never "proven".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import PgolfError
from ..plugins import builtin_modules

ENV_NO_SANDBOX = "PGOLF_NO_SANDBOX"  # 1: decode unconfined (the level is then "decoded"; for machines without one)
REQUEST = "request.json"
TOKENS = "tokens.npy"
PARTIAL = "partial.npy"  # the tokens decoded before a round trip failed
REPORT = "report.json"
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
_FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
           signal.SIGCHLD}


class SandboxError(PgolfError):
    """The sandboxed decoder could not run, or stopped with an error (``decoded``: the tokens it
    decoded before a round trip failed, if any)."""

    decoded = None


def sandbox_status() -> dict:
    """What this machine offers for proofs: {"available", "mechanism", "abi", "reason", "seccomp"}."""
    from . import landlock, seccomp

    abi = landlock.abi_version()
    calls = seccomp.denied_calls()
    if os.environ.get(ENV_NO_SANDBOX, "") not in ("", "0"):
        reason = f"the sandbox was turned off ({ENV_NO_SANDBOX}=1)"
    elif abi < 1:
        reason = "Landlock is not available on this kernel (Linux 5.13+ with the LSM enabled is needed)"
    elif not calls:
        reason = "no seccomp syscall table for this machine (x86_64 and aarch64 are known)"
    else:
        reason = ""
    return {"available": not reason, "mechanism": "landlock+seccomp" if not reason else "none", "abi": abi or None,
            "reason": reason, "seccomp": bool(calls), "root": os.geteuid() == 0}


def _scrubbed_env(scratch: Path, threads: dict) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch / "tmp"), "LANG": "C.UTF-8",
           "NUMBA_CACHE_DIR": str(scratch / "numba"), "PYTHONDONTWRITEBYTECODE": "1", "PGOLF_DISABLE_PLUGIN_AUTOLOAD": "1",
           "MPLCONFIGDIR": str(scratch / "tmp")}
    if threads.get("OMP_NUM_THREADS"):
        env["OMP_NUM_THREADS"] = str(threads["OMP_NUM_THREADS"])
    return env


def _absolute_files(path, tokenizer, file_overrides) -> tuple:
    """The header's files as this process finds them (a relative path is relative to this process's
    folder, and the child runs in its scratch folder), as the tokenizer and overrides the child takes."""
    from ..codec.compress import header_files
    from ..codec.container import read_container

    files = header_files(read_container(path)[0], path, tokenizer, file_overrides)
    overrides: dict = {}
    for key, where in files.items():
        if key != "tokenizer" and not key.startswith("resolved:"):
            label, option = key.rsplit(".", 1)
            overrides.setdefault(label, {})[option] = os.path.realpath(where)
    return os.path.realpath(files["tokenizer"]), overrides


def run_decoder(path, *, plugin_modules=(), tokenizer=None, file_overrides=None, require: bool = True,
                threads: dict | None = None, timeout: float | None = None, keep: bool = False) -> tuple:
    """Decode ``path`` in a sandboxed child; returns (tokens, child report, scratch folder or None).

    ``plugin_modules`` are the only plugins the child imports besides pgolf-core's builtins;
    ``file_overrides`` {label: {option: path}} and ``tokenizer`` give moved files (sha256 checked)."""
    import numpy as np

    tokenizer, file_overrides = _absolute_files(path, tokenizer, file_overrides)
    scratch = Path(tempfile.mkdtemp(prefix="pgolf-decoder-"))
    try:
        for sub in ("tmp", "numba", "out"):
            (scratch / sub).mkdir()
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        request = {"file": os.path.realpath(path), "plugin_modules": list(plugin_modules),
                   "builtin_modules": builtin_modules(), "sys_path": paths,
                   "tokenizer": None if tokenizer is None else os.path.realpath(tokenizer),
                   "file_overrides": {k: {o: os.path.realpath(v) for o, v in d.items()}
                                      for k, d in (file_overrides or {}).items()},
                   "out": str(scratch / "out"), "require": bool(require)}
        (scratch / REQUEST).write_text(json.dumps(request))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-I", "-m", "pgolf_core.proof.sandbox", str(scratch / REQUEST)],
                              env=_scrubbed_env(scratch, threads or {}), cwd=scratch / "tmp", stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, close_fds=True, start_new_session=True, timeout=timeout)
        wall = time.perf_counter() - t0
        out = scratch / "out"
        report = json.loads((out / REPORT).read_text()) if (out / REPORT).is_file() else None
        if proc.returncode != 0 or report is None or "error" in report:
            why = (report or {}).get("error") or _tail(proc.stderr) or f"exit code {proc.returncode}"
            err = SandboxError(f"{path}: the sandboxed decoder failed: {why}")
            if (out / PARTIAL).is_file():
                err.decoded = np.load(out / PARTIAL, allow_pickle=False)
            raise err
        tokens = np.load(out / TOKENS, allow_pickle=False)
        report["wall_seconds"] = wall
        return tokens, report, (scratch if keep else None)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(t for t in (text or "").strip().splitlines()[-lines:])


# ---- the child ---------------------------------------------------------------------------------

def _ignore_signals() -> None:
    """Catchable signals are discarded from now on: nobody outside can signal bits in (seccomp then
    forbids installing handlers)."""
    for s in signal.valid_signals():
        if s in _UNCATCHABLE or s in _FAULTS:
            continue
        try:
            signal.signal(s, signal.SIG_IGN)
        except (OSError, ValueError, RuntimeError):
            pass


def _confine(plan, scratch: str, require: bool) -> dict:
    from . import landlock, seccomp

    status = {"mechanism": "none", "enforced": False, "problems": []}
    _ignore_signals()
    try:
        status.update(landlock.restrict(plan.read, [scratch], plan.listing).to_dict())
    except OSError as exc:
        status["problems"].append(f"Landlock: {exc}")
    try:
        status["seccomp_denied"] = seccomp.install()
    except OSError as exc:
        status["problems"].append(f"seccomp: {exc}")
    status["enforced"] = not status["problems"]
    if status["problems"] and require:
        raise SandboxError("the decoder cannot confine itself: " + "; ".join(status["problems"]))
    return status


def child_main(request_path: str) -> int:
    import numpy as np

    request = json.loads(Path(request_path).read_text())
    out = Path(request["out"])
    try:
        from ..codec.compress import decode_container, header_files
        from ..codec.container import read_container
        from .plan import decoder_plan

        sys.path.extend(p for p in request["sys_path"] if p not in sys.path)
        header, payload = read_container(request["file"])
        files = header_files(header, request["file"], request["tokenizer"], request["file_overrides"])
        code = [*request["plugin_modules"], *header["config"].get("plugin_code", [])]
        plan = decoder_plan(code, [request["file"], *files.values()], pinned=header.get("plugin_files"))
        status = _confine(plan, str(out.parent), request["require"])
        from ..plugins import load_plugins

        plugins = load_plugins([*request["builtin_modules"], *request["plugin_modules"]], env={}, autoload=False)
        tokens, report = decode_container(header, payload, request["file"], files, plugins)
        np.save(out / TOKENS, tokens)
        result = {"decode": report.to_dict(), "sandbox": status, "read_rules": len(plan.read),
                  "distributions": plan.distributions}
    except PgolfError as exc:
        result = {"error": str(exc)}
        if getattr(exc, "decoded", None) is not None:
            np.save(out / PARTIAL, exc.decoded)
    except Exception as exc:  # a plugin's failure inside the sandbox is reported, not raised as ours
        result = {"error": f"{type(exc).__name__}: {exc}"}
    (out / REPORT).write_text(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
