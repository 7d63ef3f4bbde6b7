"""A suite's reports, made from ``results.jsonl`` alone: ``report.md`` and a self-contained
``report.html`` (pictures inlined as data URIs, tables sortable by a click on a header, no network).

Per column: each row's figure (mean ± std over inputs, seeds pooled), the paper's, the difference, and
the paired comparison with the suite's reference row; the settings picked on validation images; a
per-input table; a montage of every row on the first test inputs; for sweeps, the metric against the
swept value. At the top: the command that made it, wall time, CPU-hours, and the FLOP lower bound of
the MLP work against the measured matmul peak (efficiency = the bound's time at the peak / fit time).
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_text, read_jsonl, save_image
from ..runs import METRICS_FILE
from .runner import (ReproduceConfig, applies, idle_matmul_peak, pick, pictured_folder, results_index,
                     test_jobs, validation_jobs, wanted_rows)
from .stats import Cell, cell, fmt_cell, fmt_paired, paired
from .suite import Column, Row, Suite



@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Tile:
    """A montage tile whose picture (a refit: run folders are not committed) scores differently from
    the row it stands for: the tile shows its own figure, the tables keep the recorded one."""

    row: str
    input: str
    recorded: float
    shown: float
    cause: str


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    pictures: list[tuple[str, str]] = field(default_factory=list)  # (path relative to out, caption)
    tiles: list[Tile] = field(default_factory=list)  # montage tiles that differ from their rows


@dataclass
class RowResult:
    row: Row
    method: str | None
    values: dict[tuple[str, int], float]
    cell: Cell | None
    planned: int
    folders: dict[str, str]  # input -> run folder (first seed) for pictures
    pictured: dict[str, dict[str, Any]] = field(default_factory=dict)  # input -> that fit's recorded row


def command_line(rc: ReproduceConfig) -> str:
    args = ["reproduce", rc.suite, "--scale", rc.scale]
    if rc.seeds:
        args += ["--seeds", str(rc.seeds)]
    if rc.only:
        args += ["--only", ",".join(rc.only)]
    if rc.limit:
        args += ["--limit", str(rc.limit)]
    if rc.iters:
        args += ["--iters", str(rc.iters)]
    if rc.executor != "local":
        args += ["--executor", rc.executor] + (["--address", rc.address] if rc.address else [])
    if rc.workers != 1:
        args += ["--workers", str(rc.workers)]
    if rc.data_root != "../shared/data":
        args += ["--data-root", rc.data_root]
    if rc.reuse:
        args += ["--reuse", ",".join(rc.reuse)]
    if not rc.pictures:
        args += ["--no-pictures"]
    args += ["--out", rc.out]
    return "posenc " + " ".join(shlex.quote(a) for a in args)


def column_results(suite: Suite, rc: ReproduceConfig, column: Column, index: dict[str, dict[str, Any]], out: Path) -> list[RowResult]:
    from ..bench.runner import family_of

    results = []
    for row in wanted_rows(suite, rc):
        if not applies(row, column):
            continue
        jobs, _ = test_jobs(suite, rc, [row], out, index)
        jobs = [j for j in jobs if j["column"] == column.name]
        values: dict[tuple[str, int], float] = {}
        folders: dict[str, str] = {}
        pictured: dict[str, dict[str, Any]] = {}
        tile = family_of(column.task).tile
        for j in jobs:
            r = index.get(j["digest"])
            if r is None:
                continue
            v = r["metrics"].get(column.metric)
            if v is not None:
                values[(j["image"], -1 if j["kind"] == "baseline" else j["seed"])] = float(v)
            if j["image"] not in folders or j["seed"] == 0:
                found = pictured_folder(out, r, tile)
                folders[j["image"]] = r["out"] if found is None else os.path.relpath(found, out)
                pictured[j["image"]] = r
        by_input: dict[str, list[float]] = {}
        for (inp, _), v in values.items():
            by_input.setdefault(inp, []).append(v)
        method = jobs[0]["method"] if jobs else None
        planned = len(jobs) if jobs else 0
        results.append(RowResult(row=row, method=method, values=values, cell=cell(by_input), planned=planned,
                                 folders=folders, pictured=pictured))
    return results


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _apart(a: float, b: float, digits: int) -> tuple[str, str]:
    """``a`` and ``b`` with the column's digits, or as many more as it takes to tell them apart."""
    for d in range(digits, digits + 6):
        if _fmt(a, d) != _fmt(b, d):
            break
    return _fmt(a, d), _fmt(b, d)


