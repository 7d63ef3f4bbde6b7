"""The image task: RGB regression from pixel coordinates under the ``fit`` and ``gen25`` protocols.

Coordinates keep the aspect ratio: the longest side spans [0, 1]. Pixel (row i, column j) of an
H x W image sits at ((i + 0.5) / L, (j + 0.5) / L) with L = max(H, W), so a landscape photo covers
[0, H / L] x [0, 1]; a frequency is in cycles per longest side, and ``--sigma 10`` means the same
detail on a square crop and on the whole photo. A render at any other size samples the same
continuous field over the same extent.
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
from ..viz import colorbar_figure, error_map, heatmap, labelled_strip, map_beside_image, save_frame_sequence, thumbnail

PROTOCOLS = ("fit", "gen25")


Region = tuple[float, float, float, float]  # (y0, y1, x0, x1) in field coordinates


def pixel_axes(height: int, width: int, extent: tuple[int, int] | None = None,
               region: Region | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column centres of an H x W picture of a field fitted at ``extent`` = (H0, W0) pixels
    (default: the picture itself): the picture spans [0, H0 / L] x [0, W0 / L], L = max(H0, W0).
    ``region`` = (y0, y1, x0, x1) gives the span directly (a windowed fit, see ``ImageConfig.window``)."""
    if region is None:
        h0, w0 = extent or (height, width)
        longest = max(h0, w0)
        region = (0.0, h0 / longest, 0.0, w0 / longest)
    y0, y1, x0, x1 = region
    ys = y0 + (torch.arange(height, dtype=torch.float64) + 0.5) / height * (y1 - y0)
    xs = x0 + (torch.arange(width, dtype=torch.float64) + 0.5) / width * (x1 - x0)
    return ys.float(), xs.float()


def centre_window(height: int, width: int, side: int) -> tuple[int, int]:
    """Top-left pixel of the centred ``side`` x ``side`` window of an H x W image, on even rows and
    columns so that the window's gen25 sub-grid is the whole image's ``[::2, ::2]``."""
    if isinstance(side, bool) or not isinstance(side, int) or side < 2 or side > min(height, width):
        raise PosencError(f"window must be a side of 2 to {min(height, width)} pixels (the prepared image is "
                          f"{width}x{height}), got {side!r}")
    return (height - side) // 4 * 2, (width - side) // 4 * 2


def pixel_coordinates(height: int, width: int) -> torch.Tensor:
    """Pixel centres of an H x W image, longest side in [0, 1], row-major: -> (H * W, 2) as (y, x)."""
    ys, xs = pixel_axes(height, width)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def gen25_mask(height: int, width: int | None = None) -> np.ndarray:
    """Training pixels of the gen25 protocol: the regular sub-grid ``[::2, ::2]`` (25%): -> (H, W) bool."""
    mask = np.zeros((height, height if width is None else width), dtype=bool)
    mask[::2, ::2] = True
    return mask


def builtin_image(res: int | str, crop: str = "none") -> np.ndarray:
    """scikit-image's ``astronaut`` (bundled with the package, no download), prepared like any input."""
    from PIL import Image
    from skimage import data

    return prepare_image(Image.fromarray(data.astronaut()), res, crop)


