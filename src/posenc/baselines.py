"""Classical baselines for the gen25 protocol: interpolate the 25% training pixels to the full grid.

The training pixels sit on the regular sub-grid ``[::2, ::2]``. ``bilinear`` is linear interpolation
along each axis between those samples; ``bicubic`` is the tensor-product cubic spline through them
(scipy's ``RegularGridInterpolator``, method ``cubic``: not-a-knot, so cubics are reproduced). Beyond the last sample row or column (the
odd last row and column of an even-sized image) both hold the edge value. The prediction is then
evaluated by the image task's own code, like any network's. At 256 px bilinear gives kodim01-03
24.33 / 30.16 / 31.58 dB and text00-02 21.35 / 18.96 / 21.10 dB (``tests/test_baselines.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ImageConfig
from .errors import PosencError

ORDERS = {"bilinear": "linear", "bicubic": "cubic"}


def interpolate_gen25(image: np.ndarray, method: str) -> np.ndarray:
    """Predict an ``(H, W, C)`` image from its ``[::2, ::2]`` pixels: -> ``(H, W, C)`` in [0, 1]."""
    from scipy.interpolate import RegularGridInterpolator

    if method not in ORDERS:
        raise PosencError(f"unknown baseline {method!r}; valid: {', '.join(ORDERS)}")
    h, w = image.shape[:2]
    sub = image[::2, ::2]
    # full-grid pixel (i, j) sits at (i / 2, j / 2) in sub-grid units; the edge value is held beyond the samples
    rows = np.clip(np.arange(h) / 2.0, 0, sub.shape[0] - 1)
    cols = np.clip(np.arange(w) / 2.0, 0, sub.shape[1] - 1)
    if min(sub.shape[:2]) < 4 and method == "bicubic":
        raise PosencError(f"bicubic needs at least 4 training pixels per axis; the image is {h}x{w}")
    points = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    f = RegularGridInterpolator((np.arange(sub.shape[0]), np.arange(sub.shape[1])), sub.astype(np.float64), method=ORDERS[method])
    out = f(points).reshape(h, w, -1)
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def baseline_metrics(data: ImageConfig, method: str) -> dict[str, Any]:
    """The image task's metrics of a classical baseline on one image (gen25 only)."""
    from .tasks.image import ImageTask

    if data.protocol != "gen25":
        raise PosencError(f"the {method} baseline interpolates the gen25 training pixels; protocol is {data.protocol!r}")
    task = ImageTask(data)
    metrics = task.evaluate(interpolate_gen25(task.image, method))
    metrics.update({"params": 0, "seconds": 0.0})
    return metrics
