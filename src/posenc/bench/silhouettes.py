"""``posenc bench silhouettes``: methods x binary silhouettes, curve deformation by Chamfer (SAPE's 2-D
task): IoU and Chamfer table, overlay montages."""

from __future__ import annotations

from typing import Any

from .runner import BenchConfig, Family


def _data_settings(bc: BenchConfig, data: Any) -> None:
    """Silhouettes use the task's own data settings."""


FAMILY = Family(
    name="silhouettes",
    tasks=("silhouette",),
    columns={"silhouette": [("iou", "IoU", 3), ("chamfer", "Chamfer", 5)]},
    tile="overlay.png",
    target=None,
    suffixes=frozenset({".png", ".gif", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"}),
    data_settings=_data_settings,
    command=lambda bc: ["bench", "silhouettes", "--data", bc.data, "--methods", ",".join(bc.methods)],
    setting=lambda bc: "silhouette",
)