def column_section(suite: Suite, rc: ReproduceConfig, column: Column, index: dict[str, dict[str, Any]], out: Path,
                   drawn: dict[tuple[str, str], str] | None = None) -> Section:
    from ..bench.runner import family_of

    d = column.digits
    res = column_results(suite, rc, column, index, out)
    ref = next((r for r in res if r.row.name == suite.reference), None)
    scale = suite.scales.get(rc.scale, {}).get(column.task, {})
    settings = {**column.settings, **scale, **column.overrides}
    measured = {i for r in res for i, _ in r.values}
    stems = [s for s in (column.test[: rc.limit] if rc.limit else column.test) if s in measured]
    sec = Section(title=f"{column.name}: {column.task}, `{column.data}`")
    sec.paragraphs.append(
        f"Test inputs: {', '.join(column.test[: rc.limit] if rc.limit else column.test)}"
        + (f"; validation inputs (setting searches): {', '.join(column.validation)}" if column.validation else "")
        + f". Settings: {', '.join(f'{k} {v}' for k, v in settings.items()) or 'the task defaults'}"
        + (f"; every method sized to {column.match_params:,} parameters" if column.match_params else "")
        + f". Figure: `{column.metric}` ({'higher' if column.higher_is_better else 'lower'} is better), "
        + ("mean ± std over seeds (one input)." if len(stems) == 1 else "mean ± std over inputs, each input the mean of its seeds."))
    header = ["row", "method", f"posenc {column.metric}", "paper", "posenc − paper", f"vs {suite.reference} (paired, 95% CI)", "seed std", "runs"]
    rows = []
    for r in res:
        paper = r.row.paper.get(column.name)
        paper_s = "-" if paper is None else (f"{paper[0]:.{d}f}" + (f" ± {paper[1]:.{d}f}" if paper[1] is not None else ""))
        diff = "-" if (paper is None or r.cell is None or not column.compare_paper) else f"{r.cell.mean - paper[0]:+.{d}f}"
        if r.row.name == suite.reference:
            vs = "(reference)"
        else:
            vs = fmt_paired(paired(r.values, ref.values) if ref else None, d, column.higher_is_better)
        method = r.method or "(waiting for its selection)"
        rows.append([r.row.name, f"`{method}`", fmt_cell(r.cell, d), paper_s, diff, vs,
                     "-" if r.cell is None else f"{r.cell.seed_std:.{d}f}", f"{r.cell.runs if r.cell else 0}/{r.planned}"])
    sec.tables.append(Table(header, rows))
    order = ordering(res, column)
    if order:
        sec.paragraphs.append(order)
    # selections
    picks = []
    for r in res:
        sel = r.row.select
        if sel is None or not column.validation:
            continue
        value = pick(suite, rc, r.row, column, index, out)
        if sel.like:
            picks.append(f"**{r.row.name}**: {sel.param} = {suite.row(sel.like).name}'s pick x {sel.factor:g} = "
                         + ("pending" if value is None else f"{value:g}"))
            continue
        means = _search_means(suite, rc, r.row, column, index, out)
        listing = ", ".join(f"{v:g}: {m:.4g}" if m is not None else f"{v:g}: -" for v, m in means)
        picks.append(f"**{r.row.name}**: {sel.param} picked on {', '.join(column.validation)} by the "
                     f"{sel.rule} of {sel.metric or column.metric} over {sel.seeds} seed(s): "
                     + ("pending" if value is None else f"**{value:g}**") + f" ({listing})")
    if picks:
        sec.paragraphs.append("Selections (validation inputs only; the pick then runs on the test inputs): " + "; ".join(picks) + ".")
    # per input
    if stems:
        header = ["row"] + stems
        per = []
        for r in res:
            cells = []
            for s in stems:
                vals = [v for (i, _), v in r.values.items() if i == s]
                cells.append("-" if not vals else (f"{vals[0]:.{d}f}" if len(vals) == 1 else
                                                     f"{np.mean(vals):.{d}f} ± {np.std(vals, ddof=1):.{d}f}"))
            per.append([r.row.name] + cells)
        if len(stems) > WIDE_INPUTS:  # many inputs (20 silhouettes): one line per input reads better
            per = [[stem] + [line[1 + k] for line in per] for k, stem in enumerate(stems)]
            header = ["input"] + [r.row.name for r in res]
        sec.tables.append(Table(header, per, caption=f"{column.metric} per input (mean ± std over seeds)"))
    # montages
    family = family_of(column.task)
    drawn = {} if drawn is None else drawn
    for stem in list(column.test[: rc.limit] if rc.limit else column.test)[:suite.montages]:
        if (column.data, stem) in drawn:  # the same fits pictured under an earlier column
            sec.paragraphs.append(f"Pictures of {stem}: see {drawn[(column.data, stem)]}.")
            continue
        differing: list[Tile] = []
        path = _montage(out, column, stem, res, family.tile, family.target, differing)
        if path:
            drawn[(column.data, stem)] = f"the {column.name} section"
            sec.pictures.append((path, f"{stem}: {'target, then ' if family.target else ''}every row (seed 0) with its {column.metric}"
                                 + (" (* a refit that scores differently from its recorded row)" if differing else "")))
            sec.tiles += differing
        if differing:
            sec.paragraphs.append(
                f"Starred tiles of the {stem} montage are refits whose {column.metric} differs from the recorded row "
                "(the tables keep the recorded figures): "
                + "; ".join(f"{t.row} {' against '.join(_apart(t.shown, t.recorded, column.digits))} ({t.cause})"
                            for t in differing) + ".")
    for base, sweep_rows in suite.sweeps().items():
        path = _sweep_plot(out, column, base, [r for r in res if r.row in sweep_rows])
        if path:
            sec.pictures.append((path, f"{column.metric} against {sweep_rows[0].sweep_param} ({base})"))
    return sec


