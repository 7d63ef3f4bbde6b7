"""2-D silhouette deformation (SAPE Sec. 5.1): a curve p in [0, 1) -> R^2, calibrated to the unit circle,
then pulled onto a target contour by the symmetric Chamfer distance.

Target: the outer contour of the largest white component of a binary picture (padded first, so shapes
that touch the border close), scaled so its longer side spans [-0.9, 0.9] and centred, then resampled
uniformly by arc length. IoU: both the output curve and the target contour are closed polygons
rasterised on ``raster`` x ``raster`` pixels over [-1, 1]^2 with the even-odd rule (a self-intersecting
curve's doubly covered regions count as outside), and compared pixel by pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SilhouetteConfig
from ..errors import PosencError
from ..io import save_image
from ..metrics import iou
from ..viz import curve_overlay, save_frame_sequence
from .base import Task


def builtin_shape(size: int = 256) -> np.ndarray:
    """A star with a wavy rim (white on black, uint8): smooth lobes plus fine detail."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size * 2 - 1
    r, th = np.hypot(x, y), np.arctan2(y, x)
    rim = 0.6 + 0.18 * np.sin(5 * th) + 0.03 * np.sin(23 * th)
    return ((r < rim) * 255).astype(np.uint8)


def load_mask(path: str | Path) -> np.ndarray:
    """Binary picture -> bool mask of the shape (white on black; inverted if the border is white)."""
    from ..io import open_image

    path = Path(path)
    gray = np.asarray(open_image(path, "silhouette image").convert("L"))
    mask = gray > 127
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if border.mean() > 0.5:  # black shape on white: flip
        mask = ~mask
    if not mask.any() or mask.all():
        raise PosencError(f"{path}: no shape found (the picture is a single colour)")
    return mask


def outer_contour(mask: np.ndarray) -> np.ndarray:
    """Outer boundary of the largest component, (K, 2) points as (x, y) with y up, in pixel units."""
    from skimage import measure

    padded = np.pad(mask, 4, constant_values=False)
    labels = measure.label(padded, connectivity=2)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(sizes.argmax())
    filled = largest.astype(float)
    contours = measure.find_contours(filled, 0.5)

    def area(c: np.ndarray) -> float:
        return 0.5 * abs(np.dot(c[:, 0], np.roll(c[:, 1], 1)) - np.dot(c[:, 1], np.roll(c[:, 0], 1)))

    c = max(contours, key=area)
    return np.stack([c[:, 1], -c[:, 0]], axis=1)


def normalise(points: np.ndarray, extent: float = 0.9) -> np.ndarray:
    """Centre the bounding box at 0 and scale its longer side to span [-extent, extent]."""
    lo, hi = points.min(0), points.max(0)
    return (points - (lo + hi) / 2) * (2 * extent / max(float((hi - lo).max()), 1e-12))


def resample_closed(points: np.ndarray, n: int) -> np.ndarray:
    """n points evenly spaced by arc length along the closed polyline ``points``."""
    closed = np.concatenate([points, points[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    return np.stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])], axis=1)


def rasterise(polygon: np.ndarray, res: int) -> np.ndarray:
    """Even-odd fill of a closed polygon given in [-1, 1]^2 (y up) on a res x res grid: bool (res, res).

    Scanline rule: along each pixel row's centre line the edge crossings are sorted and pixels whose
    centres lie between crossings 1-2, 3-4, ... are inside.
    """
    centres = (np.arange(res) + 0.5) / res * 2 - 1
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    out = np.zeros((res, res), dtype=bool)
    for row, y in enumerate(-centres):  # row 0 is the top (y = +1)
        hit = (y0 > y) != (y1 > y)
        if not hit.any():
            continue
        xs = np.sort(x0[hit] + (y - y0[hit]) * (x1[hit] - x0[hit]) / (y1[hit] - y0[hit]))
        for a, b in zip(xs[0::2], xs[1::2]):
            out[row] |= (centres >= a) & (centres < b)
    return out


