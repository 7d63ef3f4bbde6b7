"""Pictures: error heat maps, labelled side-by-side strips, montages, the Fourier basis grid."""

from __future__ import annotations

import re
from typing import Callable

import numpy as np


def heatmap(values: np.ndarray, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """Map a (H, W) array onto a colour map over [0, vmax]: -> (H, W, 3) float in [0, 1]."""
    from matplotlib import colormaps

    norm = np.clip(np.asarray(values, dtype=np.float64) / max(vmax, 1e-12), 0.0, 1.0)
    return colormaps[cmap](norm)[..., :3].astype(np.float32)


def error_map(pred: np.ndarray, target: np.ndarray, vmax: float = 0.25) -> np.ndarray:
    """Per-pixel mean absolute error of two (H, W, C) images, as a heat map on a fixed [0, vmax] scale."""
    err = np.abs(np.clip(pred, 0, 1) - target).mean(axis=-1)
    return heatmap(err, vmax)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def labelled_strip(images: list[np.ndarray], labels: list[str], tile: int | None = None) -> np.ndarray:
    """Images side by side, each with a caption bar above: -> (H + bar, sum W + gaps, 3) uint8."""
    from PIL import Image, ImageDraw

    tiles = []
    for img in images:
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        im = Image.fromarray(arr[..., :3])
        if tile is not None and im.size != (tile, tile):
            # pixels stay crisp when enlarged; renders shrink without aliasing
            im = im.resize((tile, tile), Image.NEAREST if im.width < tile else Image.LANCZOS)
        tiles.append(im)
    h = max(t.height for t in tiles)
    gap, line = 4, 16
    font = _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(label, im.width - 6, lambda t: measure.textlength(t, font=font)) for im, label in zip(tiles, labels)]
    bar = 6 + line * max(len(w) for w in wrapped)
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, h + bar), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, lines in zip(tiles, wrapped):
        canvas.paste(im, (x, bar))
        for k, text in enumerate(lines):
            draw.text((x + 3, 3 + line * k), text, fill="black", font=font)
        x += im.width + gap
    return np.asarray(canvas)


def _wrap(label: str, width: float, length: Callable[[str], float]) -> list[str]:
    """Break a caption into lines no wider than ``width``, after ':' or ' ' (method settings) where it
    can, inside a word where it must."""
    lines, current = [], ""
    for piece in re.split(r"(?<=[: ])", label):
        for char in piece if length(piece) > width else [piece]:
            if current and length(current + char) > width:
                lines.append(current)
                current = ""
            current += char
    return lines + [current] if current else lines or [""]


