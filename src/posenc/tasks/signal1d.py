"""The 1-D task (SAPE Fig. 2): regress a signal with a smooth and a high-frequency part from regularly
spaced samples, evaluate on a dense grid.

Sample i of N sits at x = (i + 0.5) / N in [0, 1]; the dense evaluation grid uses the same rule with
``eval_points`` points. PSNR uses the peak-to-peak range of the ground truth as its data range.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Signal1DConfig
from ..errors import PosencError
from ..io import atomic_write_text, save_image
from ..viz import save_frame_sequence, signal_plot
from .base import Task
from ..metrics import mse_to_psnr


def builtin_signal(x: np.ndarray) -> np.ndarray:
    """A slow wave everywhere plus a 24-cycle wave switched on over [0.5, 0.55] and kept to x = 1."""
    onset = np.clip((x - 0.5) / 0.05, 0.0, 1.0)
    return 0.5 * np.sin(2 * np.pi * 1.25 * x) + 0.4 * onset * np.sin(2 * np.pi * 24.0 * x)


def load_signal(path: str | Path) -> np.ndarray:
    """A user signal: a 1-D ``.npy`` array or the first numeric column of a ``.csv`` (header allowed)."""
    path = Path(path)
    if not path.is_file():
        raise PosencError(f"signal file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PosencError(f"cannot read {path} as a .npy array: {exc}".splitlines()[0]) from None
        values = np.asarray(values)
        if np.iscomplexobj(values):
            raise PosencError(f"{path} holds complex values; save the real part (or the magnitude) as a real array")
        if values.ndim == 2 and 1 in values.shape:
            values = values.reshape(-1)
        if values.ndim != 1:
            raise PosencError(f"{path} must hold a 1-D signal, got shape {values.shape}")
    elif path.suffix.lower() in (".csv", ".txt"):
        rows = []
        try:
            with open(path, newline="") as fh:
                for row in csv.reader(fh):
                    if not row or not row[0].strip():
                        continue
                    if len([c for c in row if c.strip()]) > 1 and rows:
                        raise PosencError(f"{path} has {len(row)} columns; a signal is one column of numbers")
                    try:
                        rows.append(float(row[0]))
                    except ValueError:
                        if rows:  # text after numbers: not a header
                            raise PosencError(f"{path}: non-numeric value {row[0]!r} in the first column") from None
        except UnicodeDecodeError:
            raise PosencError(f"{path} is not a text CSV file") from None
        if not rows:
            raise PosencError(f"{path}: no numbers in the first column")
        values = np.asarray(rows)
    else:
        raise PosencError(f"signal must be a .npy or .csv file, got {path.name}")
    if values.size < 4:
        raise PosencError(f"{path}: a signal needs at least 4 values, got {values.size}")
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values.astype(np.float64))):
        raise PosencError(f"{path}: the signal must be finite numbers")
    return values.astype(np.float64)


def grid_points(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


class Signal1DTask(Task):
    """Samples, loss and evaluation for a 1-D signal. Knows nothing about encodings."""

    in_dim = 1
    out_dim = 1

    def __init__(self, cfg: Signal1DConfig) -> None:
        if cfg.samples < 2:
            raise PosencError(f"samples must be at least 2, got {cfg.samples}")
        if cfg.eval_points < 2:
            raise PosencError(f"eval_points must be at least 2, got {cfg.eval_points}")
        self.cfg = cfg
        self.name = Path(cfg.path).stem if cfg.path else "builtin"
        if cfg.path:
            values = load_signal(cfg.path)
            at = grid_points(values.size)
            self.truth_fn = lambda x: np.interp(x, at, values)
        else:
            self.truth_fn = builtin_signal
        self.x_train = grid_points(cfg.samples)
        self.y_train = self.truth_fn(self.x_train)
        self.x_eval = grid_points(cfg.eval_points)
        self.y_eval = self.truth_fn(self.x_eval)
        self.range = float(self.y_eval.max() - self.y_eval.min()) or 1.0
        self.coords = torch.from_numpy(self.x_eval).float()[:, None]

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training coordinates ``(N, 1)`` and values ``(N, 1)``."""
        return torch.from_numpy(self.x_train).float()[:, None], torch.from_numpy(self.y_train).float()[:, None]

    @staticmethod
    def loss_per_sample(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared error: ``(N, 1), (N, 1) -> (N,)``."""
        return (pred - target).square().mean(dim=-1)

    def progress_metrics(self, loss: float) -> dict[str, float]:
        return {"train_mse": loss, "train_psnr": mse_to_psnr(max(loss, 1e-12), self.range)}

    def predict(self, field: torch.nn.Module) -> np.ndarray:
        return field.predict(self.coords).reshape(-1).numpy().astype(np.float64)

    def evaluate(self, pred: np.ndarray) -> dict[str, Any]:
        mse = float(np.mean((pred - self.y_eval) ** 2))
        train_pred = np.interp(self.x_train, self.x_eval, pred)
        half = self.x_eval >= 0.5
        return {
            "mse": mse,
            "psnr": mse_to_psnr(mse, self.range),
            "psnr_train": mse_to_psnr(float(np.mean((train_pred - self.y_train) ** 2)), self.range),
            "psnr_first_half": mse_to_psnr(float(np.mean((pred[~half] - self.y_eval[~half]) ** 2)), self.range),
            "psnr_second_half": mse_to_psnr(float(np.mean((pred[half] - self.y_eval[half]) ** 2)), self.range),
            "psnr_heldout": None,
            "ssim": None,
        }

    def _plot(self, pred: np.ndarray, title: str, freq: np.ndarray | None = None, vmax: float = 0.0,
              ylabel: str = "max unmasked\nfrequency") -> np.ndarray:
        return signal_plot(self.x_eval, self.y_eval, pred, self.x_train, self.y_train, title, freq, vmax, ylabel)

    def write_outputs(self, pred: np.ndarray, out_dir: Path, metrics: dict[str, Any]) -> None:
        title = f"{self.name}: PSNR {metrics['psnr']:.2f} dB (smooth half {metrics['psnr_first_half']:.2f}, detailed half {metrics['psnr_second_half']:.2f})"
        save_image(out_dir / "plot.png", self._plot(pred, title, self._freq, self._vmax))
        lines = ["x,truth,prediction"] + [f"{x:.6f},{t:.6f},{p:.6f}" for x, t, p in zip(self.x_eval, self.y_eval, pred)]
        atomic_write_text(out_dir / "prediction.csv", "\n".join(lines) + "\n")

    _freq: np.ndarray | None = None
    _vmax: float = 0.0

    def write_encoding_map(self, values: np.ndarray, label: str, name: str, pred: np.ndarray, out_dir: Path) -> None:
        """``<name>.png`` (the prediction with the encoding's property, e.g. learned_rbf's sigma(x),
        drawn below it) and ``<name>.csv`` (x, value)."""
        save_image(out_dir / f"{name}.png", self._plot(pred, label, values, float(values.max()), label.split(" (")[0]))
        lines = ["x,value"] + [f"{x:.6f},{v:.8f}" for x, v in zip(self.x_eval, values)]
        atomic_write_text(out_dir / f"{name}.csv", "\n".join(lines) + "\n")

    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """Keep the policy's frequency curve for ``plot.png`` (drawn under the signal)."""
        self._freq, self._vmax = values, vmax

    def write_frames(self, frames: list[tuple[int, np.ndarray, Any]], vmax: float, out_dir: Path) -> None:
        save_frame_sequence(out_dir, [(it, self._plot(pred, f"iteration {it}", heat, vmax)) for it, pred, heat in frames])
