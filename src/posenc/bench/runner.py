"""The file-benchmark runner shared by the task families (``bench/images.py``, ``bench/shapes.py``,
``bench/silhouettes.py``): methods x input files x seeds, resumable from ``results.jsonl``, in the shape
of SAPE Table 1 (mean ± std per method), with a montage per file. A family says what its table
shows, which picture its montages use, how its data settings are set and what extra pictures it draws."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import FitConfig
from ..errors import PosencError
from ..io import append_jsonl, atomic_write_text, read_jsonl, save_image
from ..methods import apply_method, match_params, with_defaults
from ..viz import labelled_strip
from .common import fmt_pm, mean_std, run_jobs

@dataclass(frozen=True)
class Family:
    """A task family's benchmark: its tasks, table columns (metric, header, digits) per task, the
    picture a montage shows per run and the target picture beside it, the input file suffixes, how
    the family's data settings enter a run config, the command that re-makes a table, and extra
    pictures per input (``(out, input, methods, seed, metrics by (input, method)) -> None``)."""

    name: str
    tasks: tuple[str, ...]
    columns: dict[str, list[tuple[str, str, int]]]
    tile: str
    target: str | None
    suffixes: frozenset[str]
    data_settings: Callable[["BenchConfig", Any], None]
    command: Callable[["BenchConfig"], list[str]]
    setting: Callable[["BenchConfig"], str]
    pictures: Callable[[Path, str, list[str], int, dict[tuple[str, str], Any]], None] | None = None
    # the data settings one input file stands for (default: it is the task's path; a mesh-transfer
    # pair file names a source, a target and landmarks)
    input_settings: Callable[[Path], dict[str, Any]] | None = None

    def settings_of(self, path: Path) -> dict[str, Any]:
        return self.input_settings(path) if self.input_settings else {"path": str(path)}


@dataclass
class BenchConfig:
    """Settings shared by every run of a file benchmark (``task``: image, silhouette, sdf, occupancy)."""

    data: str
    methods: list[str]
    out: str
    task: str = "image"
    lr: float = 0.0  # 0: each method's own default
    samples: int = 300000  # shapes
    mc_res: int = 128  # shapes
    eval_points: int = 1000000  # shapes
    protocol: str = "gen25"
    res: int = 256
    crop: str = "square"  # images: the papers' protocol (centre crop), so tables stay comparable
    iters: int = 0  # 0 = the task's default
    seed: int = 0
    seeds: int = 1  # network seeds seed, seed + 1, ...; tables report each input's mean over them
    limit: int = 0
    images: tuple[str, ...] = ()
    workers: int = 1
    threads: int = 0
    match_params: int = 0
    device: str = "cpu"


def list_images(folder: str | Path, limit: int = 0, names: tuple[str, ...] = (), suffixes: frozenset[str] = frozenset()) -> list[Path]:
    """Images of ``folder`` in name order; ``names`` (stems) picks some, ``limit`` keeps the first K."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PosencError(f"data folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if names:
        missing = sorted(set(names) - {p.stem for p in images})
        if missing:
            raise PosencError(f"no image named {', '.join(missing)} in {folder}")
        images = [p for p in images if p.stem in names]
    if not images:
        raise PosencError(f"no input files ({', '.join(sorted(suffixes))}) in {folder}")
    return images[:limit] if limit > 0 else images


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text)


def run_dir_name(method: str, seed: int) -> str:
    """Run folder of one (method, seed) under ``runs/<input>/``: seed 0 keeps the bare method slug."""
    return slug(method) + (f"_seed{seed}" if seed else "")


_NOT_RESULTS = {"threads", "device", "checkpoint_every", "checkpoint_seconds", "frames", "max_memory", "step_chunk"}  # settings that do not change a result


_LATER_DATA_DEFAULTS = {"window": 0}  # ImageConfig.window (the whole image)


def config_digest(config: dict[str, Any]) -> str:
    """Identity of a run: its full config with defaults filled in (so rows written before a new
    setting existed still match), minus settings that only affect speed or logging."""
    config = dict(config)
    if config.get("task", "image") == "image" and "crop" not in (config.get("data") or {}):
        config["data"] = {**config.get("data", {}), "crop": "square"}  # rows from before `crop` existed were square
    full = with_defaults(FitConfig.from_dict(config)).to_dict()
    full["train"] = {k: v for k, v in full["train"].items() if k not in _NOT_RESULTS}
    # data settings added later whose default is what every earlier row ran: left out at that default
    full["data"] = {k: v for k, v in full["data"].items() if _LATER_DATA_DEFAULTS.get(k, object()) != v}
    return hashlib.sha1(json.dumps(full, sort_keys=True).encode()).hexdigest()[:12]