def thumbnail(image: np.ndarray, longest: int = 1024) -> np.ndarray:
    """A picture (H, W[, C]) shrunk (LANCZOS) so its longest side is at most ``longest``: -> uint8."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w = arr.shape[:2]
    if max(h, w) <= longest:
        return arr
    scale = longest / max(h, w)
    return np.asarray(Image.fromarray(arr).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS))


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Stack uint8 strips vertically, padding narrower ones with white."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def fourier_basis_figure(B: np.ndarray, size: int = 100) -> np.ndarray:
    """The homework's 2-D basis images: cos and sin of ``2 pi b . v`` on a size x size grid of [0, 1)^2.

    ``B`` is (m, 2). Returns a uint8 RGB picture, 2 rows per group of 10 features (cos above sin),
    each tile captioned with its frequency vector.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = B.shape[0]
    cols = min(10, m)
    groups = -(-m // cols)
    v = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(v, v, indexing="ij")
    fig, axes = plt.subplots(2 * groups, cols, figsize=(1.3 * cols, 2.7 * groups), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (by, bx) in enumerate(B):
        phase = 2 * np.pi * (by * yy + bx * xx)
        g, c = divmod(i, cols)
        for r, (fn, name) in enumerate(((np.cos, "cos"), (np.sin, "sin"))):
            ax = axes[2 * g + r, c]
            ax.imshow(fn(phase), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"{name} |b|={np.hypot(by, bx):.1f}", fontsize=6)
    fig.tight_layout()
    return _figure_pixels(fig)


def colorbar_figure(values: np.ndarray, vmax: float, label: str, title: str = "", cmap: str = "inferno") -> np.ndarray:
    """A (H, W) map drawn with a labelled colour bar over [0, vmax]: -> uint8 RGB picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=110)
    im = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=max(vmax, 1e-9), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(label)
    fig.tight_layout()
    return _figure_pixels(fig)


def save_frame_sequence(out_dir, pictures: list[tuple[int, np.ndarray]], duration_ms: int = 250) -> None:
    """``frames/NNNNN.png`` for each (iteration, picture) and ``frames.gif`` of them all."""
    from pathlib import Path

    from .io import save_gif, save_image

    out_dir = Path(out_dir)
    for it, pic in pictures:
        save_image(out_dir / "frames" / f"{it:05d}.png", pic)
    save_gif(out_dir / "frames.gif", [pic for _, pic in pictures], duration_ms=duration_ms)


def render_surface(points: np.ndarray, normals: np.ndarray, size: int = 320, yaw: float = 35.0, pitch: float = 20.0,
                   colors: np.ndarray | None = None, color_normals: np.ndarray | None = None, shaded: bool = False) -> np.ndarray:
    """A picture of a surface given as dense points with normals (orthographic point splatting with a
    z-buffer from a fixed view; no display needed): Lambert-shaded grey; or ``colors`` ``(N, 3)`` in
    [0, 1] per point; or a normal map of ``color_normals`` ``(N, 3)`` (unoriented, in view space, each
    flipped towards the viewer, so n and -n look alike); ``shaded`` multiplies ``colors`` by the Lambert
    term, so the shape stays readable under a colour map: -> (size, size, 3) uint8."""
    a, b = np.radians(yaw), np.radians(pitch)
    rot_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rot_x @ rot_y
    p, n = points @ rot.T, normals @ rot.T
    if color_normals is not None:
        view = color_normals @ rot.T
        colors = (np.where(view[:, 2:3] < 0, -view, view) + 1.0) / 2.0
    px0 = ((p[:, 0] + 1) / 2 * size).astype(int)
    py0 = ((1 - (p[:, 1] + 1) / 2) * size).astype(int)
    # each point covers a 2 x 2 pixel footprint, so a few hundred thousand points close the surface
    px = np.clip(np.concatenate([px0, px0 + 1, px0, px0 + 1]), 0, size - 1)
    py = np.clip(np.concatenate([py0, py0, py0 + 1, py0 + 1]), 0, size - 1)
    p, n = np.tile(p, (4, 1)), np.tile(n, (4, 1))
    flat = py * size + px
    order = np.lexsort((-p[:, 2], flat))  # per pixel, nearest (largest z towards the viewer) first
    first = order[np.unique(flat[order], return_index=True)[1]]
    img = np.full((size * size, 3), 255.0)
    light = np.array([0.3, 0.5, 0.8])
    light /= np.linalg.norm(light)
    shade = 0.25 + 0.75 * np.abs(n[first] @ light)
    if colors is not None:
        img[flat[first]] = np.clip(np.tile(colors, (4, 1))[first], 0, 1) * 255.0 * (shade[:, None] if shaded else 1.0)
    else:
        img[flat[first]] = np.stack([shade * 200, shade * 205, shade * 220], 1)
    return img.reshape(size, size, 3).astype(np.uint8)


def _figure_pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def map_beside_image(image: np.ndarray, values: np.ndarray, label: str) -> np.ndarray:
    """An image (H, W, 3) in [0, 1] and a per-pixel map (H, W) with a labelled colour bar, side by side."""
    from PIL import Image

    fig = colorbar_figure(values, float(values.max()), label, label)
    recon = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    h = fig.shape[0]
    recon = np.asarray(Image.fromarray(recon).resize((h, h), Image.NEAREST))
    return labelled_strip([recon, fig], ["reconstruction", label])


def signal_plot(x_eval: np.ndarray, y_eval: np.ndarray, pred: np.ndarray, x_train: np.ndarray, y_train: np.ndarray,
                title: str, freq: np.ndarray | None = None, vmax: float = 0.0, ylabel: str = "max unmasked\nfrequency") -> np.ndarray:
    """A 1-D prediction over the ground truth and the training samples; below it, an optional curve
    ``freq`` over x (a policy's highest open frequency, or an encoding's property such as sigma(x))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if freq is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), dpi=100, squeeze=False, sharex=True)
    ax = axes[0, 0]
    ax.plot(x_eval, y_eval, color="0.6", lw=1.0, label="ground truth")
    ax.plot(x_eval, pred, color="black", lw=1.0, label="prediction")
    ax.scatter(x_train, y_train, s=8, color="red", zorder=3, label="training samples")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    if freq is not None:
        axes[1, 0].plot(x_eval, freq, color="tab:orange")
        axes[1, 0].set_ylim(0, max(vmax, 1e-9) * 1.05)
        axes[1, 0].set_ylabel(ylabel)
        axes[1, 0].set_xlabel("x")
    fig.tight_layout()
    return _figure_pixels(fig)


def curve_overlay(target_mask: np.ndarray, curve: np.ndarray, title: str, colour: np.ndarray | None = None,
                  vmax: float = 0.0) -> np.ndarray:
    """A closed curve (K, 2) in [-1, 1]^2 drawn over a target silhouette mask; coloured per segment
    by ``colour`` (e.g. the highest open frequency along the curve) when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig, ax = plt.subplots(figsize=(4.2, 4.4), dpi=100)
    ax.imshow(target_mask, extent=(-1, 1, -1, 1), cmap="Greys", vmin=0, vmax=2.5, origin="upper")
    closed = np.concatenate([curve, curve[:1]])
    if colour is None:
        ax.plot(closed[:, 0], closed[:, 1], color="tab:red", lw=1.2)
    else:
        segs = np.stack([closed[:-1], closed[1:]], 1)
        lc = LineCollection(segs, cmap="inferno", norm=plt.Normalize(0, max(vmax, 1e-9)), linewidths=2.0)
        lc.set_array(colour)
        ax.add_collection(lc)
        fig.colorbar(lc, ax=ax, fraction=0.046, pad=0.04, label="max unmasked frequency")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _figure_pixels(fig)
