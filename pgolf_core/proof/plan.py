"""What the sandboxed decoder may read: the read plan.

The decoder is allowed, file by file where it matters, exactly this and nothing else:

- the interpreter: its standard library (without the interpreter's own site-packages), its
  executable and shared libraries, and the system's shared libraries;
- the distributions pgolf-core depends on (its requirements, followed recursively), each only
  through the files its ``RECORD`` lists: a file that is not listed (a side file planted among an
  installed library's files), whose size differs from the record, or that changed after the
  record was written is not readable, and the decoder stops with its name;
- pgolf-core's own packages (the decompressor) and the plugin modules it is told to load, without
  their ``__pycache__`` folders (compiled files are written by whoever ran before; sources are
  what is counted): these are the code the description length counts. A plugin module's files
  are pinned when the encoder starts, before the module is imported (``pgolf_core.plugins.pin_plugin_code``): the
  header lists them with their sha256, and the decoder reads only those of them that still lie in
  the module's folder with the same content. A file the plugin wrote while it saw the data (a
  cache of the stream beside its code) was not there when the files were pinned, so it cannot be
  read back;
- the files the compressed file's header names (tokenizer, checkpoints, tables), each checked by
  sha256 before any plugin is imported, and the compressed file itself;
- a few kernel files a numeric library reads (``/proc/self``, ``/proc/cpuinfo``, ``/sys/devices/system/cpu``,
  ``/dev/null``, ``/dev/urandom``).

Everything else, the data, the encoder's files, ``/tmp``, the home folder and other processes'
``/proc`` entries included, is out of reach. The plan is computed by the decoder itself before it
imports any plugin, so the encoding process cannot widen it.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..errors import DataError

CORE_DISTRIBUTION = "pgolf-core"
# Besides the sources of pgolf-core's own packages, the package data it ships (the demo model).
_CODE_SUFFIXES = {".py", ".pt", ".json", ".model", ".txt"}
_SYSTEM_READ = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/proc/self", "/proc/cpuinfo",
                "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null", "/dev/urandom",
                "/dev/zero")
# The interpreter's own site-packages hold other installations' packages; pydoc_data holds the text
# the built-in demo stream is made of (a decoder needs neither).
_STDLIB_LEFT_OUT = ("site-packages", "dist-packages", "pydoc_data")
from ..tolerances import RECORD_SLACK_S as _RECORD_SLACK_S  # noqa: E402 (files predate their RECORD)


class PlanError(DataError):
    """A file the decoder would read is not what its distribution installed."""


@dataclass
class ReadPlan:
    """Paths the decoder may read (whole trees for folders), the folders it may only list, and the
    code it reads, by owner, for the description length."""

    read: list = field(default_factory=list)
    listing: list = field(default_factory=list)
    code: dict = field(default_factory=dict)  # owner ("pgolf-core" or a plugin module) -> [files]
    distributions: list = field(default_factory=list)  # the third-party distributions readable

    def covers(self, path) -> str:
        """The granted path under which ``path`` can be read, or ''."""
        p = os.path.realpath(path)
        for r in self.read:
            r = os.path.realpath(r)
            if p == r or p.startswith(r.rstrip(os.sep) + os.sep):
                return r
        return ""


def _requirement_names(dist) -> list:
    """Names of the requirements that apply without extras (markers with ``extra`` are skipped;
    others are followed when installed, which over-approximates only towards more reading)."""
    out = []
    for req in dist.requires or ():
        if "extra ==" in req.replace('extra==', 'extra =='):
            continue
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m:
            out.append(m.group(1))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(roots=(CORE_DISTRIBUTION,)) -> list:
    """The installed distributions reachable from ``roots`` through their requirements."""
    seen, todo, out = set(), list(roots), []
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        out.append(dist)
        todo += _requirement_names(dist)
    return out


def _recorded_files(dist) -> list:
    """The files a distribution installed, checked against its RECORD (size, unchanged since)."""
    files = dist.files or []
    record = next((f for f in files if f.name == "RECORD" and f.parent.name.endswith(".dist-info")), None)
    if record is None:
        return []
    rec_path = Path(dist.locate_file(record))
    limit = rec_path.stat().st_ctime + _RECORD_SLACK_S
    out = [str(rec_path.parent)]  # the metadata folder itself (read by importlib.metadata)
    for f in files:
        if str(f).startswith(".."):  # scripts installed outside site-packages: never imported
            continue
        p = Path(dist.locate_file(f))
        try:
            st = p.stat()
        except FileNotFoundError:
            continue  # listed but absent (e.g. a .pyc never written): nothing to read
        if f.size is not None and st.st_size != f.size:
            raise PlanError(f"{p}: {st.st_size} bytes, but {dist.metadata['Name']} installed it with {f.size}: "
                            f"a file the decoder reads was changed after installation")
        if st.st_ctime > limit:
            raise PlanError(f"{p}: changed after {dist.metadata['Name']} was installed (its ctime is later than the "
                            f"RECORD's): the decoder will not read it; reinstall the package")
        out.append(str(p))
    return out


def _package_files(name: str) -> tuple:
    """(the sys.path folder it is found in, its files without __pycache__) for a top-level module."""
    from ..errors import PluginError
    from ..plugins import module_files

    try:
        return module_files(name)
    except PluginError as exc:
        raise PlanError(f"{exc}: the decoder cannot load it") from None


def _editable_packages(dist) -> list:
    """Top-level packages of a distribution installed in place (no RECORD of its sources)."""
    names = (dist.read_text("top_level.txt") or "").split()
    if not names:
        names = [n for n, ds in metadata.packages_distributions().items() if dist.metadata["Name"] in ds]
    return sorted(set(names))


def stdlib_paths() -> list:
    """The standard library's entries (its own site-packages left out) and the interpreter."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [str(p) for p in stdlib.iterdir() if p.name not in _STDLIB_LEFT_OUT]
    platstdlib = Path(sysconfig.get_paths()["platstdlib"])
    if platstdlib != stdlib:
        out += [str(p) for p in platstdlib.iterdir() if p.name not in _STDLIB_LEFT_OUT]
    out += [os.path.realpath(sys.executable), sys.executable, str(Path(sys.prefix) / "pyvenv.cfg")]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        out += [str(p) for p in Path(libdir).glob("libpython*")]
    return out


