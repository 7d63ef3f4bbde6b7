"""Pool image-benchmark runs made with different ``--seed`` values into one table.

``posenc bench images`` runs one seed per call; this reads the ``results.jsonl`` of several such
folders and writes a markdown table of PSNR and held-out PSNR per method and image, as mean +- std
over the seeds found, plus the mean over images and the number of wins per seed pairing.

    python benchmarks/seed_summary.py OUT.md FOLDER [FOLDER ...] [--methods a,b]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from posenc.bench.common import fmt_pm
from posenc.io import atomic_write_text, read_jsonl


def summarise(folders: list[Path], methods: list[str] | None = None) -> str:
    # (method, image) -> {seed: metrics}; a later folder never overrides a seed already read
    runs: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for folder in folders:
        for row in read_jsonl(folder / "results.jsonl"):
            image = Path(row["config"]["data"]["path"]).stem
            runs[(row["method"], image)].setdefault(int(row["config"]["train"]["seed"]), row["metrics"])
    methods = methods or sorted({m for m, _ in runs})
    images = sorted({i for m, i in runs if m in methods})
    # only seeds that every method has for an image, so the comparison is paired
    seeds = {i: sorted(set.intersection(*(set(runs[(m, i)]) for m in methods))) for i in images}
    lines = [
        f"Seeds pooled from: {', '.join(f'`{f}`' for f in folders)}. Each cell: mean ± std (population, as in every "
        "posenc table) over the seeds (network initialisation; the Fourier matrix is fixed by the encoding's own seed).", "",
        "| method | " + " | ".join(f"{i} ({len(seeds[i])} seed(s))" for i in images) + " | mean over images |",
        "|---|" + "---|" * (len(images) + 1),
    ]
    for key, title in (("psnr", "PSNR"), ("psnr_heldout", "held-out PSNR")):
        for m in methods:
            cells, means = [], []
            for i in images:
                vals = [runs[(m, i)][s][key] for s in seeds[i]]
                cells.append(fmt_pm(vals))
                if vals:
                    means.append(statistics.fmean(vals))
            overall = f"{statistics.fmean(means):.2f}" if means else "-"
            lines.append(f"| {m} ({title}) | " + " | ".join(cells) + f" | {overall} |")
    if len(methods) == 2:
        a, b = methods
        for key in ("psnr", "psnr_heldout"):
            pairs = [(runs[(a, i)][s][key], runs[(b, i)][s][key]) for i in images for s in seeds[i]]
            wins = sum(y > x for x, y in pairs)
            diff = statistics.fmean(y - x for x, y in pairs) if pairs else float("nan")
            lines.append("")
            lines.append(f"{key}: `{b}` minus `{a}` = {diff:+.3f} dB on average over {len(pairs)} paired "
                         f"(image, seed) fits; `{b}` higher in {wins} of them.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--methods", default="", help="comma-separated, in table order (default: all)")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "results.jsonl").is_file()]
    if missing:
        print(f"error: no results.jsonl in {', '.join(missing)}", file=sys.stderr)
        return 2
    methods = [m for m in args.methods.split(",") if m] or None
    text = summarise(args.folders, methods)
    atomic_write_text(args.out, f"# Pooled seeds\n\nMade by: `python benchmarks/seed_summary.py {' '.join(argv)}`\n\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
