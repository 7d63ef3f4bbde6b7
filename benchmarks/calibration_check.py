"""Which recorded silhouette fits this machine computes bit for bit, without refitting them.

A silhouette fit starts with a calibration to the unit circle that is the same for every input of a
(row, seed): its final MSE is a fingerprint of the arithmetic that computed the fit. This script runs
that calibration once per (row, seed) here (a one-step fit of the first input) and compares it with the
``calibration_mse`` of every recorded row, grouped by the invocation of the suite that recorded it.
A row whose calibration differs was computed by kernels that round differently, so its refit here
cannot reproduce it.

    python benchmarks/calibration_check.py benchmarks/results/sape-table1 --out benchmarks/results/sape-table1/calibration-check.md
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from posenc.io import atomic_write_text, read_jsonl
from posenc.reproduce.runner import run_one


def when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%d %b %H:%M")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a suite's results folder (results.jsonl, invocations.jsonl)")
    ap.add_argument("--column", default="silhouettes")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = [r for r in read_jsonl(args.folder / "results.jsonl") if r["column"] == args.column and r.get("kind") == "fit"]
    starts = sorted({i["started"] for i in read_jsonl(args.folder / "invocations.jsonl")})
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["row"], r["seed"])].append(r)
    lines = [f"# Calibration check: {args.column} rows of `{args.folder}`", "",
             f"Made by: `python benchmarks/calibration_check.py {args.folder} --column {args.column} --out {args.out}`", "",
             "Each (row, seed) calibrates to the unit circle before training, identically for every input; the MSE it "
             "ends at is compared with each recorded row's. `no figure`: a fit resumed from a checkpoint records none.", "",
             "| row | seed | calibration MSE here | recorded rows that match | rows that differ (their MSE, when recorded) |",
             "|---|---|---|---|---|"]
    totals = {"match": 0, "differ": 0, "none": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for (name, seed), recorded in groups.items():
            job = copy.deepcopy(recorded[0])
            job["config"]["train"]["iters"] = 1
            job["out"] = str(Path(tmp) / f"{len(lines)}")
            here = run_one(job)["calibration_mse"]
            match, differ = [], defaultdict(list)
            for r in recorded:
                mse = r["metrics"].get("calibration_mse")
                at = "reused from " + r["reused_from"].split("/")[0] if "reused_from" in r else \
                    "invocation of " + when(max([s for s in starts if s <= r["finished_at"]], default=r["finished_at"]))
                if mse == here:
                    match.append(at)
                    totals["match"] += 1
                else:
                    differ[(f"{mse:.7g}" if mse is not None else "no figure", at)].append(r["image"])
                    totals["differ" if mse is not None else "none"] += 1
            lines.append(f"| {name} | {seed} | {here:.7g} | "
                         + (", ".join(f"{match.count(a)} ({a})" for a in dict.fromkeys(match)) or "-") + " | "
                         + ("; ".join(f"{len(v)} ({a}): {mse}" for (mse, a), v in differ.items()) or "-") + " |")
            print(lines[-1], flush=True)
    lines += ["", f"In all: {totals['match']} rows match this machine's calibration, {totals['differ']} differ, "
              f"{totals['none']} carry no calibration figure (resumed).", ""]
    atomic_write_text(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
