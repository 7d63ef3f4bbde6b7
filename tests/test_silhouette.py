"""Silhouettes: contour extraction, normalisation, even-odd IoU, Chamfer, circle calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posenc.config import FitConfig, NetworkConfig, SilhouetteConfig, TrainConfig
from posenc.errors import PosencError
from posenc.tasks.silhouette import SilhouetteTask, chamfer, iou, load_mask, normalise, outer_contour, rasterise
from posenc.train import Trainer


def disc(size=128, r=0.35, cx=0.5, cy=0.5):
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    return (np.hypot(x - cx, y - cy) < r)


def test_disc_contour_is_a_circle():
    pts = normalise(outer_contour(disc()))
    radius = np.hypot(pts[:, 0], pts[:, 1])
    assert abs(radius.mean() - 0.9) < 0.01 and radius.std() < 0.01


def test_target_contour_iou_is_one(tmp_path):
    Image.fromarray((disc() * 255).astype(np.uint8)).save(tmp_path / "d.png")
    task = SilhouetteTask(SilhouetteConfig(path=str(tmp_path / "d.png"), raster=256))
    assert iou(rasterise(task.target, 256), task.target_mask) > 0.99
    # the filled disc covers pi 0.9^2 / 4 of [-1, 1]^2
    assert task.target_mask.mean() == pytest.approx(np.pi * 0.81 / 4, rel=0.02)


def test_border_touching_shape_is_closed(tmp_path):
    mask = np.zeros((60, 60), bool)
    mask[:, 20:40] = True  # a bar touching the top and bottom borders
    Image.fromarray((mask * 255).astype(np.uint8)).convert("P").save(tmp_path / "bar.gif")
    contour = normalise(outer_contour(load_mask(tmp_path / "bar.gif")))
    filled = rasterise(contour, 200)
    # a 20 x 60 bar scaled to height 1.8: width 0.6 -> 30% of the raster width, full 90% height
    assert filled.mean() == pytest.approx(0.3 * 0.9, rel=0.05)


def test_largest_component_and_inverted_pictures():
    mask = np.zeros((80, 80), bool)
    mask[10:20, 10:20] = True
    mask[40:75, 40:75] = True
    pts = outer_contour(mask)
    assert pts[:, 0].min() > 38  # the small square is ignored


def test_even_odd_rule():
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    assert rasterise(square, 100).mean() == pytest.approx(0.25, abs=0.01)
    twice = np.concatenate([square, square])  # the same square wound twice: even-odd -> empty
    assert rasterise(twice, 100).sum() == 0


def test_chamfer_symmetric_and_zero_on_identical_sets():
    a, b = torch.rand(30, 2), torch.rand(50, 2)
    assert float(chamfer(a, b)[0]) == pytest.approx(float(chamfer(b, a)[0]))
    assert float(chamfer(a, a)[0]) == 0.0
    assert float(chamfer(a, b)[0]) > 0


def test_calibration_reproduces_the_unit_circle(tmp_path):
    cfg = FitConfig.for_task("silhouette", network=NetworkConfig(width=64, depth=2, output="none"),
                             train=TrainConfig(iters=1, threads=1, checkpoint_every=0))
    cfg.data = SilhouetteConfig(points=100, target_points=200, calib_iters=800, calib_lr=1e-2, raster=64)
    cfg.encoding = {"type": "basic"}
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    from posenc.train import calibrate

    assert calibrate(trainer.field, trainer.task, trainer.device) < 1e-3


def test_bad_silhouettes(tmp_path):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(PosencError, match="no shape"):
        load_mask(tmp_path / "black.png")
    with pytest.raises(PosencError, match="not found"):
        load_mask(tmp_path / "missing.gif")


def test_short_silhouette_fit_writes_outputs(tmp_path):
    from posenc.methods import apply_method
    from posenc.train import fit

    base = FitConfig.for_task("silhouette", network=NetworkConfig(width=32, depth=2, output="none"),
                              train=TrainConfig(iters=30, lr=1e-3, threads=1, checkpoint_every=0, frames=2))
    base.data = SilhouetteConfig(points=64, target_points=128, calib_iters=100, calib_lr=1e-2, raster=64)
    cfg = apply_method(base, "sape+gaussian:sigma=3:features=16")
    m = fit(cfg, tmp_path / "run", progress=False)
    assert 0.0 <= m["iou"] <= 1.0 and m["chamfer"] > 0
    for name in ("overlay.png", "heatmap.png", "frames.gif", "metrics.json", "model.safetensors"):
        assert (tmp_path / "run" / name).exists(), name


def _inside_even_odd(polygon, x, y):
    """Reference point-in-polygon by the crossing number (even-odd), one point at a time."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (xa, ya), (xb, yb) = polygon[i], polygon[(i + 1) % n]
        if (ya > y) != (yb > y) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