def chamfer(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric Chamfer distance of point sets ``(M, 2)`` and ``(K, 2)`` (squared Euclidean).

    Returns the loss ``mean_a min_b d + mean_b min_a d``, the per-point term of ``a`` ``(M,)`` and the
    per-point term of ``b`` ``(K,)``.
    """
    # nearest neighbours without a graph (k-d trees on the CPU, ~10x faster than the dense distance
    # matrix; the matmul form elsewhere), then the exact distances of those pairs: the gradient of a
    # min is that of its argmin pair anyway
    with torch.no_grad():
        if a.device.type == "cpu":
            from scipy.spatial import cKDTree

            pa, pb = a.detach().double().numpy(), b.detach().double().numpy()
            near_b = torch.from_numpy(cKDTree(pb).query(pa)[1])
            near_a = torch.from_numpy(cKDTree(pa).query(pb)[1])
        else:
            d = a.square().sum(-1, keepdim=True) + b.square().sum(-1) - 2.0 * a @ b.T
            near_b, near_a = d.argmin(1), d.argmin(0)
    da = (a - b[near_b]).square().sum(-1)
    db = (a[near_a] - b).square().sum(-1)
    return da.mean() + db.mean(), da, db


class SilhouetteTask(Task):
    """Curve fitting by Chamfer distance. Knows nothing about encodings."""

    in_dim = 1
    out_dim = 2

    def __init__(self, cfg: SilhouetteConfig) -> None:
        for key in ("points", "target_points", "raster"):
            if getattr(cfg, key) < 8:
                raise PosencError(f"{key} must be at least 8, got {getattr(cfg, key)}")
        if cfg.calib_iters < 0:
            raise PosencError(f"calib_iters must be >= 0 (0 = no calibration), got {cfg.calib_iters}")
        if not 0 < cfg.calib_lr <= 1:
            raise PosencError(f"calib_lr must be in (0, 1], got {cfg.calib_lr}")
        self.cfg = cfg
        self.name = Path(cfg.path).stem if cfg.path else "star"
        mask = load_mask(cfg.path) if cfg.path else builtin_shape() > 127
        contour = normalise(outer_contour(mask))
        self.target = resample_closed(contour, cfg.target_points)
        self.target_mask = rasterise(contour, cfg.raster)
        self.p = (np.arange(cfg.points) + 0.5) / cfg.points
        self.coords = torch.from_numpy(np.linspace(0, 1, 2048, endpoint=False) + 0.5 / 2048).float()[:, None]

    # -- training --------------------------------------------------------------------------
    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Curve parameters ``(M, 1)`` and the target point set ``(K, 2)`` (not paired with them)."""
        return torch.from_numpy(self.p).float()[:, None], torch.from_numpy(self.target).float()

    def calibration(self) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        """The unit-circle warm-up: ``f(p) = (cos 2 pi p, sin 2 pi p)`` by MSE."""
        p = torch.from_numpy(self.p).float()[:, None]
        circle = torch.cat([torch.cos(2 * np.pi * p), torch.sin(2 * np.pi * p)], 1)
        return p, circle, self.cfg.calib_iters, self.cfg.calib_lr

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Chamfer loss and its per-curve-point term (the feedback of a progressive policy)."""
        total, per_point, _ = chamfer(pred, target)
        return total, per_point

    @staticmethod
    def progress_metrics(loss: float) -> dict[str, float]:
        return {"train_chamfer": loss}

    # -- evaluation ------------------------------------------------------------------------
    def predict(self, field: torch.nn.Module) -> np.ndarray:
        return field.predict(self.coords).numpy().astype(np.float64)

    def evaluate(self, pred: np.ndarray) -> dict[str, Any]:
        with torch.no_grad():
            ch, _, _ = chamfer(torch.from_numpy(pred), torch.from_numpy(self.target))
        return {"iou": iou(rasterise(pred, self.cfg.raster), self.target_mask), "chamfer": float(ch),
                "psnr": None, "psnr_heldout": None, "ssim": None}

    def progress_evaluation_keys(self) -> tuple[str, ...]:
        return ("chamfer", "iou")

    def _overlay(self, pred: np.ndarray, title: str, colour: np.ndarray | None = None, vmax: float = 0.0) -> np.ndarray:
        return curve_overlay(self.target_mask, pred, title, colour, vmax)

    _freq: tuple[np.ndarray, float] | None = None

    def write_outputs(self, pred: np.ndarray, out_dir: Path, metrics: dict[str, Any]) -> None:
        save_image(out_dir / "overlay.png", self._overlay(pred, f"{self.name}: IoU {metrics['iou']:.3f}"))
        if self._freq is not None:
            save_image(out_dir / "heatmap.png", self._overlay(pred, "frequency along the curve", *self._freq))

    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """Keep the curve's highest unmasked frequency per point for ``heatmap.png`` (like SAPE Fig. 9)."""
        self._freq = (values, vmax)

    def write_frames(self, frames: list[tuple[int, np.ndarray, Any]], vmax: float, out_dir: Path) -> None:
        pictures = [(it, self._overlay(pred, f"iteration {it}", heat, vmax)) for it, pred, heat in frames]
        save_frame_sequence(out_dir, pictures, duration_ms=200)
