"""pgolf-core: a plugin-based ensemble evaluator for tiny language models scored in bits per byte.

Importing this package loads neither torch nor numba; plugins import them inside their factories.
"""

from .api import Adapter, BuildContext, Expert, Mixer
from .errors import DataError, PgolfError, PluginError, UsageError
from .hookspecs import hookimpl

__version__ = "0.1.0"
RESULTS_SCHEMA_VERSION = 1


def evaluate(*args, **kwargs):
    """Score a token stream with experts, a mixer and adapters; see ``pgolf_core.evaluate.evaluate``."""
    from .evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = [
    "Adapter", "BuildContext", "Expert", "Mixer", "DataError", "PgolfError", "PluginError", "UsageError",
    "hookimpl", "evaluate", "__version__",
]
