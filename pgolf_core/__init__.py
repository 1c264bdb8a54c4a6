"""pgolf-core: a plugin-based ensemble evaluator for tiny language models scored in bits per byte.

Importing this package loads neither torch nor numba; plugins import them inside their factories.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from .api import Adapter, BuildContext, Expert, Mixer, RowsExpert
from .errors import DataError, PgolfError, PluginError, UsageError
from .hookspecs import hookimpl

# Bound eagerly: the submodule pgolf_core.evaluate would otherwise shadow the function.
from .evaluate import evaluate  # noqa: E402

__version__ = "0.1.0"

# Modules that moved into the wings (stream, run, checks, codec, cli) keep their old import path for
# plugins written against it: ``import pgolf_core.data`` is ``pgolf_core.stream.data``, the same module.
MOVED = {
    "data": "stream.data", "bytes": "stream.bytes", "caseops": "stream.caseops",
    "loop": "run.loop", "grouping": "run.grouping", "grouping_kernels": "run.grouping_kernels",
    "distributed": "run.distributed", "report": "run.report", "verdict": "run.verdict", "build": "run.build",
    "session": "run.session", "device": "run.device",
    "audit": "checks.audit", "audit_engine": "checks.audit_engine", "spotcheck": "checks.spotcheck",
    "resume": "checks.resume", "statecodec": "checks.statecodec",
    "rangecoder": "codec.rangecoder", "coding": "codec.coding", "container": "codec.container",
    "compiled": "codec.compiled", "compress": "codec.compress", "coderformat": "codec.coderformat",
    "cli_commands": "cli.commands", "cli_options": "cli.options", "compress_cli": "cli.compress",
    "audit_cli": "cli.audit", "doctor": "cli.doctor", "plot": "cli.plot",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module at its new place (one module object, two names)."""

    def find_spec(self, name, path=None, target=None):
        head, _, leaf = name.partition(".")
        if head == __name__ and leaf in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.partition('.')[2]]}")
        self._own_spec = module.__spec__  # the import system sets the alias's spec on the module
        return module

    def exec_module(self, module):
        module.__spec__ = self._own_spec  # already executed under its new name: keep its own spec


def __getattr__(name):  # ``from pgolf_core import data`` as well as ``import pgolf_core.data``
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())


__all__ = [
    "Adapter", "BuildContext", "Expert", "Mixer", "RowsExpert", "DataError", "PgolfError", "PluginError", "UsageError",
    "hookimpl", "evaluate", "__version__",
]
