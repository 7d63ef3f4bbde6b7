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


SSIM_TILE = 1024  # pixels; images above SSIM_TILE^2 * 4 pixels are measured tile by tile


def ssim(pred: np.ndarray, target: np.ndarray, tile: int | None = None) -> float:
    """Structural similarity of two (H, W, C) images in [0, 1] (scikit-image's, 7x7 uniform window),
    predictions clamped first. Large images are measured in tiles overlapping by the window's radius,
    which gives the same number as one call (each interior SSIM value sees only its 7x7 window) in a
    fraction of the memory."""
    from skimage.metrics import structural_similarity

    pred = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    target = np.asarray(target, dtype=np.float64)
    h, w = target.shape[:2]
    tile = tile or (SSIM_TILE if h * w > 4 * SSIM_TILE**2 else 0)
    if not tile or h <= 7 or w <= 7:
        return float(structural_similarity(pred, target, channel_axis=-1, data_range=1.0))
    pad = 3  # (win_size - 1) // 2: scikit-image averages the SSIM map without this border
    total, count = 0.0, 0
    for c in range(target.shape[2]):
        for r0 in range(pad, h - pad, tile):
            for c0 in range(pad, w - pad, tile):
                r1, c1 = min(r0 + tile, h - pad), min(c0 + tile, w - pad)
                window = (slice(r0 - pad, r1 + pad), slice(c0 - pad, c1 + pad), c)
                _, smap = structural_similarity(pred[window], target[window], data_range=1.0, full=True)
                inner = smap[pad:-pad, pad:-pad]
                total += float(inner.sum())
                count += inner.size
    return total / count


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
