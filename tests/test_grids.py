"""LPE and feature grids against their definitions; fast (bound) and general paths agree."""

from __future__ import annotations

import math

import pytest
import torch

from posenc.encodings import build_encoding
from posenc.encodings.grids import PRIMES, level_resolutions, spatial_hash
from posenc.grid import axis_weights, corner_coordinates, interpolate, multilinear_weights
from posenc.tasks.image import pixel_coordinates


def test_lpe_with_unit_coefficients_is_positional_encoding():
    lpe = build_encoding({"type": "lpe", "grid": 4, "bands": 5, "max_freq": 16.0}, 2)
    pe = build_encoding({"type": "positional", "frequencies": 5, "max_freq": 16.0}, 2)
    x = torch.rand(50, 2)
    torch.testing.assert_close(lpe(x), pe(x))
    assert [b.frequency for b in lpe.bands] == pytest.approx([b.frequency for b in pe.bands])
    g = build_encoding({"type": "lpe", "grid": 4, "bands": 6, "freqs": "gaussian", "sigma": 3.0}, 3)
    ref = build_encoding({"type": "gaussian", "sigma": 3.0, "features": 6}, 3)
    x3 = torch.rand(9, 3)
    torch.testing.assert_close(g(x3), ref(x3))


def test_lpe_is_amplitude_times_fourier_features():
    lpe = build_encoding({"type": "lpe", "grid": 3, "bands": 4, "max_freq": 8.0}, 2)
    with torch.no_grad():
        lpe.coeffs.copy_(torch.rand_like(lpe.coeffs) * 2)
    x = torch.rand(20, 2)
    idx, w = multilinear_weights(x, 3, vertices=True)
    a = (lpe.coeffs[idx] * w[..., None]).sum(1)
    torch.testing.assert_close(lpe(x), a * lpe.fourier(x))
    assert lpe.coeffs.numel() == 16 * lpe.out_dim  # (grid + 1)^d vertices x channels


@pytest.mark.parametrize("d", [1, 2, 3])
def test_vertex_interpolation_reproduces_vertex_values(d):
    res = 4
    table = torch.rand((res + 1) ** d, 3)
    axes = [torch.arange(res + 1) / res] * d
    verts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    idx, w = multilinear_weights(verts, res, vertices=True)
    torch.testing.assert_close(w.sum(1), torch.ones(len(verts)))
    torch.testing.assert_close(interpolate(table, idx, w), table)
    x = torch.rand(100, d)
    _, w2 = corner_coordinates(x, res, vertices=True)
    torch.testing.assert_close(w2.sum(1), torch.ones(100))


def test_spatial_hash_matches_uint32_reference():
    coords = torch.tensor([[0, 0], [1, 0], [0, 1], [5, 7], [511, 300], [1023, 1023]])
    T = 2**14
    for c in coords.tolist():
        ref = 0
        for a, v in enumerate(c):
            ref ^= (v * PRIMES[a]) % 2**32
        assert int(spatial_hash(torch.tensor([c]), T)[0]) == ref % T
    c3 = torch.randint(0, 4096, (1000, 3))
    h = spatial_hash(c3, 2**19)
    assert int(h.min()) >= 0 and int(h.max()) < 2**19


def test_hash_grid_levels_and_indices():
    enc = build_encoding({"type": "hash_grid", "levels": 6, "features_per_level": 2, "log2_table": 10, "base_res": 4, "max_res": 128}, 2)
    assert enc.resolutions == level_resolutions(6, 4, 128) == [4, 8, 16, 32, 64, 128]
    # coarse levels fit the table and are dense; fine ones are hashed into 2^10 rows
    assert enc.hashed == [False, False, False, True, True, True]
    assert [t.shape[0] for t in enc.tables] == [25, 81, 289, 1024, 1024, 1024]
    x = torch.rand(500, 2)
    for level in range(6):
        idx, w = enc.level_indices(x, level)
        assert int(idx.min()) >= 0 and int(idx.max()) < enc.tables[level].shape[0]
    assert enc.out_dim == 12 and enc.bands[0].frequency == 2.0 and enc.bands[-1].frequency == 64.0
    for t in enc.tables:
        assert float(t.detach().abs().max()) <= 1e-4


def test_geometric_growth():
    res = level_resolutions(16, 16, 512)
    b = math.exp((math.log(512) - math.log(16)) / 15)
    assert res[0] == 16 and res[-1] == 512
    assert all(r == math.floor(16 * b**i + 1e-9) for i, r in enumerate(res))


@pytest.mark.parametrize("cfg", [
    {"type": "lpe", "grid": 5, "bands": 3},
    {"type": "lpe", "grid": 5, "bands": 3, "freqs": "gaussian", "include_input": True},
    {"type": "multires_lpe", "levels": 3, "base_grid": 2, "max_grid": 8, "bands": 3},
    {"type": "multires_lpe", "levels": 2, "base_grid": 3, "max_grid": 7, "bands": 3},  # two levels: not the fused one-grid step
    {"type": "dense_grid", "res": 6, "features": 3},
    {"type": "multires_grid", "levels": 3, "base_res": 2, "max_res": 8},
    {"type": "hash_grid", "levels": 4, "log2_table": 6, "base_res": 2, "max_res": 16},
], ids=lambda c: c["type"])
def test_bound_fast_path_equals_general_path_and_gradients_flow(cfg):
    enc = build_encoding(cfg, 2)
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(torch.randn_like(p))
    x = pixel_coordinates(12, 10)  # a pixel grid: LPE takes the separable matrix path
    fast = enc.bind(x)
    torch.testing.assert_close(fast(), enc(x), rtol=1e-5, atol=1e-5)
    xr = torch.rand(30, 2)  # scattered points: the gather path
    torch.testing.assert_close(enc.bind(xr)(), enc(xr), rtol=1e-5, atol=1e-5)
    # gradients reach every table / coefficient grid, identical on both paths
    g1 = torch.autograd.grad(fast().square().sum(), list(enc.parameters()))
    g2 = torch.autograd.grad(enc(x).square().sum(), list(enc.parameters()))
    for a, b in zip(g1, g2):
        assert float(a.abs().sum()) > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not enc.fixed and enc.lr == 1e-2


