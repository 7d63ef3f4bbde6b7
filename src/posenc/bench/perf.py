"""``posenc bench perf``: machine matmul peak and training-step speed of reference configurations.

All numbers come from one process, with the thread count stated (PROTOCOLS.md, Speed).
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import CPU_STEP_CHUNK, FitConfig, NetworkConfig
from ..io import atomic_write_json, atomic_write_text
from ..methods import apply_method, build_field
from ..runtime import set_threads, tune_allocator
from ..train import bound_step

# name -> (method spec, input dim, output dim, network)
_MLP3x256 = NetworkConfig(width=256, depth=3, output="sigmoid")
CONFIGS: dict[str, tuple[str, int, int, NetworkConfig]] = {
    "gaussian": ("gaussian:features=256", 2, 3, _MLP3x256),
    # SAPE during progression (the mask changes every step: its worst case)
    "sape+gaussian": ("sape+gaussian:features=256:sigma=20", 2, 3, _MLP3x256),
    "lpe": ("lpe:grid=32:bands=64", 2, 3, NetworkConfig(width=64, depth=3, activation="leaky_relu", output="sigmoid")),
    "hash_grid": ("hash_grid:levels=16:features_per_level=2:log2_table=16", 2, 3, NetworkConfig(width=64, depth=2, output="sigmoid")),
    # 3-D shapes: mini-batches of random points, so the encoding runs every step
    "gaussian 3-D occupancy": ("gaussian:features=256:sigma=5", 3, 1, NetworkConfig(width=256, depth=3, output="none")),
    "lpe 3-D sdf": ("lpe:grid=32:bands=16", 3, 1, NetworkConfig(width=64, depth=3, activation="leaky_relu", output="none")),
}


@dataclass
class PerfConfig:
    threads: int = 2
    points: int = 16384
    steps: int = 30
    warmup: int = 5
    configs: tuple[str, ...] = tuple(CONFIGS)
    chunk: int = CPU_STEP_CHUNK  # samples per pass of a larger step (train.step_chunk)
    full_batch_points: int = 65536  # the passes comparison: a 256 x 256 full-batch image step (0 = skip it)
    rounds: int = 3  # of that comparison, interleaved


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 GEMM throughput in GFLOP/s (n x n by n x n, best of ``repeats``)."""
    set_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def mlp_step_flops(field: torch.nn.Module, points: int, input_grad: bool) -> float:
    """Analytic FLOPs of one forward+backward pass through the field's linear layers.

    Forward 2*N*in*out per layer; backward twice that, except the first layer's input gradient
    when the inputs are pre-computed features that need no gradient.
    """
    linears = [m for m in field.network.modules() if isinstance(m, torch.nn.Linear)]
    fwd = sum(2 * points * m.in_features * m.out_features for m in linears)
    first = 2 * points * linears[0].in_features * linears[0].out_features
    return 3 * fwd - (0 if input_grad else first)


def training_points(points: int, in_dim: int) -> torch.Tensor:
    """The points a fit trains on: for 2-D a square pixel grid (as images are), else uniform random."""
    side = int(round(points ** 0.5))
    if in_dim == 2 and side * side == points:
        from ..tasks.image import pixel_coordinates

        return pixel_coordinates(side, side)
    return torch.rand(points, in_dim, generator=torch.Generator().manual_seed(0))


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).square().mean(-1)


def setup_step(spec: str, in_dim: int, out_dim: int, net: NetworkConfig, points: int, chunk: int) -> tuple[Any, ...]:
    from ..networks import param_groups

    cfg = apply_method(FitConfig(network=net), spec)
    torch.manual_seed(0)
    field = build_field(cfg, in_dim, out_dim)
    x, y = training_points(points, in_dim), torch.rand(points, out_dim)
    opt = torch.optim.Adam(param_groups(field, 1e-3))
    return field, opt, bound_step(field, x, y, _mse, chunk)


def timed_steps(field: Any, opt: Any, step: Any, warmup: int, steps: int) -> list[float]:
    policy = field.policy
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, per_sample = step()
        opt.step()
        if policy is not None:
            policy.update(per_sample)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def time_training_step(spec: str, in_dim: int, out_dim: int, net: NetworkConfig, pc: PerfConfig) -> dict[str, Any]:
    """Median step time (forward, backward, Adam, policy update) on ``pc.points`` points, through the
    public step a user's loop would take (``posenc.train.bound_step`` over ``field.bind``, then
    ``policy.update``; 2000-iteration schedule)."""
    field, opt, step = setup_step(spec, in_dim, out_dim, net, pc.points, pc.chunk)
    step_s = statistics.median(timed_steps(field, opt, step, pc.warmup, pc.steps))
    flops = mlp_step_flops(field, pc.points, input_grad=not field.encoding.fixed)
    # evaluation throughput: chunked inference on fresh random points (the path renders and metrics use)
    field.eval()
    probe = torch.rand(4 * pc.points, in_dim, generator=torch.Generator().manual_seed(1))
    field.predict(probe[: pc.points])
    t = time.perf_counter()
    field.predict(probe)
    eval_pts = probe.shape[0] / (time.perf_counter() - t)
    return {"method": spec, "points": pc.points, "step_ms": step_s * 1e3, "gflops": flops / step_s / 1e9,
            "params": field.parameter_counts()["total"], "train_points_per_s": pc.points / step_s, "eval_points_per_s": eval_pts}


