"""Formula tests that fail when a formula breaks: metrics on known values, task losses, initialisations,
presets and constants checked against the papers' numbers (never against the module's own constants),
and the SAPE paths no other test reaches (eq. 7 normalisation, the 3-D mini-batch gather path)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import posenc
from posenc.encodings import build_encoding, encoding_class
from posenc.grid import multilinear_weights
from posenc.metrics import chamfer_hausdorff, iou, mse_to_psnr, normal_error, psnr, ssim


# -- metrics ----------------------------------------------------------------------------------------
def test_psnr_known_values_and_clamping():
    target = np.zeros((4, 4, 3))
    assert psnr(np.full_like(target, 0.1), target) == pytest.approx(20.0)  # MSE 0.01 -> 20 dB
    # predictions are clamped to [0, 1] first: -5 counts as 0 (a perfect match), 3 as 1
    assert psnr(np.full_like(target, -5.0), target) == math.inf
    assert psnr(np.full_like(target, 3.0), np.ones_like(target)) == math.inf
    assert psnr(np.full_like(target, 3.0), target) == pytest.approx(0.0)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    pred = np.zeros_like(target)
    pred[1:, :] = 0.5  # errors only outside the mask
    assert psnr(pred, target, mask) == math.inf and psnr(pred, target, ~mask) == pytest.approx(-10 * math.log10(0.25 * 12 / 15))
    assert mse_to_psnr(0.04, data_range=2.0) == pytest.approx(20.0)


def test_ssim_identity_and_scikit_image_value():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((32, 32, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(a, a) == pytest.approx(1.0)
    expected = structural_similarity(b, a, channel_axis=-1, data_range=1.0)
    assert ssim(b, a) == pytest.approx(expected, rel=1e-9)
    assert 0.2 < ssim(b, a) < 0.95
    assert ssim(b + 5.0, a) == pytest.approx(ssim(np.ones_like(a), a), rel=1e-9)  # clamped like PSNR


def test_tiled_ssim_equals_one_call():
    rng = np.random.default_rng(1)
    a = rng.random((70, 90, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(b, a, tile=16) == pytest.approx(ssim(b, a), rel=1e-12)
    assert ssim(b, a, tile=13) == pytest.approx(ssim(b, a), rel=1e-12)
    # sizes where a last tile starts inside the border (68 = 3 + 5 x 13, 94 = 3 + 7 x 13): it must not be measured
    a2 = rng.random((68, 94, 3))
    b2 = np.clip(a2 + rng.normal(0, 0.1, a2.shape), 0, 1)
    for tile in (13, 16, 40):
        assert ssim(b2, a2, tile=tile) == pytest.approx(ssim(b2, a2), rel=1e-12)


def test_metrics_compute_in_float64_whatever_the_input():
    rng = np.random.default_rng(3)
    a = rng.random((40, 40, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = -10 * math.log10(float(((b64 - a64) ** 2).mean()))
    assert psnr(b, a) == pytest.approx(exact, rel=1e-12)  # float32 arithmetic would be off by ~1e-7
    assert ssim(b, a) == pytest.approx(ssim(b64, a64), rel=1e-12)


def test_iou_is_not_dice():
    a = np.array([1, 1, 1, 0, 0], bool)
    b = np.array([0, 1, 1, 1, 0], bool)
    assert iou(a, b) == pytest.approx(2 / 4)  # Dice would be 2*2/6 = 0.667
    assert iou(a, a) == 1.0 and iou(a, ~a) == 0.0
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_chamfer_l1_is_halved_mean_of_unsquared_distances_and_hausdorff_the_max():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    # a -> B: 0, 1 (mean 0.5); b -> A: 0, 2 (mean 1.0); Chamfer-L1 = (0.5 + 1.0) / 2
    cd, hd = chamfer_hausdorff(a, b)
    assert cd == pytest.approx(0.75) and hd == pytest.approx(2.0)
    assert chamfer_hausdorff(a, a) == (0.0, 0.0)


def test_normal_error_is_unoriented_angle():
    truth = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, -1.0], [0.0, math.sin(math.radians(30)), math.cos(math.radians(30))], [0.0, 1.0, 0.0]])
    out = normal_error(pred, truth)
    assert out["normal_angle_deg"] == pytest.approx((0 + 30 + 90) / 3)
    assert out["normal_consistency"] == pytest.approx((1 + math.cos(math.radians(30)) + 0) / 3)


# -- task losses -----------------------------------------------------------------------------------
def _shape_task(kind: str, eikonal: float = 0.0):
    from posenc.config import ShapeConfig
    from posenc.tasks.shapes import ShapeTask

    return ShapeTask(ShapeConfig(samples=300, eval_points=300, chamfer_points=300, mc_res=8, batch=64, eikonal=eikonal), kind)


def test_sdf_loss_is_l1_and_occupancy_loss_is_bce():
    pred = torch.tensor([[0.5], [-1.0], [2.0]])
    target = torch.tensor([[0.0], [0.5], [2.0]])
    sdf = _shape_task("sdf")
    torch.testing.assert_close(sdf.loss_per_sample(pred, target), torch.tensor([0.5, 1.5, 0.0]))
    occ = _shape_task("occupancy")
    labels = torch.tensor([[1.0], [0.0], [1.0]])
    expected = -(labels * torch.log(torch.sigmoid(pred)) + (1 - labels) * torch.log(1 - torch.sigmoid(pred)))[:, 0]
    torch.testing.assert_close(occ.loss_per_sample(pred, labels), expected)


def test_eikonal_term_is_zero_for_a_true_distance_and_grows_otherwise():
    task = _shape_task("sdf", eikonal=0.5)
    x = torch.rand(20, 3, dtype=torch.float64).requires_grad_(True)
    centre = torch.full((3,), 0.5, dtype=torch.float64)
    # in mesh units p = 2x - 1 a sphere's distance |p| - r has unit slope: only the data term remains
    dist = ((2 * x - 1) - (2 * centre - 1)).norm(dim=-1, keepdim=True) - 0.3
    target = dist.detach() + 0.25
    loss, per = task.loss(dist, target, x)
    torch.testing.assert_close(per, torch.full((20,), 0.25, dtype=torch.float64))
    twice = 2 * dist  # slope 2: eikonal 0.5 * (2 - 1)^2 = 0.5 on top of |2 d - target|
    _, per2 = task.loss(twice, target, x)
    torch.testing.assert_close(per2, (twice - target).abs()[:, 0] + 0.5)


def test_silhouette_training_chamfer_is_squared_and_symmetric():
    from posenc.tasks.silhouette import chamfer

    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    total, da, db = chamfer(a, b)
    # squared distances: a -> B 0, 1; b -> A 0, 4
    torch.testing.assert_close(da, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(db, torch.tensor([0.0, 4.0]))
    assert float(total) == pytest.approx(0.5 + 2.0)


# -- constants, initialisations, presets: against the papers ------------------------------------------
def test_hash_primes_are_instant_ngps():
    from posenc.encodings.grids import spatial_hash

    coords = torch.tensor([[3, 5, 7, 2]])
    expected = (3 * 1) ^ (5 * 2654435761) ^ (7 * 805459861) ^ (2 * 3674653429)
    assert int(spatial_hash(coords, 2**22)[0]) == expected % 2**22
    assert int(spatial_hash(coords[:, :3], 2**19)[0]) == ((3 * 1) ^ (5 * 2654435761) ^ (7 * 805459861)) % 2**19


@pytest.mark.parametrize("name", ["dense_grid", "multires_grid", "hash_grid"])
def test_grid_tables_start_uniform_in_plus_minus_1e_4(name):
    enc = build_encoding({"type": name}, 2)
    values = torch.cat([t.detach().reshape(-1) for t in enc.tables])
    assert float(values.abs().max()) <= 1e-4
    # U(-a, a) has std a / sqrt(3): not zero-initialised, not a narrower or wider law
    assert float(values.std()) == pytest.approx(1e-4 / math.sqrt(3), rel=0.05)
    assert abs(float(values.mean())) < 1e-6


def test_learned_encodings_train_at_1e_2_and_carry_the_papers_networks():
    for name in ("lpe", "multires_lpe", "dense_grid", "multires_grid", "hash_grid"):
        assert encoding_class(name).lr == 1e-2, name
    assert encoding_class("lpe").preset == {"network": {"width": 64, "depth": 3, "activation": "leaky_relu"}}
    assert encoding_class("hash_grid").preset == {"network": {"width": 64, "depth": 2}}
    for name in ("gaussian", "positional", "none"):
        assert encoding_class(name).lr is None and encoding_class(name).preset == {}
    cfg = posenc.resolve_config("image", method="lpe")
    assert (cfg.network.width, cfg.network.depth, cfg.network.activation) == (64, 3, "leaky_relu")
    siren = posenc.resolve_config("image", method="siren")
    assert (siren.network.type, siren.network.output, siren.train.lr, siren.encoding["type"]) == ("siren", "none", 1e-4, "none")


def test_siren_centres_raw_coordinates():
    torch.manual_seed(0)
    net = posenc.Siren(2, 1, width=8, depth=2)
    x = torch.rand(5, 2)
    h = 2 * x - 1
    for layer in net.layers:
        h = torch.sin(30.0 * layer.linear(h))
    torch.testing.assert_close(net(x), net.head(h))
    plain = posenc.Siren(2, 1, width=8, depth=2, center_input=False)
    plain.load_state_dict(net.state_dict())
    assert not torch.allclose(plain(x), net(x))
    field = posenc.methods.build_field(posenc.resolve_config("image", method="siren"))
    assert field.network.center_input


# -- SAPE paths ----------------------------------------------------------------------------------------
def test_eq7_cell_loss_is_the_weighted_mean_not_the_sum():
    enc = build_encoding({"type": "gaussian", "features": 4, "include_input": True}, 1)
    pol = posenc.SpatialProgression(enc, iters=100, mask_grid=4, smooth=1)
    # two samples, both at the centre of cell 1 (weight 1): losses 0.2 and 0.4 -> cell loss 0.3
    x = torch.tensor([[0.375], [0.375]])
    idx, w = multilinear_weights(x, 4)
    pol.splat_loss(torch.tensor([0.2, 0.4]), idx, w)
    assert float(pol.cell_loss()[1]) == pytest.approx(0.3)
    # unvisited cells take their neighbours' value
    assert float(pol.cell_loss()[0]) == pytest.approx(0.3) and float(pol.cell_loss()[3]) == pytest.approx(0.3)


def test_3d_minibatch_mask_takes_the_gather_path_and_matches_eq6():
    enc = build_encoding({"type": "gaussian", "features": 6, "include_input": True}, 3)
    pol = posenc.SpatialProgression(enc, iters=120, mask_grid=64)  # 64^3 cells, a 16-point batch
    g = torch.Generator().manual_seed(0)
    pol.level.copy_(torch.rand(pol.level.shape, generator=g) * 6)
    x = torch.rand(16, 3, generator=g)
    idx, w = multilinear_weights(x, 64)
    assert idx.numel() < pol.level.numel()  # the gather path
    brute = ((pol.level[idx][..., None] - torch.arange(6.0)).clamp(0, 1) * w[..., None]).sum(1)
    torch.testing.assert_close(pol.band_alpha(x), brute)
    # the training loop's update uses the batch's own points (remembered from the forward pass)
    pol.train()
    with torch.enable_grad():
        pol(x)
    before = pol.weight_sum.clone()
    pol.update(torch.ones(16))
    cells = torch.zeros_like(before).index_add_(0, idx.reshape(-1), w.reshape(-1))
    torch.testing.assert_close(pol.weight_sum - before, cells)
    torch.testing.assert_close(pol.level[idx[0, 0]], torch.clamp(brute.new_tensor(float(pol.level[idx[0, 0]])), max=6))


def test_sape_minibatch_fit_runs_through_the_trainer(tmp_path):
    """The 3-D SAPE mini-batch path end to end: an occupancy fit of a sphere, mask levels moved."""
    import trimesh

    from posenc.config import ShapeConfig, TrainConfig

    mesh = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2).export(mesh)
    cfg = posenc.resolve_config(posenc.FitConfig(task="occupancy", data=ShapeConfig(path=str(mesh), samples=900, batch=128,
                                eval_points=500, chamfer_points=500, mc_res=12),
                                train=TrainConfig(iters=12, threads=1, checkpoint_every=0)),
                                method="sape+gaussian:features=8:width=16:depth=1:mask_grid=8")
    metrics = posenc.fit(cfg, tmp_path / "run", progress=False)
    assert metrics["policy"]["type"] == "spatial" and metrics["policy"]["steps"] == 12
    assert metrics["policy"]["mean_level"] > 0


def test_ssim_clamps_below_zero_too():
    rng = np.random.default_rng(2)
    a = rng.random((16, 16, 3))
    assert ssim(a - 5.0, a) == pytest.approx(ssim(np.zeros_like(a), a), rel=1e-12)


def test_unvisited_cells_take_the_mean_of_their_visited_3x3_neighbours():
    from posenc.grid import box_smooth, fill_unvisited

    values = torch.zeros(25)
    visited = torch.zeros(25, dtype=torch.bool)
    values[6], values[8] = 1.0, 3.0  # cells (1, 1) and (1, 3) of a 5 x 5 grid
    visited[[6, 8]] = True
    filled = fill_unvisited(values, visited, 5, 2)
    assert float(filled[7]) == pytest.approx(2.0)  # (1, 2) sees both
    assert float(filled[5]) == pytest.approx(1.0) and float(filled[9]) == pytest.approx(3.0)  # one each
    assert float(filled[6]) == 1.0 and float(filled[8]) == 3.0  # visited cells keep their values
    # the box filter is a k-tap mean with replicated borders
    row = torch.tensor([0.0, 0.0, 3.0, 0.0, 0.0])
    torch.testing.assert_close(box_smooth(row, 5, 1), torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(box_smooth(row, 5, 1, 5), torch.tensor([0.6, 0.6, 0.6, 0.6, 0.6]))


def test_global_early_stop_needs_the_loss_strictly_below_epsilon():
    enc = build_encoding({"type": "gaussian", "features": 4, "include_input": True}, 2)
    pol = posenc.GlobalProgression(enc, iters=80, epsilon=0.25)
    pol.update(torch.tensor([0.25, 0.25]))  # equal: not below, keeps progressing
    assert not bool(pol.stopped) and float(pol.level) == pytest.approx(1 / 10)
    pol.update(torch.tensor([0.2, 0.2]))
    assert bool(pol.stopped)


# -- formulas pinned to their papers at several values (mutants that survived a single value) -------------
@pytest.mark.parametrize("in_dim,width,omega", [(2, 256, 30.0), (3, 128, 30.0), (1, 64, 10.0)])
def test_siren_initialisation_bounds_are_the_papers(in_dim, width, omega):
    """Sitzmann et al. 2020, Sec. 3.2: first layer U(-1/n, 1/n), later layers and the head
    U(-sqrt(6/n)/omega_0, sqrt(6/n)/omega_0), n the layer's fan-in."""
    from posenc.networks import Siren

    torch.manual_seed(0)
    net = Siren(in_dim, 3, width=width, depth=2, omega_0=omega)
    first, hidden = net.layers[0].linear.weight, net.layers[1].linear.weight
    for w, bound in ((first, 1.0 / in_dim), (hidden, (6.0 / width) ** 0.5 / omega), (net.head.weight, (6.0 / width) ** 0.5 / omega)):
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) >= 0.9 * bound  # the bound itself, not a smaller one
        assert abs(float(w.std()) - bound / 3**0.5) < 0.15 * bound  # uniform: std = bound / sqrt(3)


