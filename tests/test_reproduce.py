"""``posenc reproduce``: suites as data, selection on validation inputs, statistics, resumable runs under
the local and Ray executors, reports (markdown, and HTML rendered by a real browser), bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posenc.cli import main
from posenc.errors import PosencError
from posenc.io import read_jsonl
from posenc.reproduce import ReproduceConfig, list_suites, load_suite, run_suite
from posenc.reproduce.stats import cell, fmt_cell, fmt_paired, paired
from posenc.reproduce.runner import estimate

from conftest import smooth_test_image

SUITE = """
name = "tiny"
title = "A tiny suite"
reference = "gaussian"
seeds = 2

[scales.cpu]
image = {{ res = 16 }}

[[columns]]
name = "pictures"
task = "image"
data = "pics"
test = ["a", "b"]
validation = ["v"]
settings = {{ protocol = "gen25" }}
overrides = {{ "train.iters" = {iters}, "network.width" = 16, "network.depth" = 1 }}
metric = "psnr"

[[rows]]
name = "none"
method = "none"
paper = {{ pictures = [20.0, 1.0] }}

[[rows]]
name = "gaussian"
method = "gaussian:features=8"
select = {{ param = "sigma", values = [2, 6], rule = "max" }}
paper = {{ pictures = 25.0 }}

[[rows]]
name = "sape+gaussian"
method = "sape+gaussian:features=8"
select = {{ like = "gaussian", param = "sigma", factor = 2 }}

