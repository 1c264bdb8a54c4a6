"""pgolf-core: a plugin-based ensemble evaluator for tiny language models scored in bits per byte.

Importing this package loads neither torch nor numba; plugins import them inside their factories.
"""

from .api import Adapter, BuildContext, Expert, Mixer, RowsExpert
from .errors import DataError, PgolfError, PluginError, UsageError
from .hookspecs import hookimpl

# Bound eagerly: the submodule pgolf_core.evaluate would otherwise shadow the function.
from .evaluate import evaluate  # noqa: E402

__version__ = "0.1.0"


__all__ = [
    "Adapter", "BuildContext", "Expert", "Mixer", "RowsExpert", "DataError", "PgolfError", "PluginError", "UsageError",
    "hookimpl", "evaluate", "__version__",
]
