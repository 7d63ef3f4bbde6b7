"""Run folders: one writer at a time, no silent overwrite, resumable state, no stale temporaries.

A run folder holds ``config.json`` (written once the run may start), ``checkpoint.safetensors``
while it trains (every ``checkpoint_every`` steps, every ``checkpoint_seconds`` of wall time, and on
Ctrl-C / SIGTERM), and at the end the model, ``metrics.json`` and pictures. A lock (``flock`` on
``.posenc.lock``) is held while a process writes to it; the kernel releases it when the process
dies, so a killed run never leaves the folder locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from .errors import PosencError

LOCK_FILE = ".posenc.lock"
CHECKPOINT_FILE = "checkpoint.safetensors"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
# settings that may change when a run is resumed: they do not change what is computed (or, for
# iters, only extend it)
RESUMABLE_CHANGES = {"train.iters", "train.threads", "train.device", "train.checkpoint_every", "train.checkpoint_seconds",
                     "train.max_memory", "train.eval_every", "train.step_chunk"}


def prepare_folder(out: Path) -> Path:
    """Create ``out`` (and its parents) or refuse with one line when it cannot be a folder."""
    out = Path(out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise PosencError(f"--out {out}: {parent} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PosencError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PosencError(f"--out {out}: the folder is not writable")
    return out


class RunLock:
    """Exclusive lock on a run folder for the life of a ``with`` block (one writer at a time)."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            self.fd = None
            raise PosencError(f"{self.path.parent} is being written by another posenc process ({holder}); "
                              "wait for it or use another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def remove_temporaries(out: Path) -> list[str]:
    """Delete the hidden ``.NAME.XXXX`` temporaries an atomic write killed mid-way left behind."""
    removed = []
    for p in Path(out).glob(".*"):
        if p.name != LOCK_FILE and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def state(out: Path) -> str:
    """``empty`` (nothing of a run), ``interrupted`` (a checkpoint to resume), ``finished``."""
    out = Path(out)
    if (out / CHECKPOINT_FILE).exists():
        return "interrupted"
    if (out / METRICS_FILE).exists() or (out / MODEL_FILE).exists():
        return "finished"
    return "empty"


def config_differences(stored: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys where two resolved config dicts differ: ``[(key, stored, wanted), ...]``."""
    out = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name + ".")
        elif a != b:
            out.append((name, a, b))
    return out