[[rows]]
name = "bilinear"
baseline = "bilinear"
"""


@pytest.fixture
def tiny(tmp_path):
    """A data root with three 16 px pictures and the tiny suite file."""
    pics = tmp_path / "data" / "pics"
    pics.mkdir(parents=True)
    for i, stem in enumerate(["a", "b", "v"]):
        Image.fromarray(smooth_test_image(32, seed=i)).save(pics / f"{stem}.png")
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE.format(iters=4))
    return tmp_path, suite


def config(tmp_path: Path, suite: Path, out: str = "out", **kw) -> ReproduceConfig:
    return ReproduceConfig(suite=str(suite), out=str(tmp_path / out), data_root=str(tmp_path / "data"), **kw)


# -- suites as data ---------------------------------------------------------------------------------
def test_every_shipped_suite_loads_and_lists(capsys):
    names = {s.name for s in list_suites()}
    assert {"tancik-images", "sape-table1", "sape-fig7", "lpe-images", "lpe-sdf", "lrbf-gen25"} <= names
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in names:
        assert name in out
    for suite in list_suites():  # a measured cost is shown beside the estimate, "-" when none is recorded
        line = next(l for l in out.splitlines() if l.startswith(suite.name + " "))
        m = suite.measured.get("cpu")
        assert line.split()[5] == (f"{m['cpu_hours']:.1f}" if m else "-"), line
    for suite in list_suites():  # every paper figure belongs to a column the row runs on
        for row in suite.rows:
            for col in row.paper:
                assert not row.columns or col in row.columns, (suite.name, row.name, col)


def test_sweeps_expand_into_rows():
    suite = load_suite("sape-fig7")
    names = [r.name for r in suite.rows]
    assert "gaussian sigma=40" in names and "sape+gaussian sigma=80" in names
    assert suite.row("sape+gaussian (sigma 20) mask_grid=16").method == "sape+gaussian:sigma=20:mask_grid=16"
    assert set(suite.sweeps()) == {"gaussian", "sape+gaussian", "sape+gaussian (sigma 20)"}


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.replace('reference = "gaussian"', 'reference = "nope"'), "reference row"),
    (lambda s: s.replace('method = "none"', 'method = "nonsense"'), "unknown method"),
    (lambda s: s.replace('baseline = "bilinear"', 'baseline = "lanczos"'), "unknown baseline"),
    (lambda s: s.replace('rule = "max"', 'rule = "best"'), "rule"),
    (lambda s: s.replace('like = "gaussian"', 'like = "none"'), "select.like"),
    (lambda s: s.replace('seeds = 2', 'seeds = 2\ncolour = "red"'), "unknown key"),
    (lambda s: s.replace('task = "image"', 'task = "video"'), "unknown task"),
    (lambda s: s.replace('test = ["a", "b"]', 'test = "a"'), "list"),
    (lambda s: s.replace('[[rows]]', '[measured.cpu]\nwall_hours = 1.0\n\n[[rows]]', 1), "needs 'cpu_hours'"),
    (lambda s: s.replace('[[rows]]', '[measured.cpu]\ncpu_hours = -1\n\n[[rows]]', 1), "hours must be >= 0"),
    (lambda s: s.replace('[[rows]]', '[measured.gpu]\ncpu_hours = 1.0\nwall_hours = 1.0\n\n[[rows]]', 1), "unknown scale"),
    (lambda s: s.replace('seeds = 2', 'seeds = 2\nmontages = -1'), "montages must be 0-10"),
    (lambda s: s.replace('[[rows]]', '[[rows', 1), "not a valid TOML"),
])
def test_a_malformed_suite_is_one_line_naming_the_problem(tiny, capsys, edit, needle):
    tmp_path, suite = tiny
    suite.write_text(edit(suite.read_text()))
    with pytest.raises(PosencError, match=needle):
        load_suite(suite)
    assert main(["reproduce", str(suite), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "o" / "results.jsonl").exists()


@pytest.mark.parametrize("args, needle", [
    (["reproduce", "no-such-suite"], "unknown suite"),
    (["reproduce", "tancik-images", "--scale", "huge"], "scale"),
    (["reproduce", "tancik-images", "--only", "nobody"], "no row named nobody"),
    (["reproduce", "tancik-images", "--executor", "dask"], "executor"),
    (["reproduce", "tancik-images", "--executor", "ray", "--address", "127.0.0.1:9"], "no Ray cluster answers"),
    (["reproduce", "tancik-images", "--executor", "ray", "--address", "nonsense"], "HOST:PORT"),
    (["reproduce", "tancik-images", "--data-root", "/nonexistent"], "data folder not found"),
    (["reproduce"], "name a suite"),
])
def test_bad_reproduce_arguments(capsys, tmp_path, args, needle):
    if "ray" in args:
        pytest.importorskip("ray")
    assert main(args + ["--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_ray_missing_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(["reproduce", "tancik-images", "--executor", "ray", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'posenc[ray]'" in err and len(err.splitlines()) == 1


# -- statistics -------------------------------------------------------------------------------------
def test_paired_interval_is_students_t():
    from scipy import stats

    ref = {("a", 0): 10.0, ("a", 1): 11.0, ("b", 0): 12.0, ("b", 1): 13.0}
    row = {("a", 0): 11.0, ("a", 1): 12.2, ("b", 0): 12.9, ("b", 1): 14.1}
    p = paired(row, ref)
    d = np.array([1.0, 1.2, 0.9, 1.1])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / math.sqrt(4)
    assert p.pairs == 4 and p.mean == pytest.approx(d.mean())
    assert (p.low, p.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert not p.tie and fmt_paired(p, 2).startswith("better")
    assert fmt_paired(p, 2, higher_is_better=False).startswith("worse")
    noisy = paired({("a", 0): 11.0, ("a", 1): 9.5, ("b", 0): 12.5, ("b", 1): 12.0}, ref)
    assert noisy.tie and fmt_paired(noisy, 2).startswith("tie")
    # a baseline (no seeds, key -1) pairs with every seed of the reference
    base = paired({("a", -1): 10.0, ("b", -1): 12.0}, ref)
    assert base.pairs == 4 and base.mean == pytest.approx(-0.5)  # diffs 0, -1, 0, -1
    assert paired({("a", 0): 1.0}, {("a", 0): 2.0}) is None  # one pair: no interval


def test_a_cell_counts_each_input_once():
    c = cell({"a": [10.0, 12.0], "b": [20.0]})
    assert c.mean == pytest.approx(15.5) and c.inputs == 2 and c.runs == 3
    assert c.std == pytest.approx(np.std([11.0, 20.0], ddof=1))
    assert c.seed_std == pytest.approx((np.std([10.0, 12.0], ddof=1) + 0.0) / 2)
    assert cell({"a": [float("nan")]}) is None
    assert fmt_cell(c, 2) == f"15.50 ± {np.std([11.0, 20.0], ddof=1):.2f}"  # ± over inputs
    one = cell({"a": [10.0, 12.0, 14.0]})  # one input: the ± is the seeds' spread, not a 0.00 over inputs
    assert one.std == 0.0 and one.spread == pytest.approx(2.0) and one.spread_over == "seeds"
    assert fmt_cell(one, 2) == "12.00 ± 2.00"


# -- running ----------------------------------------------------------------------------------------
def test_selection_stats_report_and_resume(tiny):
    tmp_path, suite = tiny
    out = run_suite(config(tmp_path, suite), progress=False)
    rows = read_jsonl(out / "results.jsonl")
    validation = [r for r in rows if r["role"] == "validation"]
    tests = [r for r in rows if r["role"] == "test"]
    assert len(validation) == 2  # sigma 2 and 6 on one validation picture, one seed
    assert len(tests) == 3 * 2 * 2 + 2  # three network rows x 2 inputs x 2 seeds, bilinear once per input
    assert all(r["image"] != "v" for r in tests) and all(r["image"] == "v" for r in validation)
    # the pick is the better validation value, and SAPE runs at twice it
    best = max(validation, key=lambda r: r["metrics"]["psnr"])["value"]
    methods = {r["row"]: r["method"] for r in tests}
    assert methods["gaussian"] == f"gaussian:features=8:sigma={best}"
    assert methods["sape+gaussian"] == f"sape+gaussian:features=8:sigma={2 * best}"
    report = (out / "report.md").read_text()
    assert f"**{best}**" in report and "posenc − paper" in report and "(reference)" in report
    assert "tie" in report or "better" in report or "worse" in report
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table" in html and "http" not in html.split("<body>")[1]
    # a rerun repeats nothing
    run_suite(config(tmp_path, suite), progress=False)
    assert len(read_jsonl(out / "results.jsonl")) == len(rows)
    # an invocation that ran fits records the matmul peak it measured around them; one that ran none
    # (the rerun) records none, so rewriting a report on a busy machine cannot lower the figure
    records = read_jsonl(out / "invocations.jsonl")
    assert [r["event"] for r in records] == ["start", "end", "start", "end"]  # a start first: a killed driver leaves it
    invocations = [r for r in records if r["event"] == "end"]
    assert len(invocations) == 2 and invocations[0]["matmul_peak_gflops"] > 0 and "matmul_peak_gflops" not in invocations[1]
    assert "the median over 1 invocation(s)" in (out / "report.md").read_text()
    # the cost is data too: summary.json has it, with the --list estimate beside the measurement
    cost = json.loads((out / "summary.json").read_text())["cost"]
    assert cost["fits"] == len([r for r in rows if r["kind"] == "fit"]) and cost["cpu_seconds"] > 0
    assert cost["estimated_cpu_hours"] == round(estimate(load_suite(suite), config(tmp_path, suite))["cpu_hours"], 1)
    assert cost["peak_gflops"] == invocations[0]["matmul_peak_gflops"]
    held = invocations[0]["settings"]["workers"] * invocations[0]["settings"]["threads"]
    assert cost["thread_hours"] == round(invocations[0]["seconds"] * held / 3600, 3)  # the rerun's time is not counted
    from posenc.reproduce.report import write_reports

    measured = [dict(invocations[0], matmul_peak_gflops=p) for p in (100.0, 400.0, 250.0)]
    (out / "invocations.jsonl").write_text("".join(json.dumps(inv) + "\n" for inv in measured))
    write_reports(out, load_suite(suite), config(tmp_path, suite))
    assert "(250 GFLOP/s, the median over 3 invocation(s) of this command" in (out / "report.md").read_text()


def test_a_killed_driver_loses_and_repeats_nothing(tiny, monkeypatch):
    from posenc.reproduce import runner

    tmp_path, suite = tiny
    straight = run_suite(config(tmp_path, suite, out="straight"), progress=False)
    calls = {"n": 0}
    original = runner.run_one

    def dying(job):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # the driver is stopped in the middle of the fifth fit
        return original(job)

    monkeypatch.setattr(runner, "run_one", dying)
    with pytest.raises(KeyboardInterrupt):
        run_suite(config(tmp_path, suite, out="cut"), progress=False)
    assert len(read_jsonl(tmp_path / "cut" / "results.jsonl")) == 4
    monkeypatch.setattr(runner, "run_one", original)
    counted = {"n": 0}

    def counting(job):
        counted["n"] += 1
        return original(job)

    monkeypatch.setattr(runner, "run_one", counting)
    run_suite(config(tmp_path, suite, out="cut"), progress=False)
    total = len(read_jsonl(straight / "results.jsonl"))
    assert counted["n"] == total - 4
    key = lambda r: r["digest"]
    a = {key(r): r["metrics"]["psnr"] for r in read_jsonl(straight / "results.jsonl")}
    b = {key(r): r["metrics"]["psnr"] for r in read_jsonl(tmp_path / "cut" / "results.jsonl")}
    assert a == b


def test_reuse_copies_identical_fits_from_another_suite_and_runs_the_rest(tiny, monkeypatch):
    from posenc.reproduce import runner

    tmp_path, suite = tiny
    first = run_suite(config(tmp_path, suite, out="first", only=("none",), seeds=1), progress=False)
    ran = []
    original = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda job: ran.append(job["digest"]) or original(job))
    second = run_suite(config(tmp_path, suite, out="second", seeds=1, reuse=(str(first),)), progress=False)
    theirs = {r["digest"]: r for r in read_jsonl(first / "results.jsonl")}
    mine = read_jsonl(second / "results.jsonl")
    reused = [r for r in mine if "reused_from" in r]
    assert {r["digest"] for r in reused} == set(theirs) and len(reused) == 2  # "none" on both inputs
    assert not set(ran) & set(theirs) and len(ran) == len(mine) - 2  # the rest ran (baselines run anew)
    for r in reused:
        assert r["metrics"] == theirs[r["digest"]]["metrics"] and r["reused_from"].startswith("first/")
        assert (second / r["out"]).resolve() == (first / theirs[r["digest"]]["out"]).resolve()
    assert "2 of them are identical fits taken from first" in (second / "report.md").read_text()
    assert "--reuse" in (second / "report.md").read_text()
    # a setting that changes the config is a different fit: nothing is shared
    third = run_suite(config(tmp_path, suite, out="third", only=("none",), seeds=1, iters=3, reuse=(str(first),)),
                      progress=False)
    assert not any("reused_from" in r for r in read_jsonl(third / "results.jsonl"))
    with pytest.raises(PosencError, match="no results.jsonl"):
        run_suite(config(tmp_path, suite, out="fourth", reuse=(str(tmp_path / "nowhere"),)), progress=False)


def test_a_fresh_clone_refits_only_the_pictured_fits_and_they_reproduce_their_rows(tiny, monkeypatch):
    """Run folders are not committed: a rerun in a fresh clone redraws the montages by refitting the
    seed-0 fits they picture (into this suite's folder, also for fits reused from another suite), leaves
    results.jsonl as it was, checks each refit against its row, and keeps that time out of the suite's."""
    from posenc.reproduce import runner

    tmp_path, suite = tiny
    first = run_suite(config(tmp_path, suite, out="first", only=("none",)), progress=False)
    out = run_suite(config(tmp_path, suite, reuse=(str(first),)), progress=False)
    rows = read_jsonl(out / "results.jsonl")
    assert (out / "pictures" / "montage_a.png").exists()
    before = json.loads((out / "summary.json").read_text())["cost"]
    for folder in (first, out):  # what a clone has: the rows, reports and montages, no run folders
        for sub in ("runs", "select"):
            shutil.rmtree(folder / "pictures" / sub, ignore_errors=True)
        (folder / "pictures" / "montage_a.png").unlink(missing_ok=True)
    ran = []
    original = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda job: ran.append(job) or original(job))
    run_suite(config(tmp_path, suite, reuse=(str(first),), pictures=False), progress=False)
    assert not ran and not (out / "pictures" / "montage_a.png").exists()  # told not to: no refits, no montage

    def stopped_at_the_fourth(job):
        if len(ran) == 3:
            raise KeyboardInterrupt
        ran.append(job)
        return original(job)

    monkeypatch.setattr(runner, "run_one", stopped_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_suite(config(tmp_path, suite, reuse=(str(first),)), progress=False)
    assert read_jsonl(out / "invocations.jsonl")[-1]["pictures"]["fits"] == 3  # what it redrew is recorded
    monkeypatch.setattr(runner, "run_one", lambda job: ran.append(job) or original(job))
    run_suite(config(tmp_path, suite, reuse=(str(first),)), progress=False)  # the other five
    assert read_jsonl(out / "results.jsonl") == rows
    # every row's seed-0 fit on both pictured inputs (a, b), once per distinct config; baselines too
    pictured = {r["digest"] for r in rows if r["role"] == "test" and r["seed"] == 0}
    assert sorted(j["digest"] for j in ran) == sorted(pictured) and len(pictured) == 3 * 2 + 2
    reused = [j for j in ran if j["row"] == "none"]
    assert reused and all(Path(j["out"]).is_relative_to(out) for j in reused)  # first's folders are first's
    assert not (first / "pictures" / "runs").exists()
    assert (out / "pictures" / "montage_a.png").exists() and (out / "pictures" / "montage_b.png").exists()
    records = [r["pictures"] for r in read_jsonl(out / "invocations.jsonl") if "pictures" in r]
    assert [r["fits"] for r in records] == [3, 5] and [r["compared"] for r in records] == [3, 5]
    assert all(r["max_gap"] == 0.0 for r in records)  # a fit depends only on its config
    report = (out / "report.md").read_text()
    assert "8 pictured seed-0 fits were refitted" in report and "reproduced its recorded metric exactly" in report
    after = json.loads((out / "summary.json").read_text())["cost"]
    assert after["wall_hours"] == before["wall_hours"] and after["cpu_hours"] == before["cpu_hours"]
    ran.clear()
    run_suite(config(tmp_path, suite, reuse=(str(first),)), progress=False)
    assert not ran  # the pictures are there now
    # a suite that pictures one input per column redraws (and shows) only that one
    one = tmp_path / "one.toml"
    one.write_text(suite.read_text().replace("seeds = 2", "seeds = 2\nmontages = 1"))
    shutil.rmtree(out / "pictures" / "runs")
    run_suite(config(tmp_path, one, reuse=(str(first),)), progress=False)
    assert {j["image"] for j in ran} == {"a"} and len(ran) == 4
    assert "montage_a.png" in (out / "report.md").read_text() and "montage_b.png" not in (out / "report.md").read_text()


def test_a_refit_computed_by_other_kernels_is_starred_with_its_own_figure_and_its_cause(tiny):
    """A row recorded on a machine whose kernels round differently: its refitted picture scores otherwise.
    The montage tile shows the refit's own figure, starred; the column names both figures and the cause
    (the two arithmetic fingerprints); the tables keep the recorded row."""
    from posenc.io import atomic_write_text
    from posenc.runtime import arithmetic_fingerprint

    tmp_path, suite = tiny
    out = run_suite(config(tmp_path, suite, only=("none",), seeds=1), progress=False)
    rows = read_jsonl(out / "results.jsonl")
    here = json.loads((out / rows[0]["out"] / "metrics.json").read_text())
    assert here["machine"]["arithmetic"] == arithmetic_fingerprint()
    report = (out / "report.md").read_text()
    assert "*" not in report.split("![")[1] and "Starred" not in report  # every tile is its own row
    elsewhere = next(r for r in rows if r["image"] == "a" and r["row"] == "none")
    recorded = elsewhere["metrics"]["psnr"] + 0.5
    elsewhere["metrics"].update(psnr=recorded, machine=dict(elsewhere["metrics"]["machine"], arithmetic="0123456789ab"))
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    shutil.rmtree(out / "pictures" / "runs")  # a fresh clone: the pictures are refitted here
    run_suite(config(tmp_path, suite, only=("none",), seeds=1), progress=False)
    report = (out / "report.md").read_text()
    shown = here["psnr"]
    assert (f"Starred tiles of the a montage are refits whose psnr differs from the recorded row (the tables keep the "
            f"recorded figures): none {shown:.2f} against {recorded:.2f} (computed by other kernels: arithmetic "
            f"fingerprint 0123456789ab recorded, {arithmetic_fingerprint()} refitted).") in report
    assert "(1 montage tile, starred and listed under its column)" in report
    assert "(* a refit that scores differently from its recorded row)" in report
    assert "Starred tiles of the b montage" not in report  # b's refit reproduced its row
    assert f"| none | {recorded:.2f} |" in report  # the per-input table keeps the recorded figure
    assert read_jsonl(out / "invocations.jsonl")[-1]["pictures"]["max_gap"] == pytest.approx(0.5)


def test_a_refits_cause_names_reuse_and_compares_fingerprints():
    from posenc.reproduce.report import _apart, refit_cause

    assert _apart(0.6397, 0.6404, 3) == ("0.6397", "0.6404") and _apart(0.45, 0.534, 3) == ("0.450", "0.534")

    mine = {"machine": {"arithmetic": "aaaaaaaaaaaa"}}
    assert refit_cause({"metrics": mine}, mine) == "the same arithmetic fingerprint (aaaaaaaaaaaa): not explained by the machine"
    assert refit_cause({"metrics": {"machine": {"arithmetic": "bbbbbbbbbbbb"}}}, mine) == \
        "computed by other kernels: arithmetic fingerprint bbbbbbbbbbbb recorded, aaaaaaaaaaaa refitted"
    assert refit_cause({"metrics": {}}, mine) == "the recorded fit carries no arithmetic fingerprint"
    assert refit_cause({"metrics": mine}, {}) == "the refit carries no arithmetic fingerprint"
    assert refit_cause({"metrics": mine, "reused_from": "bench/runs/a/sape"}, mine) == (
        "reused from bench/runs/a/sape, made by the code of that run; the same arithmetic fingerprint (aaaaaaaaaaaa): "
        "not explained by the machine")


def test_reuse_takes_a_bench_folders_identical_fits(tiny, monkeypatch):
    """``posenc bench`` rows have no digest: --reuse derives it from their config, so a bench fit with the
    suite's complete config (same input and seed) is not run again, and the suite's own fits agree."""
    from posenc.bench.runner import BenchConfig, run_bench
    from posenc.reproduce import runner

    tmp_path, suite = tiny
    plain = tmp_path / "plain.toml"
    plain.write_text(suite.read_text().replace(', "network.width" = 16, "network.depth" = 1', ""))
    bench = run_bench(BenchConfig(data=str(tmp_path / "data" / "pics"), methods=["none"], out=str(tmp_path / "bench"),
                                  res=16, crop="none", iters=4, images=("a",), seeds=2), progress=False)
    ran = []
    original = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda job: ran.append(job) or original(job))
    out = run_suite(config(tmp_path, plain, only=("none",), reuse=(str(bench),)), progress=False)
    rows = read_jsonl(out / "results.jsonl")
    reused = [r for r in rows if "reused_from" in r]
    assert sorted((r["image"], r["seed"]) for r in reused) == [("a", 0), ("a", 1)]
    assert all(j["image"] == "b" for j in ran) and len(ran) == 2  # input b ran here, both seeds
    theirs = {(r["image"], r["config"]["train"]["seed"]): r["metrics"] for r in read_jsonl(bench / "results.jsonl")}
    for r in reused:
        assert r["metrics"]["psnr"] == theirs[(r["image"], r["seed"])]["psnr"] and r["metrics"]["mlp_flops"] > 0
        assert (out / r["out"]).resolve() == (bench / "runs" / "a" / ("none" + ("_seed1" if r["seed"] else ""))).resolve()


