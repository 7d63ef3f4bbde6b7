"""Fault tests: a fit killed with SIGKILL at a random moment, then resumed, ends bit-identical to the
uninterrupted fit, for image, SAPE image, occupancy (mini-batches) and silhouette (calibration)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import trimesh

from posenc.io import load_tensors, read_model

SMALL = ["--threads", "1", "--quiet", "--checkpoint-every", "3"]


def _cases(tmp_path: Path, image_path: Path) -> dict[str, list[str]]:
    mesh = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2).export(mesh)
    image = ["image", str(image_path), "--res", "64", "--width", "64", "--depth", "2", "--features", "32", "--iters", "150"]
    return {
        "image": image,
        "sape-image": [*image, "--method", "sape+gaussian", "--mask-grid", "16"],
        "occupancy": ["occupancy", str(mesh), "--samples", "3000", "--batch", "512", "--eval-points", "500",
                      "--chamfer-points", "500", "--mc-res", "12", "--width", "32", "--depth", "2", "--features", "16",
                      "--iters", "150"],
        "silhouette": ["silhouette", "--points", "200", "--target-points", "400", "--calib-iters", "50", "--raster", "64",
                       "--width", "64", "--features", "32", "--iters", "300"],
    }


def _posenc(*args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "posenc", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_a_checkpoint(args: list[str], run: Path, rng: random.Random) -> int:
    """Start the fit, SIGKILL it a random moment after its first checkpoint; the checkpoint's step."""
    proc = _posenc("fit", *args, *SMALL, "--out", str(run))
    ckpt = run / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists():
        assert proc.poll() is None, "the fit ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.05))
    proc.kill()
    proc.wait()
    assert proc.returncode == -9
    tensors, _ = read_model(ckpt)
    return int(tensors["trainer.iteration"])


@pytest.mark.parametrize("case", ["image", "sape-image", "occupancy", "silhouette"])
def test_kill_9_then_resume_is_bit_identical(case, tmp_path, image_path):
    args = _cases(tmp_path, image_path)[case]
    rng = random.Random(case)
    step = _kill_after_a_checkpoint(args, tmp_path / "killed", rng)
    assert step >= 3
    resumed = _posenc("resume", str(tmp_path / "killed"), "--quiet")
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    straight = _posenc("fit", *args, *SMALL, "--out", str(tmp_path / "straight"))
    assert straight.wait() == 0, straight.stderr.read().decode()
    a, _ = load_tensors(tmp_path / "killed" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not [p.name for p in (tmp_path / "killed").glob(".*") if p.name != ".posenc.lock"]  # no temporaries left
