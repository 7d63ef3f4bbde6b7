"""Each encoding against its formula; bands ordered low-to-high and covering every channel once."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from posenc.encodings import build_encoding, encoding_class, encoding_names
from posenc.errors import PosencError

CONFIGS = [
    {"type": "none"},
    {"type": "basic"},
    {"type": "positional", "frequencies": 6, "max_freq": 32.0},
    {"type": "gaussian", "sigma": 10.0, "features": 16},
    {"type": "rbf_grid", "sigma": 10.0, "features": 16},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["type"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_shapes_and_bands(cfg, d):
    enc = build_encoding(cfg, d)
    x = torch.rand(5, 7, d)
    out = enc(x)
    assert out.shape == (5, 7, enc.out_dim)
    channels = [c for b in enc.bands for c in b.channels]
    assert sorted(channels) == list(range(enc.out_dim)), "bands must partition the channels"
    freqs = [b.frequency for b in enc.bands]
    assert freqs == sorted(freqs), "bands must be ordered low to high"
    assert enc.fixed


def test_every_registered_encoding_is_tested():
    assert {c["type"] for c in CONFIGS} <= set(encoding_names())


def test_gaussian_formula_and_sorting():
    enc = build_encoding({"type": "gaussian", "sigma": 10.0, "features": 32, "seed": 3}, 2)
    x = torch.rand(100, 2)
    B = enc.B
    proj = 2 * math.pi * x.double() @ B.double().T  # float64 reference; float32 phases reach ~200 rad
    expected = torch.cat([torch.cos(proj), torch.sin(proj)], -1).float()
    torch.testing.assert_close(enc(x), expected, rtol=0, atol=1e-4)
    norms = B.norm(dim=1)
    assert torch.all(norms[1:] >= norms[:-1])
    # each band is one (cos, sin) pair with the magnitude |b_i|
    for i, band in enumerate(enc.bands):
        assert band.channels == (i, 32 + i)
        assert band.frequency == pytest.approx(float(norms[i]), rel=1e-6)


def test_gaussian_scale_is_sigma_in_unit_coordinates():
    enc = build_encoding({"type": "gaussian", "sigma": 7.0, "features": 20000}, 2)
    assert float(enc.B.std()) == pytest.approx(7.0, rel=0.03)
    assert float(enc.B.mean()) == pytest.approx(0.0, abs=0.15)


def test_gaussian_radial_sampling_matches_the_public_sape_code():
    """``radial``: |b| half-normal with scale sigma, direction uniform; ``isotropic``: |b| Rayleigh in 2-D."""
    n, sigma = 20000, 7.0
    radial = build_encoding({"type": "gaussian", "sigma": sigma, "features": n, "sampling": "radial"}, 2).B.double()
    iso = build_encoding({"type": "gaussian", "sigma": sigma, "features": n}, 2).B.double()
    r, q = radial.norm(dim=1), iso.norm(dim=1)
    assert float(r.mean()) == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.03)  # half-normal mean
    assert float(r.pow(2).mean().sqrt()) == pytest.approx(sigma, rel=0.03)  # RMS sigma
    assert float(q.mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.03)  # Rayleigh mean
    # half-normal is densest at 0: far more rows below sigma / 4 than the Rayleigh law allows
    assert float((r < sigma / 4).double().mean()) == pytest.approx(math.erf(0.25 / math.sqrt(2)), abs=0.02)
    assert float((q < sigma / 4).double().mean()) == pytest.approx(1 - math.exp(-0.25 ** 2 / 2), abs=0.01)
    # directions uniform on the circle: angle histogram flat, mean direction ~ 0
    angle = torch.atan2(radial[:, 1], radial[:, 0])
    counts = torch.histc(angle, bins=8, min=-math.pi, max=math.pi)
    assert float(counts.min() / counts.max()) > 0.9
    assert torch.all(r[1:] >= r[:-1] - 1e-5)  # still sorted low-to-high (up to float32 rounding)
    with pytest.raises(PosencError, match="unknown sampling 'uniform'; valid: isotropic, radial"):
        build_encoding({"type": "gaussian", "sampling": "uniform"}, 2)


def test_gaussian_seeded():
    a = build_encoding({"type": "gaussian", "seed": 1}, 2).B
    b = build_encoding({"type": "gaussian", "seed": 1}, 2).B
    c = build_encoding({"type": "gaussian", "seed": 2}, 2).B
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_basic_formula():
    enc = build_encoding({"type": "basic"}, 2)
    x = torch.rand(10, 2)
    expected = torch.cat([torch.cos(2 * math.pi * x), torch.sin(2 * math.pi * x)], -1)
    torch.testing.assert_close(enc(x), expected)


def test_positional_formula():
    enc = build_encoding({"type": "positional", "frequencies": 4, "max_freq": 8.0}, 2)
    torch.testing.assert_close(enc.freqs, torch.tensor([1.0, 2.0, 4.0, 8.0]))
    x = torch.rand(10, 2)
    proj = 2 * math.pi * enc.freqs[None, :, None] * x[:, None, :]  # (N, K, d)
    expected = torch.cat([torch.cos(proj).reshape(10, -1), torch.sin(proj).reshape(10, -1)], -1)
    torch.testing.assert_close(enc(x), expected)
    # one band per frequency, holding cos and sin of every axis
    assert [b.frequency for b in enc.bands] == pytest.approx([1.0, 2.0, 4.0, 8.0])
    assert sorted(enc.bands[1].channels) == [2, 3, 10, 11]


def test_none_is_identity():
    enc = build_encoding({"type": "none"}, 3)
    x = torch.rand(4, 3)
    assert torch.equal(enc(x), x)
    assert enc.bands[0].identity


def test_include_input_prepends_identity_band():
    enc = build_encoding({"type": "gaussian", "features": 8, "include_input": True}, 2)
    x = torch.rand(6, 2)
    out = enc(x)
    assert out.shape[-1] == 18
    torch.testing.assert_close(out[:, :2], x)
    assert enc.bands[0].identity and enc.bands[0].channels == (0, 1)
    assert not any(b.identity for b in enc.bands[1:])


def test_rbf_grid_formula():
    enc = build_encoding({"type": "rbf_grid", "sigma": 5.0, "features": 8, "seed": 1}, 2)
    f, o, w = enc.freqs, enc.offsets, enc.width
    # a lattice node of band i gives +1 on its first channel; the half-period shift gives +1 on its second
    for i in range(8):
        node = (o[i] + 2.0 / f[i])[None]
        out = enc(node)[0]
        assert float(out[i]) == pytest.approx(1.0, abs=1e-4)
        half = node + 0.5 / f[i]
        assert float(enc(half)[0, 8 + i]) == pytest.approx(1.0, abs=1e-4)
    # explicit formula at random points
    x = torch.rand(50, 2)
    phase = (x[:, None, :] - o) * f[:, None]
    dist = phase - torch.round(phase)
    expected = 2 * torch.exp(-dist.square().sum(-1) / (2 * w**2)) - 1
    torch.testing.assert_close(enc(x)[:, :8], expected, rtol=1e-5, atol=1e-5)
    # frequencies: mid-points of equal steps on (0, sqrt(3) sigma], RMS ~ sigma
    assert float(f.max()) < math.sqrt(3) * 5.0
    assert float(f.square().mean().sqrt()) == pytest.approx(5.0, rel=0.02)


def test_rbf_grid_lattices_are_exact_midpoints_with_one_random_offset_per_band():
    enc = build_encoding({"type": "rbf_grid", "sigma": 5.0, "features": 8, "seed": 3}, 3)
    step = math.sqrt(3) * 5.0 / 8
    torch.testing.assert_close(enc.freqs, ((torch.arange(8) + 0.5) * step).float())
    # an offset per band and axis, inside one period of that band (a node in [0, 1 / f_i)), not shared
    assert enc.offsets.shape == (8, 3)
    assert bool((enc.offsets >= 0).all()) and bool((enc.offsets < 1 / enc.freqs[:, None]).all())
    assert len({tuple(o) for o in (enc.offsets * enc.freqs[:, None]).tolist()}) == 8
    # the same seed gives the same lattices, another seed others
    torch.testing.assert_close(build_encoding({"type": "rbf_grid", "sigma": 5.0, "features": 8, "seed": 3}, 3).offsets, enc.offsets)
    assert not torch.equal(build_encoding({"type": "rbf_grid", "sigma": 5.0, "features": 8, "seed": 4}, 3).offsets, enc.offsets)


def test_rbf_grid_is_periodic_per_band():
    enc = build_encoding({"type": "rbf_grid", "sigma": 4.0, "features": 4}, 1)
    x = torch.rand(20, 1) * 0.3
    for i in range(4):
        shifted = x + 1.0 / enc.freqs[i]
        torch.testing.assert_close(enc(x)[:, i], enc(shifted)[:, i], rtol=1e-4, atol=1e-4)


def _numeric_settings():
    """Every numeric constructor setting of every registered encoding (bools and ``in_dim`` aside)."""
    for name in encoding_names():
        for key, par in inspect.signature(encoding_class(name).__init__).parameters.items():
            if key not in ("self", "in_dim") and isinstance(par.default, (int, float)) and not isinstance(par.default, bool):
                yield pytest.param(name, key, id=f"{name}-{key}")


@pytest.mark.parametrize("name,key", list(_numeric_settings()))
def test_every_numeric_setting_out_of_range_is_an_error_that_names_it(name, key):
    """Generated from the registry: NaN and infinity are refused for every numeric setting, and -1 for
    every one but the seeds, with a PosencError naming the setting (never a traceback from deep inside)."""
    values = [float("nan"), float("inf")] + ([] if key == "seed" else [-1])
    for value in values:
        with pytest.raises(PosencError, match=key):
            build_encoding({"type": name, key: value}, 2)


def test_every_numeric_policy_and_network_setting_out_of_range_names_it():
    """The same for the progressive policies and the networks (their registries, every numeric setting)."""
    from posenc.networks import NETWORKS, build_network
    from posenc.progressive import POLICIES, build_policy

    enc = build_encoding({"type": "gaussian", "features": 8}, 2)
    checked = 0
    for name, cls in POLICIES.items():
        for key, (_, default) in cls.settings().items():
            if isinstance(default, bool) or not isinstance(default, (int, float, type(None))):
                continue
            for value in (-1, float("nan"), float("inf")):
                with pytest.raises(PosencError, match=key):
                    build_policy({"type": name, key: value}, enc)
            checked += 1
    for name, cls in NETWORKS.items():
        for key, par in inspect.signature(cls.__init__).parameters.items():
            if key in ("self", "in_dim", "out_dim") or isinstance(par.default, bool) or not isinstance(par.default, (int, float)):
                continue
            for value in (-1, float("nan"), float("inf")):
                with pytest.raises(PosencError, match=key):
                    build_network({"type": name, "in_dim": 4, "out_dim": 2, key: value})
            checked += 1
    assert checked >= 8


def test_registry_errors():
    with pytest.raises(PosencError, match="valid encodings: .*gaussian"):
        build_encoding({"type": "fourier"}, 2)
    with pytest.raises(PosencError, match="does not take"):
        build_encoding({"type": "gaussian", "num_freqs": 3}, 2)
    with pytest.raises(PosencError, match="sigma must be positive"):
        build_encoding({"type": "gaussian", "sigma": -1.0}, 2)
    with pytest.raises(PosencError, match="dimension 1 to 4, got 5"):
        build_encoding({"type": "hash_grid"}, 5)
    with pytest.raises(PosencError, match="features must be an integer, got 2.5"):
        build_encoding({"type": "gaussian", "features": 2.5}, 2)


def test_periodic_gaussian_has_integer_frequencies_and_period_one():
    enc = build_encoding({"type": "gaussian", "sigma": 3, "features": 64, "periodic": True, "seed": 1}, 2)
    B = enc.B
    assert torch.equal(B, B.round()) and bool((B.abs().sum(1) > 0).all())  # integers, no constant feature
    norms = B.norm(dim=1)
    assert bool((norms[1:] >= norms[:-1]).all())  # still sorted low -> high
    x = torch.rand(16, 2)
    torch.testing.assert_close(enc(x), enc(x + 1.0), atol=2e-4, rtol=0)
    torch.testing.assert_close(enc(x), enc(x + torch.tensor([0.0, 1.0])), atol=2e-4, rtol=0)


def test_periodic_rounding_keeps_each_row_or_its_largest_axis():
    """Each row of ``B ~ N(0, sigma^2)`` (drawn from the seed) is rounded to integers; a row that rounds
    to all zeros keeps the sign of its largest entry there, as 1: the nearest non-constant feature."""
    sigma, n, seed = 0.6, 40, 2  # small sigma: many rows round to zero
    raw = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * sigma
    expected = raw.round()
    dead = (expected == 0).all(1)
    assert 5 < int(dead.sum()) < n
    for i in torch.nonzero(dead)[:, 0].tolist():
        k = int(raw[i].abs().argmax())
        expected[i, k] = float(raw[i, k].sign())
    enc = build_encoding({"type": "gaussian", "sigma": sigma, "features": n, "periodic": True, "seed": seed}, 2)
    assert sorted(map(tuple, enc.B.tolist())) == sorted(map(tuple, expected.float().tolist()))


@pytest.mark.parametrize("sampling", ["isotropic", "radial"])
def test_gaussian_rows_come_from_the_seed_alone(sampling):
    """The frequency matrix depends on ``seed`` only, not on torch's global random state."""
    cfg = {"type": "gaussian", "sigma": 4.0, "features": 32, "seed": 5, "sampling": sampling}
    torch.manual_seed(0)
    first = build_encoding(cfg, 3).B
    torch.manual_seed(1)
    torch.rand(7)
    torch.testing.assert_close(build_encoding(cfg, 3).B, first, rtol=0, atol=0)
    assert not torch.equal(build_encoding({**cfg, "seed": 6}, 3).B, first)