def test_a_scale_may_set_any_section_with_dotted_keys(tiny):
    from posenc.reproduce.runner import fit_config

    tmp_path, suite = tiny
    suite.write_text(suite.read_text().replace('image = { res = 16 }', 'image = { res = 16, "train.lr" = 0.002 }'))
    s = load_suite(suite)
    cfg = fit_config(s, s.columns[0], config(tmp_path, suite), "none", tmp_path / "data" / "pics" / "a.png", 0)
    assert cfg.train.lr == 0.002 and cfg.data.res == 16


def test_only_and_limit_make_a_slice(tiny):
    tmp_path, suite = tiny
    out = run_suite(config(tmp_path, suite, only=("none", "bilinear"), limit=1, seeds=1), progress=False)
    rows = read_jsonl(out / "results.jsonl")
    assert {r["row"] for r in rows} == {"none", "bilinear"} and {r["image"] for r in rows} == {"a"}
    assert "--only none,bilinear --limit 1" in (out / "report.md").read_text()


def test_ray_executor_gives_the_local_metrics(tiny):
    pytest.importorskip("ray")
    tmp_path, suite = tiny
    slice_ = dict(only=("none", "gaussian"), limit=1, seeds=1)
    local = run_suite(config(tmp_path, suite, out="local", workers=2, **slice_), progress=False)
    remote = run_suite(config(tmp_path, suite, out="ray", executor="ray", workers=2, **slice_), progress=False)
    a = {r["digest"]: r["metrics"]["psnr"] for r in read_jsonl(local / "results.jsonl")}
    b = {r["digest"]: r["metrics"]["psnr"] for r in read_jsonl(remote / "results.jsonl")}
    assert len(a) == 4 and a == b  # two validation fits and two test fits, identical under both executors


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="needs chromium (make test installs it)")
def test_large_pictures_are_inlined_as_jpeg_and_small_ones_stay_png(tmp_path):
    import io

    from PIL import Image

    from posenc.reproduce.report import PNG_INLINE_LIMIT, embedded_picture

    rng = np.random.default_rng(0)
    small, photo = tmp_path / "plot.png", tmp_path / "montage.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(small)
    # a smooth photo-like picture with some noise: large as PNG, much smaller as JPEG
    y, x = np.mgrid[0:480, 0:960]
    img = 127 + 60 * np.sin(x / 23.0) * np.cos(y / 17.0) + rng.normal(0, 12, (480, 960))
    Image.fromarray(np.repeat(img[..., None], 3, -1).clip(0, 255).astype(np.uint8)).save(photo)
    assert photo.stat().st_size > PNG_INLINE_LIMIT
    mime, raw = embedded_picture(small)
    assert mime == "image/png" and raw == small.read_bytes()
    mime, raw = embedded_picture(photo)
    assert mime == "image/jpeg" and raw[:2] == b"\xff\xd8" and len(raw) < photo.stat().st_size / 2
    shown = np.asarray(Image.open(io.BytesIO(raw)).convert("L"), np.float64)
    truth = np.asarray(Image.open(photo).convert("L"), np.float64)
    assert shown.shape == truth.shape and np.abs(shown - truth).mean() < 6


