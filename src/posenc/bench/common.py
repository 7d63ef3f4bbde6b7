"""Shared benchmark plumbing: a job pool that never oversubscribes the cores, and table statistics."""

from __future__ import annotations

import ctypes
import math
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


_DRIVER = 0  # in a worker: the pid of the driver that started it
_WAKEUP = -1  # in a worker: the read end of its signal wakeup pipe


def _die_with_parent(driver: int) -> None:
    """Worker initialiser: a killed driver must leave no orphan fits competing for the cores or writing
    run folders that the next driver owns. On Linux the kernel sends SIGTERM when the driver dies: an
    idle worker ends, a fit stops at its next step with a checkpoint; ``_guarded`` then keeps the worker
    from taking the jobs still queued for it. ``driver`` is the driver's pid, passed in rather than read
    here: a worker that starts after its driver died (spawning is slow on a loaded machine) would read
    its new parent instead and take it for the driver. It exits at once."""
    global _DRIVER
    _DRIVER = driver
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != driver:  # checked after the prctl, so no death between the two is missed
        os._exit(1)
    # Every signal that reaches a Python handler writes its number here, whatever handler a job has
    # installed: a fit catches SIGTERM to stop at a step boundary, so without this the worker could not
    # tell afterwards that it was told to stop. PDEATHSIG fires when the driver's *thread* that spawned
    # the worker exits, which under SIGKILL can come before getppid() changes: so a SIGTERM seen here
    # ends the worker unconditionally (a driver that is alive terminates its workers the same way).
    global _WAKEUP
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    _WAKEUP = r


def _told_to_stop() -> bool:
    """True when a SIGTERM reached this worker since it started (read from the wakeup pipe)."""
    if _WAKEUP < 0:
        return False
    try:
        seen = os.read(_WAKEUP, 4096)
    except BlockingIOError:
        return False
    return signal.SIGTERM in seen


def _guarded(fn: Callable[[Any], Any], job: Any) -> Any:
    """Run one job in a worker, unless its driver has died (then, or once the job returns, exit)."""
    if os.getppid() != _DRIVER or _told_to_stop():
        os._exit(1)
    try:
        return fn(job)
    finally:
        if os.getppid() != _DRIVER or _told_to_stop():
            os._exit(1)


def run_jobs(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """Yield ``(job, fn(job))`` as jobs finish. ``workers > 1`` runs them in separate processes
    (``spawn``), and each job is expected to pin itself to one thread."""
    if workers <= 1:
        for job in jobs:
            yield job, fn(job)
        return
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),))
    pending = {pool.submit(_guarded, fn, job): job for job in jobs}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                yield job, fut.result()
    except BaseException:
        # Ctrl-C, SIGTERM or a failed job: queued jobs are dropped and running fits get SIGTERM, which
        # ends each at its next step boundary with a checkpoint (a rerun continues them exactly)
        for fut in pending:
            fut.cancel()
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan"), 0
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals)) if len(vals) > 1 else 0.0
    return m, s, len(vals)


def fmt_pm(values: Iterable[float | None], digits: int = 2) -> str:
    m, s, n = mean_std(values)
    return "-" if n == 0 else f"{m:.{digits}f} ± {s:.{digits}f}"


def write_table(out: Path, stem: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """A benchmark script's results, atomically: ``out/<stem>.md`` (the lines) and ``out/<stem>.jsonl``
    (one sorted-key row per line); the table is printed too."""
    import json

    from ..io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    atomic_write_text(out / f"{stem}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print("\n".join(lines))