@pytest.mark.parametrize("slope,weight", [(0.5, 1.0), (3.0, 0.1), (1.0, 2.0), (2.0, 0.5)])
def test_eikonal_term_is_the_squared_slope_error(slope, weight):
    """IGR / SIREN: w (|grad_p f| - 1)^2 with p = 2x - 1 the mesh units; f = slope * p_0 has
    |grad_p f| = slope. (At slope 2 the unsquared form agrees: the other values tell them apart.)"""
    from types import SimpleNamespace

    from posenc.tasks.shapes import ShapeTask

    task = SimpleNamespace(kind="sdf", needs_input_grad=True, cfg=SimpleNamespace(eikonal=weight))
    task.loss_per_sample = lambda pred, target: ShapeTask.loss_per_sample(task, pred, target)
    x = torch.rand(10, 3, dtype=torch.float64, requires_grad=True)
    pred = slope * (2 * x[:, :1] - 1)
    target = pred.detach()  # data term 0
    _, per_point = ShapeTask.loss(task, pred, target, x)
    torch.testing.assert_close(per_point, torch.full((10,), weight * (slope - 1.0) ** 2, dtype=torch.float64))


def _two_triangles():
    """A unit right triangle (area 1/2) mapped by the identity, and a right triangle of legs 2 (area 2)
    stretched by 2 along x: per-triangle |J|_F^2 = 2 and 5, det J = 1 and 2."""
    from posenc.tasks.mesh_transfer import source_frames

    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [3, 0, 0], [1, 2, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    moved = verts.copy()
    moved[3:, 0] = 1 + 2 * (verts[3:, 0] - 1)
    s_inv, area = source_frames(verts, faces)
    return verts, faces, moved, s_inv, area


def test_dirichlet_energy_weights_triangles_by_source_area():
    """sum_f A_f |J_f|^2 / 2 over sum_f A_f det J_f: (0.5 * 2 * 0.5 + 0.5 * 5 * 2) / (0.5 + 2 * 2) = 11/9
    (with unit weights it would be 3.5 / 3); a similarity scores exactly 1."""
    from posenc.tasks.mesh_transfer import dirichlet_energy

    verts, faces, moved, s_inv, area = _two_triangles()
    torch.testing.assert_close(area, torch.tensor([0.5, 2.0], dtype=area.dtype))
    assert dirichlet_energy(moved, faces, s_inv, area) == pytest.approx(11 / 9, rel=1e-12)
    c, s = np.cos(0.7), np.sin(0.7)
    similar = 1.7 * verts @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + 0.3
    assert dirichlet_energy(similar, faces, s_inv, area) == pytest.approx(1.0, rel=1e-12)


def test_conformal_energy_weights_triangles_by_source_area():
    """sum_f A_f (|J_f|^2 / 2 - det J_f) / sum_f A_f: (0.5 * 0 + 2 * 0.5) / 2.5 = 0.4 (unit weights: 0.25)."""
    from posenc.tasks.mesh_transfer import conformal_energy

    _, faces, moved, s_inv, area = _two_triangles()
    got = conformal_energy(torch.from_numpy(moved), torch.from_numpy(faces), s_inv, area)
    assert float(got) == pytest.approx(0.4, rel=1e-9)
