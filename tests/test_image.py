"""The image task: loading, protocols, a real fit, determinism, save/load/render, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import interrupt_on_call, interrupted_then_resumed
from posenc.config import FitConfig, ImageConfig, NetworkConfig, TrainConfig
from posenc.io import load_image
from posenc.metrics import psnr
from posenc.tasks.image import ImageTask, gen25_mask, pixel_coordinates, render_image
from posenc.train import Trainer, fit, load_model


def small_config(path, iters=60, protocol="gen25", res=64, method="gaussian", seed=0) -> FitConfig:
    return FitConfig(
        method=method,
        data=ImageConfig(path=str(path), res=res, protocol=protocol),
        encoding={"type": "gaussian", "sigma": 3.0, "features": 32},
        network=NetworkConfig(width=64, depth=2),
        train=TrainConfig(iters=iters, lr=3e-3, seed=seed, threads=1, checkpoint_every=0),
    )


def test_gen25_is_exactly_every_other_row_and_column():
    m = gen25_mask(8)
    expected = np.zeros((8, 8), bool)
    expected[::2, ::2] = True
    assert np.array_equal(m, expected) and m.sum() == 16


def test_gen25_training_samples(image_path):
    task = ImageTask(ImageConfig(path=str(image_path), res=32, protocol="gen25"))
    x, y = task.train_data()
    assert x.shape == (256, 2) and y.shape == (256, 3)
    np.testing.assert_allclose(y.numpy(), task.image[::2, ::2].reshape(-1, 3))
    np.testing.assert_allclose(x[1].numpy(), [0.5 / 32, 2.5 / 32])  # row 0, column 2 (pixel centres)
    full = ImageTask(ImageConfig(path=str(image_path), res=32, protocol="fit"))
    assert full.train_data()[0].shape == (1024, 2)


def test_pixel_coordinates_are_centres():
    # the longest side spans [0, 1]: a 2 x 4 picture covers [0, 0.5] x [0, 1]
    c = pixel_coordinates(2, 4).reshape(2, 4, 2)
    np.testing.assert_allclose(c[0, 0].numpy(), [0.125, 0.125])
    np.testing.assert_allclose(c[1, 3].numpy(), [0.375, 0.875])
    square = pixel_coordinates(4, 4).reshape(4, 4, 2)
    np.testing.assert_allclose(square[3, 0].numpy(), [0.875, 0.125])


def test_loading_modes(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((10, 20), 128, np.uint8)).save(gray)
    assert load_image(gray, 8, crop="square").shape == (8, 8, 3)
    g = load_image(gray, 8)  # longest side 8, aspect kept
    assert g.shape == (4, 8, 3) and np.allclose(g[..., 0], g[..., 1]) and np.allclose(g, 128 / 255, atol=1e-3)

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    p = tmp_path / "a.png"
    Image.fromarray(rgba).save(p)
    a = load_image(p, 8)
    np.testing.assert_allclose(a[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(a[7, 0], [1, 1, 1], atol=1e-6)  # composited on white

    deep = tmp_path / "d.png"
    Image.fromarray(np.full((8, 8), 65535 // 4, np.uint16)).save(deep)
    d = load_image(deep, 8)
    np.testing.assert_allclose(d, 0.25, atol=1e-3)

    pal = tmp_path / "p.gif"
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("P").save(pal)
    assert load_image(pal, 2).shape == (2, 2, 3)


def test_centre_crop(tmp_path):
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, 10:20] = 255  # the centre square is white, the sides black
    p = tmp_path / "wide.png"
    Image.fromarray(arr).save(p)
    assert load_image(p, 10, crop="square").min() > 0.99
    assert load_image(p, 30).shape == (10, 30, 3) and load_image(p, "native").shape == (10, 30, 3)


def test_short_fit_learns(image_path, tmp_path):
    cfg = small_config(image_path, iters=150)
    task = ImageTask(cfg.data)
    from posenc.methods import build_field

    torch.manual_seed(0)
    untrained = psnr(render_image(build_field(cfg, 2, 3), 64, 64), task.image)
    metrics = fit(cfg, tmp_path / "run", progress=False)
    assert metrics["psnr"] > untrained + 8.0
    assert metrics["psnr_heldout"] is not None and metrics["psnr_heldout"] < metrics["psnr_train"]
    for name in ("reconstruction.png", "error.png", "target.png", "comparison.png", "metrics.json", "config.json", "model.safetensors"):
        assert (tmp_path / "run" / name).exists(), name
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("psnr", "psnr_heldout", "ssim", "params", "iters", "seed"):
        assert key in saved
    assert "seconds" not in saved and json.loads((tmp_path / "run" / "timing.json").read_text())["seconds"] > 0


def test_determinism(image_path, tmp_path):
    a = fit(small_config(image_path, iters=20), tmp_path / "a", progress=False)
    b = fit(small_config(image_path, iters=20), tmp_path / "b", progress=False)
    c = fit(small_config(image_path, iters=20, seed=1), tmp_path / "c", progress=False)
    assert a["psnr"] == b["psnr"] and a["ssim"] == b["ssim"]
    # same seed and threads: byte-identical model files and metrics (times live in timing.json)
    for name in ("model.safetensors", "metrics.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert a["psnr"] != c["psnr"]


def test_save_load_render_round_trip(image_path, tmp_path):
    run = tmp_path / "run"
    fit(small_config(image_path, iters=10), run, progress=False)
    field, cfg, _ = load_model(run)
    assert cfg == FitConfig.from_dict(json.loads((run / "config.json").read_text()))
    again = render_image(field, 64, 64)
    saved = np.asarray(Image.open(run / "reconstruction.png"), dtype=np.float32) / 255
    assert np.abs(again - saved).max() <= 1 / 255 + 1e-6
    big = render_image(field, 48, 80, chunk=1000)  # other size, other aspect, many chunks
    assert big.shape == (48, 80, 3)


def test_interrupt_then_resume(image_path, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = small_config(image_path, iters=30)
    trainer = Trainer(cfg, run, progress=False)
    interrupt_on_call(monkeypatch, trainer.task, "loss_per_sample", 13)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    partial = json.loads((run / "metrics.json").read_text())
    assert partial["interrupted"] and partial["iters"] == 12
    assert (run / "checkpoint.safetensors").exists()

    resumed = Trainer(cfg, run, progress=False)
    assert resumed.resume() and resumed.start == 12
    metrics = resumed.run(resume=True)
    assert metrics["iters"] == 30 and not metrics["interrupted"]

    straight = fit(cfg, tmp_path / "straight", progress=False)
    assert metrics["psnr"] == pytest.approx(straight["psnr"], abs=1e-3)


def test_cosine_schedule_reaches_final_ratio(image_path, tmp_path):
    cfg = small_config(image_path, iters=20)
    cfg.train.lr_schedule = "cosine"
    cfg.train.lr_final_ratio = 0.1
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.run()
    last = trainer.opt.param_groups[0]["lr"]
    expected = 3e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 19 / 20)))
    assert last == pytest.approx(expected)
    from posenc.errors import PosencError

    cfg.train.lr_schedule = "step"
    with pytest.raises(PosencError, match="lr_schedule"):
        Trainer(cfg, tmp_path / "bad", progress=False)


def test_native_size_non_square_fit_and_renders(tmp_path, capsys):
    from posenc.cli import main

    arr = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    p = tmp_path / "wide.png"
    Image.fromarray(arr).save(p)
    run = tmp_path / "run"
    code = main(["fit", "image", str(p), "--res", "native", "--protocol", "gen25", "--iters", "3", "--width", "8", "--depth", "1",
                 "--features", "4", "--threads", "1", "--quiet", "--method", "sape+gaussian", "--mask-grid", "8", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    assert Image.open(run / "reconstruction.png").size == (40, 24)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["psnr_heldout"] is not None and (run / "heatmap.png").exists()
    assert main(["render", str(run), "--scale", "2", "--out", str(tmp_path / "x2.png")]) == 0
    assert Image.open(tmp_path / "x2.png").size == (80, 48)
    assert main(["render", str(run), "--out", str(tmp_path / "x1.png")]) == 0
    again = np.asarray(Image.open(tmp_path / "x1.png"), dtype=np.int16)
    saved = np.asarray(Image.open(run / "reconstruction.png"), dtype=np.int16)
    assert np.abs(again - saved).max() <= 1  # the default render is the fitted picture
    assert main(["render", str(run), "--size", "80x48", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["render", str(run), "--size", "80x80", "--out", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert "another aspect" in err and len(err.strip().splitlines()) == 1


def test_gen25_on_a_non_square_grid():
    m = gen25_mask(3, 5)
    assert m.shape == (3, 5) and m.sum() == 2 * 3 and m[0, 0] and m[2, 4] and not m[1, 1]


def test_decompression_bomb_header_is_a_one_line_error(tmp_path, capsys):
    import struct
    import zlib

    from posenc.cli import main

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)  # claims 60000 x 60000 RGB
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png)
    assert main(["fit", "image", str(bomb), "--res", "native", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "60000" in err
    assert not (tmp_path / "o").exists()


def test_images_train_on_minibatches_when_a_full_batch_exceeds_the_budget(image_path, tmp_path, capsys):
    """--max-memory decides: the same fit full-batch, then in mini-batches (stated in metrics.json),
    and a budget too small for one batch is a one-line error before any work."""
    from posenc.cli import main

    base = ["fit", "image", str(image_path), "--res", "32", "--iters", "4", "--width", "16", "--depth", "1",
            "--features", "8", "--threads", "1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["batching"]
    assert full["mode"] == "full" and full["batch"] == 256  # gen25: 16 x 16 training pixels
    per = full["bytes_per_sample"]
    budget = 100 * per / 1e9  # room for 100 samples per step
    assert main([*base, "--max-memory", f"{budget:.12f}", "--out", str(tmp_path / "mini")]) == 2
    assert "cannot hold one batch" in capsys.readouterr().err
    assert main([*base, "--max-memory", f"{300 * per / 1e9:.12f}", "--batch", "64", "--out", str(tmp_path / "mini")]) == 0
    mini = json.loads((tmp_path / "mini" / "metrics.json").read_text())
    assert mini["batching"]["mode"] == "mini" and mini["batching"]["batch"] == 64
    assert main([*base, "--max-memory", f"{200 * per / 1e9:.12f}", "--batch", "1000", "--out", str(tmp_path / "x")]) == 2
    assert "lower --batch or raise --max-memory" in capsys.readouterr().err
    # SAPE feedback from mini-batches on images
    assert main([*base, "--method", "sape+gaussian", "--mask-grid", "8", "--batch", "64", "--out", str(tmp_path / "sape")]) == 0
    sape = json.loads((tmp_path / "sape" / "metrics.json").read_text())
    assert sape["batching"]["mode"] == "mini" and sape["policy"]["steps"] == 4 and sape["policy"]["mean_level"] > 0


def test_signal_stops_at_a_step_boundary_and_resume_is_bit_identical(image_path, tmp_path, monkeypatch):
    import os
    import signal

    from posenc.io import load_tensors

    cfg = small_config(image_path, iters=20)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    calls = {"n": 0}
    original = trainer.task.loss_per_sample

    def term_at_step_8(pred, target):
        calls["n"] += 1
        if calls["n"] == 8:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would: the step finishes, then the run stops
        return original(pred, target)

    monkeypatch.setattr(trainer.task, "loss_per_sample", term_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["iters"] == 8
    metrics = fit(cfg, tmp_path / "run", progress=False, resume=True)
    straight = fit(cfg, tmp_path / "straight", progress=False)
    assert metrics["psnr"] == straight["psnr"]
    a, _ = load_tensors(tmp_path / "run" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folders_are_not_overwritten_and_resume_says_what_differs(image_path, tmp_path, capsys):
    from posenc.cli import main
    from posenc.runs import RunLock

    base = ["fit", "image", str(image_path), "--res", "32", "--iters", "4", "--width", "16", "--depth", "1",
            "--features", "8", "--threads", "1", "--quiet", "--out", str(tmp_path / "r")]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "holds a finished run" in capsys.readouterr().err
    assert main([*base, "--force"]) == 0
    with RunLock(tmp_path / "r"):  # another writer holds the folder
        assert main([*base, "--force"]) == 2
        assert "being written by another posenc process" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # a run stopped before its first checkpoint left only its config: --resume starts it from step 0
    early = [*base[:-1], str(tmp_path / "early")]
    (tmp_path / "early").mkdir()
    (tmp_path / "r" / "config.json").rename(tmp_path / "early" / "config.json")
    assert main([*early, "--resume"]) == 0
    assert (tmp_path / "early" / "metrics.json").exists()
    (tmp_path / "file").write_text("x")
    assert main([*base[:-1], str(tmp_path / "file" / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_eval_every_reports_the_heldout_figure_without_changing_the_run(image_path, tmp_path):
    cfg = small_config(image_path, iters=20)
    cfg.train.eval_every = 10
    watched = fit(cfg, tmp_path / "watched", progress=False)
    plain = fit(small_config(image_path, iters=20), tmp_path / "plain", progress=False)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "watched" / "model.safetensors"), load_file(tmp_path / "plain" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # (the stored configs differ by eval_every)
    (it, figures), = watched["eval_history"]  # iteration 20 is the final evaluation itself
    assert it == 10 and plain["eval_history"] == []
    # the figure at iteration 10 is what a 10-iteration run of the same seed ends with
    short = fit(small_config(image_path, iters=10), tmp_path / "short", progress=False)
    assert figures["psnr_heldout"] == pytest.approx(short["psnr_heldout"], abs=1e-9)
    assert figures["psnr"] == pytest.approx(short["psnr"], abs=1e-9)


def test_eval_history_survives_an_interrupt(image_path, tmp_path, monkeypatch):
    cfg = small_config(image_path, iters=30)
    cfg.train.eval_every = 5
    metrics = interrupted_then_resumed(cfg, tmp_path / "run", monkeypatch, "loss_per_sample", 13)
    straight = fit(cfg, tmp_path / "straight", progress=False)
    assert [it for it, _ in metrics["eval_history"]] == [5, 10, 15, 20, 25]
    assert metrics["eval_history"] == straight["eval_history"]


@pytest.mark.parametrize("blowup", [float("nan"), 1e5])
def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(image_path, tmp_path, monkeypatch, blowup):
    from posenc.errors import PosencError

    cfg = small_config(image_path, iters=60)
    cfg.train.checkpoint_every = 10
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    calls = {"n": 0}
    original = trainer.task.loss_per_sample

    def exploding(pred, target):  # from step 25 on the loss is NaN, or finite and 1e5 times too large
        calls["n"] += 1
        loss = original(pred, target)
        return loss * blowup if calls["n"] > 25 else loss

    monkeypatch.setattr(trainer.task, "loss_per_sample", exploding)
    with pytest.raises(PosencError, match="diverged at iteration") as info:
        trainer.run()
    message = str(info.value)
    assert "last good checkpoint" in message
    # NaN stops at the first bad step; a finite explosion after EXPLODE_STEPS of them
    from posenc.train import EXPLODE_STEPS
    assert f"iteration {25 if blowup != blowup else 24 + EXPLODE_STEPS}" in message
    stored = Trainer(cfg, tmp_path / "run", progress=False)
    assert stored.resume() and stored.start == 20
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_noisy_but_healthy_loss_is_not_called_diverged(image_path, tmp_path, monkeypatch):
    cfg = small_config(image_path, iters=40)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    calls = {"n": 0}
    original = trainer.task.loss_per_sample

    def spiky(pred, target):  # a few isolated spikes of 1e4x: not a divergence
        calls["n"] += 1
        loss = original(pred, target)
        return loss * 1e4 if calls["n"] % 7 == 0 else loss

    monkeypatch.setattr(trainer.task, "loss_per_sample", spiky)
    assert trainer.run()["iters"] == 40


# -- windowed fits: the centre of the image, in place (the CPU scale of the scale pilot) ---------------
def test_a_window_is_the_centre_of_the_image_at_its_own_coordinates(image_path):
    from posenc.tasks.image import ImageTask, gen25_mask, pixel_coordinates

    whole = ImageTask(ImageConfig(path=str(image_path), res=64, crop="square", protocol="gen25"))
    win = ImageTask(ImageConfig(path=str(image_path), res=64, crop="square", protocol="gen25", window=20))
    top = left = 22  # (64 - 20) // 4 * 2: even, so the window's [::2, ::2] is the whole image's
    np.testing.assert_array_equal(win.image, whole.image[top : top + 20, left : left + 20])
    full = pixel_coordinates(64, 64).reshape(64, 64, 2)
    torch.testing.assert_close(win.coords.reshape(20, 20, 2), full[top : top + 20, left : left + 20])
    np.testing.assert_array_equal(win.train_mask, gen25_mask(64)[top : top + 20, left : left + 20])
    assert win.region == pytest.approx((22 / 64, 42 / 64, 22 / 64, 42 / 64))
    odd = ImageTask(ImageConfig(path=str(image_path), res=64, crop="square", protocol="gen25", window=21))
    assert odd.region[0] * 64 == 20  # (64 - 21) // 4 * 2: rounded down to an even row


@pytest.mark.parametrize("window", [1, 65, True])
def test_a_window_outside_the_image_is_one_line(image_path, window):
    from posenc.errors import PosencError
    from posenc.tasks.image import ImageTask

    with pytest.raises(PosencError, match="window must be a side of 2 to 64 pixels"):
        ImageTask(ImageConfig(path=str(image_path), res=64, crop="square", window=window))


def test_a_windowed_fit_renders_its_window(image_path, tmp_path):
    """The model records its region: `posenc render` draws the window, not the unit square."""
    from posenc.cli import main

    run = tmp_path / "w"
    assert main(["fit", "image", str(image_path), "--res", "64", "--crop", "square", "--window", "16", "--iters", "30",
                 "--width", "32", "--depth", "1", "--features", "16", "--threads", "1", "--quiet", "--out", str(run)]) == 0
    recon = np.asarray(Image.open(run / "reconstruction.png"))
    assert main(["render", str(run), "--out", str(tmp_path / "r.png"), "--threads", "1"]) == 0
    again = np.asarray(Image.open(tmp_path / "r.png"))
    assert again.shape == recon.shape == (16, 16, 3)
    assert np.abs(again.astype(int) - recon.astype(int)).max() <= 1
    assert json.loads((run / "metrics.json").read_text())["psnr"] > 10
