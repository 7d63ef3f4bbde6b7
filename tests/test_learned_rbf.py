"""Learnable radial-basis embedding: formula, the graph objective, the polynomial sigma model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posenc.encodings import build_encoding
from posenc.encodings.learned_rbf import fit_sigma_exact, graph_terms, knn_edges, rbf_embed
from posenc.errors import PosencError
from posenc.tasks.signal1d import builtin_signal


def test_phi_matches_formula():
    x = torch.rand(10, 2)
    sigma = torch.rand(10) * 0.05 + 0.01
    centres = torch.linspace(0.05, 0.95, 7)
    phi = rbf_embed(x, sigma, centres).reshape(10, 2, 7)
    for n in range(10):
        for a in range(2):
            for i in range(7):
                expected = math.exp(-((float(x[n, a]) - float(centres[i])) ** 2) / (2 * float(sigma[n]) ** 2))
                assert float(phi[n, a, i]) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_encoding_output_uses_sigma_of_x():
    enc = build_encoding({"type": "learned_rbf", "centres": 16}, 2)
    x = torch.rand(5, 2)
    torch.testing.assert_close(enc(x), rbf_embed(x, enc.sigma(x), enc.centres))
    assert enc.out_dim == 32 and enc.fixed


def test_sigma_fit_lowers_laplacian_energy_on_smooth_and_sharp_signal():
    x = ((torch.arange(40) + 0.5) / 40)[:, None]
    u = torch.from_numpy(np.where(x[:, 0].numpy() < 0.5, 0.2 * x[:, 0].numpy(), np.sign(np.sin(60 * x[:, 0].numpy())))).float()
    centres = (torch.arange(64) + 0.5) / 64
    sigma0 = 1 / 64
    sigma, before, after = fit_sigma_exact(x, u, centres, sigma0, lam=1.0, reg=1.0)
    assert after < before
    phi0 = rbf_embed(x, torch.full((40,), sigma0), centres)
    d = torch.cdist(phi0, phi0)
    eps = float(d[d > 0].median())
    e0, _ = graph_terms(phi0, u, eps, 1.0)
    e1, _ = graph_terms(rbf_embed(x, sigma, centres), u, eps, 1.0)
    assert float(e1) < float(e0)


def test_graph_energy_is_laplacian_quadratic_form():
    phi, u = torch.rand(12, 5), torch.rand(12)
    energy, norm = graph_terms(phi, u, eps=0.5, lam=0.5)
    d2 = torch.cdist(phi, phi).square()
    k = torch.exp(-d2 / 0.5)
    k.fill_diagonal_(0)
    rho = k.sum(1)
    A = k / (rho[:, None] * rho[None, :]) ** 0.5
    L = torch.diag(A.sum(1)) - A
    assert float(energy) == pytest.approx(float(u @ L @ u), rel=1e-4)
    assert float(norm) == pytest.approx(float(A.norm()), rel=1e-5)


def test_polynomial_reproduces_exact_sigma_and_is_deterministic():
    x = ((torch.arange(128) + 0.5) / 128)[:, None]
    y = torch.from_numpy(builtin_signal(x[:, 0].numpy())).float()[:, None]
    runs = []
    for _ in range(2):
        enc = build_encoding({"type": "learned_rbf", "centres": 64, "subproblems": 16}, 1)
        report = enc.fit_to_data(x, y)
        runs.append(enc.beta.clone())
        g, s = enc.fit_pairs
        fitted = np.polynomial.polynomial.polyval(g, enc.beta.double().numpy())
        r2 = 1 - np.sum((fitted - s) ** 2) / np.sum((s - s.mean()) ** 2)
        # the exact sigma is close to two-valued here (smooth half / detailed half, with the sample
        # spacing as floor), so a straight line explains most but not all of it
        assert r2 > 0.6
        assert np.median(np.abs(fitted - s) / s) < 0.2
        assert report["objective_gain_mean"] > 0
    torch.testing.assert_close(runs[0], runs[1])
    # the detailed half gets a smaller bandwidth than the smooth half
    sig = enc.sigma(x)
    assert float(sig[x[:, 0] > 0.6].mean()) < float(sig[x[:, 0] < 0.4].mean())


def test_fixed_sigma_is_constant_and_skips_the_fit():
    x = ((torch.arange(64) + 0.5) / 64)[:, None]
    enc = build_encoding({"type": "learned_rbf", "centres": 32, "sigma": 0.02}, 1)
    report = enc.fit_to_data(x, torch.sin(20 * x))
    assert report == {"sigma_fixed": 0.02}
    torch.testing.assert_close(enc.sigma(x), torch.full((64,), 0.02))


def test_knn_graph_with_every_neighbour_equals_the_dense_graph():
    x, u = torch.rand(30, 2), torch.rand(30)
    edges = knn_edges(x, 29)
    assert edges.shape == (30 * 29 // 2, 2) and bool((edges[:, 0] < edges[:, 1]).all())
    phi = rbf_embed(x, torch.full((30,), 0.05), torch.linspace(0, 1, 9))
    for a, b in zip(graph_terms(phi, u, 0.7, 0.5, edges), graph_terms(phi, u, 0.7, 0.5)):
        assert float(a) == pytest.approx(float(b), rel=1e-5)
    # a sparse graph: every point keeps its k nearest neighbours, each pair once
    sparse = knn_edges(x, 3)
    assert len({tuple(e) for e in sparse.tolist()}) == sparse.shape[0] <= 30 * 3
    nearest = torch.cdist(x, x).fill_diagonal_(9).argmin(1)
    pairs = {tuple(e) for e in sparse.tolist()}
    assert all((min(i, int(j)), max(i, int(j))) in pairs for i, j in enumerate(nearest))


def test_exact_mode_fits_every_training_point():
    x = ((torch.arange(128) + 0.5) / 128)[:, None]
    y = torch.from_numpy(builtin_signal(x[:, 0].numpy())).float()[:, None]
    enc = build_encoding({"type": "learned_rbf", "centres": 64, "mode": "exact"}, 1)
    report = enc.fit_to_data(x, y)
    assert report["objective_after"] < report["objective_before"]
    # the whole-set solution is what sigma(x) returns at the training points, and it stays continuous between
    torch.testing.assert_close(enc.sigma(x), enc.exact_sigma, rtol=0.05, atol=0.0)
    between = enc.sigma(x[:-1] + 0.5 / 128)
    assert bool((between >= enc.sigma_range[0] - 1e-7).all() and (between <= enc.sigma_range[1] + 1e-7).all())
    # the detailed half (x > 0.5) is embedded more sharply than the smooth half
    sig = enc.exact_sigma
    assert float(sig[x[:, 0] > 0.6].mean()) < float(sig[x[:, 0] < 0.4].mean())
    # the state is in buffers: a fresh encoding loading them gives the same sigma(x)
    fresh = build_encoding({"type": "learned_rbf", "centres": 64, "mode": "exact"}, 1)
    fresh.load_state_dict(enc.state_dict())
    torch.testing.assert_close(fresh.sigma(x), enc.sigma(x))


def test_exact_mode_refuses_large_point_sets():
    enc = build_encoding({"type": "learned_rbf", "centres": 8, "mode": "exact"}, 2)
    with pytest.raises(PosencError, match="at most 4096"):
        enc.fit_to_data(torch.rand(4097, 2), torch.rand(4097, 1))
    with pytest.raises(PosencError, match="mode"):
        build_encoding({"type": "learned_rbf", "mode": "dense"}, 2)


def _scattered_problem():
    """30 points in 2-D (two of them equal: one edge of length 0), a wavy signal, 16 centres per axis."""
    x = torch.rand(30, 2, generator=torch.Generator().manual_seed(0))
    x[5] = x[4]
    u = torch.sin(12 * x[:, 0]) * torch.cos(9 * x[:, 1])
    return x, u, (torch.arange(16) + 0.5) / 16, 1 / 16


def test_exact_fit_reports_the_objective_on_its_own_graph_and_eps():
    """``before`` / ``after`` are the documented objective: on the given (sparse) edges, with eps the
    median non-zero edge length at sigma0 (the zero-length edge of the duplicate point left out)."""
    x, u, centres, sigma0 = _scattered_problem()
    edges = knn_edges(x, 4)
    phi0 = rbf_embed(x, torch.full((30,), sigma0), centres)
    d = torch.linalg.vector_norm(phi0[edges[:, 0]] - phi0[edges[:, 1]], dim=1)
    assert bool((d == 0).any()) and bool((d > 1).any()) and bool(((d > 0) & (d < 1)).any())
    eps = float(d[d > 0].median())
    sigma, before, after = fit_sigma_exact(x, u, centres, sigma0, 0.7, 0.3, edges=edges)
    assert before == pytest.approx(float(graph_terms(phi0, u, eps, 0.7, edges)[0] - 0.3 * graph_terms(phi0, u, eps, 0.7, edges)[1]), rel=1e-5)
    energy, norm = graph_terms(rbf_embed(x, sigma, centres), u, eps, 0.7, edges)
    assert after == pytest.approx(float(energy - 0.3 * norm), rel=1e-5)
    assert after < before
    # the dense graph is another objective: the sparse one really was used
    dense_energy, dense_norm = graph_terms(phi0, u, eps, 0.7)
    assert abs(float(dense_energy - 0.3 * dense_norm) - before) > 1e-3


def test_exact_fit_of_identical_points_uses_eps_one():
    """Every edge of length 0: no median exists, eps falls back to 1 and the objective stays finite."""
    x = torch.full((6, 2), 0.4)
    u = torch.arange(6.0)
    sigma, before, after = fit_sigma_exact(x, u, (torch.arange(8) + 0.5) / 8, 1 / 8, 1.0, 1.0, steps=3)
    assert math.isfinite(before) and math.isfinite(after)
    phi = rbf_embed(x, sigma, (torch.arange(8) + 0.5) / 8)
    energy, norm = graph_terms(phi, u, 1.0, 1.0)
    assert after == pytest.approx(float(energy - norm), rel=1e-6)


def test_exact_fit_takes_adam_steps_of_rate_lr_in_log_sigma():
    """The first Adam step moves every parameter by exactly its rate: log sigma moves by lr (default 0.05)."""
    x, u, centres, sigma0 = _scattered_problem()
    for lr in (None, 0.02):
        kwargs = {} if lr is None else {"lr": lr}
        sigma, _, _ = fit_sigma_exact(x, u, centres, sigma0, 1.0, 1.0, steps=1, **kwargs)
        moved = (sigma.log() - math.log(sigma0)).abs()
        torch.testing.assert_close(moved, torch.full_like(moved, lr or 0.05), rtol=1e-4, atol=1e-6)


def test_exact_fit_keeps_sigma_within_its_bounds_and_reaches_them():
    """Default bounds ``[sigma0 / 20, 4 sigma0]``: a large ``reg`` on a flat signal widens every bump
    to the ceiling (||A|| grows as bumps overlap), no ``reg`` on a square wave narrows them to the floor."""
    x, _, centres, sigma0 = _scattered_problem()
    wide, _, _ = fit_sigma_exact(x, torch.zeros(30), centres, sigma0, 1.0, 50.0)
    assert float(wide.max()) == pytest.approx(4 * sigma0, rel=1e-5)
    assert float(wide.median()) == pytest.approx(4 * sigma0, rel=1e-5)
    square = torch.sign(torch.sin(40 * x[:, 0]))
    sharp, _, _ = fit_sigma_exact(x, square, centres, sigma0, 1.0, 0.0)
    assert float(sharp.min()) == pytest.approx(sigma0 / 20, rel=1e-5)
    assert float(sharp.max()) <= 4 * sigma0 * (1 + 1e-6)
    # explicit bounds replace the default ones
    held, _, _ = fit_sigma_exact(x, square, centres, sigma0, 1.0, 0.0, bounds=(sigma0 / 2, 2 * sigma0))
    assert float(held.min()) == pytest.approx(sigma0 / 2, rel=1e-5) and float(held.max()) <= 2 * sigma0 * (1 + 1e-6)


@pytest.mark.parametrize("d,r", [(1, 512), (2, 32), (2, 64)])
def test_gradient_grid_is_the_smoothed_gradient_norm_of_the_signal(d, r):
    """g(x) = the mean of ||grad f_bar|| over a window of ~1/16 of the domain (odd, at least 3 cells),
    f_bar the 3-cell box mean of the samples; finite differences at the grid spacing 1/r. Reference:
    scipy's uniform filter (replicated borders) and numpy's gradient, one sample per cell centre."""
    from scipy.ndimage import uniform_filter

    enc = build_encoding({"type": "learned_rbf", "centres": 8, "grad_grid": r}, d)
    mesh = np.stack(np.meshgrid(*[(np.arange(r) + 0.5) / r] * d, indexing="ij"), -1).reshape(-1, d)
    f = np.sin(2 * np.pi * 3 * mesh[:, 0]) + (mesh**2).sum(-1) + 5 * mesh[:, -1] * (d > 1)
    got = enc._gradient_grid(torch.from_numpy(mesh).float(), torch.from_numpy(f).float())
    smooth = uniform_filter(f.reshape([r] * d), 3, mode="nearest")
    grads = np.gradient(smooth, 1 / r) if d > 1 else [np.gradient(smooth, 1 / r)]
    norm = np.sqrt(sum(g**2 for g in grads))
    window = {512: 33, 32: 3, 64: 5}[r]
    expected = torch.from_numpy(uniform_filter(norm, window, mode="nearest").reshape(-1)).float()
    assert got.shape == (r**d,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-3)


def test_settings_at_their_bounds():
    """Shifts ``t_i = (i + 0.5) / centres``; degree 0-5, at least 4 points per sub-problem, sigma >= 0
    (0 = learned): the bounds themselves build, one step past them is a one-line error."""
    enc = build_encoding({"type": "learned_rbf", "centres": 10}, 2)
    torch.testing.assert_close(enc.centres, (torch.arange(10) + 0.5) / 10)
    assert enc.centres.dtype == torch.float32 and enc.out_dim == 20
    for ok in ({"degree": 0}, {"degree": 5}, {"subproblem_points": 4}, {"sigma": 0.0}, {"sigma": 0.01}):
        build_encoding({"type": "learned_rbf", "centres": 8, **ok}, 1)
    for bad, message in (({"degree": -1}, "degree must be between 0 and 5"), ({"degree": 6}, "degree must be between 0 and 5"),
                         ({"subproblem_points": 3}, "subproblem_points must be at least 4"),
                         ({"sigma": -0.01}, "sigma must be >= 0"), ({"subproblems": 0}, "subproblems"),
                         ({"knn": 0}, "knn"), ({"centres": 0}, "centres")):
        with pytest.raises(PosencError, match=message):
            build_encoding({"type": "learned_rbf", "centres": 8, **bad}, 1)
    # the settings are kept as given, and a fixed sigma is the constant sigma(x)
    enc = build_encoding({"type": "learned_rbf", "centres": 8, "degree": 2, "lam": 0.25, "reg": 3.0, "seed": 7}, 1)
    assert (enc.n_centres, enc.degree, enc.lam, enc.reg, enc.seed) == (8, 2, 0.25, 3.0, 7)
    assert enc.beta.shape == (3,) and float(enc.beta[0]) == pytest.approx(1 / 8) and float(enc.beta[1:].abs().sum()) == 0


def test_exact_mode_in_2d_keeps_one_log_sigma_per_grid_cell():
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(0))
    y = (torch.sin(9 * x[:, :1]) * (x[:, 1:] > 0.5)).float()
    enc = build_encoding({"type": "learned_rbf", "centres": 16, "mode": "exact", "grad_grid": 24}, 2)
    assert enc.log_sigma_grid.shape == (24 * 24,) and enc.grad_norm.shape == (24 * 24,)
    enc.fit_to_data(x, y)
    sigma = enc.sigma(x)
    assert sigma.shape == (200,) and bool(torch.isfinite(sigma).all())
    assert bool((sigma >= enc.sigma_range[0] - 1e-7).all() and (sigma <= enc.sigma_range[1] + 1e-7).all())
