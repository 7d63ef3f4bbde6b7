"""The fit loop every task uses, built on the public API: ``build_field``, ``param_groups``,
:func:`bound_step` (a full-batch step on a fixed training set, over ``field.bind``), ``policy.update``,
``posenc.save``.

Pieces: :func:`plan_batch` (full batch or mini-batches, by memory), :func:`make_step` (one step's
forward and backward), :func:`calibrate`; :class:`Trainer` runs them in a run folder (checkpoints,
exact resume, outputs) and :func:`fit` is its one-call form.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TASK_DIMS, FitConfig, resolve_config, save_config
from .encodings import Encoding
from .errors import PosencError
from .io import atomic_write_json, load_state, read_model, save
from .methods import build_field
from .networks import Field, param_groups
from .progressive import find_policy
from .runtime import machine_info, resolve_device, seed_everything, set_threads, tune_allocator
from .tasks import Task, make_task

from .runs import CHECKPOINT_FILE, LOCK_FILE, MODEL_FILE, RESUMABLE_CHANGES, RunLock, config_differences, prepare_folder, remove_temporaries, state




MAX_ITERS = 100_000_000
# a finite loss this many times the first step's, this many steps in a row, has diverged
EXPLODE_FACTOR = 1e3
EXPLODE_STEPS = 10


def validate(cfg: FitConfig) -> None:
    """Reject settings that cannot run, with a message naming the setting."""
    t = cfg.train
    if not 0 < t.iters <= MAX_ITERS:
        raise PosencError(f"iters must be between 1 and {MAX_ITERS:,}, got {t.iters}")
    if not (0 < t.lr <= 1 and math.isfinite(t.lr)):
        raise PosencError(f"lr must be in (0, 1] (Adam steps of more than 1 diverge), got {t.lr}")
    if not t.max_memory > 0:
        raise PosencError(f"max_memory must be a positive number of GB, got {t.max_memory}")
    if not 0 <= t.threads <= 1024:
        raise PosencError(f"threads must be 0 to 1024 (0 = default), got {t.threads}")
    if not 0 <= t.seed < 2**63:
        raise PosencError(f"seed must be from 0 to 2^63 - 1, got {t.seed}")
    if t.checkpoint_every < 0:
        raise PosencError(f"checkpoint_every must be >= 0, got {t.checkpoint_every}")
    if t.frames < 0:
        raise PosencError(f"frames must be >= 0 (0 = none), got {t.frames}")
    if t.step_chunk < 0:
        raise PosencError(f"step_chunk must be >= 0 (0 = one pass per step), got {t.step_chunk}")
    if t.eval_every < 0:
        raise PosencError(f"eval_every must be >= 0 (0 = evaluate at the end only), got {t.eval_every}")
    if t.lr_schedule not in ("constant", "cosine"):
        raise PosencError(f"lr_schedule must be constant or cosine, got {t.lr_schedule!r}")
    if not 0 < t.lr_final_ratio <= 1:
        raise PosencError(f"lr_final_ratio must be in (0, 1], got {t.lr_final_ratio}")


def load_model(run: str | Path, device: str = "cpu") -> tuple[Field, FitConfig, dict[str, Any]]:
    """Rebuild a run's field and its run config from a run folder or a ``.safetensors`` file; the third
    item is what the task recorded about its input (``{"height", "width"}`` for images)."""
    from .io import load_with_metadata

    run = Path(run)
    path = run / MODEL_FILE if run.is_dir() else run
    field, info = load_with_metadata(path, device)
    if "run" not in info:
        raise PosencError(f"{path} holds a field but no run config (saved with posenc.save); load it with posenc.load")
    cfg = resolve_config(FitConfig.from_dict(info["run"]))
    return field, cfg, dict(info.get("task", {}))


def checkpoint_matches(run: str | Path, cfg: FitConfig) -> bool:
    """True when ``run`` holds a checkpoint made with the same resolved config as ``cfg``."""
    path = Path(run) / CHECKPOINT_FILE
    if not path.exists():
        return False
    try:
        _, info = read_model(path)
        return resolve_config(FitConfig.from_dict(info.get("run", {}))).to_dict() == resolve_config(cfg).to_dict()
    except PosencError:
        return False


def task_dims(task: str) -> tuple[int, int]:
    if task not in TASK_DIMS:
        raise PosencError(f"unknown task {task!r}")
    return TASK_DIMS[task]


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


def lr_scale(train: Any, it: int) -> float:
    """The learning-rate factor at iteration ``it``: 1, or a cosine decay to ``lr_final_ratio``."""
    if train.lr_schedule != "cosine":
        return 1.0
    return train.lr_final_ratio + (1 - train.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * it / train.iters))


def calibrate(field: Field, task: Task, device: torch.device) -> float | None:
    """A task's warm-up fit (silhouettes: the unit circle) by MSE, with the policy's initial mask."""
    spec = task.calibration()
    if spec is None:
        return None
    x, target, iters, lr = spec
    x, target = x.to(device), target.to(device)
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    policy = find_policy(field)
    with policy.paused() if policy is not None else contextlib.nullcontext():  # the mask holds still
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            loss = (field(x) - target).square().mean()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float((field(x) - target).square().mean())


DEFAULT_BATCH = 1 << 16  # pixels per step when a full batch does not fit the memory budget
MIN_BATCH = 256


def plan_batch(field: Field, task: Task, n: int, max_memory_gb: float) -> dict[str, Any]:
    """Full batch or mini-batches, from the task's request and an estimate of the step's memory.

    ``task.batch_size`` 0 asks for the full batch when ``n`` samples fit ``max_memory_gb``, else
    batches of 65,536 (fewer if even that is too much); a batch that does not fit is refused with a
    message naming the setting to change, before any work starts.
    """
    per_sample = field.bytes_per_sample()
    budget = max_memory_gb * 1e9
    requested = int(task.batch_size or 0)
    if requested < 0:
        raise PosencError(f"batch must be >= 0 (0 = automatic), got {requested}")
    if requested == 0:
        batch = n if n * per_sample <= budget else min(DEFAULT_BATCH, int(budget // per_sample))
        if batch < min(MIN_BATCH, n):
            raise PosencError(f"--max-memory {max_memory_gb:g} GB cannot hold one batch of {MIN_BATCH} samples "
                              f"({per_sample:,} bytes each); raise --max-memory")
    else:
        batch = min(requested, n)
        if batch * per_sample > budget:
            raise PosencError(f"a batch of {batch:,} samples needs about {batch * per_sample / 1e9:.1f} GB, above --max-memory "
                              f"{max_memory_gb:g} GB; lower --batch or raise --max-memory")
    return {"mode": "full" if batch >= n else "mini", "batch": batch, "samples": n, "bytes_per_sample": per_sample,
            "estimated_step_gb": round(batch * per_sample / 1e9, 3), "max_memory_gb": max_memory_gb}


def step_passes(task: Task, batch: int, chunk: int) -> int:
    """How many forward / backward passes a step of ``batch`` samples takes: ``ceil(batch / chunk)``
    when the task's loss is the mean of its per-sample losses (and needs no input gradient), else 1."""
    if not chunk or batch <= chunk or type(task).loss is not Task.loss or task.needs_input_grad:
        return 1
    return -(-batch // chunk)


def _slices(n: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def _in_passes(passes: list[tuple[slice, Callable[[], torch.Tensor]]], y: torch.Tensor,
               loss_per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward pass by pass; each backpropagates ``sum(its per-sample losses) / n``, so the
    accumulated gradient is that of the mean over all ``n`` samples."""
    total: torch.Tensor | None = None
    parts = []
    for rows, forward in passes:
        per = loss_per_sample(forward(), y[rows])
        part = per.sum() / n
        part.backward()
        total = part.detach() if total is None else total + part.detach()
        parts.append(per.detach())
    assert total is not None
    return total, torch.cat(parts)


def bound_step(field: Field, x: torch.Tensor, y: torch.Tensor,
               loss_per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               chunk: int = 0) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A full-batch training step on fixed points, forward and backward: ``x`` ``(N, in_dim)``, targets
    ``y`` ``(N, ...)``, ``loss_per_sample(prediction, target) -> (N,)``; returns ``() -> (loss,
    per_sample)`` with ``loss`` = the mean of the per-sample losses, whose gradient it has accumulated
    into the parameters' ``.grad`` (call ``opt.zero_grad()`` before and ``opt.step()`` after; then
    ``policy.update(per_sample)``).

    Everything that does not depend on parameters is computed once (``field.bind``). With ``chunk`` >
    0 and ``N`` > ``chunk`` the step runs in passes of ``chunk`` points (``field.bind_chunks``), each
    backpropagating the sum of its per-sample losses / ``N``: the gradient of one pass, to rounding, with
    the activations of ``chunk`` points alive at a time. On a CPU that keeps each activation below
    glibc's largest mmap threshold (32 MB), so a step reuses heap memory instead of mapping, faulting
    and zeroing fresh pages (``posenc bench perf`` measures the gain); on a GPU one pass (``chunk`` 0)
    is best. ``N`` <= ``chunk`` is one pass, exactly as without chunking.
    """
    n = x.shape[0]
    if not chunk or n <= chunk:
        forward = field.bind(x)

        def one_pass() -> tuple[torch.Tensor, torch.Tensor]:
            per = loss_per_sample(forward(), y)
            loss = per.mean()
            loss.backward()
            return loss.detach(), per.detach()

        return one_pass
    passes = field.bind_chunks(x, chunk)
    return lambda: _in_passes(passes, y, loss_per_sample, n)


def make_step(field: Field, task: Task, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, batch: int,
              chunk: int = 0) -> Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """One training step's forward and backward: ``() -> (loss, per-sample loss, points)``, the
    gradient accumulated; ``points`` is what ``policy.update`` must be given besides the losses (None:
    the losses alone, the points of the last forward being those of the step).

    Full batch: :func:`bound_step` when the task's loss is the mean of its per-sample losses, else the
    bound field (``field.bind``) in one pass. Mini-batches (3-D shapes, large images): a seeded draw
    every step through the general path, with the points requiring grad when the loss needs their
    gradient, and in passes of ``chunk`` when the batch is larger and the loss a mean; a progressive
    policy's feedback then comes from each batch.
    """
    mean_loss = type(task).loss is Task.loss  # the loss is the mean of the per-sample losses: passes may split it
    if batch < x.shape[0]:
        in_passes = step_passes(task, batch, chunk) > 1

        def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            idx = torch.randint(x.shape[0], (batch,), generator=gen).to(x.device)
            xb = x[idx].requires_grad_(task.needs_input_grad)
            if in_passes:
                passes = [(rows, lambda rows=rows: field(xb[rows])) for rows in _slices(batch, chunk)]
                loss, per = _in_passes(passes, y[idx], task.loss_per_sample, batch)
                return loss, per, xb
            loss, per = task.loss(field(xb), y[idx], xb)
            loss.backward()
            return loss.detach(), per.detach(), None

        return draw
    if task.needs_input_grad:
        xg = x.clone().requires_grad_(True)

        def whole() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            loss, per = task.loss(field(xg), y, xg)
            loss.backward()
            return loss.detach(), per.detach(), None

        return whole
    if mean_loss:
        step = bound_step(field, x, y, task.loss_per_sample, chunk)
        return lambda: (*step(), None)
    forward = field.bind(x)

    def bound() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        loss, per = task.loss(forward(), y, x)
        loss.backward()
        return loss.detach(), per.detach(), None

    return bound


class Trainer:
    """Runs one fit: build task and field, train, evaluate, write every output.

    ``out_dir`` receives ``config.json`` first, then ``checkpoint.safetensors`` every
    ``checkpoint_every`` steps (and on Ctrl-C), and at the end the model, metrics and pictures.
    """

    def __init__(self, cfg: FitConfig, out_dir: str | Path, progress: bool = True) -> None:
        cfg = resolve_config(cfg)  # config.json lists every setting, defaults included
        validate(cfg)
        self.cfg = cfg
        self.out = Path(out_dir)
        self.progress = progress
        tune_allocator()
        set_threads(cfg.train.threads)
        self.device = resolve_device(cfg.train.device)
        self.task: Task = make_task(cfg.task, cfg.data)
        self.task.progress = progress
        self.task.set_cache_dir(self.out.parent / ".posenc-cache")  # shapes: samples shared by sibling runs
        seed_everything(cfg.train.seed)
        self.field = build_field(cfg).to(self.device)
        for module in self.field.modules():
            if isinstance(module, Encoding):
                module.outside = self.task.encoding_outside
        self.opt = torch.optim.Adam(param_groups(self.field, cfg.train.lr))
        self.gen = torch.Generator().manual_seed(cfg.train.seed)  # mini-batch draws (checkpointed)
        self.task.generator = self.gen  # and a task's own draws inside its loss
        x, y = self.task.train_data()
        self.x, self.y = x.to(self.device), y.to(self.device)
        # full batch or mini-batches, decided (and refused when nothing fits) before anything is written
        self.batching: dict[str, Any] = plan_batch(self.field, self.task, x.shape[0], cfg.train.max_memory)
        self.batching.update(chunk=cfg.train.step_chunk, passes=step_passes(self.task, self.batching["batch"], cfg.train.step_chunk))
        self.start = 0
        self.seconds_before = 0.0
        self.history: list[tuple[int, float, float]] = []  # (iteration, training loss, seconds)
        self.eval_history: list[tuple[int, dict[str, float]]] = []  # (iteration, held-out figures) by --eval-every
        self.encoding_fit: dict[str, float] | None = None
        self.calibration_mse: float | None = None
        k = cfg.train.frames
        self.frame_at = {max(1, round(cfg.train.iters * (i + 1) / k)) for i in range(k)} if k > 0 else set()
        self.frames: list[tuple[int, Any, Any]] = []

    @property
    def policy(self) -> Any:
        return self.field.policy

    def _policy_map(self) -> Any:
        if self.policy is None:
            return None
        coords = self.task.coords
        with torch.no_grad():  # in chunks: a 12 MP picture has 12M points x n bands of mask
            parts = [self.policy.max_frequency(coords[i : i + 65536].to(self.device)) for i in range(0, len(coords), 65536)]
        return torch.cat(parts).numpy()

    def _snapshot(self, iteration: int) -> None:
        """Keep a picture of the current fit (and of the policy's frequency map) for ``--frames``."""
        self.field.eval()
        self.frames.append((iteration, self.task.predict(self.field), self._policy_map()))
        self.field.train()

    def _evaluate_now(self) -> dict[str, float]:
        """The task's held-out figures of the current field (``--eval-every``); training state untouched."""
        self.field.eval()
        try:
            with torch.no_grad():
                return {k: float(v) for k, v in self.task.progress_evaluation(self.field).items()}
        finally:
            self.field.train()

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint(self, iteration: int, seconds: float) -> None:
        extra = _optimizer_tensors(self.opt)
        extra["trainer.iteration"] = torch.tensor(iteration)
        extra["trainer.seconds"] = torch.tensor(seconds, dtype=torch.float64)
        extra["trainer.generator"] = self.gen.get_state()
        extra["trainer.history"] = torch.tensor(self.history, dtype=torch.float64).reshape(-1, 3)
        if self.eval_history:
            keys = sorted(self.eval_history[0][1])
            extra["trainer.eval_history"] = torch.tensor([[it, *(m[k] for k in keys)] for it, m in self.eval_history],
                                                         dtype=torch.float64)
        save(self.field, self.out / CHECKPOINT_FILE, self.cfg.to_dict(), extra, task_info=self.task.info())

    def resume(self) -> bool:
        """Continue from ``checkpoint.safetensors``. The config must be the checkpoint's, except for
        settings that do not change what is computed (threads, device, checkpointing, memory budget)
        and ``iters``, which may grow; any other difference is refused, naming the setting."""
        path = self.out / CHECKPOINT_FILE
        if not path.exists():
            raise PosencError(f"nothing to resume in {self.out}: no {CHECKPOINT_FILE} (the run finished, or never started)")
        tensors, info = read_model(path)
        stored = resolve_config(FitConfig.from_dict(info.get("run", {}))).to_dict()
        blocking = [d for d in config_differences(stored, self.cfg.to_dict()) if d[0] not in RESUMABLE_CHANGES]
        if blocking:
            key, was, now = blocking[0]
            more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
            raise PosencError(f"cannot resume {self.out}: {key} is {now!r} now but {was!r} in its checkpoint{more}; "
                              "resume with the run's own settings (posenc resume RUN), or use a new --out")
        start = int(tensors["trainer.iteration"])
        if start < 0:
            raise PosencError(f"cannot resume {self.out}: its checkpoint claims {start} iterations")
        if self.cfg.train.iters < start:
            raise PosencError(f"cannot resume {self.out} with --iters {self.cfg.train.iters}: it has already trained {start} iterations")
        load_state(self.field, tensors, path)
        _restore_optimizer(self.opt, tensors)
        if self.policy is not None and stored["train"]["iters"] != self.cfg.train.iters:
            self.policy.rebase()  # a longer budget: the ramp continues from where it is, at the new speed
        self.start = start
        self.seconds_before = float(tensors["trainer.seconds"])
        if "trainer.generator" in tensors:
            self.gen.set_state(tensors["trainer.generator"])
        if "trainer.history" in tensors:
            self.history = [(int(it), float(loss), float(sec)) for it, loss, sec in tensors["trainer.history"].tolist()]
        if "trainer.eval_history" in tensors:
            keys = sorted(self.task.progress_evaluation_keys())
            self.eval_history = [(int(row[0]), dict(zip(keys, row[1:]))) for row in tensors["trainer.eval_history"].tolist()]
        return True

    # -- the loop ------------------------------------------------------------------------
    def train(self) -> float:
        """Train from ``self.start`` to ``iters``; returns the training seconds (including resumed time)."""
        from tqdm import tqdm

        cfg = self.cfg.train
        x, y = self.x, self.y
        field = self.field.train()
        t0 = time.perf_counter()  # the fit's time includes fitting the encoding and calibration
        if self.start == 0:
            # data-dependent encodings (learned_rbf) fit themselves to the training samples first
            self.task.prepare_field(field)
            self.encoding_fit = field.base_encoding.fit_to_data(x, y)
            self.calibration_mse = calibrate(field, self.task, self.device)
        if self.progress and self.batching["estimated_step_gb"] >= 1.0:
            b = self.batching
            print(f"posenc: {b['mode']} batch of {b['batch']:,} of {b['samples']:,} samples; estimated step memory "
                  f"{b['estimated_step_gb']:.1f} GB (--max-memory {b['max_memory_gb']:g} GB)", file=sys.stderr)
        step = make_step(field, self.task, x, y, self.gen, self.batching["batch"], self.batching["chunk"])
        policy = self.policy
        bar = tqdm(total=cfg.iters, initial=self.start, disable=not self.progress, desc="fit", unit="it", dynamic_ncols=True)
        it = self.start
        base_lrs = [g["lr"] for g in self.opt.param_groups]
        last_save = time.monotonic()
        exploding = 0  # consecutive steps with an exploding (finite) loss
        postfix: dict[str, str] = {}
        # Ctrl-C and SIGTERM end the run at the next step boundary, so the checkpoint is a consistent
        # state (the step either happened or did not) and resuming it is exact
        stop: list[int] = []
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
        try:
            for it in range(self.start, cfg.iters):
                scale = lr_scale(cfg, it)
                for group, lr in zip(self.opt.param_groups, base_lrs):
                    group["lr"] = lr * scale
                self.opt.zero_grad(set_to_none=True)
                loss, per_sample, points = step()
                self.opt.step()
                if policy is not None:
                    policy.update(per_sample) if points is None else policy.update(per_sample, points.detach())
                if self.frame_at and it + 1 in self.frame_at:
                    self._snapshot(it + 1)
                value = float(loss)
                initial = self.history[0][1] if self.history else value
                exploding = exploding + 1 if value > EXPLODE_FACTOR * max(initial, 1e-12) else 0
                # checked every step: the last checkpoint stays the last good one
                if not math.isfinite(value) or exploding >= EXPLODE_STEPS:
                    kept = self.out / CHECKPOINT_FILE
                    what = (f"loss {value}" if not math.isfinite(value) else
                            f"loss {value:.4g}, over {EXPLODE_FACTOR:g}x the first step's {initial:.4g} for {EXPLODE_STEPS} steps")
                    raise PosencError(f"training diverged at iteration {it} ({what}); "
                                      f"{'the last good checkpoint is kept in ' + str(kept) if kept.exists() else 'nothing was saved'}"
                                      "; try a smaller lr")
                if it % 25 == 0 or it == cfg.iters - 1:
                    self.history.append((it + 1, value, round(self.seconds_before + time.perf_counter() - t0, 3)))
                    postfix.update({k: f"{v:.4g}" for k, v in self.task.progress_metrics(value).items()})
                    bar.set_postfix(postfix, refresh=False)
                if cfg.eval_every and (it + 1) % cfg.eval_every == 0 and it + 1 < cfg.iters:
                    figures = self._evaluate_now()
                    self.eval_history.append((it + 1, figures))
                    postfix.update({k: f"{v:.4g}" for k, v in figures.items()})
                    bar.set_postfix(postfix, refresh=False)
                    if self.progress:
                        bar.write(f"iteration {it + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()), file=sys.stderr)
                bar.update(1)
                if stop and it + 1 < cfg.iters:
                    bar.close()
                    seconds = self.seconds_before + time.perf_counter() - t0
                    self._checkpoint(it + 1, seconds)
                    self.finish(seconds, iterations=it + 1, interrupted=True)
                    raise KeyboardInterrupt
                by_steps = cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0
                by_time = cfg.checkpoint_seconds and time.monotonic() - last_save >= cfg.checkpoint_seconds
                if (by_steps or by_time) and it + 1 < cfg.iters and not exploding:  # never checkpoint a blow-up
                    self._checkpoint(it + 1, self.seconds_before + time.perf_counter() - t0)
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            if stop:  # already checkpointed at a step boundary above
                raise
            # raised inside a step (not through the handler): that step is discarded; the state is the
            # one after step it - 1 as long as the interrupt came before the optimiser step
            bar.close()
            seconds = self.seconds_before + time.perf_counter() - t0
            self._checkpoint(it, seconds)
            self.finish(seconds, iterations=it, interrupted=True)
            raise
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
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
                "iters": self.cfg.train.iters if iterations is None else iterations,
                "seed": self.cfg.train.seed,
                "threads": torch.get_num_threads(),
                "device": str(self.device),
                "machine": machine_info(self.device),  # a refit elsewhere matches only where this does
                "interrupted": interrupted,
                "loss_history": [(it, loss) for it, loss, _ in self.history],
                "eval_history": [[it, figures] for it, figures in self.eval_history],
            }
        )
        if self.batching:
            metrics["batching"] = self.batching
        if self.encoding_fit:
            metrics["encoding_fit"] = self.encoding_fit
        if self.calibration_mse is not None:
            metrics["calibration_mse"] = self.calibration_mse
        policy = self.policy
        vmax = float(policy.band_freqs.max()) if policy is not None and policy.bands_total else 0.0
        if policy is not None:
            metrics["policy"] = policy.summary()
            self.task.write_frequency_map(self._policy_map(), vmax, self.out)
        with torch.no_grad():
            detail = self.field.base_encoding.detail_map(self.task.coords.to(self.device))
        if detail is not None:
            values, label, name = detail
            self.task.write_encoding_map(values.cpu().numpy(), label, name, pred, self.out)
        if self.frames:
            self.task.write_frames(self.frames, vmax, self.out)
        self.task.write_outputs(pred, self.out, metrics)
        save(self.field, self.out / MODEL_FILE, self.cfg.to_dict(), task_info=self.task.info())
        # metrics.json holds what the run computed (identical for the same seed and threads);
        # wall-clock times go to timing.json
        atomic_write_json(self.out / "metrics.json", metrics)
        timing = {"seconds": round(seconds, 3), "history_seconds": [(it, sec) for it, _, sec in self.history]}
        atomic_write_json(self.out / "timing.json", timing)
        return {**metrics, "seconds": timing["seconds"]}

    def run(self, resume: bool = False, force: bool = False) -> dict[str, Any]:
        """Train and write the run, holding the folder's lock. A folder with a finished or an
        interrupted run is not overwritten unless ``force``; ``resume`` continues its checkpoint."""
        created = not self.out.exists()
        prepare_folder(self.out)
        try:
            return self._run_locked(resume, force)
        finally:
            if created and [p.name for p in self.out.iterdir()] in ([], [LOCK_FILE]):  # refused before any output
                (self.out / LOCK_FILE).unlink(missing_ok=True)
                self.out.rmdir()

    def _run_locked(self, resume: bool, force: bool) -> dict[str, Any]:
        with RunLock(self.out):
            remove_temporaries(self.out)
            found = state(self.out)
            if resume and found == "empty":
                # killed before its first checkpoint: nothing was kept, so starting over loses nothing
                if self.progress:
                    print(f"posenc: {self.out} has no checkpoint yet (stopped before the first one): starting from step 0",
                          file=sys.stderr)
            elif resume:
                self.resume()
            elif found != "empty" and not force:
                hint = "continue it with `posenc resume RUN` (or --resume)" if found == "interrupted" else "use another --out"
                raise PosencError(f"{self.out} holds {'an interrupted' if found == 'interrupted' else 'a finished'} run; "
                                  f"{hint}, or --force to overwrite it")
            elif force:
                (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
            save_config(self.cfg, self.out / "config.json")
            seconds = self.train()
            metrics = self.finish(seconds)
            (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
        return metrics


def fit(cfg: FitConfig, out_dir: str | Path, progress: bool = True, resume: bool = False, force: bool = False) -> dict[str, Any]:
    """Fit ``cfg`` (resolved first) and write its outputs into ``out_dir``; returns the metrics.

    ``resume`` continues an interrupted run from its checkpoint; ``force`` overwrites a run already
    in ``out_dir`` (without it, that is an error)."""
    return Trainer(cfg, out_dir, progress=progress).run(resume=resume, force=force)


def stored_config(run: str | Path) -> FitConfig:
    """The config a run folder was made with (its checkpoint's, else its ``config.json``)."""
    from .config import read_config_file

    run = Path(run)
    if (run / CHECKPOINT_FILE).exists():
        _, info = read_model(run / CHECKPOINT_FILE)
        return FitConfig.from_dict(info.get("run", {}))
    if (run / "config.json").exists():
        return FitConfig.from_dict(read_config_file(run / "config.json"))
    raise PosencError(f"{run} is not a run folder (no checkpoint or config.json)")
