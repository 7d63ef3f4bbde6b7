"""The 1-D task: the built-in signal, user signals, a real fit, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from posenc.cli import main
from posenc.config import FitConfig, NetworkConfig, Signal1DConfig, TrainConfig
from posenc.errors import PosencError
from posenc.tasks.signal1d import Signal1DTask, builtin_signal, load_signal
from posenc.train import fit


def test_builtin_signal_has_a_smooth_and_a_detailed_half():
    x = (np.arange(4096) + 0.5) / 4096
    y = builtin_signal(x)
    curvature = np.abs(np.diff(y, 2)) * 4096**2
    # |y''| <= (2 pi 1.25)^2 0.5 ~ 31 on the left; ~ (2 pi 24)^2 0.4 ~ 9000 on the right
    assert curvature[x[1:-1] < 0.49].max() < 35
    assert curvature[x[1:-1] > 0.55].max() > 8000


def test_regular_samples():
    task = Signal1DTask(Signal1DConfig(samples=16, eval_points=64))
    x, y = task.train_data()
    np.testing.assert_allclose(x[:, 0].numpy(), (np.arange(16) + 0.5) / 16, rtol=1e-6)
    np.testing.assert_allclose(y[:, 0].numpy(), builtin_signal((np.arange(16) + 0.5) / 16), rtol=1e-5, atol=1e-6)
    assert task.coords.shape == (64, 1)


def test_user_signals(tmp_path):
    values = np.sin(np.linspace(0, 6, 50))
    np.save(tmp_path / "s.npy", values)
    (tmp_path / "s.csv").write_text("value\n" + "\n".join(f"{v}" for v in values) + "\n")
    np.testing.assert_allclose(load_signal(tmp_path / "s.npy"), values)
    np.testing.assert_allclose(load_signal(tmp_path / "s.csv"), values)
    task = Signal1DTask(Signal1DConfig(path=str(tmp_path / "s.csv"), samples=10))
    assert task.name == "s" and task.y_eval.shape == (2048,)
    np.save(tmp_path / "bad.npy", np.zeros((4, 4)))
    (tmp_path / "bad.csv").write_text("1\n2\nthree\n4\n")
    (tmp_path / "short.csv").write_text("1\n2\n")
    for name, needle in (("bad.npy", "1-D"), ("bad.csv", "non-numeric"), ("short.csv", "at least 4"), ("none.csv", "not found")):
        with pytest.raises(PosencError, match=needle):
            load_signal(tmp_path / name)


def test_short_fit_learns_the_signal(tmp_path):
    cfg = FitConfig.for_task("signal1d", network=NetworkConfig(width=64, depth=2, output="none"),
                             train=TrainConfig(iters=300, lr=3e-3, threads=1, checkpoint_every=0))
    cfg.encoding = {"type": "gaussian", "sigma": 8.0, "features": 64}
    m = fit(cfg, tmp_path / "run", progress=False)
    assert m["psnr"] > 25 and m["psnr_first_half"] > 30
    assert (tmp_path / "run" / "plot.png").exists() and (tmp_path / "run" / "prediction.csv").exists()


def test_cli_signal1d(tmp_path, capsys):
    code = main(["fit", "signal1d", "--method", "sape+gaussian:sigma=10:features=32", "--width", "32", "--iters", "50",
                 "--threads", "1", "--quiet", "--frames", "2", "--out", str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "frames.gif").exists() and (tmp_path / "r" / "plot.png").exists()
    code = main(["fit", "signal1d", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "x")])
    assert code == 2
    code = main(["fit", "signal1d", "--res", "64"])  # an image flag is not a signal1d flag
    assert code == 2
