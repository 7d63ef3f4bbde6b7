"""``posenc bench mesh-transfer``: methods x source -> target pairs (SAPE Table 2: Chamfer, Hausdorff,
Dirichlet energy; also folded triangles and, where the correspondence is known, the vertex error).

An input is a **pair file** ``<name>.json`` in the data folder: ``{"source": ..., "target": ...,
"landmarks": "<name>.csv" | "auto"}``, paths relative to the file. ``benchmarks/mesh_transfer_pairs.py``
writes the six pairs the committed table uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import PosencError
from .runner import BenchConfig, Family


def pair_settings(path: Path) -> dict[str, Any]:
    """The data settings of a pair file: absolute source, target and landmark paths."""
    try:
        pair = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PosencError(f"{path}: not a mesh-transfer pair file ({e})") from None
    if not isinstance(pair, dict) or not {"source", "target"} <= set(pair) or set(pair) - {"source", "target", "landmarks"}:
        raise PosencError(f"{path}: a pair file holds 'source', 'target' and optionally 'landmarks'")
    base = Path(path).parent
    landmarks = pair.get("landmarks", "auto")
    return {"path": str(base / pair["source"]), "target": str(base / pair["target"]),
            "landmarks": landmarks if landmarks == "auto" else str(base / landmarks)}


def _data_settings(bc: BenchConfig, data: Any) -> None:
    """Nothing beyond the task's defaults: every pair file names its own meshes."""


FAMILY = Family(
    name="mesh-transfer",
    tasks=("mesh-transfer",),
    columns={"mesh-transfer": [("chamfer_l1", "Chamfer-L1", 4), ("hausdorff", "Hausdorff", 3), ("dirichlet", "Dirichlet", 2),
                               ("folded", "folded share", 4), ("vertex_error", "vertex error", 4)]},
    tile="surface.png",
    target="target.png",
    suffixes=frozenset({".json"}),
    data_settings=_data_settings,
    command=lambda bc: ["bench", "mesh-transfer", "--data", bc.data, "--methods", ",".join(bc.methods)],
    setting=lambda bc: "mesh transfer",
    input_settings=pair_settings,
)
