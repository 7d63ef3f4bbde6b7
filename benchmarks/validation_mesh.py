"""Write the synthetic validation shape used to choose 3-D settings without touching the test meshes.

A sphere whose radius carries a smooth low-frequency bump everywhere and, on its upper half only, a
fine ripple: the 3-D analogue of the built-in 1-D signal (a smooth part and a detailed part), so a
spatially adaptive encoding has something to adapt to. Deterministic; no download.

    python benchmarks/validation_mesh.py /tmp/valmesh/bumpy-sphere.obj
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trimesh


def bumpy_sphere(subdivisions: int = 6) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    p = sphere.vertices  # unit sphere
    smooth = 0.08 * np.sin(3 * p[:, 0]) * np.cos(2 * p[:, 1])
    upper = np.clip(p[:, 2] * 4, 0, 1)  # 0 on the lower half, ramps to 1 just above the equator
    ripple = 0.03 * upper * np.sin(18 * p[:, 0]) * np.sin(18 * p[:, 1]) * np.sin(18 * p[:, 2] + 1.0)
    return trimesh.Trimesh(p * (1 + smooth + ripple)[:, None], sphere.faces, process=False)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bumpy-sphere.obj")
    out.parent.mkdir(parents=True, exist_ok=True)
    bumpy_sphere().export(out)
    print(f"wrote {out}")
