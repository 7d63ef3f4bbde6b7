"""``posenc bench signal1d``: methods on one 1-D signal (SAPE Fig. 2), with one stacked comparison plot."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import FitConfig, Signal1DConfig, TrainConfig
from ..errors import PosencError
from ..io import append_jsonl, atomic_write_text, read_jsonl, save_image
from ..methods import apply_method
from .common import fmt_pm
from .runner import slug


@dataclass
class SignalBenchConfig:
    methods: list[str]
    out: str
    path: str = ""
    samples: int = 128
    iters: int = 2000
    seeds: int = 1
    threads: int = 1


def run_signal_bench(bc: SignalBenchConfig, progress: bool = True) -> Path:
    from tqdm import tqdm

    from ..train import fit

    if bc.iters <= 0 or bc.seeds <= 0:
        raise PosencError("iters and seeds must be positive")
    out = Path(bc.out)
    base = FitConfig.for_task("signal1d", train=TrainConfig(iters=bc.iters, threads=bc.threads, checkpoint_every=0))
    base.data = Signal1DConfig(path=bc.path, samples=bc.samples)
    configs = {m: apply_method(base, m) for m in bc.methods}
    done = {r["key"] for r in read_jsonl(out / "results.jsonl")}
    jobs = [(m, s) for m in bc.methods for s in range(bc.seeds)]
    for m, seed in tqdm(jobs, desc="bench", unit="fit", disable=not progress):
        cfg = FitConfig.from_dict(configs[m].to_dict())
        cfg.train.seed = seed
        digest = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        key = f"{m}|{digest}"  # the full config: a changed default is a new run
        if key in done:
            continue
        metrics = fit(cfg, out / "runs" / f"{slug(m)}-seed{seed}", progress=False, force=True)
        metrics.pop("loss_history", None)
        append_jsonl(out / "results.jsonl", {"key": key, "method": m, "seed": seed, "config": cfg.to_dict(), "metrics": metrics})
    _report(out, bc)
    return out


def _report(out: Path, bc: SignalBenchConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_jsonl(out / "results.jsonl") if r["method"] in bc.methods]
    cmd = ["posenc", "bench", "signal1d", "--methods", ",".join(bc.methods), "--samples", str(bc.samples),
           "--iters", str(bc.iters), "--seeds", str(bc.seeds), "--out", bc.out] + (["--path", bc.path] if bc.path else [])
    lines = [f"# 1-D signal benchmark ({bc.path or 'built-in signal'}, {bc.samples} samples, {bc.iters} iterations)", "",
             "Made by: `" + " ".join(shlex.quote(c) for c in cmd) + "`", "",
             f"PSNR on 2048 dense points (data range = peak-to-peak of the signal), mean ± std over {bc.seeds} seed(s).", "",
             "| method | PSNR (dB) | smooth half x < 0.5 | detailed half x >= 0.5 | params |", "|---|---|---|---|---|"]
    for m in bc.methods:
        ms = [r["metrics"] for r in rows if r["method"] == m]
        if ms:
            lines.append(f"| {m} | {fmt_pm(x['psnr'] for x in ms)} | {fmt_pm(x['psnr_first_half'] for x in ms)} | "
                         f"{fmt_pm(x['psnr_second_half'] for x in ms)} | {ms[0]['params']:,} |")
    lines += ["", "Picture: `comparison.png` (seed 0 of each method: ground truth grey, prediction black, samples red;"
              " blue: an encoding's bandwidth sigma(x) where it has one).", ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    sigmas_top = max((float(np.loadtxt(p, delimiter=",", skiprows=1)[:, 1].max()) for p in
                      (out / "runs" / f"{slug(m)}-seed0" / "sigma_map.csv" for m in bc.methods) if p.exists()), default=1.0)
    fig, axes = plt.subplots(len(bc.methods), 1, figsize=(9, 2.4 * len(bc.methods)), dpi=100, sharex=True, squeeze=False)
    for ax, m in zip(axes[:, 0], bc.methods):
        csv = out / "runs" / f"{slug(m)}-seed0" / "prediction.csv"
        if not csv.exists():
            continue
        data = np.loadtxt(csv, delimiter=",", skiprows=1)
        cfg = next(r["config"] for r in rows if r["method"] == m)
        n = cfg["data"]["samples"]
        xs = (np.arange(n) + 0.5) / n
        ax.plot(data[:, 0], data[:, 1], color="0.6", lw=1.0)
        ax.plot(data[:, 0], data[:, 2], color="black", lw=0.9)
        ax.scatter(xs, np.interp(xs, data[:, 0], data[:, 1]), s=5, color="red", zorder=3)
        psnr = next(r["metrics"]["psnr"] for r in rows if r["method"] == m and r["seed"] == 0)
        ax.set_title(f"{m}: {psnr:.2f} dB", fontsize=9)
        sigma_csv = csv.parent / "sigma_map.csv"
        if sigma_csv.exists():  # learned_rbf: its bandwidth sigma(x) on a second axis
            sig = np.loadtxt(sigma_csv, delimiter=",", skiprows=1)
            twin = ax.twinx()
            twin.plot(sig[:, 0], sig[:, 1], color="tab:blue", lw=1.2)
            twin.set_ylim(0, sigmas_top * 1.1)
            twin.set_ylabel("sigma(x)", color="tab:blue", fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    save_image(out / "comparison.png", np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
