from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)


def smooth_test_image(res: int = 64, seed: int = 0) -> np.ndarray:
    """A deterministic RGB image with smooth gradients and a sharp edge, uint8 (res, res, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:res, 0:res] / res
    r = 0.5 + 0.4 * np.sin(2 * np.pi * (2 * x + rng.uniform()))
    g = 0.5 + 0.4 * np.cos(2 * np.pi * (3 * y))
    b = (x + y > 1.0).astype(float) * 0.8 + 0.1
    return (np.stack([r, g, b], axis=-1) * 255).round().astype(np.uint8)


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(smooth_test_image()).save(path)
    return path


def interrupt_on_call(monkeypatch, owner, name: str, call: int) -> None:
    """Make ``owner.name`` raise KeyboardInterrupt on its ``call``-th call (a Ctrl-C inside a step)."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)


def interrupted_then_resumed(cfg, run, monkeypatch, name: str, call: int) -> dict:
    """Fit ``cfg`` into ``run`` with a Ctrl-C at the ``call``-th call of the task's ``name``, then resume
    it in a new trainer: the finished run's metrics."""
    import pytest

    from posenc.train import Trainer

    trainer = Trainer(cfg, run, progress=False)
    interrupt_on_call(monkeypatch, trainer.task, name, call)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    resumed = Trainer(cfg, run, progress=False)
    assert resumed.resume()
    return resumed.run(resume=True)
