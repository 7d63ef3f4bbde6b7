"""3-D shapes: normalisation, winding-number signs (with holes), IoU, marching cubes, a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from posenc.cli import main
from posenc.config import FitConfig, NetworkConfig, ShapeConfig, TrainConfig
from posenc.errors import PosencError
from posenc.io import load_mesh
from posenc.tasks.shapes import chamfer_hausdorff, extract_mesh, iou, normalise_mesh, sample_surface, signed_distance, winding_inside


def test_normalisation():
    v = np.array([[0, 0, 0], [4, 1, 2], [2, 3, 1.0]])
    n = normalise_mesh(v)
    np.testing.assert_allclose((n.min(0) + n.max(0)) / 2, 0, atol=1e-12)
    assert (n.max(0) - n.min(0)).max() == pytest.approx(1.8)


def test_winding_signs_on_a_cube_and_a_cube_with_a_hole():
    box = trimesh.creation.box(extents=(1, 1, 1))
    v, f = np.asarray(box.vertices), np.asarray(box.faces)
    pts = np.array([[0, 0, 0], [0.4, -0.3, 0.2], [0.8, 0, 0], [0, 0, -2.0]])
    assert winding_inside(v, f, pts).tolist() == [True, True, False, False]
    normals = box.face_normals
    open_box = f[~np.isclose(normals[:, 2], 1.0)]  # remove the two triangles of the top face
    assert len(open_box) == len(f) - 2
    assert winding_inside(v, open_box, pts).tolist() == [True, True, False, False]
    sd = signed_distance(v, f, np.array([[0, 0, 0], [0, 0, 1.0]]))
    np.testing.assert_allclose(sd, [-0.5, 0.5], atol=1e-9)


def test_iou_perfect_and_complement():
    truth = np.random.default_rng(0).random(1000) > 0.5
    assert iou(truth, truth) == 1.0
    assert iou(~truth, truth) == 0.0


class SphereSDF(torch.nn.Module):
    """Analytic SDF of a sphere of radius 0.5 at the origin, on [0, 1]^3 field coordinates."""

    out_dim = 1

    def forward(self, x):
        p = x * 2 - 1
        return (p.norm(dim=-1, keepdim=True) - 0.5)

    def predict(self, x, chunk=65536):
        return self(x)


def test_marching_cubes_of_a_sphere_has_chamfer_near_zero():
    verts, faces = extract_mesh(SphereSDF(), 64)
    assert len(faces) > 1000
    pts, _ = sample_surface(verts, faces, 20000, 0)
    rng = np.random.default_rng(1)
    sphere = rng.normal(size=(20000, 3))
    sphere = 0.5 * sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    cd, hd = chamfer_hausdorff(pts, sphere)
    assert cd < 0.01 and hd < 0.03


def test_short_occupancy_fit_of_a_sphere(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    path = tmp_path / "sphere.obj"
    sphere.export(path)
    cfg = FitConfig.for_task("occupancy", network=NetworkConfig(width=64, depth=2, output="none"),
                             train=TrainConfig(iters=1500, lr=3e-3, threads=1, checkpoint_every=0))
    cfg.data = ShapeConfig(path=str(path), samples=20000, batch=2048, eval_points=4000, mc_res=32, chamfer_points=3000)
    cfg.encoding = {"type": "gaussian", "sigma": 0.5, "features": 32}
    from posenc.train import fit

    m = fit(cfg, tmp_path / "runs" / "sphere", progress=False)
    assert m["iou"] > 0.9
    run = tmp_path / "runs" / "sphere"
    assert all((run / name).exists() for name in ("mesh.ply", "preview.png", "target.png", "surface.png"))
    caches = list((tmp_path / "runs" / ".posenc-cache").glob("sphere-*"))  # samples cached beside the run
    assert len(caches) == 1 and (caches[0] / "manifest.json").exists() and (caches[0] / "train.npy").exists()
    code = main(["mesh", str(tmp_path / "runs" / "sphere"), "--res", "24", "--out", str(tmp_path / "m.ply")])
    assert code == 0
    v, f = load_mesh(tmp_path / "m.ply")
    assert np.abs(np.linalg.norm(v, axis=1) - 0.9).max() < 0.15


def test_bad_meshes(tmp_path, capsys):
    (tmp_path / "empty.obj").write_text("")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (tmp_path / "junk.stl").write_bytes(b"\x00\x01garbage" * 10)
    for name in ("empty.obj", "points.obj", "junk.stl", "missing.obj"):
        with pytest.raises(PosencError):
            load_mesh(tmp_path / name)
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(PosencError, match="must be one of"):
        load_mesh(tmp_path / "x.txt")
    code = main(["fit", "occupancy", str(tmp_path / "empty.obj"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_sample_cache_is_verified_rebuilt_when_corrupt_and_safe_to_share(tmp_path):
    from posenc.tasks.shapes import ShapeTask, read_sample_cache

    cfg = ShapeConfig(samples=900, eval_points=300, chamfer_points=300, mc_res=8, batch=64)
    first = ShapeTask(cfg, "occupancy")
    first.set_cache_dir(tmp_path)
    data = {k: np.array(v) for k, v in first.data().items()}
    folder = next(tmp_path.glob("torus-*"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    again = ShapeTask(cfg, "occupancy")
    again.set_cache_dir(tmp_path)
    for k, v in again.data().items():  # read back (memory-mapped), identical
        np.testing.assert_array_equal(np.asarray(v), data[k])
    # a damaged file is detected by its hash, and the cache is rebuilt with the same samples
    with open(folder / "train.npy", "r+b") as fh:
        fh.seek(200)
        fh.write(b"garbage!")
    assert read_sample_cache(folder) is None and not folder.exists()
    third = ShapeTask(cfg, "occupancy")
    third.set_cache_dir(tmp_path)
    np.testing.assert_array_equal(np.asarray(third.data()["train"]), data["train"])
    assert read_sample_cache(folder) is not None
