"""The one fit loop every task uses: full-batch Adam, progress bar, checkpoints, resume, outputs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .config import FitConfig, save_config
from .errors import PosencError
from .io import atomic_write_json, load_tensors, save_tensors
from .methods import build_field, with_defaults
from .networks import Field
from .runtime import resolve_device, seed_everything, set_threads, tune_allocator
from .tasks import make_task

MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"


def validate(cfg: FitConfig) -> None:
    """Reject settings that cannot run, with a message naming the setting."""
    t = cfg.train
    if t.iters <= 0:
        raise PosencError(f"iters must be a positive number of iterations, got {t.iters}")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise PosencError(f"lr must be positive, got {t.lr}")
    if t.threads < 0:
        raise PosencError(f"threads must be >= 0 (0 = default), got {t.threads}")
    if t.checkpoint_every < 0:
        raise PosencError(f"checkpoint_every must be >= 0, got {t.checkpoint_every}")
    if t.lr_schedule not in ("constant", "cosine"):
        raise PosencError(f"lr_schedule must be constant or cosine, got {t.lr_schedule!r}")
    if not 0 < t.lr_final_ratio <= 1:
        raise PosencError(f"lr_final_ratio must be in (0, 1], got {t.lr_final_ratio}")


def save_model(path: Path, field: Field, cfg: FitConfig, extra: dict[str, Any] | None = None) -> None:
    """Weights and buffers as safetensors; the full config rides along in the metadata."""
    meta = {"format": "posenc-model-1", "config": json.dumps(cfg.to_dict())}
    tensors = {f"field.{k}": v for k, v in field.state_dict().items()}
    if extra:
        tensors.update(extra)
    save_tensors(path, tensors, meta)


def load_model(run: str | Path, device: str = "cpu") -> tuple[Field, FitConfig, Any]:
    """Rebuild a saved field (and its task) from a run folder or a ``.safetensors`` file."""
    run = Path(run)
    path = run / MODEL_FILE if run.is_dir() else run
    tensors, meta = load_tensors(path)
    if meta.get("format") != "posenc-model-1" or "config" not in meta:
        raise PosencError(f"{path} is not a posenc model (no posenc config in its metadata)")
    cfg = FitConfig.from_dict(json.loads(meta["config"]))
    task_cls_dims = task_dims(cfg.task)
    field = build_field(cfg, *task_cls_dims)
    state = {k[len("field.") :]: v for k, v in tensors.items() if k.startswith("field.")}
    try:
        field.load_state_dict(state)
    except RuntimeError as exc:
        raise PosencError(f"model file {path} does not match its config: {str(exc).splitlines()[0]}") from None
    return field.to(resolve_device(device)).eval(), cfg, tensors


def task_dims(task: str) -> tuple[int, int]:
    from .tasks import TASKS

    if task not in TASKS:
        raise PosencError(f"unknown task {task!r}")
    return TASKS[task].in_dim, TASKS[task].out_dim


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for key, value in opt.state.get(p, {}).items():
                out[f"opt.{gi}.{pi}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            prefix = f"opt.{gi}.{pi}."
            state = {k[len(prefix) :]: v.to(p.device) for k, v in tensors.items() if k.startswith(prefix)}
            if state:
                state["step"] = state["step"].cpu().float() if "step" in state else torch.tensor(0.0)
                opt.state[p] = state


def param_groups(field: Field, lr: float) -> list[dict[str, Any]]:
    """Adam groups: the encoding's own parameters at its learning rate (LPE and grids: 1e-2), the rest at ``lr``."""
    enc = [p for p in field.encoding.parameters() if p.requires_grad]
    enc_ids = {id(p) for p in enc}
    rest = [p for p in field.parameters() if p.requires_grad and id(p) not in enc_ids]
    groups = [{"params": rest, "lr": lr}]
    if enc:
        groups.append({"params": enc, "lr": field.encoding.lr or lr})
    return groups


