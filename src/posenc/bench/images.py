"""``posenc bench images``: methods x images under the gen25 or fit protocol (PSNR, held-out PSNR, SSIM),
montages and training-PSNR-against-time plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io import save_image
from .runner import BenchConfig, Family, run_bench, run_dir_name

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
ImageBenchConfig = BenchConfig  # the name earlier code and tests use


def psnr_vs_time(out: Path, image: str, methods: list[str], seed: int, by: dict[tuple[str, str], Any]) -> None:
    """Training PSNR against wall-clock seconds for every method on one image (from each run's history)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    drawn = 0
    for m in methods:
        path = out / "runs" / image / run_dir_name(m, seed) / "metrics.json"
        if not path.exists():
            continue
        hist = [tuple(h) for h in json.loads(path.read_text()).get("loss_history") or []]
        timing = path.parent / "timing.json"
        if timing.exists():
            clock = {int(it): sec for it, sec in json.loads(timing.read_text()).get("history_seconds", [])}
        else:  # runs written before timing.json: (iteration, loss, seconds)
            clock = {int(h[0]): h[2] for h in hist if len(h) == 3}
        hist = [h for h in hist if int(h[0]) in clock]
        if len(hist) < 2:
            continue
        secs = [clock[int(h[0])] for h in hist]
        psnr = [-10 * np.log10(max(h[1], 1e-12)) for h in hist]
        ax.plot(secs, psnr, label=m)
        drawn += 1
    if drawn:
        ax.set_xlabel("seconds")
        ax.set_ylabel("training PSNR (dB)")
        ax.set_title(image, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.canvas.draw()
        save_image(out / f"psnr_vs_time_{image}.png", np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)


def _data_settings(bc: BenchConfig, data: Any) -> None:
    data.protocol, data.res, data.crop = bc.protocol, bc.res, bc.crop


FAMILY = Family(
    name="images",
    tasks=("image",),
    columns={"image": [("psnr", "PSNR (dB)", 2), ("psnr_heldout", "held-out PSNR (dB)", 2), ("ssim", "SSIM", 3)]},
    tile="reconstruction.png",
    target="target.png",
    suffixes=IMAGE_SUFFIXES,
    data_settings=_data_settings,
    command=lambda bc: ["bench", "images", "--data", bc.data, "--methods", ",".join(bc.methods), "--protocol", bc.protocol,
                        "--res", str(bc.res)],
    setting=lambda bc: f"protocol {bc.protocol}, {bc.res} px",
    pictures=psnr_vs_time,
)


def run_image_bench(bc: BenchConfig, progress: bool = True) -> Path:
    """``posenc bench images`` (the runner with this family)."""
    return run_bench(bc, progress)
