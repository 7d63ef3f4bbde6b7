"""Where a suite's fits run. Both executors yield ``(job, metrics)`` as fits finish; the driver alone
writes ``results.jsonl``, so a killed driver loses no finished fit and a rerun repeats none.

- ``local``: a process pool on this machine (``bench.common.run_jobs``), one thread per fit unless told.
- ``ray``: each fit is a Ray task declaring its CPUs (the fit's threads) and, when asked, GPUs; on a
  local Ray cluster started here (``workers`` CPUs) or on a running one (``address``). Install with
  ``pip install 'posenc[ray]'``. A fit's result depends only on its config, so both give the same metrics.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Iterator

from ..errors import PosencError


def local_jobs(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    from ..bench.common import run_jobs

    yield from run_jobs(fn, jobs, workers)


def check_ray(address: str = "") -> None:
    """Fail early, in one line: Ray missing, or an ``address`` nobody answers at."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PosencError("--executor ray needs Ray: pip install 'posenc[ray]'") from None
    if address and address != "auto":
        host, sep, port = address.removeprefix("ray://").rpartition(":")
        if not sep or not port.isdigit():
            raise PosencError(f"--address must be HOST:PORT of a running Ray cluster, got {address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise PosencError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                              "`ray start --head` or leave out --address for a local one") from None


def ray_jobs(fn: Callable[[Any], Any], jobs: list[Any], address: str = "", cpus: int = 1, gpus: float = 0.0,
             workers: int = 1) -> Iterator[tuple[Any, Any]]:
    """Run ``fn(job)`` for every job as Ray tasks; a local cluster gets ``workers`` CPUs."""
    check_ray(address)
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers * cpus, num_gpus=None if gpus else 0, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(fn)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else e
                    if isinstance(cause, PosencError):
                        raise PosencError(str(cause)) from None
                    raise
                yield job, result
    finally:
        if started_here:
            ray.shutdown()
