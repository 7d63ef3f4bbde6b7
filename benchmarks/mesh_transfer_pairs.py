"""Write the mesh-transfer pairs of the committed Table 2 comparison (deterministic): six test pairs
and one validation pair (``sphere-to-fandisk``) on which settings are searched.

    python benchmarks/mesh_transfer_pairs.py --shared ../shared/data --out benchmarks/data/mesh-transfer

Each pair is ``<name>.json`` (source, target, landmarks) with its meshes and ``<name>.csv`` landmark
pairs (``source_vertex,target_vertex``) beside it. Sources are single manifold pieces: an icosphere
(2,562 vertices) or a shared mesh decimated by libigl to about 5,000 vertices (fandisk is used whole).

- ``sphere-to-{spot,bunny,armadillo}``: the sphere onto a shared mesh; 6 landmarks: the target's
  extremal vertices along +-x, +-y, +-z, each paired with the sphere vertex in its direction from the
  target's bounding-box centre.
- ``{fandisk,bunny,armadillo}-rippled``: a mesh onto a smoothly deformed copy of itself with fine
  ripples (``posenc.tasks.mesh_transfer.ripple``), same tessellation, so the true correspondence is
  known and the vertex error is reported; 8 landmarks at evenly spaced vertex indices, paired with
  themselves.

The meshes are derived from ``../shared/data`` at run time; they are not committed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def write_pair(out: Path, name: str, src: tuple[np.ndarray, np.ndarray], tgt: tuple[np.ndarray, np.ndarray],
               pairs: np.ndarray) -> None:
    import trimesh

    trimesh.Trimesh(*src, process=False).export(out / f"{name}-source.obj")
    trimesh.Trimesh(*tgt, process=False).export(out / f"{name}-target.obj")
    np.savetxt(out / f"{name}.csv", pairs, fmt="%d", delimiter=",", header="source_vertex,target_vertex", comments="")
    (out / f"{name}.json").write_text(json.dumps({"source": f"{name}-source.obj", "target": f"{name}-target.obj",
                                                  "landmarks": f"{name}.csv"}, indent=1) + "\n")


def main() -> None:
    import igl
    import trimesh

    from posenc.io import load_mesh
    from posenc.tasks.mesh_transfer import check_source, ripple
    from posenc.tasks.shapes import normalise_mesh

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="benchmarks/data/mesh-transfer")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meshes = Path(args.shared) / "meshes"

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.9)
    sv, sf = np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)
    for target in ("spot", "stanford-bunny", "armadillo", "fandisk"):  # sphere-to-fandisk: the validation pair
        tv, tf = load_mesh(meshes / f"{target}.obj")
        tv = normalise_mesh(tv)  # bounding box centred at 0
        ends = np.concatenate([tv.argmin(0), tv.argmax(0)])  # -x, -y, -z, +x, +y, +z
        directions = tv[ends] / np.linalg.norm(tv[ends], axis=1, keepdims=True)
        on_sphere = (sv @ directions.T).argmax(0)
        write_pair(out, f"sphere-to-{target.replace('stanford-', '')}", (sv, sf), (tv, tf), np.stack([on_sphere, ends], 1))

    for source, faces in (("fandisk", 0), ("stanford-bunny", 10000), ("armadillo", 10000)):
        v, f = load_mesh(meshes / f"{source}.obj")
        if faces:
            v, f, _, _ = igl.decimate(v, f, faces)
        v, f = normalise_mesh(np.asarray(v, dtype=np.float64)), np.asarray(f, dtype=np.int64)
        check_source(v, f, source)
        idx = np.linspace(0, len(v) - 1, 8).astype(np.int64)
        write_pair(out, f"{source.replace('stanford-', '')}-rippled", (v, f), (ripple(v), f), np.stack([idx, idx], 1))
    print(f"wrote 7 pairs to {out}")


if __name__ == "__main__":
    main()
