"""Tasks turn an input file into training samples, a loss and an evaluation. They never import encodings."""

from __future__ import annotations

from typing import Any

from ..errors import PosencError
from .base import Task
from .image import ImageTask
from .mesh_transfer import MeshTransferTask
from .signal1d import Signal1DTask
from .shapes import ShapeTask
from .silhouette import SilhouetteTask


class _ShapeKind:
    """``sdf`` / ``occupancy`` entries of the task table: one ShapeTask class, two losses."""

    in_dim, out_dim = ShapeTask.in_dim, ShapeTask.out_dim

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, cfg: Any) -> ShapeTask:
        return ShapeTask(cfg, self.kind)


TASKS: dict[str, Any] = {"image": ImageTask, "signal1d": Signal1DTask, "silhouette": SilhouetteTask,
                         "sdf": _ShapeKind("sdf"), "occupancy": _ShapeKind("occupancy"), "mesh-transfer": MeshTransferTask}


def make_task(name: str, data_config: Any) -> Any:
    if name not in TASKS:
        raise PosencError(f"unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    return TASKS[name](data_config)


__all__ = ["Task", "ImageTask", "MeshTransferTask", "Signal1DTask", "SilhouetteTask", "ShapeTask", "TASKS", "make_task"]
