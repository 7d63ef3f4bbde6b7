"""The image task: RGB regression from pixel coordinates under the ``fit`` and ``gen25`` protocols.

Pixel (row i, column j) of an R x R image sits at coordinate ((i + 0.5) / R, (j + 0.5) / R) in [0, 1]^2,
so renders at any other size sample the same continuous field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ImageConfig
from ..errors import PosencError
from ..io import load_image, prepare_image, save_image
from ..metrics import psnr, ssim
from .base import Task
from ..viz import colorbar_figure, error_map, heatmap, labelled_strip, map_beside_image, save_frame_sequence

PROTOCOLS = ("fit", "gen25")


def pixel_coordinates(height: int, width: int) -> torch.Tensor:
    """Pixel centres of an H x W image in [0, 1]^2, row-major: -> (H * W, 2) as (y, x)."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def gen25_mask(res: int) -> np.ndarray:
    """Training pixels of the gen25 protocol: the regular sub-grid ``[::2, ::2]`` (25%): -> (R, R) bool."""
    mask = np.zeros((res, res), dtype=bool)
    mask[::2, ::2] = True
    return mask


def builtin_image(res: int) -> np.ndarray:
    """scikit-image's ``astronaut`` (bundled with the package, no download), prepared like any input."""
    from PIL import Image
    from skimage import data

    return prepare_image(Image.fromarray(data.astronaut()), res)


class ImageTask(Task):
    """Samples, loss and evaluation for one image. Knows nothing about encodings."""

    in_dim = 2
    out_dim = 3

    def __init__(self, cfg: ImageConfig) -> None:
        if cfg.protocol not in PROTOCOLS:
            raise PosencError(f"unknown image protocol {cfg.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if cfg.res < 2:
            raise PosencError(f"resolution must be at least 2, got {cfg.res}")
        self.cfg = cfg
        self.name = Path(cfg.path).stem if cfg.path else "astronaut"
        self.image = load_image(cfg.path, cfg.res) if cfg.path else builtin_image(cfg.res)
        self.res = cfg.res
        self.train_mask = gen25_mask(cfg.res) if cfg.protocol == "gen25" else np.ones((cfg.res, cfg.res), dtype=bool)
        self.coords = pixel_coordinates(cfg.res, cfg.res)

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training coordinates ``(N, 2)`` and RGB targets ``(N, 3)``."""
        flat = self.train_mask.reshape(-1)
        target = torch.from_numpy(self.image.reshape(-1, 3))
        return self.coords[flat], target[flat]

    @staticmethod
    def loss_per_sample(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared error averaged over channels: ``(N, 3), (N, 3) -> (N,)``."""
        return (pred - target).square().mean(dim=-1)

    @staticmethod
    def progress_metrics(loss: float) -> dict[str, float]:
        return {"train_mse": loss, "train_psnr": -10.0 * np.log10(max(loss, 1e-12))}

    def predict(self, field: torch.nn.Module) -> np.ndarray:
        """Render the field on the task's R x R pixel grid (chunked): -> (R, R, 3) float in [0, 1]."""
        return render_image(field, self.res, self.res)

    def evaluate(self, pred: np.ndarray) -> dict[str, Any]:
        """``psnr`` (all pixels), ``psnr_heldout`` (gen25: pixels not trained on), ``psnr_train``, ``ssim``."""
        out: dict[str, Any] = {
            "psnr": psnr(pred, self.image),
            "psnr_train": psnr(pred, self.image, self.train_mask),
            "ssim": ssim(pred, self.image),
        }
        out["psnr_heldout"] = psnr(pred, self.image, ~self.train_mask) if not self.train_mask.all() else None
        return out

    def write_outputs(self, pred: np.ndarray, out_dir: Path, metrics: dict[str, Any]) -> None:
        err = error_map(pred, self.image)
        save_image(out_dir / "target.png", self.image)
        save_image(out_dir / "reconstruction.png", pred)
        save_image(out_dir / "error.png", err)
        held = metrics.get("psnr_heldout")
        label = f"reconstruction {metrics['psnr']:.2f} dB" + (f" (held-out {held:.2f})" if held is not None else "")
        strip = labelled_strip([self.image, pred, err], ["target", label, "|error| (0 - 0.25)"])
        save_image(out_dir / "comparison.png", strip)


    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """``heatmap.png``: the highest unmasked frequency at every pixel (SAPE Fig. 8), with a colour bar."""
        fig = colorbar_figure(values.reshape(self.res, self.res), vmax, "max unmasked frequency (cycles / unit)",
                              "progressive mask: frequency per location")
        save_image(out_dir / "heatmap.png", fig)

    def write_encoding_map(self, values: np.ndarray, label: str, name: str, pred: np.ndarray, out_dir: Path) -> None:
        """``<name>.png``: a per-pixel property of the encoding (e.g. learned_rbf's sigma) with a colour
        bar, next to the reconstruction."""
        save_image(out_dir / f"{name}.png", map_beside_image(pred, values.reshape(self.res, self.res), label))

    def write_frames(self, frames: list[tuple[int, np.ndarray, Any]], vmax: float, out_dir: Path) -> None:
        """``frames/NNNNN.png`` (reconstruction | frequency map) and ``frames.gif``."""
        pictures = []
        for it, pred, heat in frames:
            tiles, labels = [pred], [f"iteration {it}"]
            if heat is not None:
                tiles.append(heatmap(heat.reshape(self.res, self.res), vmax))
                labels.append("max frequency")
            pictures.append((it, labelled_strip(tiles, labels)))
        save_frame_sequence(out_dir, pictures)


def render_image(field: torch.nn.Module, height: int, width: int, chunk: int = 65536) -> np.ndarray:
    """Evaluate an image field on an H x W grid of pixel centres, in chunks: -> (H, W, 3) in [0, 1]."""
    if height <= 0 or width <= 0:
        raise PosencError(f"render size must be positive, got {width}x{height}")
    rows = []
    step = max(1, chunk // width)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    for r0 in range(0, height, step):
        yy, xx = torch.meshgrid(ys[r0 : r0 + step], xs, indexing="ij")
        coords = torch.stack([yy, xx], dim=-1).reshape(-1, 2)
        rows.append(field.predict(coords, chunk=chunk).clamp(0, 1).reshape(-1, width, 3).numpy())
    return np.concatenate(rows, axis=0)