WIDE = """
name = "wide"
title = "Many inputs"
reference = "none"
seeds = 1
montages = 0

[scales.cpu]
image = {{ res = 16 }}

[[columns]]
name = "pictures"
task = "image"
data = "pics"
test = [{stems}]
settings = {{ protocol = "gen25" }}
overrides = {{ "train.iters" = 2, "network.width" = 8, "network.depth" = 1 }}
metric = "psnr"

[[rows]]
name = "none"
method = "none"

[[rows]]
name = "bilinear"
baseline = "bilinear"
"""


def test_a_column_with_many_inputs_lists_its_per_input_figures_one_input_per_line(tmp_path):
    """Twenty silhouettes as twenty table columns do not read: past ``WIDE_INPUTS`` inputs the per-input
    table turns, one line per input with a column per row, and its cells stay the recorded figures."""
    from posenc.reproduce.report import WIDE_INPUTS

    stems = [f"p{i}" for i in range(WIDE_INPUTS + 1)]
    pics = tmp_path / "data" / "pics"
    pics.mkdir(parents=True)
    for i, stem in enumerate(stems):
        Image.fromarray(smooth_test_image(16, seed=i)).save(pics / f"{stem}.png")
    suite = tmp_path / "wide.toml"
    suite.write_text(WIDE.format(stems=", ".join(f'"{s}"' for s in stems)))
    out = run_suite(config(tmp_path, suite), progress=False)
    psnr = {(r["row"], r["image"]): r["metrics"]["psnr"] for r in read_jsonl(out / "results.jsonl")}
    report = (out / "report.md").read_text()
    table = report.split("*psnr per input (mean ± std over seeds)*")[1].strip().split("\n\n")[0].splitlines()
    assert table[0] == "| input | none | bilinear |"
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| {s}" for s in stems]
    for line, stem in zip(table[2:], stems):
        assert line == f"| {stem} | {psnr[('none', stem)]:.2f} | {psnr[('bilinear', stem)]:.2f} |"


