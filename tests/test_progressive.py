"""SAPE policies against the paper: eq. 4 timing, eq. 5 freezing, eq. 6 interpolation, eq. 7 splatting."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from posenc.encodings import build_encoding
from posenc.encodings.base import Band
from posenc.grid import multilinear_weights
from posenc.progressive import GlobalProgression, SpatialProgression, build_policy


def gaussian(d=2, features=8, include_input=True):
    return build_encoding({"type": "gaussian", "sigma": 5.0, "features": features, "include_input": include_input}, d)


def test_global_bands_open_in_order_with_linear_ramps():
    enc = gaussian(features=8)
    T = 160
    pol = GlobalProgression(enc, T, epsilon=0.0)
    tau = T / (2 * 8)
    assert pol.tau == tau == 10
    high = torch.ones(4)
    seen = {}
    for t in range(T):
        pol.update(high)
        seen[t + 1] = pol.band_alpha(None).clone()
    # eq. 4: alpha_k(t) = clamp(t / tau - k, 0, 1)
    for t, alpha in seen.items():
        expected = (t / tau - torch.arange(8.0)).clamp(0, 1)
        torch.testing.assert_close(alpha, expected)
    assert torch.all(seen[5] == torch.tensor([0.5, 0, 0, 0, 0, 0, 0, 0]))
    assert torch.all(seen[T // 2] == 1)  # all open at T / 2
    # order: a band never opens before a lower one is fully open
    for alpha in seen.values():
        partial = ((alpha > 0) & (alpha < 1)).sum()
        assert partial <= 1
        assert torch.all(alpha[:-1] >= alpha[1:])


def test_global_channel_mask_keeps_identity_and_pairs():
    enc = gaussian(features=8)
    pol = GlobalProgression(enc, 160)
    for t in range(25):
        pol.update(torch.ones(3))
    m = pol.mask(torch.zeros(1, 2))
    assert m.shape == (enc.out_dim,)
    assert torch.all(m[:2] == 1)  # identity channels always open
    for k, band in enumerate(b for b in enc.bands if not b.identity):
        vals = m[list(band.channels)]
        assert torch.all(vals == vals[0])  # cos and sin of one frequency open together
    assert float(m[2]) == 1.0 and 0 < float(m[2 + 2]) < 1  # band 0 open, band 2 ramping at t = 25 (tau 10)


def test_global_early_stop():
    pol = GlobalProgression(gaussian(), 160, epsilon=1e-2)
    pol.update(torch.ones(3))
    level = float(pol.level)
    pol.update(torch.full((3,), 1e-3))
    for t in range(2, 50):
        pol.update(torch.ones(3))
    assert bool(pol.stopped) and float(pol.level) == level


def test_no_identity_means_first_band_starts_open():
    pol = GlobalProgression(gaussian(include_input=False), 100)
    assert float(pol.band_alpha(None)[0]) == 1.0


def centres(res, d):
    axes = [(torch.arange(res) + 0.5) / res] * d
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)


def test_spatial_low_loss_cells_freeze_high_loss_cells_continue():
    enc = gaussian(features=16)
    pol = SpatialProgression(enc, 320, epsilon=1e-3, mask_grid=8, smooth=1, mask_blur=1)
    x = centres(8, 2)
    loss = torch.where(x[:, 1] < 0.5, torch.full((64,), 1e-5), torch.full((64,), 0.1))  # left half fits
    for t in range(320):
        pol.update(loss, x)
    level = pol.level.reshape(8, 8)
    left, right = level[:, :4], level[:, 4:]
    assert torch.all(right == 16)  # kept progressing to the top
    assert torch.all(left <= 1.0 + 1e-6)  # frozen at the first band step
    assert not pol.in_progress.reshape(8, 8)[:, :4].any()
    assert pol.max_frequency(x).reshape(8, 8)[:, 4:].min() > pol.max_frequency(x).reshape(8, 8)[:, :4].max()


def test_spatial_matches_global_when_everything_is_hard():
    enc = gaussian(features=8)
    sp = SpatialProgression(enc, 160, mask_grid=4)
    gl = GlobalProgression(enc, 160, epsilon=0.0)
    x = torch.rand(50, 2)
    for t in range(37):
        sp.update(torch.ones(50), x)
        gl.update(torch.ones(50))
    torch.testing.assert_close(sp.band_alpha(x), gl.band_alpha(None).expand(50, -1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_eq7_splatting_equals_brute_force(d):
    res = 5
    enc = gaussian(d=d, features=4)
    pol = SpatialProgression(enc, 100, mask_grid=res, mask_blur=1)  # eq. 6: the unblurred interpolation
    g = torch.Generator().manual_seed(d)
    x = torch.rand(40, d, generator=g)
    loss = torch.rand(40, generator=g)
    idx, w = multilinear_weights(x, res)
    pol.splat_loss(loss, idx, w)
    # brute force: hat-function weight of every sample on every cell centre
    num = np.zeros(res**d)
    den = np.zeros(res**d)
    for cell in itertools.product(range(res), repeat=d):
        flat = int(np.ravel_multi_index(cell, [res] * d))
        for p, l in zip(x.numpy(), loss.numpy()):
            pos = np.clip(p * res - 0.5, 0, res - 1)
            wt = np.prod([max(0.0, 1 - abs(pos[a] - cell[a])) for a in range(d)])
            num[flat] += wt * l
            den[flat] += wt
    np.testing.assert_allclose(pol.loss_sum.numpy(), num, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pol.weight_sum.numpy(), den, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_multilinear_weights(d):
    res = 6
    x = torch.rand(200, d, generator=torch.Generator().manual_seed(0))
    idx, w = multilinear_weights(x, res)
    assert idx.shape == (200, 2**d) and int(idx.max()) < res**d and int(idx.min()) >= 0
    torch.testing.assert_close(w.sum(1), torch.ones(200))
    assert torch.all(w >= 0)
    # reproduces a linear function of the cell index exactly inside the centre range
    c = centres(res, d)
    f = (c * torch.arange(1.0, d + 1)).sum(1)
    inside = ((x * res - 0.5) >= 0).all(1) & ((x * res - 0.5) <= res - 1).all(1)
    pred = (f[idx] * w).sum(1)
    torch.testing.assert_close(pred[inside], (x * torch.arange(1.0, d + 1)).sum(1)[inside], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_interpolated_mask_equals_cells_at_centres_and_is_continuous(d):
    res = 4
    enc = gaussian(d=d, features=6)
    pol = SpatialProgression(enc, 100, mask_grid=res, mask_blur=1)  # eq. 6: the unblurred interpolation
    g = torch.Generator().manual_seed(1)
    pol.level.copy_(torch.rand(res**d, generator=g) * 6)
    c = centres(res, d)
    alpha_cells = (pol.level[:, None] - torch.arange(6.0)).clamp(0, 1)
    torch.testing.assert_close(pol.band_alpha(c), alpha_cells)
    # eq. 6 brute force at random points (checks the fast shared-level path too)
    x = torch.rand(100, d, generator=g)
    idx, w = multilinear_weights(x, res)
    brute = (alpha_cells[idx] * w[..., None]).sum(1)
    torch.testing.assert_close(pol.band_alpha(x), brute)
    # continuity: a tiny move changes the mask a tiny amount
    step = torch.full((1, d), 1e-4)
    assert float((pol.band_alpha(x + step) - pol.band_alpha(x)).abs().max()) < 1e-2


def test_bound_mask_fast_path_equals_general_path():
    enc = gaussian(features=8)
    pol = SpatialProgression(enc, 100, mask_grid=8)
    x = torch.rand(3, 100, 2)
    bound = pol.bind(x)
    pol.level.copy_(torch.rand(64) * 8)
    pol.version += 1
    torch.testing.assert_close(bound(), pol(x))
    torch.testing.assert_close(pol(x), enc(x) * pol.mask(x))


def test_build_policy_errors():
    from posenc.errors import PosencError

    with pytest.raises(PosencError, match="valid"):
        build_policy({"type": "warp"}, gaussian(), 10)
    with pytest.raises(PosencError, match="bad settings"):
        build_policy({"type": "global", "mask_grid": 3}, gaussian(), 10)
    with pytest.raises(PosencError, match="smooth"):
        build_policy({"type": "spatial", "smooth": 2}, gaussian(), 10)


def test_checkpoint_round_trip_keeps_mask(image_path, tmp_path):
    from posenc.config import FitConfig, ImageConfig, NetworkConfig, TrainConfig
    from posenc.methods import apply_method
    from posenc.tasks.image import render_image
    from posenc.train import fit, load_model

    base = FitConfig(data=ImageConfig(path=str(image_path), res=32), network=NetworkConfig(width=32, depth=2),
                     train=TrainConfig(iters=40, threads=1, checkpoint_every=0, lr=3e-3))
    cfg = apply_method(base, "sape+gaussian:sigma=6:features=16:mask_grid=16")
    assert cfg.encoding["include_input"] and cfg.progressive == {"type": "spatial", "epsilon": 1e-3, "blocks": 0,
                                                                 "mask_blur": 5, "smooth": 5, "mask_grid": 16}
    run = tmp_path / "run"
    metrics = fit(cfg, run, progress=False)
    assert (run / "heatmap.png").exists() and metrics["policy"]["type"] == "spatial"
    field, _, _ = load_model(run)
    assert field.policy is not None
    saved = json.loads((run / "metrics.json").read_text())["policy"]
    assert float(field.policy.level.mean()) == pytest.approx(saved["mean_level"])
    assert float(field.policy.level.std()) > 0 or saved["frozen_fraction"] in (0.0, 1.0)
    again = render_image(field, 32, 32)
    from PIL import Image

    rec = np.asarray(Image.open(run / "reconstruction.png"), dtype=np.float32) / 255
    assert np.abs(again - rec).max() <= 1 / 255 + 1e-6


def test_blocks_open_groups_of_bands_together():
    pol = GlobalProgression(gaussian(features=8), 40, epsilon=0.0, blocks=2)
    assert pol.n == 2 and pol.tau == 10
    for t in range(5):
        pol.update(torch.ones(3))
    torch.testing.assert_close(pol.band_alpha(None), torch.tensor([0.5] * 4 + [0.0] * 4))


def test_mask_blur_is_box_filter_then_interpolation():
    import torch.nn.functional as F

    enc = gaussian(features=6)
    pol = SpatialProgression(enc, 100, mask_grid=6, mask_blur=3)
    g = torch.Generator().manual_seed(3)
    pol.level.copy_(torch.rand(36, generator=g) * 6)
    cells = (pol.level[:, None] - torch.arange(6.0)).clamp(0, 1).T.reshape(6, 1, 6, 6)
    blurred = F.avg_pool2d(F.pad(cells, (1, 1, 1, 1), mode="replicate"), 3, stride=1).reshape(6, 36).T
    x = torch.rand(50, 2, generator=g)
    idx, w = multilinear_weights(x, 6)
    torch.testing.assert_close(pol.band_alpha(x), (blurred[idx] * w[..., None]).sum(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pol.bind(x)(), enc(x) * pol.mask(x))


def test_training_forward_follows_mask_changes_with_reused_buffer():
    """The trainer's cached masked features (written into one reused buffer) equal a fresh
    ``features * mask`` after every policy step, and a network call sees the current mask."""
    from posenc.config import FitConfig, NetworkConfig
    from posenc.methods import apply_method, build_field
    torch.manual_seed(0)
    cfg = apply_method(FitConfig(network=NetworkConfig(width=16, depth=1)), "sape+gaussian:features=8:sigma=5:mask_grid=4")
    field = build_field(cfg, 2, 3)
    x = torch.rand(64, 2, generator=torch.Generator().manual_seed(0))
    seen = []
    field.network.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    forward = field.bind(x)
    for it in range(6):
        forward()
        expected = field.base_encoding(x) * field.policy.mask(x)
        assert torch.allclose(seen[-1], expected, atol=1e-6)
        field.policy.update(torch.full((64,), 1.0))
    assert not torch.allclose(seen[0], seen[-1])  # the mask did move


def test_bound_learned_encoding_follows_mask_changes():
    """sape over a learned encoding (LPE): the bound path caches the mask until the policy moves."""
    torch.manual_seed(0)
    enc = build_encoding({"type": "lpe", "grid": 4, "bands": 3, "include_input": True}, 2)
    pol = SpatialProgression(enc, 40, mask_grid=4)
    x = torch.rand(30, 2)
    bound = pol.bind(x)
    for _ in range(5):
        torch.testing.assert_close(bound(), pol(x))
        pol.update(torch.ones(30))
    assert float(pol.level.mean()) > pol.start_level


@pytest.mark.parametrize("level,open_bands", [(0.0, 0), (0.5, 1), (1.0, 1), (2.3, 3), (7.999, 8), (8.0, 8)])
def test_max_frequency_is_the_highest_open_band(level, open_bands):
    """The frequency heat map: at each point, the frequency of the highest band whose mask is open
    (alpha > 0), 0 where only the raw coordinates are; the same under the global and the spatial policy."""
    x = centres(4, 2)
    for pol in (GlobalProgression(gaussian(features=8), 160), SpatialProgression(gaussian(features=8), 160, mask_grid=4)):
        freqs = torch.tensor(sorted(b.frequency for b in pol.encoding.bands if not b.identity))
        torch.testing.assert_close(pol.band_freqs, freqs)
        with torch.no_grad():
            pol.level.fill_(level)
        expected = torch.full((16,), float(freqs[open_bands - 1]) if open_bands else 0.0)
        torch.testing.assert_close(pol.max_frequency(x), expected)


def test_max_frequency_maps_each_cell_of_the_spatial_mask():
    pol = SpatialProgression(gaussian(features=8), 160, mask_grid=4, mask_blur=1)
    with torch.no_grad():
        pol.level.copy_(torch.arange(16, dtype=torch.float32) % 9)  # levels 0-8 over the 4 x 4 cells
    got = pol.max_frequency(centres(4, 2))  # cell centres: each point sees only its own cell's level
    freqs = torch.cat([torch.zeros(1), pol.band_freqs])
    torch.testing.assert_close(got, freqs[(torch.arange(16) % 9)])
    assert got.shape == (16,) and got.device.type == "cpu"


def test_max_frequency_without_moving_bands_is_the_constant_zero():
    class Identity(torch.nn.Module):
        in_dim, out_dim = 2, 2
        bands = [Band((0, 1), 0.0, identity=True)]

        def forward(self, x):
            return x

    pol = GlobalProgression(Identity(), 10)
    torch.testing.assert_close(pol.max_frequency(torch.rand(5, 2)), torch.zeros(5))
