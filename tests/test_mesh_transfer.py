"""Mesh transfer (SAPE Sec. 5.1, Table 2): initialisation, energies, sampling, metrics, a short fit, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from conftest import interrupted_then_resumed
from posenc.cli import main
from posenc.config import FitConfig, MeshTransferConfig, NetworkConfig, TrainConfig
from posenc.errors import PosencError
from posenc.metrics import chamfer_hausdorff
from posenc.tasks.mesh_transfer import (auto_landmarks, biharmonic_deform, conformal_energy, dirichlet_energy,
                                        fit_affine, folded_share, read_landmarks, ripple, sample_moved_surface, source_frames)
from posenc.train import Trainer, fit


def sphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.8)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def test_affine_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3)) + 2 * np.eye(3)
    t = rng.normal(size=3)
    src = rng.normal(size=(7, 3))
    a_hat, t_hat = fit_affine(src, src @ a.T + t)
    np.testing.assert_allclose(a_hat, a, atol=1e-10)
    np.testing.assert_allclose(t_hat, t, atol=1e-10)
    with pytest.raises(PosencError, match="coplanar"):
        flat = src.copy()
        flat[:, 2] = 0.0
        fit_affine(flat, flat)
    with pytest.raises(PosencError, match="at least 4"):
        fit_affine(src[:3], src[:3])


def test_biharmonic_deformation_keeps_landmarks_exactly_and_is_smooth():
    v, f = sphere(3)
    handles = np.array([0, 11, 40, 100, 300])
    positions = v[handles] + np.array([[0.1, 0, 0], [0, 0.2, 0], [0, 0, -0.1], [0.05, 0.05, 0], [0, 0, 0]])
    out = biharmonic_deform(v, f, handles, positions)
    np.testing.assert_allclose(out[handles], positions, atol=1e-9)
    # a constant displacement is biharmonic, so moving every handle alike translates the whole mesh
    shift = np.array([0.3, -0.2, 0.1])
    np.testing.assert_allclose(biharmonic_deform(v, f, handles, v[handles] + shift), v + shift, atol=1e-8)
    # handles that do not move leave the mesh where it is
    np.testing.assert_allclose(biharmonic_deform(v, f, handles, v[handles]), v, atol=1e-9)


def test_conformal_energy_is_zero_for_similarities_and_grows_under_shear():
    v, f = sphere(2)
    s_inv, area = source_frames(v, f)
    ft = torch.from_numpy(f)
    rot, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    similar = 2.5 * v @ rot.T + np.array([0.3, -1.0, 2.0])
    assert float(conformal_energy(torch.from_numpy(similar), ft, s_inv, area)) == pytest.approx(0.0, abs=1e-9)
    assert dirichlet_energy(similar, f, s_inv, area) == pytest.approx(1.0, abs=1e-9)
    energies, dirichlet = [], []
    for k in (0.1, 0.3, 0.6):
        shear = np.eye(3)
        shear[0, 1] = k
        sheared = v @ shear.T
        energies.append(float(conformal_energy(torch.from_numpy(sheared), ft, s_inv, area)))
        dirichlet.append(dirichlet_energy(sheared, f, s_inv, area))
    assert 0 < energies[0] < energies[1] < energies[2]
    assert 1 < dirichlet[0] < dirichlet[1] < dirichlet[2]
    # per triangle the energy is (s1 - s2)^2 / 2: a flat triangle stretched by 2 along one edge gives 1/2
    tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    si, ar = source_frames(tri, np.array([[0, 1, 2]]))
    stretched = tri * np.array([2.0, 1.0, 1.0])
    assert float(conformal_energy(torch.from_numpy(stretched), torch.tensor([[0, 1, 2]]), si, ar)) == pytest.approx(0.5)
    assert dirichlet_energy(stretched, np.array([[0, 1, 2]]), si, ar) == pytest.approx((4 + 1) / 2 / 2)


def test_surface_samples_lie_on_the_mesh_by_area_and_carry_gradients():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [3, 0, 0], [0, 0, 3]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])  # areas 0.5 and 4.5
    gen = torch.Generator().manual_seed(0)
    pts = sample_moved_surface(v, f, 20000, gen)
    on_second = (pts[:, 1].abs() < 1e-12).detach()
    assert on_second.double().mean().item() == pytest.approx(0.9, abs=0.01)
    first = pts[~on_second].detach()
    assert (first[:, 2].abs() < 1e-12).all() and (first[:, :2].sum(1) <= 1 + 1e-9).all() and (first >= -1e-12).all()
    pts.sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_chamfer_and_hausdorff_of_known_point_sets():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    b = np.array([[0.0, 0, 0], [1, 0, 0], [1, 3, 0]])
    ch, h = chamfer_hausdorff(a, b)
    assert ch == pytest.approx(0.5 * (0.0 + (0 + 0 + 3) / 3)) and h == pytest.approx(3.0)


def test_folds_are_counted_and_a_smooth_map_has_none():
    v, f = sphere(2)
    assert folded_share(v, ripple(v), f) == (0.0, 0.0)
    crushed = v.copy()
    crushed[:, 2] = np.abs(crushed[:, 2]) * 0.01  # the lower half flattened onto the upper: faces turn back to back
    folded, degenerate = folded_share(v, crushed, f)
    assert folded > 0.02


def test_landmark_files(tmp_path):
    def write(text):
        p = tmp_path / "lm.csv"
        p.write_text(text)
        return p

    pairs = read_landmarks(write("source_vertex,target_vertex\n0,5\n1,6\n2,7\n3,8\n"), 10, 20)
    assert pairs.tolist() == [[0, 5], [1, 6], [2, 7], [3, 8]]
    for text, needle in [("0,1\n1,2\n", "at least 4"), ("0,1\n1,2\n2,3\n99,4\n", "source index 99"),
                         ("0,1\n1,2\n2,3\n3,4,5\n", "source_vertex,target_vertex"), ("0,1\n1,2\n2,x\n3,4\n", "integers"),
                         ("0,1\n0,2\n2,3\n3,4\n", "twice"), ("15,1\n16,2\n17,3\n18,4\n", "swapped")]:
        with pytest.raises(PosencError, match=needle):
            read_landmarks(write(text), 10, 20)


def test_auto_landmarks_find_the_right_extremes_after_a_rotation():
    v, _ = sphere(2)
    v = v * np.array([1.0, 0.6, 0.3])  # distinct principal axes ...
    v = v * np.where(v > 0, [1.5, 1.3, 1.2], 1.0)  # ... and no mirror symmetry (an egg in every axis)
    rot, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))
    pairs = auto_landmarks(v, v @ rot.T)
    assert len(pairs) == 6
    np.testing.assert_array_equal(pairs[:, 0], pairs[:, 1])  # each extremal vertex finds itself


def small(iters: int = 50, method: str = "gaussian", **data) -> FitConfig:
    return FitConfig(task="mesh-transfer", method=method, data=MeshTransferConfig(points=1000, target_points=5000, eval_points=5000, **data),
                     network=NetworkConfig(width=32, depth=2), train=TrainConfig(iters=iters, threads=1, checkpoint_every=0))


def test_a_short_transfer_lowers_the_loss_and_starts_at_the_initialisation(tmp_path):
    trainer = Trainer(small(50), tmp_path / "run", progress=False)
    metrics = trainer.run()
    losses = [loss for _, loss in metrics["loss_history"]]
    assert losses[-1] < 0.9 * losses[0]
    assert metrics["chamfer_l1"] < metrics["init_chamfer_l1"]
    assert metrics["vertex_error"] is not None and 0.9 < metrics["dirichlet"] < 3
    assert (tmp_path / "run" / "mesh.ply").exists() and (tmp_path / "run" / "preview.png").exists()
    mesh = trimesh.load(tmp_path / "run" / "mesh.ply", process=False)
    assert np.array_equal(np.asarray(mesh.faces), trainer.task.faces)  # the source's tessellation
    # a fresh field's displacement is exactly zero: the first prediction is the initialisation
    fresh = Trainer(small(50), tmp_path / "fresh", progress=False)
    fresh.task.prepare_field(fresh.field)
    np.testing.assert_allclose(fresh.task.predict(fresh.field), fresh.task.init, atol=1e-12)


def test_sape_transfer_writes_the_frequency_map_and_resumes_exactly(tmp_path, monkeypatch):
    cfg = small(30, "sape+gaussian")
    straight = fit(cfg, tmp_path / "straight", progress=False)
    assert (tmp_path / "straight" / "heatmap.png").exists()
    assert straight["policy"]  # the per-vertex feedback moved the mask
    again = interrupted_then_resumed(cfg, tmp_path / "cut", monkeypatch, "loss", 13)
    assert again["chamfer_l1"] == straight["chamfer_l1"] and again["dirichlet"] == straight["dirichlet"]


@pytest.fixture
def meshes(tmp_path):
    v, f = sphere(2)
    trimesh.Trimesh(v, f, process=False).export(tmp_path / "src.obj")
    trimesh.Trimesh(ripple(v), f, process=False).export(tmp_path / "tgt.obj")
    trimesh.Trimesh(v * 5000, f, process=False).export(tmp_path / "huge.obj")
    two = trimesh.util.concatenate([trimesh.Trimesh(v, f), trimesh.Trimesh(v + 3, f)])
    two.export(tmp_path / "two.obj")
    # three triangles on one edge: not manifold
    nm_v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=float)
    trimesh.Trimesh(nm_v, [[0, 1, 2], [1, 0, 3], [0, 1, 4], [2, 3, 4]], process=False).export(tmp_path / "nonmanifold.obj")
    (tmp_path / "few.csv").write_text("0,0\n1,1\n")
    (tmp_path / "bad.csv").write_text("0,0\n1,1\n2,2\n100000,3\n")
    return tmp_path


@pytest.mark.parametrize("args, needle", [
    (["{d}/huge.obj", "{d}/tgt.obj"], "different units"),
    (["{d}/two.obj", "{d}/tgt.obj"], "separate pieces"),
    (["{d}/nonmanifold.obj", "{d}/tgt.obj"], "not manifold"),
    (["{d}/src.obj", "{d}/tgt.obj", "--landmarks", "{d}/few.csv"], "at least 4"),
    (["{d}/src.obj", "{d}/tgt.obj", "--landmarks", "{d}/bad.csv"], "out of range"),
    (["{d}/src.obj", "{d}/tgt.obj", "--landmarks", "{d}/missing.csv"], "landmark file not found"),
    (["{d}/src.obj"], "a source and a target"),
    (["{d}/src.obj", "{d}/tgt.obj", "--conformal", "-1"], "conformal"),
    (["{d}/src.obj", "{d}/tgt.obj", "--points", "0"], "points"),
])
def test_bad_mesh_transfer_input_is_one_line(meshes, capsys, args, needle):
    argv = ["fit", "mesh-transfer", *[a.format(d=meshes) for a in args], "--iters", "2", "--quiet", "--out", str(meshes / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
    assert not (meshes / "o").exists()


def test_cli_fit_with_files_and_landmarks(meshes, capsys):
    (meshes / "lm.csv").write_text("0,0\n40,40\n80,80\n120,120\n160,160\n")
    argv = ["fit", "mesh-transfer", str(meshes / "src.obj"), str(meshes / "tgt.obj"), "--landmarks", str(meshes / "lm.csv"),
            "--method", "none", "--iters", "5", "--points", "500", "--target-points", "2000", "--eval-points", "2000",
            "--width", "16", "--depth", "1", "--threads", "1", "--quiet", "--out", str(meshes / "run")]
    assert main(argv) == 0
    m = json.loads((meshes / "run" / "metrics.json").read_text())
    assert m["vertex_error"] is not None and {"chamfer_l1", "hausdorff", "dirichlet", "folded", "degenerate"} <= set(m)


def test_a_source_split_by_seams_is_welded_by_position(meshes, tmp_path):
    """spot.obj's UV seams duplicate vertices (13 pieces as stored): welded by position it is one surface,
    and landmark indices given for the file's vertices follow their welded vertex."""
    from posenc.config import TASK_CONFIGS
    from posenc.io import load_mesh
    from posenc.tasks import make_task
    from posenc.tasks.mesh_transfer import pieces, weld

    v, f = sphere(2)
    half = len(f) // 2
    used = np.unique(f[half:])
    copy = {int(i): len(v) + k for k, i in enumerate(used)}  # the second half of the faces gets its own vertices
    v2 = np.concatenate([v, v[used]])
    f2 = np.concatenate([f[:half], np.vectorize(copy.get)(f[half:])])
    trimesh.Trimesh(v2, f2, process=False).export(tmp_path / "seamed.obj")
    file_v, file_f = load_mesh(tmp_path / "seamed.obj")
    assert pieces(file_v, file_f) == 2
    w_v, w_f, to_welded = weld(file_v, file_f)
    assert len(w_v) == len(v) and pieces(w_v, w_f) == 1
    np.testing.assert_array_equal(w_v[to_welded], file_v)  # every file vertex sits on its welded vertex
    landmarks = [0, 5, 9, 14, 20, len(file_v) - 1]
    (tmp_path / "lm.csv").write_text("".join(f"{i},{k}\n" for k, i in enumerate(landmarks)))
    cfg = TASK_CONFIGS["mesh-transfer"](path=str(tmp_path / "seamed.obj"), target=str(meshes / "tgt.obj"),
                                        landmarks=str(tmp_path / "lm.csv"))
    task = make_task("mesh-transfer", cfg)
    assert task.info()["welded_from_vertices"] == len(file_v) and task.info()["vertices"] == len(v)
    np.testing.assert_array_equal(task.pairs[:, 0], to_welded[landmarks])


def test_truly_separate_pieces_are_still_refused(meshes, capsys):
    argv = ["fit", "mesh-transfer", str(meshes / "two.obj"), str(meshes / "tgt.obj"), "--iters", "2", "--quiet",
            "--out", str(meshes / "o")]
    assert main(argv) == 2 and "separate pieces" in capsys.readouterr().err
