"""Process-wide runtime facts: the arithmetic fingerprint that tells whether a refit on this machine can
reproduce a fit recorded elsewhere bit for bit, and the machine record every fit keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from posenc import runtime
from posenc.runtime import arithmetic_fingerprint, machine_info

_PRINT = "from posenc.runtime import arithmetic_fingerprint as f; print(f())"


def _in_a_new_process(**env: str) -> str:
    out = subprocess.run([sys.executable, "-c", _PRINT], env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_fingerprint_is_the_same_in_every_process_with_the_same_kernels():
    here = arithmetic_fingerprint()
    assert len(here) == 12 and int(here, 16) >= 0
    assert arithmetic_fingerprint() == here
    assert _in_a_new_process() == here


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_the_fingerprint_is_the_same_when_the_caller_has_switched_autograd_off(mode, monkeypatch):
    """A user's loop may evaluate (and call ``Trainer.finish``) under no_grad or inference_mode."""
    here = arithmetic_fingerprint()
    monkeypatch.setattr(runtime, "_fingerprints", {})
    with mode():
        assert arithmetic_fingerprint() == here


@pytest.mark.parametrize("kernel", ["exp", "sin", "cos", "sigmoid", "sqrt"])
def test_a_kernel_that_rounds_differently_changes_the_fingerprint(kernel, monkeypatch):
    """What other kernels do to a fit (a last-bit difference) must show in the fingerprint."""
    here = arithmetic_fingerprint()
    original = getattr(torch, kernel)
    monkeypatch.setattr(runtime, "_fingerprints", {})
    monkeypatch.setattr(torch, kernel, lambda t: torch.nextafter(original(t), torch.full_like(t, float("inf"))))
    assert arithmetic_fingerprint() != here


def test_a_matrix_product_that_rounds_differently_changes_the_fingerprint(monkeypatch):
    here = arithmetic_fingerprint()
    original = torch.nn.functional.linear
    monkeypatch.setattr(runtime, "_fingerprints", {})
    monkeypatch.setattr(torch.nn.functional, "linear",
                        lambda x, w: torch.nextafter(original(x, w), torch.full((), float("inf"))))
    assert arithmetic_fingerprint() != here


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="no vector kernels to switch off")
def test_scalar_kernels_compute_other_bits_and_the_fingerprint_says_so():
    """torch's vectorised and scalar kernels differ in the last bits (as two CPUs can): a process made to
    dispatch to the scalar ones has another fingerprint."""
    assert _in_a_new_process(ATEN_CPU_CAPABILITY="default") != arithmetic_fingerprint()


def test_every_fit_records_the_machine_that_computed_it(tmp_path):
    from posenc.config import resolve_config
    from posenc.train import fit

    cfg = resolve_config("signal1d", overrides={"data.samples": 64, "train.iters": 2, "train.threads": 1,
                                                "network.width": 16, "network.depth": 1})
    metrics = fit(cfg, tmp_path / "run", progress=False)
    machine = json.loads((tmp_path / "run" / "metrics.json").read_text())["machine"]
    assert machine == metrics["machine"] == machine_info()
    assert machine["arithmetic"] == arithmetic_fingerprint() and machine["torch"] == torch.__version__
    assert machine["capability"] == torch.backends.cpu.get_cpu_capability() and machine["processor"]
