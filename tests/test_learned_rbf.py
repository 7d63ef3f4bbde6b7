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