def test_axis_weights_rows_sum_to_one():
    m = axis_weights(torch.tensor([0.0, 0.3, 0.99, 1.0]), 4)
    torch.testing.assert_close(m.sum(1), torch.ones(4))
    assert float(m[1, 1]) == pytest.approx(0.8) and float(m[1, 2]) == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["lpe", "hash_grid", "dense_grid", "multires_grid", "multires_lpe"])
def test_3d_shapes(name):
    enc = build_encoding({"type": name}, 3) if name not in ("lpe", "multires_lpe") else build_encoding({"type": name, "bands": 4}, 3)
    assert enc(torch.rand(7, 3)).shape == (7, enc.out_dim)


def test_axis_plan_lerp_matches_matrix_product():
    from posenc.grid import AxisPlan

    torch.manual_seed(0)
    values = torch.randn(9, 5, 3)
    for m, res, lerp in ((32, 8, True), (30, 8, False)):  # pixel rows divide the cells evenly, or not
        coords = (torch.arange(m) + 0.5) / m
        plan = AxisPlan(coords, res)
        assert (plan.offsets is not None) == lerp
        expected = torch.einsum("mi,ijc->mjc", plan.matrix, values[: res + 1])
        torch.testing.assert_close(plan.apply(values[: res + 1], 0), expected)
        inner = torch.randn(2, res + 1, 3)
        torch.testing.assert_close(plan.apply(inner, 1), torch.einsum("mj,ijc->imc", plan.matrix, inner))
    # gradients flow through the lerp path
    coeffs = torch.randn(9, 4, requires_grad=True)
    AxisPlan((torch.arange(32) + 0.5) / 32, 8).apply(coeffs, 0).sum().backward()
    torch.testing.assert_close(coeffs.grad.sum(), torch.tensor(32.0 * 4))


def test_fused_lerp_with_scale_matches_autograd():
    from posenc.grid import AxisPlan

    torch.manual_seed(0)
    plan = AxisPlan((torch.arange(12) + 0.5) / 12, 4)
    plan.offsets = plan.offsets.double()
    v = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    scale = torch.randn(12, 3, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: plan.apply(a, 0, scale), (v,))
    assert torch.autograd.gradcheck(lambda a: plan.apply(a, 0), (v,))
    expected = torch.einsum("mi,ijc->mjc", plan.matrix.double(), v) * scale
    torch.testing.assert_close(plan.apply(v, 0, scale), expected)


def test_lpe_defaults_depend_on_dimension():
    # the seed's image setting in 2-D; a grid small enough for a CPU in 3-D
    two, three = build_encoding({"type": "lpe"}, 2), build_encoding({"type": "lpe"}, 3)
    assert two.out_dim == 2 * 64 * 2 and tuple(two.coeffs.shape) == (33**2, 256)
    assert three.out_dim == 2 * 16 * 3 and tuple(three.coeffs.shape) == (17**3, 96)


def test_pixel_grid_detection_accepts_row_major_images_only():
    """LPE's fast path needs the points to be the row-major product of their y and x values (an
    image's pixels, as ``pixel_coordinates`` lays them out); anything else takes the general path."""
    from posenc.encodings.lpe import _tensor_grid

    x = pixel_coordinates(6, 4)  # 6 rows, 4 columns: not square, so swapped axes are caught
    ys, xs = _tensor_grid(x)
    torch.testing.assert_close(ys, torch.unique(x[:, 0]))
    torch.testing.assert_close(xs, torch.unique(x[:, 1]))
    assert ys.numel() == 6 and xs.numel() == 4
    column_major = x.reshape(6, 4, 2).transpose(0, 1).reshape(-1, 2)
    shuffled = x[torch.randperm(24, generator=torch.Generator().manual_seed(0))]
    missing = x[:-1]
    assert _tensor_grid(column_major) is None
    assert _tensor_grid(shuffled) is None
    assert _tensor_grid(missing) is None
    assert _tensor_grid(torch.rand(24, 2)) is None
    assert _tensor_grid(torch.cat([x, torch.zeros(24, 1)], 1)) is None  # 3-D points
    assert _tensor_grid(x[:, :1]) is None
    # two points on the diagonal are not the product of their axes either
    assert _tensor_grid(torch.tensor([[0.1, 0.1], [0.9, 0.9]])) is None


def test_lpe_binds_a_pixel_grid_to_separable_products(monkeypatch):
    """On a pixel grid the bound LPE interpolates by two small matrix products per level (the measured
    ~15x over ``grid_sample``), on scattered points by the gather: same values either way."""
    from posenc.encodings.lpe import _ModulatedFourier

    calls = []
    separable = _ModulatedFourier._separable

    def counting(*args, **kwargs):
        calls.append(1)
        return separable(*args, **kwargs)

    monkeypatch.setattr(_ModulatedFourier, "_separable", staticmethod(counting))
    enc = build_encoding({"type": "lpe", "grid": 5, "bands": 3}, 2)
    enc.bind(pixel_coordinates(12, 10))()
    assert len(calls) == 1
    enc.bind(torch.rand(30, 2))()
    assert len(calls) == 1
