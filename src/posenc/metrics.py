"""Every metric the protocols report (PROTOCOLS.md): PSNR and SSIM of images, IoU of inside sets,
Chamfer-L1 and Hausdorff distances of point sets, normal error of surfaces."""

from __future__ import annotations

import math

import numpy as np


def mse_to_psnr(mse: float, data_range: float = 1.0) -> float:
    """``PSNR = 10 log10(range^2 / MSE)``; infinite for a perfect match."""
    if mse <= 0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR over all pixels and channels (or over the pixels where ``mask`` (H, W) is True).

    Predictions are clamped to [0, 1] first, as the protocols require.
    """
    pred = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    err = (pred - np.asarray(target, dtype=np.float64)) ** 2
    if mask is not None:
        err = err[mask]
    return mse_to_psnr(float(err.mean()))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Structural similarity of two (H, W, C) images in [0, 1] (scikit-image, Gaussian-free default window)."""
    from skimage.metrics import structural_similarity

    pred = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    return float(structural_similarity(pred, np.asarray(target, dtype=np.float64), channel_axis=-1, data_range=1.0))


def chamfer_hausdorff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Chamfer-L1 ``(mean_a d(a, B) + mean_b d(b, A)) / 2`` and the Hausdorff distance of two point sets."""
    from scipy.spatial import cKDTree

    da, _ = cKDTree(b).query(a, workers=1)
    db, _ = cKDTree(a).query(b, workers=1)
    return float(0.5 * (da.mean() + db.mean())), float(max(da.max(), db.max()))


def normal_error(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Unoriented normal error of unit normals ``(N, 3)`` against the ground truth: the mean angle in
    degrees, ``mean arccos |n . n_gt|``, and the normal consistency ``mean |n . n_gt|`` (Occupancy
    Networks). Unoriented, so a mesh's face orientation does not matter."""
    cos = np.clip(np.abs((pred * truth).sum(-1)), 0.0, 1.0)
    return {"normal_angle_deg": float(np.degrees(np.arccos(cos)).mean()), "normal_consistency": float(cos.mean())}


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean sets (arrays of the same shape); 1 when both are empty."""
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0