def run_key(image: str, cfg: FitConfig, match: int = 0) -> str:
    data = f"{cfg.data.protocol}|{cfg.data.res}" if cfg.task == "image" else cfg.task
    if cfg.task in ("sdf", "occupancy"):
        data += f"|{cfg.data.samples}|{cfg.data.mc_res}|{cfg.data.eval_points}"
    key = f"{image}|{cfg.method}|{data}|{cfg.train.iters}|{cfg.train.seed}"
    return key + (f"|match{match}" if match else "")


def _one(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: fit one (image, method) and return its metrics (runs in a child process)."""
    from ..train import checkpoint_matches, fit

    cfg = FitConfig.from_dict(job["config"])
    # a fit cut short (Ctrl-C, a killed bench) continues from its checkpoint if that has this config
    resume = checkpoint_matches(job["out"], cfg)
    metrics = fit(cfg, job["out"], progress=False, resume=resume, force=not resume)  # the bench owns its run folders
    metrics.pop("loss_history", None)
    return metrics


def family_of(task: str) -> Family:
    from . import images, mesh_transfer, shapes, silhouettes

    for family in (images.FAMILY, shapes.FAMILY, silhouettes.FAMILY, mesh_transfer.FAMILY):
        if task in family.tasks:
            return family
    raise PosencError(f"no benchmark family runs the task {task!r}")


def run_bench(bc: BenchConfig, progress: bool = True) -> Path:
    """Run (or resume) the benchmark of ``bc.task``'s family; returns the results folder."""
    from tqdm import tqdm

    if bc.iters < 0:
        raise PosencError(f"iters must be positive (0 = the task's default), got {bc.iters}")
    if bc.workers < 1:
        raise PosencError(f"workers must be >= 1, got {bc.workers}")
    if bc.seeds < 1:
        raise PosencError(f"seeds must be >= 1, got {bc.seeds}")
    family = family_of(bc.task)
    images = list_images(bc.data, bc.limit, bc.images, family.suffixes)
    out = Path(bc.out)
    threads = 1 if bc.workers > 1 else bc.threads
    base = FitConfig.for_task(bc.task)
    base.train = dataclasses.replace(base.train, iters=bc.iters or base.train.iters, seed=bc.seed, threads=threads, device=bc.device)
    bc.iters = base.train.iters
    family.data_settings(bc, base.data)
    configs = {m: apply_method(base, m) for m in bc.methods}  # validates every method before any run
    if bc.lr:
        for c in configs.values():
            c.train.lr = bc.lr
    if bc.match_params:
        from ..train import task_dims

        in_dim, out_dim = task_dims(bc.task)
        configs = {m: match_params(c, bc.match_params, in_dim, out_dim) for m, c in configs.items()}
    # a run is done when a row with the same full config exists: a changed default re-runs it
    done = {config_digest(r["config"]) for r in read_jsonl(out / "results.jsonl")}
    wanted = set()
    jobs = []
    for seed in range(bc.seed, bc.seed + bc.seeds):
        for img in images:
            for m, mcfg in configs.items():
                cfg = FitConfig.from_dict(mcfg.to_dict())
                for key, value in family.settings_of(img).items():
                    setattr(cfg.data, key, value)
                cfg.train.seed = seed
                key = run_key(img.stem, cfg, bc.match_params)
                digest = config_digest(cfg.to_dict())
                wanted.add(digest)
                if digest in done:
                    continue
                jobs.append({"key": key, "image": img.stem, "method": m, "config": cfg.to_dict(),
                             "out": str(out / "runs" / img.stem / run_dir_name(m, seed))})
    from ..runs import RunLock, prepare_folder

    prepare_folder(out)
    with RunLock(out):  # one benchmark process per results folder: rows are never written twice
        # rows another process wrote since the check above are not re-run
        done = {config_digest(r["config"]) for r in read_jsonl(out / "results.jsonl")}
        jobs = [j for j in jobs if config_digest(j["config"]) not in done]
        bar = tqdm(total=len(jobs), desc="bench", unit="fit", disable=not progress)
        for job, metrics in run_jobs(_one, jobs, bc.workers):
            append_jsonl(out / "results.jsonl", {"key": job["key"], "image": job["image"], "method": job["method"],
                                                 "config": job["config"], "metrics": metrics})
            key = family.columns[bc.task][0][0]
            bar.set_postfix_str(f"{job['image']} {job['method']} {key} {metrics[key]:.3f}")
            bar.update(1)
            write_report(out, bc, wanted)
        bar.close()
        write_report(out, bc, wanted)
    return out


def write_report(out: Path, bc: BenchConfig, wanted: set[str]) -> None:
    """results.md (mean ± std per method, per-file table) and a montage per file, from the rows whose
    config is the one this command asks for."""
    rows = [r for r in read_jsonl(out / "results.jsonl") if r["method"] in bc.methods and config_digest(r["config"]) in wanted]
    if not rows:
        return
    family = family_of(bc.task)
    columns, tile, target = family.columns[bc.task], family.tile, family.target
    # a metric no run reports (held-out PSNR under the fit protocol) gets no column
    columns = [c for c in columns if any(r["metrics"].get(c[0]) is not None for r in rows)]
    key, key_header, key_digits = columns[0]
    images = sorted({r["image"] for r in rows})
    # (input, method) -> metrics of each seed, lowest seed first
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["config"]["train"]["seed"]):
        runs.setdefault((r["image"], r["method"]), []).append(r["metrics"])
    first_seed = min(r["config"]["train"]["seed"] for r in rows)
    by = {k: v[0] for k, v in runs.items()}  # the first seed's run: montages and plots show it
    setting = family.setting(bc)
    seeds = f"seed {bc.seed}" if bc.seeds == 1 else f"seeds {bc.seed}-{bc.seed + bc.seeds - 1}"
    per_seed = "" if bc.seeds == 1 else (f"; each input counts once, as its mean over {bc.seeds} seeds "
                                         "(per-input table: mean ± std over the seeds)")
    lines = [
        f"# Benchmark: {Path(bc.data).name}, {setting}, {bc.iters} iterations, {seeds}",
        "",
        "Made by: `posenc " + " ".join(shlex.quote(a) for a in command(bc)) + "`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}; "
        f"{bc.workers} worker(s){' x 1 thread' if bc.workers > 1 else ''}. Mean ± std over {len(images)} input(s){per_seed}.",
        "",
        "| method | " + " | ".join(h for _, h, _ in columns) + " | params (MLP + encoding) | s / fit | runs |",
        "|---|" + "---|" * (len(columns) + 3),
    ]
    for m in bc.methods:
        seed_runs = [runs[(i, m)] for i in images if (i, m) in runs]
        if seed_runs:
            cells = [fmt_pm((mean_std(x.get(k) for x in ms)[0] for ms in seed_runs), digits) for k, _, digits in columns]
            every = [x for ms in seed_runs for x in ms]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_params(every[0])} | "
                         f"{fmt_pm((x['seconds'] for x in every), 0)} | {len(every)} |")
    extra = "psnr_heldout" if any(c[0] == "psnr_heldout" for c in columns) else None
    title = f"{key_header} per input" + (" (held-out PSNR in brackets)" if extra else "")
    lines += ["", f"## {title}", "", "| method | " + " | ".join(images) + " |", "|---|" + "---|" * len(images)]
    for m in bc.methods:
        cells = []
        for i in images:
            ms = runs.get((i, m), [])
            second = mean_std(x.get(extra) for x in ms)[0] if (ms and extra) else None
            main = f"{ms[0][key]:.{key_digits}f}" if len(ms) == 1 else fmt_pm((x[key] for x in ms), key_digits)
            cells.append("-" if not ms else main + (f" ({second:.2f})" if second is not None else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"Montages: `montage_<input>.png` ({'target, then ' if target else ''}each method with its {key_header}).", ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    for i in images:
        done = [m for m in bc.methods if (i, m) in by]
        montage(out, i, done, by, tile, target, key, first_seed)
        if family.pictures is not None:
            family.pictures(out, i, done, first_seed, by)


def _params(metrics: dict[str, Any]) -> str:
    d = metrics.get("params_detail") or {}
    total = f"{metrics['params']:,}"
    return f"{total} ({d['network']:,} + {d['encoding']:,})" if d.get("encoding") else total


def montage(out: Path, image: str, methods: list[str], by: dict[tuple[str, str], Any], tile: str, target: str | None,
             key: str, seed: int = 0, prefix: str = "montage") -> None:
    from PIL import Image

    run_root = out / "runs" / image
    tiles, labels = [], []
    if target:
        path = run_root / run_dir_name(methods[0], seed) / target
        if not path.exists():
            return
        tiles.append(np.asarray(Image.open(path).convert("RGB")))
        labels.append("target")
    for m in methods:
        pic = run_root / run_dir_name(m, seed) / tile
        if pic.exists():
            tiles.append(np.asarray(Image.open(pic).convert("RGB")))
            labels.append(f"{m} {by[(image, m)][key]:.{2 if key.startswith('psnr') else 3}f}")
    if tiles:
        save_image(out / f"{prefix}_{image}.png", labelled_strip(tiles, labels, tile=192))


def command(bc: BenchConfig) -> list[str]:
    """The ``posenc`` command line that re-makes this table (written at the top of results.md)."""
    cmd = family_of(bc.task).command(bc)
    cmd += ["--iters", str(bc.iters), "--seed", str(bc.seed), "--out", bc.out]
    if bc.seeds != 1:
        cmd += ["--seeds", str(bc.seeds)]
    if bc.lr:
        cmd += ["--lr", str(bc.lr)]
    if bc.limit:
        cmd += ["--limit", str(bc.limit)]
    if bc.images:
        cmd += ["--images", ",".join(bc.images)]
    if bc.match_params:
        cmd += ["--match-params", str(bc.match_params)]
    if bc.workers != 1:
        cmd += ["--workers", str(bc.workers)]
    return cmd
