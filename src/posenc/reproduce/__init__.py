"""``posenc reproduce``: one command per paper table (suites as data, a selection step on validation
inputs, local or Ray executors, resumable results, generated reports)."""

from .runner import ReproduceConfig, run_suite
from .suite import Suite, list_suites, load_suite

__all__ = ["ReproduceConfig", "Suite", "list_suites", "load_suite", "run_suite"]
