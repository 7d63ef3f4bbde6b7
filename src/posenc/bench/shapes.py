"""``posenc bench shapes``: methods x meshes for occupancy or sdf (IoU, Chamfer-L1, Hausdorff; sdf also
the normal error of the field's gradient), previews and, for sdf, normal-map montages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import MESH_SUFFIXES
from .runner import BenchConfig, Family, montage

_GEOMETRY = [("iou", "IoU", 3), ("chamfer_l1", "Chamfer-L1", 4), ("hausdorff", "Hausdorff", 3)]


def _data_settings(bc: BenchConfig, data: Any) -> None:
    data.samples, data.mc_res, data.eval_points = bc.samples, bc.mc_res, bc.eval_points


def normal_montage(out: Path, mesh: str, methods: list[str], seed: int, by: dict[tuple[str, str], Any]) -> None:
    """sdf: the field's normals (its gradient) of every method next to the ground truth's."""
    if any("normal_angle_deg" in by[(mesh, m)] for m in methods):
        montage(out, mesh, methods, by, "normals_pred.png", "normals_truth.png", "normal_angle_deg", seed, "montage_normals")


FAMILY = Family(
    name="shapes",
    tasks=("occupancy", "sdf"),
    columns={"occupancy": _GEOMETRY,
             "sdf": _GEOMETRY + [("normal_angle_deg", "normal error (deg)", 2), ("normal_consistency", "normal consistency", 4)]},
    tile="surface.png",
    target="target.png",
    suffixes=frozenset(MESH_SUFFIXES),
    data_settings=_data_settings,
    command=lambda bc: ["bench", "shapes", "--task", bc.task, "--data", bc.data, "--methods", ",".join(bc.methods),
                        "--samples", str(bc.samples), "--mc-res", str(bc.mc_res), "--eval-points", str(bc.eval_points)],
    setting=lambda bc: bc.task,
    pictures=normal_montage,
)
