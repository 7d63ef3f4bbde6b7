"""The task interface: what the training loop needs from a task, and nothing about encodings.

A task turns an input file into training samples, a per-sample loss and an evaluation, and writes
its outputs. The loop (:mod:`posenc.train`) calls exactly these methods; optional behaviour has a
default here instead of being probed for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch


class Task:
    """Base class of every task. Subclasses set ``in_dim``, ``out_dim``, ``name`` and ``coords`` and
    implement :meth:`train_data`, :meth:`loss_per_sample` (or :meth:`loss`), :meth:`predict`,
    :meth:`evaluate` and :meth:`write_outputs`."""

    in_dim: ClassVar[int]
    out_dim: ClassVar[int]
    name: str = "task"
    # points where pictures show a policy's frequency map or an encoding's detail map: (M, in_dim)
    coords: torch.Tensor
    # mini-batch size (0 = full batch: the loop trains on the bound training set)
    batch_size: int = 0
    # True when the loss needs gradients with respect to the input points (eikonal terms)
    needs_input_grad: bool = False
    # progress bars on long preparation and evaluation (set by the training loop)
    progress: bool = False
    # what the field's encodings do with training or evaluation points outside [0, 1]^d (Encoding.outside):
    # a task whose protocol samples past the domain on purpose says so here instead of warning every fit
    encoding_outside: ClassVar[str] = "warn"

    # -- training ---------------------------------------------------------------------------
    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training points ``(N, in_dim)`` and targets ``(N, ...)``."""
        raise NotImplementedError

    def loss_per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``(N,)`` of predictions ``(N, out_dim)`` against targets."""
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar training loss and the per-sample feedback ``(N,)`` a progressive policy uses.
        ``x`` are the points ``pred`` was computed at (requiring grad when ``needs_input_grad``)."""
        per_sample = self.loss_per_sample(pred, target)
        return per_sample.mean(), per_sample

    generator: torch.Generator | None = None  # set by the trainer: random draws inside a loss (checkpointed)

    def prepare_field(self, field: torch.nn.Module) -> None:
        """Adjust a new field before training starts (mesh transfer zeroes its output layer); default: nothing."""

    def calibration(self) -> tuple[torch.Tensor, torch.Tensor, int, float] | None:
        """A warm-up fit by MSE before training: ``(x, target, iterations, lr)``, or None."""
        return None

    def progress_metrics(self, loss: float) -> dict[str, float]:
        """What the progress bar shows, labelled, from the training loss."""
        return {"train_loss": loss}

    def info(self) -> dict[str, Any]:
        """Facts about the input a saved model needs later (an image's fitted size); saved with it."""
        return {}

    def set_cache_dir(self, path: Path) -> None:
        """Where a task may cache expensive samples (shared by sibling runs); default: no cache."""

    # -- evaluation and outputs ---------------------------------------------------------------
    def predict(self, field: torch.nn.Module) -> Any:
        raise NotImplementedError

    def evaluate(self, pred: Any) -> dict[str, Any]:
        raise NotImplementedError

    def progress_evaluation_keys(self) -> tuple[str, ...]:
        """The held-out figures ``--eval-every`` reports during training."""
        return ("psnr",)

    def progress_evaluation(self, field: torch.nn.Module) -> dict[str, float]:
        """Those figures for the current field (a task with a costly full evaluation computes a cheaper one)."""
        metrics = self.evaluate(self.predict(field))
        return {k: metrics[k] for k in self.progress_evaluation_keys()}

    def write_outputs(self, pred: Any, out_dir: Path, metrics: dict[str, Any]) -> None:
        raise NotImplementedError

    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """A policy's highest open frequency at ``coords`` (SAPE Fig. 8-10); default: no picture."""

    def write_encoding_map(self, values: np.ndarray, label: str, name: str, pred: Any, out_dir: Path) -> None:
        """An encoding's per-point property at ``coords`` (learned_rbf's sigma); default: no picture."""

    def write_frames(self, frames: list[tuple[int, Any, Any]], vmax: float, out_dir: Path) -> None:
        """Snapshots during training (``--frames``); default: none."""