def ordering(res: list[RowResult], column: Column) -> str:
    """The rows ranked by posenc's figure and by the paper's (best first), and whether they agree."""
    both = [r for r in res if r.cell is not None and column.name in r.row.paper]
    if len(both) < 2:
        return ""
    sign = -1.0 if column.higher_is_better else 1.0
    ours = sorted(both, key=lambda r: sign * r.cell.mean)
    theirs = sorted(both, key=lambda r: sign * r.row.paper[column.name][0])
    pairs = [(a, b) for i, a in enumerate(both) for b in both[i + 1:]]
    concordant = sum(1 for a, b in pairs if (a.cell.mean - b.cell.mean) * (a.row.paper[column.name][0] - b.row.paper[column.name][0]) > 0)
    text = (f"Ordering, best first: posenc {' > '.join(r.row.name for r in ours)}; paper {' > '.join(r.row.name for r in theirs)}. "
            f"{concordant} of {len(pairs)} row pairs are in the paper's order")
    if ours[0].row.name != theirs[0].row.name:
        text += (f"; the paper's best row ({theirs[0].row.name}) is not the best here ({ours[0].row.name}: "
                 f"{ours[0].cell.mean:.{column.digits}f} against {theirs[0].cell.mean:.{column.digits}f})")
    return text + "."


def _search_means(suite: Suite, rc: ReproduceConfig, row: Row, column: Column, index: dict[str, dict[str, Any]],
                  out: Path) -> list[tuple[float, float | None]]:
    from .runner import search_jobs

    metric = row.select.metric or column.metric
    by: dict[float, list[float]] = {}
    for job in search_jobs(suite, rc, row, column, out):
        r = index.get(job["digest"])
        by.setdefault(job["value"], [])
        if r is not None and r["metrics"].get(metric) is not None:
            by[job["value"]].append(r["metrics"][metric])
    return [(v, (sum(x) / len(x)) if x else None) for v, x in by.items()]


