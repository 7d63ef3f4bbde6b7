"""The image benchmark harness (results.jsonl, results.md, montages, resume) and perf accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posenc.bench.images import ImageBenchConfig, run_image_bench
from posenc.bench.perf import mlp_step_flops
from posenc.config import FitConfig
from posenc.io import read_jsonl
from posenc.methods import apply_method, build_field
from conftest import smooth_test_image


def test_bench_images_writes_and_resumes(tmp_path):
    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(3):
        Image.fromarray(smooth_test_image(40, seed=i)).save(data / f"im{i}.png")
    bc = ImageBenchConfig(data=str(data), methods=["none", "gaussian:sigma=3:features=8:width=16:depth=1"],
                          out=str(tmp_path / "out"), res=32, iters=4, limit=2, threads=1)
    run_image_bench(bc, progress=False)
    rows = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert len(rows) == 4 and {r["image"] for r in rows} == {"im0", "im1"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| none |" in md and "gaussian:sigma=3" in md and "± " in md
    montage = np.asarray(Image.open(tmp_path / "out" / "montage_im0.png"))
    assert montage.shape[1] > 3 * 32
    assert (tmp_path / "out" / "psnr_vs_time_im0.png").exists()
    # resume: nothing re-runs
    run_image_bench(bc, progress=False)
    assert len(read_jsonl(tmp_path / "out" / "results.jsonl")) == 4
    # a changed setting is a different run, and the table shows only the runs of the current settings
    bc.lr = 5e-3
    run_image_bench(bc, progress=False)
    rows = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert len(rows) == 8
    assert "| 2 |" in (tmp_path / "out" / "results.md").read_text()


def test_bench_images_pools_seeds(tmp_path):
    """``seeds=2``: every (input, method) runs with network seeds 0 and 1 in its own folder; the main table
    averages each input over its seeds first, the per-input table shows mean ± std over the seeds."""
    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_test_image(40, seed=i)).save(data / f"im{i}.png")
    method = "gaussian:sigma=3:features=8:width=16:depth=1"
    bc = ImageBenchConfig(data=str(data), methods=[method], out=str(tmp_path / "out"), res=32, iters=4, threads=1, seeds=2)
    run_image_bench(bc, progress=False)
    rows = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert sorted((r["image"], r["config"]["train"]["seed"]) for r in rows) == [("im0", 0), ("im0", 1), ("im1", 0), ("im1", 1)]
    psnr = {(r["image"], r["config"]["train"]["seed"]): r["metrics"]["psnr"] for r in rows}
    assert psnr[("im0", 0)] != psnr[("im0", 1)]  # the seed reaches the network initialisation
    assert (tmp_path / "out" / "runs" / "im0" / "gaussian_sigma=3_features=8_width=16_depth=1_seed1" / "metrics.json").exists()
    md = (tmp_path / "out" / "results.md").read_text()
    assert "seeds 0-1" in md and "--seeds 2" in md
    per_image = [(psnr[(i, 0)] + psnr[(i, 1)]) / 2 for i in ("im0", "im1")]
    mean, spread = sum(per_image) / 2, abs(per_image[0] - per_image[1]) / 2
    assert f"| {method} | {mean:.2f} ± {spread:.2f} |" in md
    im0 = sorted([psnr[("im0", 0)], psnr[("im0", 1)]])
    assert f"{sum(im0) / 2:.2f} ± {(im0[1] - im0[0]) / 2:.2f} (" in md
    assert "| 4 |" in md  # runs column counts every (input, seed) fit
    run_image_bench(bc, progress=False)  # resume: nothing re-runs
    assert len(read_jsonl(tmp_path / "out" / "results.jsonl")) == 4


def test_mlp_flop_count():
    cfg = apply_method(FitConfig(), "gaussian:features=4:width=16:depth=2")
    field = build_field(cfg, 2, 3)
    forward = 2 * 10 * (8 * 16 + 16 * 16 + 16 * 3)
    assert mlp_step_flops(field, 10, input_grad=True) == 3 * forward
    assert mlp_step_flops(field, 10, input_grad=False) == 3 * forward - 2 * 10 * 8 * 16


def test_threads_fixed_in_tests():
    assert torch.get_num_threads() == 1


def test_sweep_plot_groups_methods_by_setting(tmp_path):
    from posenc.bench.plots import sweep_plot
    from posenc.io import append_jsonl

    for method, image, psnr in [("gaussian:sigma=5", "a", 20.0), ("gaussian:sigma=5", "b", 22.0),
                                ("gaussian:sigma=10", "a", 25.0), ("sape+gaussian:sigma=10", "a", 27.0), ("none", "a", 15.0)]:
        append_jsonl(tmp_path / "results.jsonl", {"method": method, "image": image, "metrics": {"psnr": psnr}})
    series = sweep_plot([tmp_path], "sigma", tmp_path / "plot.png")
    assert series == {"gaussian": [(5.0, 21.0, 1.0), (10.0, 25.0, 0.0)], "sape+gaussian": [(10.0, 27.0, 0.0)]}
    assert (tmp_path / "plot.png").stat().st_size > 1000
    only_b = sweep_plot([tmp_path], "sigma", tmp_path / "plot_b.png", images=("b",))
    assert only_b == {"gaussian": [(5.0, 22.0, 0.0)]}


def test_match_params_within_ten_percent():
    from posenc.methods import count_params, match_params

    for method in ("lpe", "positional", "gaussian", "dense_grid", "multires_grid", "hash_grid"):
        cfg = match_params(apply_method(FitConfig(), method), 60000, 2, 3)
        n = count_params(cfg, 2, 3)
        assert abs(n - 60000) <= 6000, (method, n)
    # 3-D fields (sdf: 3 inputs, 1 output), the LPE seed's SDF comparison
    for method in ("lpe", "dense_grid", "hash_grid"):
        cfg = match_params(apply_method(FitConfig.for_task("sdf"), method), 200000, 3, 1)
        n = count_params(cfg, 3, 1)
        assert abs(n - 200000) <= 20000, (method, n)
    import pytest
    from posenc.errors import PosencError

    with pytest.raises(PosencError, match="cannot size"):
        match_params(apply_method(FitConfig(), "multires_lpe"), 1000, 2, 3)


def test_bench_signal1d_and_shapes_small(tmp_path, capsys):
    from posenc.cli import main

    code = main(["bench", "signal1d", "--methods", "none,sape+gaussian:sigma=10:features=16:width=16",
                 "--iters", "5", "--seeds", "1", "--samples", "32", "--out", str(tmp_path / "s"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    md = (tmp_path / "s" / "results.md").read_text()
    assert "| none |" in md and (tmp_path / "s" / "comparison.png").exists()

    import trimesh

    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.icosphere(subdivisions=2).export(meshes / "ball.obj")
    code = main(["bench", "shapes", "--task", "occupancy", "--data", str(meshes), "--methods", "gaussian:sigma=1:features=8:width=16",
                 "--iters", "3", "--samples", "600", "--mc-res", "16", "--eval-points", "2000", "--out", str(tmp_path / "sh"), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "| gaussian:sigma=1" in (tmp_path / "sh" / "results.md").read_text()
    assert (tmp_path / "sh" / "montage_ball.png").exists()


def test_bench_fit_continues_from_a_matching_checkpoint(tmp_path):
    from posenc.bench.runner import _one
    from posenc.train import Trainer

    Image.fromarray(smooth_test_image(32)).save(tmp_path / "im.png")
    cfg = apply_method(FitConfig.for_task("image"), "gaussian:sigma=3:features=8:width=16:depth=1")
    cfg.data.path, cfg.data.res, cfg.train.iters, cfg.train.threads = str(tmp_path / "im.png"), 32, 6, 1
    out = tmp_path / "run"
    trainer = Trainer(cfg, out, progress=False)
    trainer.train()
    trainer._checkpoint(6, 123.0)  # as if a killed bench had left it after 6 iterations and 123 s
    job = {"config": cfg.to_dict(), "out": str(out)}
    assert _one(job)["seconds"] >= 123.0  # continued: the saved seconds count
    other = dict(job, config=apply_method(FitConfig.from_dict(cfg.to_dict()), "none").to_dict())
    trainer._checkpoint(6, 123.0)
    assert _one(other)["seconds"] < 123.0  # a checkpoint of another config is not used


def test_method_settings_reach_network_and_training():
    cfg = apply_method(FitConfig.for_task("image"), "gaussian:sigma=5:output=wide_sigmoid:lr_schedule=cosine:lr=2e-3")
    assert cfg.network.output == "wide_sigmoid" and cfg.train.lr_schedule == "cosine" and cfg.train.lr == 2e-3
    assert cfg.encoding["sigma"] == 5
    assert FitConfig.for_task("image").train.lr_schedule == "constant"


def test_a_second_bench_process_on_one_folder_is_refused(tmp_path):
    from posenc.errors import PosencError
    from posenc.runs import RunLock

    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(smooth_test_image(16)).save(data / "im0.png")
    bc = ImageBenchConfig(data=str(data), methods=["none"], out=str(tmp_path / "out"), res=16, iters=2, threads=1)
    (tmp_path / "out").mkdir()
    with RunLock(tmp_path / "out"):
        with pytest.raises(PosencError, match="being written by another posenc process"):
            run_image_bench(bc, progress=False)
    run_image_bench(bc, progress=False)
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 1


def _sleepy_job(job):
    """Worker for the pool test: job 0 returns at once, the others sleep and then leave a marker."""
    import time as _time
    from pathlib import Path as _Path

    if job["i"] == 0:
        return 0
    _time.sleep(4)
    _Path(job["marker"]).write_text("finished")
    return job["i"]


def test_stopping_a_parallel_run_drops_queued_jobs_and_ends_running_ones(tmp_path):
    """Ctrl-C (or any exit) in a bench / reproduce driver with --workers > 1 must not leave the pool
    running every queued fit to the end (what ProcessPoolExecutor's context manager does)."""
    from posenc.bench.common import run_jobs

    jobs = [{"i": i, "marker": str(tmp_path / f"done{i}")} for i in range(6)]
    gen = run_jobs(_sleepy_job, jobs, workers=2)
    first_job, result = next(gen)
    assert first_job["i"] == 0 and result == 0
    gen.close()  # what a KeyboardInterrupt in the loop body does
    assert not any((tmp_path / f"done{i}").exists() for i in range(1, 6))


def _marking_job(job):
    """Worker for the orphan test: leave a marker with this worker's pid, then run like a fit: for a
    while, or until SIGTERM, which (as in ``train.fit``) ends it early and cleanly."""
    import os as _os
    import signal as _signal
    import time as _time
    from pathlib import Path as _Path

    _Path(job["marker"]).write_text(str(_os.getpid()))
    stop = []
    previous = _signal.signal(_signal.SIGTERM, lambda signum, frame: stop.append(signum))
    try:
        # no job ends by itself while its driver lives (only SIGTERM ends it): so two markers are exactly
        # the two workers' first jobs, whatever the load (with 20 s jobs a loaded machine let one worker
        # finish its first job and start a second before the other had spawned: three legitimate markers)
        end = _time.monotonic() + 300
        while not stop and _time.monotonic() < end:
            _time.sleep(0.05)
    finally:
        _signal.signal(_signal.SIGTERM, previous)
    return job["i"]


ORPHAN_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_bench import _marking_job
from posenc.bench.common import run_jobs
jobs = [{{"i": i, "marker": {folder!r} + f"/started{{i}}"}} for i in range(8)]
for _ in run_jobs(_marking_job, jobs, workers=2):
    pass
"""


def test_a_driver_killed_outright_leaves_no_worker_running_queued_jobs(tmp_path):
    """SIGKILL on a driver with --workers 2: its workers end instead of working through the jobs queued
    for them (ProcessPoolExecutor hands each worker more than one), so nothing competes with, or writes
    beside, the next driver."""
    import os
    import signal
    import subprocess
    import sys
    import time

    driver = subprocess.Popen([sys.executable, "-c", ORPHAN_DRIVER.format(tests=str(Path(__file__).parent), folder=str(tmp_path))])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.glob("started*"))) == 2  # both workers are busy with their first job
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    pids = {int(p.read_text()) for p in tmp_path.glob("started*")}

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}/status").is_file() and "zombie" not in Path(f"/proc/{pid}/status").read_text()

    deadline = time.monotonic() + 60
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)
    assert len(list(tmp_path.glob("started*"))) == 2  # no queued job was started after the driver died


def test_a_worker_that_starts_after_its_driver_died_exits_before_any_job():
    """The race behind a flaky orphan test: a worker spawned late on a loaded machine, its driver already
    dead, took its new parent for the driver and ran a queued job. The driver's pid is now passed in,
    so such a worker exits in its initialiser (here: a 'driver' pid that is not the parent)."""
    import subprocess
    import sys

    code = ("import os, sys\nfrom posenc.bench.common import _die_with_parent\n"
            "_die_with_parent(os.getppid() + 1_000_000)\nprint('took a job')\n")
    late = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert late.returncode == 1 and "took a job" not in late.stdout
    code_ok = ("import os\nfrom posenc.bench.common import _die_with_parent\n"
               "_die_with_parent(os.getppid())\nprint('took a job')\n")
    alive = subprocess.run([sys.executable, "-c", code_ok], capture_output=True, text=True, timeout=120)
    assert alive.returncode == 0 and "took a job" in alive.stdout


def test_bench_perf_trains_through_the_public_step_and_compares_passes(tmp_path):
    from posenc.bench.perf import PerfConfig, run_perf

    pc = PerfConfig(threads=1, points=256, steps=3, warmup=1, configs=("gaussian", "sape+gaussian"), chunk=64,
                    full_batch_points=256, rounds=1)
    result = run_perf(pc, out=str(tmp_path))
    assert [r["name"] for r in result["rows"]] == ["gaussian", "sape+gaussian"] and all(r["step_ms"] > 0 for r in result["rows"])
    assert [r["name"] for r in result["passes"]] == ["gaussian", "lpe"]
    assert all(r["chunk"] == 64 and r["one_pass_ms"] > 0 and r["passes_ms"] > 0 for r in result["passes"])
    md = (tmp_path / "perf.md").read_text()
    assert "Full-batch steps in passes" in md and "one pass / passes" in md
