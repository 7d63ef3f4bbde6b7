"""Classical gen25 baselines: exact on what they can represent, and the figures the protocol quotes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posenc.baselines import baseline_metrics, interpolate_gen25
from posenc.config import ImageConfig
from posenc.errors import PosencError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_training_pixels_are_kept_and_a_linear_ramp_is_exact(method):
    h, w = 9, 12  # odd and even sizes
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = np.stack([ii / 20, jj / 30, (ii + jj) / 40], -1).astype(np.float32)
    out = interpolate_gen25(ramp, method)
    np.testing.assert_allclose(out[::2, ::2], ramp[::2, ::2], atol=1e-6)
    # inside the last sample row/column a ramp is reproduced; beyond it the edge value is held
    inner = (slice(0, (h - 1) // 2 * 2 + 1), slice(0, (w - 1) // 2 * 2 + 1))
    np.testing.assert_allclose(out[inner], ramp[inner], atol=1e-5)
    np.testing.assert_allclose(out[:, -1], out[:, -2], atol=1e-6)  # w even: the last column copies the edge sample


def test_bilinear_is_the_mean_of_its_neighbours():
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 1)).astype(np.float32)
    out = interpolate_gen25(img, "bilinear")
    assert out[1, 2, 0] == pytest.approx((img[0, 2, 0] + img[2, 2, 0]) / 2, abs=1e-6)
    assert out[3, 3, 0] == pytest.approx(img[2:5:2, 2:5:2, 0].mean(), abs=1e-6)


def test_unknown_baseline_and_fit_protocol_are_refused():
    with pytest.raises(PosencError, match="unknown baseline"):
        interpolate_gen25(np.zeros((4, 4, 3)), "nearest")
    with pytest.raises(PosencError, match="gen25"):
        baseline_metrics(ImageConfig(protocol="fit", res=32), "bilinear")


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_the_protocol_figures_at_256_px():
    quoted = {"kodak/kodim01.png": 24.33, "kodak/kodim02.png": 30.16, "text/text00.png": 21.35, "text/text01.png": 18.96}
    for name, db in quoted.items():
        m = baseline_metrics(ImageConfig(path=str(DATA / name), res=256, crop="square", protocol="gen25"), "bilinear")
        assert m["psnr"] == pytest.approx(db, abs=0.005), name