def _montage(out: Path, column: Column, stem: str, res: list[RowResult], tile: str, target: str | None,
             differing: list[Tile]) -> str | None:
    """Every row's seed-0 picture of ``stem`` in one strip, each labelled with the figure of the fit it
    shows; a tile whose fit scores differently from its recorded row (a refit computed by other
    kernels) is starred and added to ``differing``."""
    from PIL import Image

    from ..viz import labelled_strip

    tiles, labels = [], []
    for r in res:
        folder = r.folders.get(stem)
        if folder is None or not (out / folder / tile).exists():
            continue
        if target and not tiles and (out / folder / target).exists():
            tiles.append(np.asarray(Image.open(out / folder / target).convert("RGB")))
            labels.append("target")
        value = r.values.get((stem, 0), r.values.get((stem, -1)))
        shown, star = value, ""
        drawn = _folder_metrics(out / folder)
        if value is not None and isinstance(drawn.get(column.metric), (int, float)) and float(drawn[column.metric]) != value:
            shown, star = float(drawn[column.metric]), "*"
            differing.append(Tile(r.row.name, stem, value, shown, refit_cause(r.pictured.get(stem, {}), drawn)))
        tiles.append(np.asarray(Image.open(out / folder / tile).convert("RGB")))
        labels.append(f"{r.row.name} {_fmt(shown, column.digits)}{star}")
    if len(tiles) < 2:
        return None
    rel = f"{column.name}/montage_{stem}.png"
    save_image(out / rel, labelled_strip(tiles, labels, tile=160))
    return rel