def test_report_html_renders_in_a_browser(tiny):
    tmp_path, suite = tiny
    assert _chromium(), "no chromium on PATH: `make test` installs Debian's chromium package"
    out = run_suite(config(tmp_path, suite, limit=1, seeds=1), progress=False)
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    import re

    attrs = dict(re.findall(r'data-(tables|images|images-loaded)="(\d+)"', dom))
    assert int(attrs["tables"]) >= 2
    assert int(attrs["images"]) >= 1 and attrs["images-loaded"] == attrs["images"]


def test_a_driver_killed_outright_counts_its_wall_time_to_its_last_fit():
    from posenc.reproduce.report import _killed_invocation_seconds

    records = [{"suite": "s", "event": "start", "started": 100.0},  # killed: no end record
               {"suite": "s", "event": "start", "started": 1000.0}, {"suite": "s", "event": "end", "started": 1000.0, "seconds": 50.0}]
    rows = [{"finished_at": 150.0, "metrics": {"seconds": 40.0, "threads": 1}},
            {"finished_at": 180.0, "metrics": {"seconds": 60.0, "threads": 1}},  # ran beside the first: 2 workers
            {"finished_at": 1020.0, "metrics": {"seconds": 20.0, "threads": 1}}]  # the next invocation's
    assert _killed_invocation_seconds(records, rows) == [(80.0, 2)]
    assert _killed_invocation_seconds(records[1:], rows) == []


def test_every_committed_fit_keeps_its_digest():
    """A config setting added later (ImageConfig.window) must not orphan committed rows: each committed
    fit's recorded digest is what today's code computes from its config, or --reuse and the picture
    refits of a fresh clone would not find it."""
    import glob

    from posenc.reproduce.runner import digest

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    checked = 0
    for path in sorted(glob.glob(str(root / "**" / "results.jsonl"), recursive=True)):
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") == "fit" and "digest" in row:
                assert digest(row) == row["digest"], (path, row.get("row"), row.get("image"))
                checked += 1
    assert checked > 1000


def test_a_suite_may_name_its_own_scales_and_others_are_refused(capsys):
    from posenc.cli import main

    assert main(["reproduce", "scale-pilot", "--scale", "nope", "--out", "/tmp/never"]) == 2
    err = capsys.readouterr().err
    assert "unknown scale 'nope' for suite scale-pilot; valid: cpu, paper, window128, resized256-500" in err
    assert main(["reproduce", "--list", "--scale", "window128"]) == 0
    assert "scale-pilot" in capsys.readouterr().out