def compare_passes(pc: PerfConfig, names: tuple[str, ...] = ("gaussian", "lpe")) -> list[dict[str, Any]]:
    """A full-batch step of ``pc.full_batch_points`` (a 256 x 256 image) in one pass against passes of
    ``pc.chunk`` (``bound_step``), the two set up side by side and timed in interleaved rounds."""
    rows = []
    for name in names:
        spec, d_in, d_out, net = CONFIGS[name]
        variants = {c: setup_step(spec, d_in, d_out, net, pc.full_batch_points, c) for c in (0, pc.chunk)}
        times: dict[int, list[float]] = {c: [] for c in variants}
        for _ in range(pc.rounds):
            for c, (field, opt, step) in variants.items():
                times[c] += timed_steps(field, opt, step, 1, max(pc.steps // 3, 3))
        one, parts = statistics.median(times[0]), statistics.median(times[pc.chunk])
        flops = mlp_step_flops(variants[0][0], pc.full_batch_points, input_grad=not variants[0][0].encoding.fixed)
        rows.append({"name": name, "method": spec, "points": pc.full_batch_points, "chunk": pc.chunk,
                     "one_pass_ms": one * 1e3, "passes_ms": parts * 1e3, "speedup": one / parts,
                     "one_pass_gflops": flops / one / 1e9, "passes_gflops": flops / parts / 1e9})
    return rows


def run_perf(pc: PerfConfig, out: str | None = None) -> dict[str, Any]:
    tune_allocator()
    threads = set_threads(pc.threads)
    peak = matmul_peak(threads)
    rows = []
    for name in pc.configs:
        spec, d_in, d_out, net = CONFIGS[name]
        row = time_training_step(spec, d_in, d_out, net, pc)
        row["name"] = name
        row["fraction_of_peak"] = row["gflops"] / peak
        rows.append(row)
    base = next((r for r in rows if r["name"] == "gaussian"), None)
    for r in rows:
        r["vs_gaussian"] = r["step_ms"] / base["step_ms"] if base else None
    passes = compare_passes(pc) if pc.full_batch_points else []
    for r in passes:
        r["fraction_of_peak_one_pass"], r["fraction_of_peak_passes"] = r["one_pass_gflops"] / peak, r["passes_gflops"] / peak
    result = {"command": f"posenc bench perf --threads {pc.threads} --points {pc.points} --steps {pc.steps}",
              "threads": threads, "matmul_peak_gflops": peak, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "rows": rows, "passes": passes}
    if out:
        atomic_write_json(Path(out) / "perf.json", result)
        atomic_write_text(Path(out) / "perf.md", format_perf(result))
    return result


def format_perf(result: dict[str, Any]) -> str:
    lines = [
        f"# posenc bench perf ({result['threads']} thread(s), torch {result['torch']})",
        "",
        f"Made by: `{result.get('command', 'posenc bench perf')}`; one process, median of the timed steps after warm-up.",
        "",
        f"Measured fp32 matmul peak: **{result['matmul_peak_gflops']:.1f} GFLOP/s** (2048^3 GEMM, best of 10).",
        "",
        "| config | points | step (ms, median) | step / gaussian | achieved GFLOP/s (MLP) | % of peak | train points/s | eval points/s | params |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ratio = f"{r['vs_gaussian']:.3f}" if r.get("vs_gaussian") else "-"
        lines.append(f"| {r['name']} (`{r['method']}`) | {r['points']:,} | {r['step_ms']:.1f} | {ratio} | {r['gflops']:.1f} | "
                     f"{100 * r['fraction_of_peak']:.0f}% | {r.get('train_points_per_s', 0):,.0f} | {r.get('eval_points_per_s', 0):,.0f} | {r['params']:,} |")
    if result.get("passes"):
        lines += ["", "Full-batch steps in passes (`train.step_chunk`, `posenc.train.bound_step`): one pass against passes of "
                  f"{result['passes'][0]['chunk']:,} samples, set up side by side and timed in interleaved rounds (median step).", "",
                  "| config | points | one pass (ms) | in passes (ms) | one pass / passes | % of peak, one pass | % of peak, passes |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["passes"]:
            lines.append(f"| {r['name']} (`{r['method']}`) | {r['points']:,} | {r['one_pass_ms']:.0f} | {r['passes_ms']:.0f} | "
                         f"{r['speedup']:.2f}x | {100 * r['fraction_of_peak_one_pass']:.0f}% | {100 * r['fraction_of_peak_passes']:.0f}% |")
    return "\n".join(lines) + "\n"