class ImageTask(Task):
    """Samples, loss and evaluation for one image. Knows nothing about encodings."""

    in_dim = 2
    out_dim = 3

    def __init__(self, cfg: ImageConfig) -> None:
        if cfg.protocol not in PROTOCOLS:
            raise PosencError(f"unknown image protocol {cfg.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if cfg.res != "native" and (isinstance(cfg.res, bool) or not isinstance(cfg.res, int) or cfg.res < 2):
            raise PosencError(f"res must be 'native' or a longest side of at least 2 pixels, got {cfg.res!r}")
        self.cfg = cfg
        self.name = Path(cfg.path).stem if cfg.path else "astronaut"
        image = load_image(cfg.path, cfg.res, cfg.crop) if cfg.path else builtin_image(cfg.res, cfg.crop)
        full_h, full_w = image.shape[:2]
        longest = max(full_h, full_w)
        self.region: Region = (0.0, full_h / longest, 0.0, full_w / longest)
        if cfg.window:  # the centre of the image, in place: pixel density and frequencies per pixel kept
            top, left = centre_window(full_h, full_w, cfg.window)
            image = image[top : top + cfg.window, left : left + cfg.window]
            self.region = (top / longest, (top + cfg.window) / longest, left / longest, (left + cfg.window) / longest)
        self.image = np.ascontiguousarray(image)
        self.height, self.width = self.image.shape[:2]
        shape = (self.height, self.width)
        self.train_mask = gen25_mask(*shape) if cfg.protocol == "gen25" else np.ones(shape, dtype=bool)
        ys, xs = pixel_axes(*shape, region=self.region)
        self.coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
        self.batch_size = int(cfg.batch)

    def info(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "region": list(self.region)}

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
        """Render the field on the task's pixel grid (chunked): -> (H, W, 3) float in [0, 1]."""
        return render_image(field, self.height, self.width, region=self.region)

    def evaluate(self, pred: np.ndarray) -> dict[str, Any]:
        """``psnr`` (all pixels), ``psnr_heldout`` (gen25: pixels not trained on), ``psnr_train``, ``ssim``."""
        out: dict[str, Any] = {
            "psnr": psnr(pred, self.image),
            "psnr_train": psnr(pred, self.image, self.train_mask),
            "ssim": ssim(pred, self.image),
        }
        out["psnr_heldout"] = psnr(pred, self.image, ~self.train_mask) if not self.train_mask.all() else None
        return out

    def progress_evaluation_keys(self) -> tuple[str, ...]:
        return ("psnr",) if self.train_mask.all() else ("psnr_heldout", "psnr")

    def progress_evaluation(self, field: torch.nn.Module) -> dict[str, float]:
        pred = self.predict(field)  # SSIM is left to the end: it is the costly part on large images
        out = {"psnr": psnr(pred, self.image)}
        if not self.train_mask.all():
            out["psnr_heldout"] = psnr(pred, self.image, ~self.train_mask)
        return out

    def write_outputs(self, pred: np.ndarray, out_dir: Path, metrics: dict[str, Any]) -> None:
        err = error_map(pred, self.image)
        save_image(out_dir / "target.png", self.image)
        save_image(out_dir / "reconstruction.png", pred)
        save_image(out_dir / "error.png", err)
        held = metrics.get("psnr_heldout")
        label = f"reconstruction {metrics['psnr']:.2f} dB" + (f" (held-out {held:.2f})" if held is not None else "")
        # large photos: the side-by-side picture shows thumbnails (the full-size PNGs are beside it)
        strip = labelled_strip([thumbnail(a) for a in (self.image, pred, err)], ["target", label, "|error| (0 - 0.25)"])
        save_image(out_dir / "comparison.png", strip)


    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """``heatmap.png``: the highest unmasked frequency at every pixel (SAPE Fig. 8), with a colour bar."""
        fig = colorbar_figure(values.reshape(self.height, self.width), vmax, "max unmasked frequency (cycles / unit)",
                              "progressive mask: frequency per location")
        save_image(out_dir / "heatmap.png", fig)

    def write_encoding_map(self, values: np.ndarray, label: str, name: str, pred: np.ndarray, out_dir: Path) -> None:
        """``<name>.png``: a per-pixel property of the encoding (e.g. learned_rbf's sigma) with a colour
        bar, next to the reconstruction."""
        save_image(out_dir / f"{name}.png", map_beside_image(pred, values.reshape(self.height, self.width), label))

    def write_frames(self, frames: list[tuple[int, np.ndarray, Any]], vmax: float, out_dir: Path) -> None:
        """``frames/NNNNN.png`` (reconstruction | frequency map) and ``frames.gif``."""
        pictures = []
        for it, pred, heat in frames:
            tiles, labels = [pred], [f"iteration {it}"]
            if heat is not None:
                tiles.append(heatmap(heat.reshape(self.height, self.width), vmax))
                labels.append("max frequency")
            pictures.append((it, labelled_strip(tiles, labels)))
        save_frame_sequence(out_dir, pictures)


def render_image(field: torch.nn.Module, height: int, width: int, chunk: int = 65536,  # points per band of rows
                 extent: tuple[int, int] | None = None, out: np.ndarray | None = None,
                 region: Region | None = None) -> np.ndarray:
    """Evaluate an image field on an H x W grid of pixel centres, a band of rows at a time: -> (H, W, 3)
    float32 in [0, 1] (or written into ``out``, e.g. a uint8 canvas, so only one band is float at a time).

    ``extent`` = (H0, W0) is the size the field was fitted at; the picture covers the same region
    (default: its own size, the longest side spanning [0, 1]); ``region`` the span itself (a windowed fit)."""
    if height <= 0 or width <= 0:
        raise PosencError(f"render size must be positive, got {width}x{height}")
    ys, xs = pixel_axes(height, width, extent, region)
    if out is None:
        out = np.empty((height, width, 3), dtype=np.float32)
    step = max(1, chunk // width)
    for r0 in range(0, height, step):
        yy, xx = torch.meshgrid(ys[r0 : r0 + step], xs, indexing="ij")
        coords = torch.stack([yy, xx], dim=-1).reshape(-1, 2)
        band = field.predict(coords).clamp(0, 1).reshape(-1, width, 3).numpy()
        out[r0 : r0 + band.shape[0]] = (band * 255.0 + 0.5).astype(np.uint8) if out.dtype == np.uint8 else band
    return out
