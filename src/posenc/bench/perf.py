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

from ..config import FitConfig, NetworkConfig
from ..io import atomic_write_json, atomic_write_text
from ..methods import apply_method, build_field
from ..runtime import set_threads, tune_allocator

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


def time_training_step(spec: str, in_dim: int, out_dim: int, net: NetworkConfig, pc: PerfConfig) -> dict[str, Any]:
    """Median step time (forward, backward, Adam, policy update) on ``pc.points`` points, through the
    public fast path a user's loop would take (``field.bind``, ``policy.update``; 2000-iteration schedule)."""
    from ..networks import param_groups

    cfg = apply_method(FitConfig(network=net), spec)
    torch.manual_seed(0)
    field = build_field(cfg, in_dim, out_dim)
    x, y = training_points(pc.points, in_dim), torch.rand(pc.points, out_dim)
    opt = torch.optim.Adam(param_groups(field, 1e-3))
    fixed = field.encoding.fixed
    policy = field.policy
    forward = field.bind(x)
    times = []
    for i in range(pc.warmup + pc.steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        per_sample = (forward() - y).square().mean(-1)
        per_sample.mean().backward()
        opt.step()
        if policy is not None:
            policy.update(per_sample.detach())
        if i >= pc.warmup:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    flops = mlp_step_flops(field, pc.points, input_grad=not fixed)
    # evaluation throughput: chunked inference on fresh random points (the path renders and metrics use)
    field.eval()
    probe = torch.rand(4 * pc.points, in_dim, generator=torch.Generator().manual_seed(1))
    field.predict(probe[: pc.points])
    t = time.perf_counter()
    field.predict(probe)
    eval_pts = probe.shape[0] / (time.perf_counter() - t)
    return {"method": spec, "points": pc.points, "step_ms": step * 1e3, "gflops": flops / step / 1e9,
            "params": field.parameter_counts()["total"], "train_points_per_s": pc.points / step, "eval_points_per_s": eval_pts}


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
    result = {"command": f"posenc bench perf --threads {pc.threads} --points {pc.points} --steps {pc.steps}",
              "threads": threads, "matmul_peak_gflops": peak, "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "rows": rows}
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
    return "\n".join(lines) + "\n"
