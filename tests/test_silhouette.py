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