def test_positional_frequencies_are_log_linear_from_1_to_max_freq():
    torch.testing.assert_close(build_encoding({"type": "positional", "frequencies": 5, "max_freq": 16.0}, 2).freqs,
                               torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0]))
    torch.testing.assert_close(build_encoding({"type": "positional", "frequencies": 2, "max_freq": 9.0}, 1).freqs,
                               torch.tensor([1.0, 9.0]))
    # one frequency: the highest (the ratio k / (frequencies - 1) has no k = 0 .. 0 range)
    torch.testing.assert_close(build_encoding({"type": "positional", "frequencies": 1, "max_freq": 9.0}, 1).freqs,
                               torch.tensor([9.0]))


def test_silhouette_task_makes_encodings_periodic_without_raw_input():
    from posenc.config import FitConfig
    from posenc.methods import apply_method

    base = FitConfig.for_task("silhouette")
    sape = apply_method(base, "sape+gaussian")
    assert sape.encoding["periodic"] is True and sape.encoding["include_input"] is False
    assert apply_method(base, "none").encoding == {"type": "none"}  # the raw-p baseline stays raw
    assert apply_method(FitConfig.for_task("image"), "sape+gaussian").encoding["periodic"] is False


@pytest.mark.parametrize("cfg", [
    {"type": "basic"},
    {"type": "positional", "frequencies": 5, "max_freq": 16.0},
    {"type": "gaussian", "sigma": 6.0, "features": 12},
    {"type": "gaussian", "sigma": 6.0, "features": 12, "sampling": "radial"},
], ids=lambda c: c["type"] + ("-radial" if c.get("sampling") else ""))
@pytest.mark.parametrize("d", [1, 2])
def test_each_band_oscillates_at_its_declared_frequency(cfg, d):
    """A sinusoidal band's channels are sin/cos(2 pi f . x): their gradient norm is 2 pi |f| times the
    other channel of the pair, so |grad| of the pair is 2 pi |f| everywhere; the declared band
    frequency (what SAPE's heat maps and ramps use) must be that |f|."""
    enc = build_encoding(cfg, d).double()
    x = torch.rand(64, d, dtype=torch.float64, requires_grad=True)
    for band in enc.bands:
        if band.frequency == 0:  # identity channels
            continue
        feats = enc(x)[:, band.channels]
        grads = []
        for c in range(feats.shape[1]):
            g, = torch.autograd.grad(feats[:, c].sum(), x, retain_graph=True)
            grads.append(g)
        # per (cos, sin) pair of one frequency vector: |grad cos|^2 + |grad sin|^2 = (2 pi |f|)^2
        energy = sum(g.square().sum(-1) for g in grads) / (len(grads) / 2)
        measured = energy.sqrt() / (2 * math.pi)
        torch.testing.assert_close(measured, torch.full_like(measured, band.frequency), rtol=1e-4, atol=1e-4)
