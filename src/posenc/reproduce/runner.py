"""Run a reproduction suite: plan its fits, select settings on validation images, run the test fits on
an executor, and keep every result in ``results.jsonl`` (resumable: a rerun skips every fit whose
complete config already has a row, and a fit cut short continues from its checkpoint).

Layout of ``--out``::

    results.jsonl                 one row per fit or baseline (config, metrics, role, row, column, seed)
    report.md, report.html        made from results.jsonl by ``report.py``
    <column>/runs/<input>/<row>_seed<k>/         test fits (their pictures feed the montages)
    <column>/select/<input>/<method>_seed<k>/    validation fits of a setting search

Run folders are not committed: in a fresh clone a finished suite has its rows but not the pictures its
montages show, so a rerun refits the few seed-0 fits pictured (``picture_jobs``) and checks that each
reproduces its recorded metric.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config import TASK_DIMS, FitConfig, resolve_config
from ..errors import PosencError
from ..io import append_jsonl, read_jsonl
from .suite import Column, Row, Suite, with_setting

DEFAULT_DATA_ROOT = Path("../shared/data")


@dataclass
class ReproduceConfig:
    """How to run a suite: ``scale`` (cpu or paper), ``seeds`` (0 = the suite's), ``only`` row names,
    ``limit`` test inputs per column (0 = all), the executor (``local`` with ``workers`` processes, or
    ``ray`` on ``address``), ``threads`` per fit, ``device`` and ``gpus`` per fit (Ray)."""

    suite: str
    out: str
    scale: str = "cpu"
    seeds: int = 0
    only: tuple[str, ...] = ()
    limit: int = 0
    executor: str = "local"
    workers: int = 1
    address: str = ""
    threads: int = 1
    device: str = "cpu"
    gpus: float = 0.0
    data_root: str = str(DEFAULT_DATA_ROOT)
    iters: int = 0  # 0 = the suite's; a smaller budget is for quick looks only (recorded in every config)
    reuse: tuple[str, ...] = ()  # other suites' folders: a fit with the same complete config is taken from them
    pictures: bool = True  # refit the pictured seed-0 fits whose run folders are gone (a fresh clone)


# -- planning ---------------------------------------------------------------------------------------
def find_input(root: Path, column: Column, stem: str) -> Path:
    from ..bench.runner import family_of, list_images

    folder = Path(column.data) if column.data.startswith("./") else root / column.data
    if not folder.is_dir():
        if column.prepare:
            raise PosencError(f"data folder not found: {folder}; make it with `{column.prepare}`")
        raise PosencError(f"data folder not found: {folder} (set --data-root; the shared data is ../shared/data)")
    return list_images(folder, names=(stem,), suffixes=family_of(column.task).suffixes)[0]


def fit_config(suite: Suite, column: Column, rc: ReproduceConfig, method: str, path: Path, seed: int,
               placeholder: bool = False) -> FitConfig:
    """The complete run config of one fit: column data settings < scale settings (data settings, or dotted
    keys such as ``"train.iters"``) < column overrides
    (``placeholder``: ``path`` only names the input, for estimates before any data is read)."""
    from ..methods import match_params

    overrides: dict[str, Any] = {f"data.{k}": v for k, v in column.settings.items()}
    overrides.update({k if "." in k else f"data.{k}": v  # a dotted key ("train.iters") names any section
                      for k, v in suite.scales.get(rc.scale, {}).get(column.task, {}).items()})
    overrides.update(column.overrides)
    from ..bench.runner import family_of

    overrides.update({"data.path": str(path)} if placeholder else
                     {f"data.{k}": v for k, v in family_of(column.task).settings_of(path).items()})
    overrides.update({"train.seed": seed, "train.threads": rc.threads, "train.device": rc.device})
    if rc.iters:
        overrides["train.iters"] = rc.iters
    cfg = resolve_config(column.task, method=method, overrides=overrides)
    if column.match_params:
        cfg = match_params(cfg, column.match_params, *TASK_DIMS[column.task])
    return cfg


def digest(job: dict[str, Any]) -> str:
    """A fit's identity: its complete config (minus speed settings); a baseline's: its name and data."""
    from ..bench.runner import config_digest

    if job["kind"] == "baseline":
        return "b" + hashlib.sha1(json.dumps([job["baseline"], job["data"]], sort_keys=True).encode()).hexdigest()[:11]
    return config_digest(job["config"])


def run_folder(folder: Path, image: str, row: str, seed: int) -> Path:
    """A fit's run folder under ``folder`` (``<column>/runs`` or ``<column>/select``)."""
    from ..bench.runner import slug

    return folder / image / (slug(row) + f"_seed{seed}")


def _job(kind: str, column: Column, row: str, image: str, seed: int, role: str, folder: Path, **extra: Any) -> dict[str, Any]:
    job = {"kind": kind, "column": column.name, "row": row, "image": image, "seed": seed, "role": role,
           "out": str(run_folder(folder, image, row, seed)), **extra}
    job["digest"] = digest(job)
    return job


def seeds_of(suite: Suite, rc: ReproduceConfig) -> list[int]:
    return list(range(rc.seeds or suite.seeds))


def wanted_rows(suite: Suite, rc: ReproduceConfig) -> list[Row]:
    if not rc.only:
        return list(suite.rows)
    names = {r.name for r in suite.rows}
    unknown = [n for n in rc.only if n not in names and not any(r.name.startswith(n + " ") for r in suite.rows)]
    if unknown:
        raise PosencError(f"--only: no row named {', '.join(unknown)} in {suite.name}; rows: {', '.join(sorted(names))}")
    return [r for r in suite.rows if r.name in rc.only or r.name.rsplit(" ", 1)[0] in rc.only]


def test_inputs(column: Column, rc: ReproduceConfig) -> tuple[str, ...]:
    return column.test[: rc.limit] if rc.limit > 0 else column.test


def search_jobs(suite: Suite, rc: ReproduceConfig, row: Row, column: Column, out: Path) -> list[dict[str, Any]]:
    """The validation fits of ``row``'s setting search on ``column``: every value x seed x validation input."""
    sel = row.select
    assert sel is not None and not sel.like
    root = Path(rc.data_root)
    jobs = []
    for value in sel.values:
        method = with_setting(row.method, sel.param, value)
        for seed in range(sel.seeds):
            for stem in column.validation:
                cfg = fit_config(suite, column, rc, method, find_input(root, column, stem), seed)
                jobs.append(_job("fit", column, method, stem, seed, "validation", out / column.name / "select",
                                 config=cfg.to_dict(), method=method, value=value, select_row=row.name))
    return jobs


def applies(row: Row, column: Column) -> bool:
    return not row.columns or column.name in row.columns


def validation_jobs(suite: Suite, rc: ReproduceConfig, rows: list[Row], out: Path) -> list[dict[str, Any]]:
    """The fits of every setting search the wanted rows need (a derived row needs its source's)."""
    searching = {r.name for r in rows if r.select and not r.select.like}
    searching |= {r.select.like for r in rows if r.select and r.select.like}
    return [job for name in sorted(searching) for column in suite.columns
            if applies(suite.row(name), column) and column.validation and column.name not in suite.row(name).method_on
            for job in search_jobs(suite, rc, suite.row(name), column, out)]


def pick(suite: Suite, rc: ReproduceConfig, row: Row, column: Column, index: dict[str, dict[str, Any]], out: Path) -> float | None:
    """The value ``row`` uses on ``column``: the best validation mean (ties: the first value), or the
    source row's pick times ``factor``; None while validation fits are missing."""
    sel = row.select
    if sel is None:
        return None
    if sel.like:
        base = pick(suite, rc, suite.row(sel.like), column, index, out)
        return None if base is None else base * sel.factor
    metric = sel.metric or column.metric
    by_value: dict[float, list[float]] = {}
    for job in search_jobs(suite, rc, row, column, out):
        result = index.get(job["digest"])
        if result is None or result["metrics"].get(metric) is None:
            return None
        by_value.setdefault(job["value"], []).append(result["metrics"][metric])
    means = [sum(v) / len(v) for v in by_value.values()]
    best = max(means) if sel.rule == "max" else min(means)
    return list(by_value)[means.index(best)]


def row_method(suite: Suite, rc: ReproduceConfig, row: Row, column: Column, index: dict[str, dict[str, Any]], out: Path) -> str | None:
    """The method string ``row`` runs on ``column`` (None: its selection is not finished)."""
    if column.name in row.method_on:
        return row.method_on[column.name]
    if row.select is None or not column.validation:
        return row.method  # nothing to select on: the method as written
    value = pick(suite, rc, row, column, index, out)
    return None if value is None else with_setting(row.method, row.select.param, value)


def test_jobs(suite: Suite, rc: ReproduceConfig, rows: list[Row], out: Path, index: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The test fits and baselines whose settings are known; also how many wait for a selection."""
    from ..config import TASK_CONFIGS

    root = Path(rc.data_root)
    jobs, waiting = [], 0
    for column in suite.columns:
        for row in rows:
            if not applies(row, column):
                continue
            stems = test_inputs(column, rc)
            if row.baseline:
                for stem in stems:
                    if column.task != "image":
                        raise PosencError(f"row {row.name}: the {row.baseline} baseline runs on image columns only")
                    data = fit_config(suite, column, rc, "none", find_input(root, column, stem), 0).to_dict()["data"]
                    TASK_CONFIGS[column.task](**data)
                    jobs.append(_job("baseline", column, row.name, stem, 0, "test", out / column.name / "runs",
                                     baseline=row.baseline, data=data, method=row.baseline))
                continue
            method = row_method(suite, rc, row, column, index, out)
            if method is None:
                waiting += len(stems) * len(seeds_of(suite, rc))
                continue
            for seed in seeds_of(suite, rc):
                for stem in stems:
                    cfg = fit_config(suite, column, rc, method, find_input(root, column, stem), seed)
                    jobs.append(_job("fit", column, row.name, stem, seed, "test", out / column.name / "runs",
                                     config=cfg.to_dict(), method=method))
    return jobs, waiting


# -- running ----------------------------------------------------------------------------------------
def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: one fit (resumed from its checkpoint when it has this config) or one baseline."""
    if job["kind"] == "baseline":
        from ..baselines import baseline_metrics, interpolate_gen25
        from ..config import ImageConfig
        from ..io import atomic_write_text
        from ..tasks.image import ImageTask

        data = ImageConfig(**job["data"])
        task = ImageTask(data)
        pred = interpolate_gen25(task.image, job["baseline"])
        metrics = baseline_metrics(data, job["baseline"])
        out = Path(job["out"])
        out.mkdir(parents=True, exist_ok=True)
        task.write_outputs(pred, out, metrics)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
        return metrics
    from ..bench.runner import _one

    metrics = _one(job)
    metrics.pop("eval_history", None)
    metrics["mlp_flops"] = fit_flops(FitConfig.from_dict(job["config"]), metrics.get("batching", {}).get("batch"))
    return metrics


def samples_per_step(cfg: FitConfig) -> int:
    """Training samples in one step, from the config alone (for estimates before any data is read)."""
    d = cfg.data
    if cfg.task == "image":
        side = d.window or (512 if d.res == "native" else int(d.res))
        return side * side // (4 if d.protocol == "gen25" else 1)
    if cfg.task in ("sdf", "occupancy"):
        return min(d.samples, d.batch) if d.batch else d.samples
    if cfg.task == "silhouette":
        return d.points
    if cfg.task == "mesh-transfer":
        return 5000  # source vertices: a nominal mesh (the pairs have 2,562-6,475)
    return d.samples


def fit_flops(cfg: FitConfig, batch: int | None = None) -> float:
    """The FLOP lower bound of a fit's MLP work: forward + backward of its linear layers, every step."""
    from ..bench.perf import mlp_step_flops
    from ..methods import build_field

    field = build_field(cfg)
    input_grad = cfg.task == "sdf" and cfg.data.eikonal > 0
    per_step = mlp_step_flops(field, batch or samples_per_step(cfg), input_grad) * (2 if input_grad else 1)
    return float(per_step * cfg.train.iters)


def execute(jobs: list[dict[str, Any]], rc: ReproduceConfig) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    from .executors import local_jobs, ray_jobs

    if rc.executor == "local":
        yield from local_jobs(run_one, jobs, rc.workers)
    elif rc.executor == "ray":
        yield from ray_jobs(run_one, jobs, address=rc.address, cpus=max(rc.threads, 1), gpus=rc.gpus, workers=rc.workers)
    else:
        raise PosencError(f"unknown executor {rc.executor!r}; valid: local, ray")


def check_scale(suite: Any, scale: str) -> None:
    """``cpu`` and ``paper`` exist for every suite; other scales only where the suite names them."""
    from .suite import SCALES

    valid = [*SCALES, *(s for s in suite.scales if s not in SCALES)]
    if scale not in valid:
        raise PosencError(f"unknown scale {scale!r} for suite {suite.name}; valid: {', '.join(valid)}")


def check(rc: ReproduceConfig) -> None:
    from ..validation import check_range

    check_range("seeds", rc.seeds, 0, 100, "--")  # 0 = the suite's
    check_range("limit", rc.limit, 0, None, "--")
    check_range("workers", rc.workers, 1, None, "--")
    check_range("threads", rc.threads, 1, None, "--")
    check_range("iters", rc.iters, 0, None, "--")  # 0 = the suite's
    if rc.executor not in ("local", "ray"):
        raise PosencError(f"unknown executor {rc.executor!r}; valid: local, ray")
    if rc.executor == "ray":
        from .executors import check_ray

        check_ray(rc.address)


def run_suite(rc: ReproduceConfig, progress: bool = True) -> Path:
    """Run (or continue) ``rc.suite``; returns the output folder with results.jsonl and the reports."""
    from ..runs import RunLock, prepare_folder
    from .report import write_reports
    from .suite import load_suite

    check(rc)
    suite = load_suite(rc.suite)
    check_scale(suite, rc.scale)
    rows = wanted_rows(suite, rc)
    out = Path(rc.out)
    prepare_folder(out)
    started = time.time()
    with RunLock(out):  # one driver per suite folder: rows are never written twice
        peak = idle_matmul_peak()  # before any worker starts: the report's efficiency is against this
        before = len(results_index(out))
        # a start record first: a driver killed outright (SIGKILL, a lost machine) leaves it, and the
        # report then counts that invocation's wall time up to its last finished fit
        append_jsonl(out / "invocations.jsonl", {"suite": suite.name, "event": "start", "started": round(started, 3)})
        pictures: dict[str, Any] = {}
        try:
            _run_stages(out, suite, rc, rows, progress)
            if rc.pictures:
                _redraw_pictures(out, suite, rc, rows, progress, pictures)
        finally:
            # an invocation that ran no fit (a finished suite, its report rewritten) records no peak:
            # the figure is for the fits' efficiency, and such a rewrite may run while the machine is busy
            ran = len(results_index(out)) > before
            _write_run_record(out, suite, rc, started, max(peak, idle_matmul_peak()) if ran else None, pictures)
        write_reports(out, suite, rc)
    return out


def _run_stages(out: Path, suite: Suite, rc: ReproduceConfig, rows: list[Row], progress: bool) -> None:
    """Run what is missing, stage after stage: a stage's validation fits decide the next one's settings."""
    from tqdm import tqdm

    results_path = out / "results.jsonl"
    shared = reused_index(rc, out)
    stage = 0
    while True:
        index = results_index(out)
        tests, waiting = test_jobs(suite, rc, rows, out, index)
        jobs = unique([j for j in validation_jobs(suite, rc, rows, out) + tests if j["digest"] not in index])
        if any(j["digest"] in shared for j in jobs):  # the same fit another suite ran: copy its row, then re-plan
            for job in jobs:
                if job["digest"] in shared:
                    append_jsonl(results_path, reused_row(job, shared[job["digest"]], suite, rc, out))
            continue
        if not jobs:
            break
        stage += 1
        bar = tqdm(total=len(jobs), desc=f"{suite.name} stage {stage}", unit="fit", disable=not progress)
        for job, metrics in execute(jobs, rc):
            row = dict(job)
            row["out"] = str(Path(job["out"]).relative_to(out))
            row.update({"suite": suite.name, "scale": rc.scale, "metrics": metrics, "finished_at": round(time.time(), 3)})
            append_jsonl(results_path, row)
            key = suite.column(job["column"]).metric
            value = metrics.get(key)
            bar.set_postfix_str(f"{job['column']} {job['image']} {job['row']} {key} "
                                + (f"{value:.4g}" if isinstance(value, (int, float)) else "-"))
            bar.update(1)
        bar.close()
        if not waiting:
            break


def picture_folder(out: Path, result: dict[str, Any]) -> Path:
    """Where this suite keeps a recorded fit's pictures: its run folder, or for a fit reused from another
    suite, the folder this suite would have given it (a refit draws there: the other suite's folder has
    its own driver)."""
    if "reused_from" not in result:
        return out / result["out"]
    return run_folder(out / result["column"] / "runs", result["image"], result["row"], result["seed"])


def pictured_folder(out: Path, result: dict[str, Any], tile: str) -> Path | None:
    """The folder holding a recorded fit's picture ``tile`` (its own, then this suite's copy), if any."""
    for folder in (out / result["out"], picture_folder(out, result)):
        if (folder / tile).exists():
            return folder
    return None


def picture_jobs(suite: Suite, rc: ReproduceConfig, rows: list[Row], out: Path,
                 index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded seed-0 test fits (and baselines) on the first ``suite.montages`` test inputs of each
    column whose picture is gone, each aimed at ``picture_folder``."""
    from ..bench.runner import family_of

    jobs = []
    for job in test_jobs(suite, rc, rows, out, index)[0]:
        column = suite.column(job["column"])
        result = index.get(job["digest"])
        if (result is None or job["seed"] != 0 or job["image"] not in test_inputs(column, rc)[:suite.montages]
                or pictured_folder(out, result, family_of(column.task).tile) is not None):
            continue
        jobs.append(dict(job, out=str(picture_folder(out, result)), recorded=result["metrics"]))
    return unique(jobs)


def _redraw_pictures(out: Path, suite: Suite, rc: ReproduceConfig, rows: list[Row], progress: bool,
                     record: dict[str, Any]) -> None:
    """Refit ``picture_jobs`` (their rows stay as recorded) and measure how far each refit's metric lies
    from the recorded one: a fit depends only on its config, so the gap should be 0. ``record`` is kept
    up to date fit by fit, so an interrupted invocation still records what it redrew."""
    from tqdm import tqdm

    jobs = picture_jobs(suite, rc, rows, out, results_index(out))
    if not jobs:
        return
    started = time.time()
    record.update({"fits": 0, "compared": 0, "max_gap": 0.0, "seconds": 0.0})
    bar = tqdm(total=len(jobs), desc=f"{suite.name} pictures", unit="fit", disable=not progress)
    for job, metrics in execute(jobs, rc):
        key = suite.column(job["column"]).metric
        new, old = metrics.get(key), job["recorded"].get(key)
        gap = float(new) - float(old) if isinstance(new, (int, float)) and isinstance(old, (int, float)) else None
        record["fits"] += 1
        if gap is not None:
            record["compared"] += 1
            record["max_gap"] = max(record["max_gap"], abs(gap))
        record["seconds"] = round(time.time() - started, 3)
        bar.set_postfix_str(f"{job['column']} {job['image']} {job['row']} {key} refit-recorded "
                            + ("-" if gap is None else f"{gap:+.2g}"))
        bar.update(1)
    bar.close()


def results_index(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of ``results.jsonl`` by digest (a config that two rows of a suite share runs once)."""
    return {r["digest"]: r for r in read_jsonl(out / "results.jsonl")}


def reused_index(rc: ReproduceConfig, out: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Fit rows of the ``rc.reuse`` folders (other suites', or ``posenc bench`` results) by digest, with
    the folder each came from (baselines are cheap and stay local). A digest covers the complete config,
    input and seed, so a shared row is the same fit."""
    shared: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder in map(Path, rc.reuse):
        if not (folder / "results.jsonl").is_file():
            raise PosencError(f"--reuse: no results.jsonl in {folder}")
        if folder.resolve() == out.resolve():
            continue
        for r in read_jsonl(folder / "results.jsonl"):
            if "key" in r and "config" in r and "kind" not in r:
                r = bench_row(r)
            if r.get("kind") == "fit" and not r.get("metrics", {}).get("interrupted"):
                shared.setdefault(r["digest"], (folder, r))
    return shared


def bench_row(r: dict[str, Any]) -> dict[str, Any]:
    """A ``posenc bench`` row in a suite row's terms: its digest and run folder (``runs/<input>/<method>``)."""
    from ..bench.runner import config_digest, run_dir_name

    seed = int(r["config"]["train"]["seed"])
    metrics = r["metrics"] if "mlp_flops" in r["metrics"] else dict(r["metrics"], mlp_flops=fit_flops(FitConfig.from_dict(r["config"])))
    return dict(r, kind="fit", digest=config_digest(r["config"]), metrics=metrics,
                out=f"runs/{r['image']}/{run_dir_name(r['method'], seed)}")


def reused_row(job: dict[str, Any], found: tuple[Path, dict[str, Any]], suite: Suite, rc: ReproduceConfig,
               out: Path) -> dict[str, Any]:
    """This suite's row for a fit another suite ran: its metrics, and its folder relative to ``out``."""
    import os

    folder, r = found
    row = dict(job)
    row.update({"suite": suite.name, "scale": rc.scale, "metrics": r["metrics"],
                "out": os.path.relpath(folder / r["out"], out),  # a row that was itself reused points on
                "reused_from": r.get("reused_from", f"{folder.name}/{r['out']}")})
    return row


def unique(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    return [j for j in jobs if not (j["digest"] in seen or seen.add(j["digest"]))]


def idle_matmul_peak() -> float:
    """One thread's fp32 GEMM peak (GFLOP/s), measured while this driver runs no fits."""
    from ..bench.perf import matmul_peak

    return matmul_peak(threads=1, n=1024, repeats=10)


def _write_run_record(out: Path, suite: Suite, rc: ReproduceConfig, started: float, peak: float | None,
                      pictures: dict[str, Any] | None = None) -> None:
    """``invocations.jsonl``: one line per invocation (its settings, wall time and, when it ran fits, the
    one-thread matmul peak: the better of a measurement before the fits and one after them; and what
    redrawing pictures took, which is not the suite's cost), for the report."""
    import dataclasses

    record = {"suite": suite.name, "event": "end", "settings": dataclasses.asdict(rc), "started": round(started, 3),
              "seconds": round(time.time() - started, 3), "ran_fits": peak is not None}
    if peak is not None:
        record["matmul_peak_gflops"] = round(peak, 1)
    if pictures:
        record["pictures"] = pictures
    append_jsonl(out / "invocations.jsonl", record)


# -- estimates ----------------------------------------------------------------------------------------
EST_GFLOPS_PER_THREAD = 80.0  # what gen25 fits reach here: 43 TFLOP of MLP work in 441 s on one thread
EST_OVERHEAD_S = {"image": 10.0, "signal1d": 2.0, "silhouette": 10.0, "sdf": 150.0, "occupancy": 120.0, "mesh-transfer": 40.0}  # sampling, evaluation, pictures


def estimate(suite: Suite, rc: ReproduceConfig) -> dict[str, float]:
    """Fits and CPU-hours of a suite before any data is read: every distinct planned fit's MLP FLOPs at
    ``EST_GFLOPS_PER_THREAD`` plus a per-task overhead (settings searches included; a search's pick is
    stood for by its middle value)."""
    import json

    planned: dict[str, tuple[Column, str]] = {}
    rows = wanted_rows(suite, rc)
    searching = {r.name for r in rows if r.select and not r.select.like} | {r.select.like for r in rows if r.select and r.select.like}

    def add(column: Column, method: str, stems: tuple[str, ...], seeds: int) -> None:
        where = json.dumps([column.task, column.data, column.settings, column.overrides, column.match_params], sort_keys=True)
        for stem in stems:
            for seed in range(seeds):
                planned.setdefault(f"{where}|{method}|{stem}|{seed}", (column, method))

    for column in suite.columns:
        for row in suite.rows:
            if not applies(row, column):
                continue
            searched = row.select is not None and column.validation and column.name not in row.method_on
            if row.name in searching and searched and not row.select.like:
                for v in row.select.values:
                    add(column, with_setting(row.method, row.select.param, v), column.validation, row.select.seeds)
            if row not in rows or row.baseline:
                continue
            method = row.method_on.get(column.name, row.method)
            if searched:
                src = suite.row(row.select.like) if row.select.like else row
                v = src.select.values[len(src.select.values) // 2] * (row.select.factor if row.select.like else 1)
                method = with_setting(row.method, row.select.param, v)
            add(column, method, test_inputs(column, rc), len(seeds_of(suite, rc)))
    flops: dict[str, float] = {}
    seconds = total = 0.0
    for column, method in planned.values():
        key = f"{column.name}|{method}"
        if key not in flops:
            flops[key] = fit_flops(fit_config(suite, column, rc, method, Path("input"), 0, placeholder=True))
        total += flops[key]
        seconds += flops[key] / (EST_GFLOPS_PER_THREAD * 1e9) + EST_OVERHEAD_S[column.task]
    return {"fits": len(planned), "cpu_hours": seconds / 3600, "pflop": total / 1e15}