def _folder_metrics(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def refit_cause(recorded: dict[str, Any], refit: dict[str, Any]) -> str:
    """Why a refit may not reproduce its recorded row (a results.jsonl row; ``refit``: the refit's
    metrics): a row taken from another folder was made by that run's code, and the arithmetic
    fingerprints of the two fits say whether the same kernels computed them."""
    a = recorded.get("metrics", {}).get("machine", {}).get("arithmetic")
    b = refit.get("machine", {}).get("arithmetic")
    reused = f"reused from {recorded['reused_from']}, made by the code of that run; " if "reused_from" in recorded else ""
    if a and b:
        return reused + (f"computed by other kernels: arithmetic fingerprint {a} recorded, {b} refitted" if a != b else
                         f"the same arithmetic fingerprint ({a}): not explained by the machine")
    return reused + "the " + ("recorded fit" if not a else "refit") + " carries no arithmetic fingerprint"


def _sweep_plot(out: Path, column: Column, base: str, res: list[RowResult]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r.row.sweep_value, r.cell) for r in res if r.cell is not None]
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    ax.errorbar(xs, [p[1].mean for p in points], yerr=[p[1].spread for p in points], marker="o", capsize=3)
    ax.set_xlabel(res[0].row.sweep_param)
    ax.set_ylabel(column.metric)
    ax.set_title(f"{column.name}: {base}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.canvas.draw()
    rel = f"{column.name}/sweep_{base.replace(' ', '_')}.png"
    save_image(out / rel, np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return rel


def suite_cost(suite: Suite, rc: ReproduceConfig, index: dict[str, dict[str, Any]], out: Path) -> dict[str, Any]:
    """What the planned fits cost: fits, wall and CPU hours, the MLP FLOP lower bound, the one-thread
    matmul peak it is measured against, and the ``--list`` estimate made before any fit ran."""
    from .runner import estimate

    planned = {j["digest"] for j in validation_jobs(suite, rc, wanted_rows(suite, rc), out)}
    planned |= {j["digest"] for j in test_jobs(suite, rc, wanted_rows(suite, rc), out, index)[0]}
    rows = [index[k] for k in planned if k in index and index[k]["kind"] == "fit"]
    cpu_seconds = sum(r["metrics"].get("seconds", 0.0) * max(r["metrics"].get("threads", 1), 1) for r in rows)
    flops = sum(r["metrics"].get("mlp_flops", 0.0) for r in rows)
    records = [inv for inv in read_jsonl(out / "invocations.jsonl") if inv.get("suite") == suite.name]
    invocations = [inv for inv in records if inv.get("event") != "start"]
    peaks = [inv["matmul_peak_gflops"] for inv in invocations if "matmul_peak_gflops" in inv]
    if peaks:  # measured by each invocation before and after its fits, with nothing else of ours running
        peak = float(np.median(peaks))
        when = f"the median over {len(peaks)} invocation(s) of this command, each measured at its start and end"
    else:  # folders written before invocations recorded it
        peak = idle_matmul_peak()
        when = "measured when this report was written"
    reused = sorted({r["reused_from"].split("/")[0] for r in rows if "reused_from" in r})
    fitting = [inv for inv in invocations if inv.get("ran_fits", True)]
    killed = _killed_invocation_seconds(records, rows)
    # refitting lost pictures is not the suite's cost: it leaves the wall time and is reported on its own
    fit_seconds = [inv.get("seconds", 0.0) - inv.get("pictures", {}).get("seconds", 0.0) for inv in fitting]
    thread_seconds = sum(sec * _threads_held(inv) for sec, inv in zip(fit_seconds, fitting)) + sum(sec * held for sec, held in killed)
    wall_seconds = sum(fit_seconds) + sum(sec for sec, _ in killed)
    redrawn = [inv["pictures"] for inv in invocations if inv.get("pictures")]
    return {"fits": len(rows), "planned": len(planned), "reused": sum("reused_from" in r for r in rows), "reused_from": reused,
            # wall time of the invocations that ran fits (a report rewrite is not the suite's cost), and
            # that time x the threads they held (workers x threads per fit): the machine time the suite took
            "wall_hours": round(wall_seconds / 3600, 2), "thread_hours": round(thread_seconds / 3600, 3),
            "killed_invocations": len(killed),
            # every fit's CPU time lies inside some recorded invocation: otherwise some were stopped before
            # they could record anything (folders from before start records), and the wall time is short
            "wall_complete": thread_seconds >= 0.98 * sum(r["metrics"].get("seconds", 0.0) * max(r["metrics"].get("threads", 1), 1)
                                                          for r in rows if "reused_from" not in r),
            "cpu_hours": round(cpu_seconds / 3600, 2), "cpu_seconds": round(cpu_seconds, 1), "mlp_flops": flops,
            "peak_gflops": round(peak, 1),
            "peak_when": when, "estimated_cpu_hours": round(estimate(suite, rc)["cpu_hours"], 1),
            "pictures": {"fits": sum(p["fits"] for p in redrawn), "compared": sum(p.get("compared", 0) for p in redrawn),
                         "max_gap": max((p.get("max_gap", 0.0) for p in redrawn), default=0.0),
                         "wall_hours": round(sum(p.get("seconds", 0.0) for p in redrawn) / 3600, 2)}}


def _killed_invocation_seconds(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """``(seconds, threads held)`` of invocations that recorded a start and no end: from the start to the
    last fit they finished (before the next invocation started)."""
    ends = {r.get("started") for r in records if r.get("event") != "start"}
    starts = sorted(r["started"] for r in records if r.get("event") == "start")
    all_starts = sorted({r.get("started", 0.0) for r in records})
    out = []
    for s in starts:
        if s in ends:
            continue
        nxt = min((t for t in all_starts if t > s), default=float("inf"))
        done = [r["finished_at"] for r in rows if "finished_at" in r and s <= r["finished_at"] < nxt]
        if done:
            held = max(int(r["metrics"].get("threads", 1) or 1) for r in rows if "finished_at" in r and s <= r["finished_at"] < nxt)
            out.append((max(done) - s, held * max(1, _workers_seen(rows, s, nxt))))
    return out


def _workers_seen(rows: list[dict[str, Any]], start: float, end: float) -> int:
    """How many fits of a killed invocation ran at once, at most (from their finish times and durations)."""
    spans = [(r["finished_at"] - r["metrics"].get("seconds", 0.0), r["finished_at"]) for r in rows
             if "finished_at" in r and start <= r["finished_at"] < end]
    return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=1)


def _threads_held(invocation: dict[str, Any]) -> int:
    settings = invocation.get("settings", {})
    return max(int(settings.get("workers", 1) or 1), 1) * max(int(settings.get("threads", 1) or 1), 1)


def cost_paragraph(cost: dict[str, Any]) -> str:
    """Wall time, CPU-hours and the MLP FLOP lower bound against the measured matmul peak."""
    bound = cost["mlp_flops"] / (cost["peak_gflops"] * 1e9)
    eff = bound / cost["cpu_seconds"] if cost["cpu_seconds"] else float("nan")
    shared = (f" ({cost['reused']} of them are identical fits taken from {', '.join(cost['reused_from'])}: "
              "same config, input and seed; their time counts here but was spent once)") if cost["reused"] else ""
    return (f"Cost: {cost['fits']} fits{shared}; wall time {cost['wall_hours']:.2f} h over the invocations of this command that ran fits; "
            f"{cost['cpu_hours']:.2f} CPU-hours of fitting (fit seconds x threads; `posenc reproduce --list` estimated "
            f"{cost['estimated_cpu_hours']:.1f}). The MLP work is at least "
            f"{cost['mlp_flops'] / 1e15:.2f} PFLOP (forward + backward of the linear layers); at the one-thread matmul peak "
            f"({cost['peak_gflops']:.0f} GFLOP/s, {cost['peak_when']}) that takes {bound / 3600:.2f} CPU-hours, "
            f"so the fits ran at {100 * eff:.0f}% of the peak (bound / CPU time; the rest is encodings, "
            "evaluation, pictures and small matrices)"
            + (f", and the suite at {100 * bound / (3600 * cost['thread_hours']):.0f}% (bound / wall time x the threads it held, "
               "which also counts workers idle at stage boundaries)" if cost.get("thread_hours") and cost.get("wall_complete") else "")
            + ("" if cost.get("wall_complete", True) else
               ". The wall time is incomplete: some invocations were stopped before they could record it (the fits' "
               "CPU time exceeds the recorded wall time x threads), so no suite-level figure is given")
            + (f". {cost['killed_invocations']} invocation(s) were stopped without recording their end; their wall time is "
               "counted from their start to their last finished fit" if cost.get("killed_invocations") else "") + "."
            + pictures_sentence(cost.get("pictures", {})))


def pictures_sentence(pictures: dict[str, Any]) -> str:
    """What redrawing the montages' lost pictures took, and whether the refits reproduced their rows."""
    if not pictures.get("fits"):
        return ""
    gap = pictures["max_gap"]
    differ = pictures.get("tiles_differing")
    agree = ("each reproduced its recorded metric exactly" if gap == 0 else
             f"their metrics differ from the recorded ones by at most {gap:.2g}"
             + (f" ({differ} montage tile{'s' if differ != 1 else ''}, starred and listed under {'their columns' if differ != 1 else 'its column'})"
                if differ else "") + "; the tables keep the recorded figures")
    return (f" {pictures['fits']} pictured seed-0 fits were refitted to redraw montage pictures whose run folders were "
            f"not kept (run folders are not committed), in {pictures['wall_hours']:.2f} h of wall time outside the figures "
            f"above; of the {pictures['compared']} compared, {agree}.")


def build_sections(out: Path, suite: Suite, rc: ReproduceConfig) -> tuple[list[str], list[Section], dict[str, Any]]:
    index = results_index(out)
    cost = suite_cost(suite, rc, index, out)
    drawn: dict[tuple[str, str], str] = {}
    sections = [column_section(suite, rc, c, index, out, drawn) for c in suite.columns]
    cost["pictures"]["tiles_differing"] = sum(len(s.tiles) for s in sections)
    head = [
        f"Made by: `{command_line(rc)}`",
        f"Source: {suite.source}." if suite.source else "",
        suite.notes,
        f"Scale `{rc.scale}`; {rc.seeds or suite.seeds} seed{'s' if (rc.seeds or suite.seeds) != 1 else ''} per cell "
        f"(network seeds 0-{(rc.seeds or suite.seeds) - 1}); "
        f"machine: {platform.machine()}, {rc.executor} executor, {rc.workers} worker(s) x {rc.threads} thread(s).",
        cost_paragraph(cost),
    ]
    return [h for h in head if h], sections, cost


def write_reports(out: Path, suite: Suite, rc: ReproduceConfig) -> None:
    head, sections, cost = build_sections(out, suite, rc)
    atomic_write_text(out / "report.md", to_markdown(suite, head, sections))
    atomic_write_text(out / "report.html", to_html(out, suite, head, sections))
    summary = {"suite": suite.name, "title": suite.title, "command": command_line(rc), "reference": suite.reference,
               "seeds": rc.seeds or suite.seeds, "scale": rc.scale, "cost": cost,
               "columns": [{"name": c.name, "metric": c.metric, "higher_is_better": c.higher_is_better,
                            "rows": [{"row": r[0], "method": r[1].strip("`"), "posenc": r[2], "paper": r[3],
                                      "vs_reference": r[5], "runs": r[7]} for r in sec.tables[0].rows]}
                           for c, sec in zip(suite.columns, sections)]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def to_markdown(suite: Suite, head: list[str], sections: list[Section]) -> str:
    lines = [f"# {suite.title}", ""]
    for h in head:
        lines += [h, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for t in s.tables:
            if t.caption:
                lines += [f"*{t.caption}*", ""]
            lines += ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
            lines += ["| " + " | ".join(r) + " |" for r in t.rows]
            lines.append("")
        for path, caption in s.pictures:
            lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f2f2f2;cursor:pointer;user-select:none}th:after{content:" \\2195";color:#999}
code{background:#f6f6f6;padding:0 3px}img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}
figcaption{font-size:13px;color:#555}.caption{font-style:italic}"""

_JS = """function sortTable(th){const table=th.closest('table');const idx=[...th.parentNode.children].indexOf(th);
const body=table.tBodies[0];const rows=[...body.rows];const asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const key=r=>{const t=r.cells[idx].innerText.trim();const m=t.replace(/^(tie|better|worse)\\s*\\(?/,'').match(/^[+-]?\\d+(\\.\\d+)?/);return m?parseFloat(m[0]):t;};
rows.sort((a,b)=>{const x=key(a),y=key(b);const c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));return asc?c:-c;});
rows.forEach(r=>body.appendChild(r));}
window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.tables=document.querySelectorAll('table').length;
document.body.dataset.images=imgs.length;document.body.dataset.imagesLoaded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});"""


WIDE_INPUTS = 8  # a column with more test inputs lists its per-input figures one input per line
PNG_INLINE_LIMIT = 150_000  # bytes; larger pictures (photo montages) go into report.html as JPEG
JPEG_QUALITY = 90


def embedded_picture(path: Path) -> tuple[str, bytes]:
    """The bytes report.html inlines for a picture: the PNG itself, or a JPEG when the PNG is large.

    Photo montages are 250-320 KB as PNG and four of them put a report over a megabyte; as JPEG they are a
    third of that. Plots and small pictures stay lossless.
    """
    import io

    from PIL import Image

    raw = path.read_bytes()
    if len(raw) <= PNG_INLINE_LIMIT:
        return "image/png", raw
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    jpeg = buf.getvalue()
    return ("image/jpeg", jpeg) if len(jpeg) < len(raw) else ("image/png", raw)


def _inline(text: str) -> str:
    """Markdown's inline bits (code, bold) as HTML, everything else escaped."""
    import re

    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def to_html(out: Path, suite: Suite, head: list[str], sections: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(suite.title)}</title>",
             f"<style>{_CSS}</style><script>{_JS}</script></head><body>", f"<h1>{html.escape(suite.title)}</h1>"]
    parts += [f"<p>{_inline(h)}</p>" for h in head]
    for s in sections:
        parts.append(f"<h2>{_inline(s.title)}</h2>")
        parts += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            if t.caption:
                parts.append(f"<p class='caption'>{_inline(t.caption)}</p>")
            parts.append("<table class='sortable'><thead><tr>" + "".join(f"<th onclick='sortTable(this)'>{_inline(h)}</th>" for h in t.header)
                         + "</tr></thead><tbody>")
            parts += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in t.rows]
            parts.append("</tbody></table>")
        for path, caption in s.pictures:
            mime, raw = embedded_picture(out / path)
            if mime != "image/png":
                caption += f" (shown here as JPEG, quality {JPEG_QUALITY}; the lossless PNG is `{path}` beside this report)"
            data = base64.b64encode(raw).decode()
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:{mime};base64,{data}'>"
                         f"<figcaption>{_inline(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