def _module_distributions(modules) -> list:
    """The installed distributions that provide these modules' top-level packages."""
    owners = metadata.packages_distributions()
    return sorted({d for m in modules for d in owners.get(m.split(".")[0], [])})


def _pinned_files(mod: str, found: list, pinned) -> list:
    """The files of ``mod`` the decoder may read: with a pin, only pinned files that are among the
    module's files now and still have the pinned content (a pin naming a file elsewhere is ignored:
    the header is not trusted to widen the plan)."""
    if pinned is None or mod not in pinned:
        return found
    from ..digest import sha256_file

    here, out = set(found), []
    for entry in pinned[mod]:
        path = entry.get("path")
        if path not in here:
            continue
        if sha256_file(path) != entry.get("sha256"):
            raise PlanError(f"plugin module {mod!r}: {path} changed since the stream was coded (sha256 differs); "
                            f"decode with the plugin's files as they were")
        out.append(path)
    return out


def _core_packages(dist=None) -> list:
    """[(sys.path folder, code files)] of pgolf-core's own packages, installed or in place."""
    out = []
    for name in _editable_packages(dist or metadata.distribution(CORE_DISTRIBUTION)):
        root, pkg = _package_files(name)
        out.append((root, [f for f in pkg if Path(f).suffix in _CODE_SUFFIXES]))
    return out


def decoder_plan(plugin_modules=(), files=(), pinned=None) -> ReadPlan:
    """The read plan of a decoder that loads pgolf-core's builtins and ``plugin_modules`` and reads
    ``files`` (tokenizer, checkpoints: each checked by sha256 before any plugin runs); ``pinned``:
    the header's ``plugin_files`` (``pgolf_core.plugins.pin_plugin_code``)."""
    plan = ReadPlan(read=stdlib_paths() + [p for p in _SYSTEM_READ if os.path.exists(p)])
    plan.listing = [p for p in sys.path if p and os.path.isdir(p)]
    core = []
    for dist in dependency_closure([CORE_DISTRIBUTION, *_module_distributions(plugin_modules)]):
        plan.read += _recorded_files(dist)
        if _norm(dist.metadata["Name"]) != CORE_DISTRIBUTION:
            plan.distributions.append(f"{dist.metadata['Name']}=={dist.version}")
            continue
        for root, pkg in _core_packages(dist):  # the decompressor's own code
            core += pkg
            plan.listing.append(root)
    plan.code[CORE_DISTRIBUTION] = core
    plan.read += core
    for mod in plugin_modules:
        root, pkg = _package_files(mod.split(".")[0])
        if set(pkg) <= set(core):
            continue  # a builtin module named explicitly
        pkg = _pinned_files(mod, pkg, pinned)
        plan.code[mod] = pkg
        plan.read += pkg
        plan.listing.append(root)
    plan.read += [os.path.realpath(f) for f in files]
    return plan
