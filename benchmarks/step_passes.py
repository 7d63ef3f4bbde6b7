"""Full-batch image fits in one pass against passes of 16,384 pixels (``--step-chunk``): time per step,
peak memory and the figures, end to end through ``posenc fit``.

Each fit runs in its own process under ``/usr/bin/time -v`` (peak RSS of the whole process); the one-pass
and the in-passes fit of a size alternate, for ``--rounds`` rounds, so both see the same machine.
Seconds per step come from each run's ``history`` (training time between the first and the last
logged step, so set-up and evaluation are left out).

    python benchmarks/step_passes.py --out benchmarks/results/scale
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from posenc.bench.common import write_table


def one_fit(image: Path, res: int, chunk: int, iters: int, threads: int, run: Path) -> dict:
    cmd = [sys.executable, "-m", "posenc", "fit", "image", str(image), "--res", str(res), "--crop", "square",
           "--protocol", "fit", "--method", "gaussian", "--iters", str(iters), "--step-chunk", str(chunk),
           "--threads", str(threads), "--checkpoint-every", "0", "--checkpoint-seconds", "0", "--quiet", "--force", "--out", str(run)]
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    m = json.loads((run / "metrics.json").read_text())
    hist = json.loads((run / "timing.json").read_text())["history_seconds"]  # [[iteration, seconds], ...]
    per_step = (hist[-1][1] - hist[0][1]) / (hist[-1][0] - hist[0][0])
    return {"res": res, "pixels": res * res, "chunk": chunk, "passes": m["batching"]["passes"], "iters": iters,
            "step_seconds": per_step, "peak_rss_gb": rss_kb / 1e6, "psnr": m["psnr"], "ssim": m["ssim"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=Path, default=Path("../shared/data/images/kodak/kodim01.png"))
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--iters", type=int, default=26)
    p.add_argument("--chunk", type=int, default=16384)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for res in (int(s) for s in args.sizes.split(",")):
                for chunk in (0, args.chunk):
                    row = one_fit(args.image, res, chunk, args.iters, args.threads, Path(tmp) / f"r{res}-c{chunk}")
                    row["round"] = rnd
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    command = "python benchmarks/step_passes.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = ["# Full-batch steps in passes (`--step-chunk`)", "", f"Made by: `{command}`", "",
             f"`posenc fit image {args.image.name} --protocol fit --crop square --method gaussian --iters {args.iters} "
             f"--threads {args.threads}` (3x256 MLP, 256 Fourier features), `--step-chunk 0` (one pass) against "
             f"`--step-chunk {args.chunk}`, alternating, {args.rounds} round(s). Step time: median over rounds of the training "
             "seconds per step (`timing.json`, from step 1 to the last: set-up and evaluation left out). Peak RSS: `/usr/bin/time -v` of the "
             "whole process, the largest over rounds.", "",
             "| size | pixels | passes | step (s) | one pass / passes | peak RSS (GB) | PSNR (dB) | SSIM |", "|---|---|---|---|---|---|---|---|"]
    for res in (int(s) for s in args.sizes.split(",")):
        by = {c: [r for r in rows if r["res"] == res and r["chunk"] == c] for c in (0, args.chunk)}
        one = statistics.median(r["step_seconds"] for r in by[0])
        for c in (0, args.chunk):
            rs = by[c]
            step = statistics.median(r["step_seconds"] for r in rs)
            lines.append(f"| {res} x {res} | {res * res:,} | {rs[0]['passes']} | {step:.3f} | {one / step:.2f}x | "
                         f"{max(r['peak_rss_gb'] for r in rs):.2f} | {rs[0]['psnr']:.4f} | {rs[0]['ssim']:.4f} |")
    write_table(args.out, "step-passes", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
