"""The command line: bad input gives one line and exit code 2; the listed commands work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from posenc.cli import main
from posenc.config import FitConfig, dump_yaml, load_config

FAST = ["--res", "32", "--iters", "3", "--width", "16", "--depth", "1", "--features", "8", "--threads", "1", "--quiet"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(capsys, args, needle):
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def test_bad_inputs(capsys, tmp_path, image_path):
    out = ["--out", tmp_path / "o"]
    assert_one_line_error(capsys, ["fit", "image", tmp_path / "missing.png", *out], "not found")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    assert_one_line_error(capsys, ["fit", "image", text, *out], "not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert_one_line_error(capsys, ["fit", "image", empty, *out], "empty")
    truncated = tmp_path / "trunc.png"
    data = image_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert_one_line_error(capsys, ["fit", "image", truncated, *out], "truncated")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--encoding", "fourier", *out], "valid encodings")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--sigma", "-3", *out], "sigma must be positive")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--iters", "0", *out], "iters")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--iters", "-5", *out], "iters")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--encoding", "basic", "--sigma", "3", *out], "no setting 'sigma'")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--res", "0", *out], "res must be")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--protocol", "gen50", *out], "protocol")
    assert_one_line_error(capsys, ["fit", "image", image_path, "--iters", "ten", *out], "invalid int")
    assert_one_line_error(capsys, ["render", tmp_path / "nowhere", "--out", tmp_path / "x.png"], "not found")
    assert_one_line_error(capsys, ["bench", "images", "--data", tmp_path, "--methods", "warp", "--out", tmp_path / "b"], "unknown method")


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "posenc", "fit", "image", str(tmp_path / "nope.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("posenc: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_fit_render_and_config_rerun(capsys, tmp_path, image_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "fit", "image", image_path, "--encoding", "gaussian", "--sigma", "3", *FAST, "--out", run)
    assert code == 0, err
    assert "psnr" in out
    cfg = json.loads((run / "config.json").read_text())
    # the full config: defaults are written too, so a later change of a default cannot change the re-run
    assert cfg["encoding"] == {"type": "gaussian", "sigma": 3.0, "features": 8, "seed": 0, "periodic": False,
                               "sampling": "isotropic", "include_input": False}
    assert cfg["progressive"] == {"type": "none"}
    assert cfg["network"]["width"] == 16 and cfg["train"]["iters"] == 3

    code, _, err = run_cli(capsys, "render", run, "--scale", "1.25", "--out", tmp_path / "big.png")
    assert code == 0, err
    assert Image.open(tmp_path / "big.png").size == (40, 40)
    assert_one_line_error(capsys, ["render", run, "--size", "40x24", "--out", tmp_path / "z.png"], "another aspect")
    assert_one_line_error(capsys, ["render", run, "--size", "big", "--out", tmp_path / "y.png"], "size")

    code, _, err = run_cli(capsys, "fit", "image", "--config", run / "config.json", "--out", tmp_path / "again", "--quiet")
    assert code == 0, err
    first = json.loads((run / "metrics.json").read_text())
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["psnr"] == again["psnr"]


def test_config_round_trip(tmp_path):
    cfg = FitConfig(encoding={"type": "positional", "frequencies": 4})
    assert FitConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    y = tmp_path / "c.yaml"
    y.write_text(dump_yaml(cfg))
    assert load_config(y) == cfg
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"iterations": 5}}))
    from posenc.errors import PosencError

    with pytest.raises(PosencError, match="unknown key"):
        load_config(bad)


def test_method_flag_and_encoding_seed(capsys, tmp_path, image_path):
    code, out, err = run_cli(capsys, "fit", "image", image_path, "--method", "gaussian:sigma=2", "--encoding-seed", "4", "--print-config")
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["encoding"] == {"type": "gaussian", "sigma": 2.0, "seed": 4, "features": 256, "periodic": False,
                               "include_input": False, "sampling": "isotropic"} and cfg["method"] == "gaussian:sigma=2"


def test_encodings_listing(capsys):
    code, out, _ = run_cli(capsys, "encodings")
    assert code == 0
    for name in ("none", "basic", "positional", "gaussian", "rbf_grid"):
        assert name in out
    assert "sigma=10.0" in out


def test_viz_fourier(capsys, tmp_path):
    code, _, err = run_cli(capsys, "viz", "fourier", "--features", "4", "--sigma", "10", "--size", "16", "--out", tmp_path / "basis.png")
    assert code == 0, err
    img = np.asarray(Image.open(tmp_path / "basis.png"))
    assert img.ndim == 3 and img.std() > 10  # a real picture, not a blank canvas


def test_fit_without_a_path_uses_the_builtin_image(capsys, tmp_path):
    code, out, err = run_cli(capsys, "fit", "image", *FAST, "--out", tmp_path / "astro")
    assert code == 0, err
    cfg = json.loads((tmp_path / "astro" / "config.json").read_text())
    assert cfg["data"]["path"] == "" and (tmp_path / "astro" / "comparison.png").exists()


def test_atomic_writes_have_the_usual_permissions(tmp_path):
    import os

    from posenc.io import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_with_defaults_lists_every_setting():
    from posenc.bench.runner import config_digest
    from posenc.methods import apply_method, with_defaults

    cfg = apply_method(FitConfig.for_task("occupancy"), "sape+gaussian:sigma=10:mask_blur=5")
    full = with_defaults(cfg)
    assert full.progressive == {"type": "spatial", "epsilon": 1e-3, "mask_grid": 64, "smooth": 3, "blocks": 0, "mask_blur": 5}
    assert full.encoding["sigma"] == 10 and full.encoding["features"] == 256
    assert with_defaults(full) == full
    # a bench row written before defaults were listed is still the same run
    assert config_digest(cfg.to_dict()) == config_digest(full.to_dict())


def test_image_sape_blurs_masks_and_losses_by_default():
    from posenc.methods import apply_method

    paper = {"type": "spatial", "epsilon": 1e-3, "smooth": 3, "blocks": 0, "mask_blur": 1}
    image = apply_method(FitConfig.for_task("image"), "sape+gaussian:sigma=10")
    assert image.progressive == {**paper, "mask_grid": 128, "mask_blur": 5, "smooth": 5}
    own = apply_method(FitConfig.for_task("image"), "sape+gaussian:sigma=10:mask_blur=1:smooth=3")
    assert own.progressive == {**paper, "mask_grid": 128}
    assert apply_method(FitConfig.for_task("occupancy"), "sape+gaussian").progressive == {**paper, "mask_grid": 64}
    assert apply_method(FitConfig.for_task("image"), "progressive+gaussian").progressive == {"type": "global", "epsilon": 1e-3, "blocks": 0}