class Trainer:
    """Runs one fit: build task and field, train full-batch, evaluate, write every output.

    ``out_dir`` receives ``config.json`` first, then ``checkpoint.safetensors`` every
    ``checkpoint_every`` steps (and on Ctrl-C), and at the end the model, metrics and pictures.
    """

    def __init__(self, cfg: FitConfig, out_dir: str | Path, progress: bool = True) -> None:
        validate(cfg)
        self.cfg = with_defaults(cfg)  # config.json lists every setting, defaults included
        self.out = Path(out_dir)
        self.progress = progress
        tune_allocator()
        set_threads(cfg.train.threads)
        self.device = resolve_device(cfg.train.device)
        self.task = make_task(cfg.task, cfg.data)
        if hasattr(self.task, "cache_dir"):  # shapes: samples are cached beside the run, shared by its siblings
            self.task.cache_dir = self.out.parent / ".posenc-cache"
        seed_everything(cfg.train.seed)
        self.field = build_field(cfg, self.task.in_dim, self.task.out_dim).to(self.device)
        self.opt = torch.optim.Adam(param_groups(self.field, cfg.train.lr))
        self.start = 0
        self.seconds_before = 0.0
        self.history: list[tuple[int, float, float]] = []  # (iteration, training loss, seconds)
        k = cfg.train.frames
        self.frame_at = {max(1, round(cfg.train.iters * (i + 1) / k)) for i in range(k)} if k > 0 else set()
        self.frames: list[tuple[int, Any, Any]] = []

    def _snapshot(self, iteration: int) -> None:
        """Keep a picture of the current fit (and of the policy's frequency map) for ``--frames``."""
        self.field.eval()
        pred = self.task.predict(self.field)
        heat = self._policy_map()
        self.frames.append((iteration, pred, heat))
        self.field.train()

    def _policy_map(self) -> Any:
        policy = self.field.policy
        if policy is None:
            return None
        with torch.no_grad():
            return policy.max_frequency(self.task.coords.to(self.device)).numpy()

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint(self, iteration: int, seconds: float) -> None:
        extra = _optimizer_tensors(self.opt)
        extra["trainer.iteration"] = torch.tensor(iteration)
        extra["trainer.seconds"] = torch.tensor(seconds, dtype=torch.float64)
        save_model(self.out / CHECKPOINT_FILE, self.field, self.cfg, extra)

    def resume(self) -> bool:
        """Continue from ``checkpoint.safetensors`` if present and made with the same config."""
        path = self.out / CHECKPOINT_FILE
        if not path.exists():
            return False
        tensors, meta = load_tensors(path)
        saved = json.loads(meta.get("config", "{}"))
        if saved != self.cfg.to_dict():
            raise PosencError(f"cannot resume: {path} was made with a different config (use a new --out)")
        state = {k[len("field.") :]: v for k, v in tensors.items() if k.startswith("field.")}
        self.field.load_state_dict(state)
        _restore_optimizer(self.opt, tensors)
        self.start = int(tensors["trainer.iteration"])
        self.seconds_before = float(tensors["trainer.seconds"])
        return True

    # -- the loop ------------------------------------------------------------------------
    @staticmethod
    def _make_forward(field: Field, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """The training forward pass on the fixed training points ``x``.

        The encoding is bound to ``x`` once (a fixed encoding is evaluated once; a learned one keeps
        its interpolation plan). A policy's mask multiplies the features; for a fixed encoding the
        masked features are cached until the policy reports a change (after progression, never again).
        """
        encode = field.encoding.bind(x)
        policy = field.policy
        if policy is None:
            return lambda: field.network(encode())
        if not field.encoding.fixed:
            return lambda: field.network(encode() * policy.train_mask())
        cache: dict[str, Any] = {"version": None, "inputs": None}

        def forward() -> torch.Tensor:
            if cache["version"] != policy.version:
                with torch.no_grad():
                    # written into last step's buffer (its graph is gone): no fresh page-faulted allocation
                    cache["inputs"] = torch.mul(encode(), policy.train_mask(), out=cache["inputs"])
                cache["version"] = policy.version
            return field.network(cache["inputs"])

        return forward

    def _loss(self, pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The task's loss and per-sample feedback (tasks with a set loss, e.g. Chamfer, define ``loss``)."""
        if hasattr(self.task, "loss"):
            return self.task.loss(pred, y)
        per_sample = self.task.loss_per_sample(pred, y)
        return per_sample.mean(), per_sample

    def calibrate(self) -> None:
        """A task's warm-up fit (silhouettes: the unit circle) by MSE, with the policy's initial mask."""
        if not hasattr(self.task, "calibration") or self.start > 0:
            return
        x, target, iters, lr = self.task.calibration()
        x, target = x.to(self.device), target.to(self.device)
        opt = torch.optim.Adam(self.field.parameters(), lr=lr)
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            loss = (self.field(x) - target).square().mean()
            loss.backward()
            opt.step()
        with torch.no_grad():
            self.calibration_mse = float((self.field(x) - target).square().mean())

    def train(self) -> float:
        """Train from ``self.start`` to ``iters``; returns the training seconds (including resumed time)."""
        from tqdm import tqdm

        cfg = self.cfg.train
        x, y = self.task.train_data()
        x, y = x.to(self.device), y.to(self.device)
        field = self.field.train()
        t0 = time.perf_counter()  # the fit's time includes fitting the encoding and calibration
        policy = field.policy
        if hasattr(field.encoding, "fit_to_data") and self.start == 0:
            # data-dependent encodings (learned_rbf) fit themselves to the training samples first
            self.encoding_fit = field.encoding.fit_to_data(x, y)
        batch = int(getattr(self.task, "batch_size", 0) or 0)
        if batch and batch < x.shape[0]:
            # mini-batches (shapes): a fresh seeded draw every step, through the general forward path
            gen = torch.Generator().manual_seed(self.cfg.train.seed + self.start)
            state: dict[str, torch.Tensor] = {}

            def forward() -> torch.Tensor:
                idx = torch.randint(x.shape[0], (batch,), generator=gen).to(self.device)
                state["x"] = x[idx]
                state["y"] = y[idx]
                return field(state["x"])

            def target() -> torch.Tensor:
                return state["y"]
        else:
            if policy is not None:
                policy.bind(x)
            forward = self._make_forward(field, x)
            state = {}

            def target() -> torch.Tensor:
                return y
        self.calibrate()
        bar = tqdm(total=cfg.iters, initial=self.start, disable=not self.progress, desc="fit", unit="it", dynamic_ncols=True)
        it = self.start
        try:
            base_lrs = [g["lr"] for g in self.opt.param_groups]
            for it in range(self.start, cfg.iters):
                if cfg.lr_schedule == "cosine":
                    scale = cfg.lr_final_ratio + (1 - cfg.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * it / cfg.iters))
                    for group, lr in zip(self.opt.param_groups, base_lrs):
                        group["lr"] = lr * scale
                self.opt.zero_grad(set_to_none=True)
                loss, per_sample = self._loss(forward(), target())
                loss.backward()
                self.opt.step()
                if policy is not None:
                    policy.step(it, per_sample.detach(), state.get("x"))
                if self.frame_at and it + 1 in self.frame_at and hasattr(self.task, "write_frames"):
                    self._snapshot(it + 1)
                if it % 25 == 0 or it == cfg.iters - 1:
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise PosencError(f"training diverged at iteration {it} (loss {value}); try a smaller lr")
                    self.history.append((it + 1, value, round(self.seconds_before + time.perf_counter() - t0, 3)))
                    bar.set_postfix({k: f"{v:.4g}" for k, v in self.task.progress_metrics(value).items()}, refresh=False)
                bar.update(1)
                if cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iters:
                    self._checkpoint(it + 1, self.seconds_before + time.perf_counter() - t0)
        except KeyboardInterrupt:
            bar.close()
            seconds = self.seconds_before + time.perf_counter() - t0
            self._checkpoint(it, seconds)
            self.finish(seconds, iterations=it, interrupted=True)
            raise
        bar.close()
        return self.seconds_before + time.perf_counter() - t0

    def finish(self, seconds: float, iterations: int | None = None, interrupted: bool = False) -> dict[str, Any]:
        """Evaluate and write the model, metrics and pictures."""
        self.field.eval()
        pred = self.task.predict(self.field)
        metrics = self.task.evaluate(pred)
        metrics.update(
            {
                "params": self.field.parameter_counts()["total"],
                "params_detail": self.field.parameter_counts(),
                "seconds": round(seconds, 3),
                "iters": self.cfg.train.iters if iterations is None else iterations,
                "seed": self.cfg.train.seed,
                "threads": torch.get_num_threads(),
                "device": str(self.device),
                "interrupted": interrupted,
                "loss_history": self.history,
            }
        )
        if getattr(self, "encoding_fit", None):
            metrics["encoding_fit"] = self.encoding_fit
        if hasattr(self, "calibration_mse"):
            metrics["calibration_mse"] = self.calibration_mse
        policy = self.field.policy
        if policy is not None:
            metrics["policy"] = policy.summary()
            self.task.write_frequency_map(self._policy_map(), float(policy.band_freqs.max()), self.out)
        if hasattr(self.field.encoding, "detail_map") and hasattr(self.task, "write_encoding_map"):
            with torch.no_grad():
                values, label, name = self.field.encoding.detail_map(self.task.coords.to(self.device))
            self.task.write_encoding_map(values.cpu().numpy(), label, name, pred, self.out)
        if self.frames:
            self.task.write_frames(self.frames, float(policy.band_freqs.max()) if policy is not None else 0.0, self.out)
        self.task.write_outputs(pred, self.out, metrics)
        save_model(self.out / MODEL_FILE, self.field, self.cfg)
        atomic_write_json(self.out / "metrics.json", metrics)
        return metrics

    def run(self, resume: bool = False) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.out / "config.json")
        if resume:
            self.resume()
        seconds = self.train()
        metrics = self.finish(seconds)
        (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
        return metrics


def fit(cfg: FitConfig, out_dir: str | Path, progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Fit ``cfg`` and write its outputs into ``out_dir``; returns the metrics."""
    return Trainer(cfg, out_dir, progress=progress).run(resume=resume)
