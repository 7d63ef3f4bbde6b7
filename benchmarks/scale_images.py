"""Image fits at 0.25, 1, 4 and 12 MP in bounded memory (issue: real inputs at their real size).

A Kodak photo is upsampled (Lanczos) to each size, keeping its 3:2 aspect, and fitted at its native
size under the fit protocol with mini-batches of 65,536 pixels for a fixed number of steps, so every
size sees the same number of training samples. Each fit runs in its own process under
``/usr/bin/time -v`` (peak RSS of the whole process); seconds per million samples and PSNR come from
its ``metrics.json``.

    python benchmarks/scale_images.py --out benchmarks/results/scale
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from posenc.bench.common import write_table

SIZES_MP = (0.25, 1.0, 4.0, 12.0)
METHODS = ("gaussian", "hash_grid")


def upsampled(src: Path, megapixels: float, folder: Path) -> Path:
    from PIL import Image

    with Image.open(src) as im:
        w, h = im.size
        scale = (megapixels * 1e6 / (w * h)) ** 0.5
        size = (round(w * scale), round(h * scale))
        path = folder / f"{src.stem}-{megapixels:g}MP.png"
        im.convert("RGB").resize(size, Image.LANCZOS).save(path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=Path, default=Path("../shared/data/images/kodak/kodim23.png"))
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default=",".join(f"{m:g}" for m in SIZES_MP), help="megapixels, comma-separated")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    sizes = [float(v) for v in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mp in sizes:
            photo = upsampled(args.image, mp, Path(tmp))
            for method in METHODS:
                run = Path(tmp) / f"run-{method}-{mp:g}"
                cmd = [sys.executable, "-m", "posenc", "fit", "image", str(photo), "--res", "native", "--protocol", "fit",
                       "--method", method, "--iters", str(args.iters), "--batch", str(args.batch),
                       "--threads", str(args.threads), "--checkpoint-every", "0", "--quiet", "--out", str(run)]
                proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return proc.returncode
                rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
                wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
                m = json.loads((run / "metrics.json").read_text())
                m["seconds"] = json.loads((run / "timing.json").read_text())["seconds"]
                b = m["batching"]
                samples = b["batch"] * m["iters"]
                row = {"method": method, "megapixels": mp, "size": f"{m['width']}x{m['height']}" if "width" in m else "",
                       "pixels": b["samples"], "batch": b["batch"], "mode": b["mode"], "iters": m["iters"], "samples": samples,
                       "train_seconds": m["seconds"], "s_per_million_samples": m["seconds"] / samples * 1e6,
                       "psnr": m["psnr"], "ssim": m["ssim"], "peak_rss_gb": rss_kb / 1e6, "wall": wall}
                from PIL import Image

                with Image.open(photo) as im:
                    row["size"] = f"{im.width}x{im.height}"
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    base = {r["method"]: r["s_per_million_samples"] for r in rows if r["megapixels"] == sizes[0]}
    command = "python benchmarks/scale_images.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = ["# Image fits at 0.25-12 MP in bounded memory", "",
             f"Made by: `{command}`", "",
             f"`{args.image.name}` upsampled (Lanczos, aspect kept) to each size; `posenc fit image --res native --protocol fit "
             f"--batch {args.batch} --iters {args.iters} --threads {args.threads}`: every fit sees {args.batch * args.iters:,} "
             "training samples (random pixels). Peak RSS: `/usr/bin/time -v` of the whole process (loading, training, "
             "evaluation on every pixel, SSIM, pictures, model). Time: training seconds (metrics.json) per million samples; "
             "one process at a time, nothing else running.", "",
             f"| method | size | MP | pixels | peak RSS (GB) | s / M samples | vs {sizes[0]:g} MP | PSNR (dB) | SSIM | wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['size']} | {r['megapixels']:g} | {r['pixels']:,} | {r['peak_rss_gb']:.2f} | "
                     f"{r['s_per_million_samples']:.2f} | {r['s_per_million_samples'] / base[r['method']]:.2f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['wall']} |")
    write_table(args.out, "results", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
