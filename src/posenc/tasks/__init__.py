"""Tasks turn an input file into training samples, a loss and an evaluation. They never import encodings."""

from __future__ import annotations

from typing import Any

from ..errors import PosencError
from .image import ImageTask
from .signal1d import Signal1DTask
from .silhouette import SilhouetteTask

TASKS = {"image": ImageTask, "signal1d": Signal1DTask, "silhouette": SilhouetteTask}


def make_task(name: str, data_config: Any) -> Any:
    if name not in TASKS:
        raise PosencError(f"unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    return TASKS[name](data_config)


__all__ = ["ImageTask", "Signal1DTask", "SilhouetteTask", "TASKS", "make_task"]
