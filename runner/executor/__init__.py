"""The reconcile loop and its steps (sync, submit, poll and collect, recover, cancel).

The face for the commands: `run`, `run_many`, `RunSummary` and the `Context` they run in.
"""

from runner.executor.context import Compiler, Context
from runner.executor.loop import RunSummary, run, run_many

__all__ = ["Compiler", "Context", "RunSummary", "run", "run_many"]
