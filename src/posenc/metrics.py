"""Quality metrics (PROTOCOLS.md): PSNR on [0, 1] signals and SSIM via scikit-image."""

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
