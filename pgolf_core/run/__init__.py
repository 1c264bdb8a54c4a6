"""The run: what to run (``RunSpec``), the preamble done once (``open_run``) and the run it opens."""

from .spine import Run, RunSpec, open_run

__all__ = ["Run", "RunSpec", "open_run"]