@pytest.mark.parametrize("name", ["triangle", "concave", "pentagram"])
def test_rasterise_is_the_even_odd_fill_with_row_0_on_top(name):
    from posenc.tasks.silhouette import rasterise

    polygons = {
        "triangle": np.array([[-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9]]),  # lower-left half: the top rows are empty
        "concave": np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [0.0, 0.1], [-0.8, 0.8]]),
        "pentagram": np.array([[np.cos(a), np.sin(a)] for a in np.pi / 2 + 4 * np.pi / 5 * np.arange(5)]) * 0.9,
    }
    poly = polygons[name]
    res = 24
    mask = rasterise(poly, res)
    centres = (np.arange(res) + 0.5) / res * 2 - 1
    expected = np.array([[_inside_even_odd(poly, x, -y) for x in centres] for y in centres])
    np.testing.assert_array_equal(mask, expected)
    if name == "triangle":
        assert not mask[0].any() and mask[res // 2 :].sum() > 2 * mask[: res // 2].sum()
    if name == "pentagram":
        assert not mask[res // 2, res // 2]  # the doubly covered centre is outside under even-odd


def test_resample_closed_is_even_by_arc_length_and_does_not_repeat_the_start():
    from posenc.tasks.silhouette import resample_closed

    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pts = resample_closed(square, 8)
    np.testing.assert_allclose(pts, [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0.5]], atol=1e-12)
    tri = resample_closed(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]), 12)  # perimeter 12: one unit apart
    gaps = np.linalg.norm(np.diff(np.concatenate([tri, tri[:1]]), axis=0), axis=1)
    assert gaps.max() <= 1.0 + 1e-9 and len(tri) == 12


def test_calibration_target_is_the_unit_circle():
    task = SilhouetteTask(SilhouetteConfig(points=64))
    p, circle, iters, lr = task.calibration()
    angle = 2 * np.pi * p[:, 0].double()
    torch.testing.assert_close(circle.double(), torch.stack([angle.cos(), angle.sin()], 1), rtol=0, atol=1e-6)
    assert (iters, lr) == (task.cfg.calib_iters, task.cfg.calib_lr)


def test_task_settings_at_their_bounds():
    """8 curve points, 8 target points and an 8-pixel raster build; 7 of any is refused by name; no
    calibration (0 steps) builds, negative steps or a non-positive rate are refused."""
    SilhouetteTask(SilhouetteConfig(points=8, target_points=8, raster=8, calib_iters=0))
    for key in ("points", "target_points", "raster"):
        with pytest.raises(PosencError, match=f"{key} must be at least 8, got 7"):
            SilhouetteTask(SilhouetteConfig(**{key: 7}))
    SilhouetteTask(SilhouetteConfig(calib_lr=1.0))
    for bad in ({"calib_iters": -1}, {"calib_lr": 0.0}, {"calib_lr": -1e-3}, {"calib_lr": float("nan")}, {"calib_lr": 1.5}):
        with pytest.raises(PosencError, match=f"{next(iter(bad))} must be"):
            SilhouetteTask(SilhouetteConfig(**bad))


def test_a_decompression_bomb_silhouette_is_one_line(tmp_path):
    """The silhouette loader shares the image loader's checks (it once read any file whole): a picture
    above the pixel limit (lowered to 0 here, so a 1-pixel file is over it), a missing and an empty file
    are one-line errors."""
    import numpy as np
    from PIL import Image

    from posenc.errors import PosencError
    from posenc.io import MAX_IMAGE_PIXELS
    from posenc.tasks.silhouette import load_mask

    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(big)
    import posenc.io as io_module

    old = io_module.MAX_IMAGE_PIXELS
    io_module.MAX_IMAGE_PIXELS = 0  # every picture is over the limit
    try:
        with pytest.raises(PosencError, match="MP"):
            load_mask(big)
    finally:
        io_module.MAX_IMAGE_PIXELS = old
    assert MAX_IMAGE_PIXELS == old
    with pytest.raises(PosencError, match="silhouette image not found"):
        load_mask(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(PosencError, match="empty"):
        load_mask(tmp_path / "empty.png")
