"""Compare ``posenc bench perf`` of two source trees, interleaved in one run (A, B, A, B, ...), so the
machine's drift cancels: per config, the median over rounds of B's step time divided by A's.

    git worktree add /tmp/posenc-old <commit>
    python benchmarks/perf_versions.py /tmp/posenc-old . --rounds 3 --out benchmarks/results/perf/versions.md

Each run is a separate process with ``PYTHONPATH=<tree>/src``; nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_perf(tree: Path, threads: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(tree.resolve() / "src"))
        cmd = [sys.executable, "-m", "posenc", "bench", "perf", "--threads", str(threads), "--steps", str(steps), "--out", tmp]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(tmp) / "perf.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="source tree A (before)")
    p.add_argument("b", type=Path, help="source tree B (after)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for r in range(args.rounds):
        for key, tree in (("a", args.a), ("b", args.b)):
            runs[key].append(run_perf(tree, args.threads, args.steps))
            print(f"round {r + 1}/{args.rounds}: {key} done", file=sys.stderr)
    names = [row["name"] for row in runs["b"][0]["rows"]]
    lines = ["# Step time, before (A) and after (B), interleaved in one run", "",
             f"Made by: `python benchmarks/perf_versions.py {args.a} {args.b} --rounds {args.rounds} --threads {args.threads} "
             f"--steps {args.steps} --out {args.out}`; A = `{_commit(args.a)}`, B = `{_commit(args.b)}`.", "",
             "Each round runs `posenc bench perf` of A, then of B, in separate processes; a cell is the median over rounds. "
             "B/A < 1: B is faster.", "",
             "Matmul peak per round (A / B): " + ", ".join(f"{a['matmul_peak_gflops']:.0f} / {b['matmul_peak_gflops']:.0f}"
                                                            for a, b in zip(runs["a"], runs["b"])) + " GFLOP/s", "",
             "| config | A step (ms) | B step (ms) | B / A per round | B / A (median) |", "|---|---|---|---|---|"]
    for name in names:
        a_ms = [next(r["step_ms"] for r in run["rows"] if r["name"] == name) for run in runs["a"]]
        b_ms = [next(r["step_ms"] for r in run["rows"] if r["name"] == name) for run in runs["b"]]
        ratios = [b / a for a, b in zip(a_ms, b_ms)]
        lines.append(f"| {name} | {statistics.median(a_ms):.1f} | {statistics.median(b_ms):.1f} | "
                     f"{', '.join(f'{x:.3f}' for x in ratios)} | **{statistics.median(ratios):.3f}** |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    (args.out.with_suffix(".json")).write_text(json.dumps(runs, indent=1) + "\n")
    print("\n".join(lines))
    return 0


def _commit(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return str(tree)


if __name__ == "__main__":
    sys.exit(main())
