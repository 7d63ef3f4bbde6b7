"""The learnable radial-basis positional embedding (Ramasinghe & Lucey, arXiv 2112.11577).

``phi_i(x) = exp(-(x . alpha - t_i)^2 / (2 sigma_x^2))`` with fixed projections and shifts and a
*coordinate-dependent* bandwidth ``sigma_x``. Design choices (documented, as the paper leaves room):

* Per input axis: for d-D inputs each axis a gets its own embedder (``alpha = e_a``) with ``centres``
  shifts ``t_i = (i + 0.5) / centres``; the channels are concatenated: ``(..., d) -> (..., d * centres)``.
  ``sigma_x`` is one scalar per point, shared by every axis.
* The bandwidth is learned from the training signal before the MLP trains and then kept fixed: the
  graph objective needs the signal values, which the MLP never sees at unseen points, and a fixed
  embedding of a fixed training set is computed once (fast). Refining sigma jointly with the MLP would
  let the embedding memorise the training samples, which is the overfitting this method is meant to
  avoid.
* Exact objective (small point sets): the embedded points are a graph with weights
  ``w_ij = (rho_i rho_j)^(-lam) exp(-d_ij^2 / (2 eps^2))`` (``d_ij = ||Phi(x_i) - Phi(x_j)||``, ``rho_i`` the
  degree of i under the plain kernel, ``eps`` the median edge length at the initial sigma); sigma (one per point, in log
  space) minimises ``u^T L u - reg ||A||_F`` by Adam, with L = D - A and u the (mean) signal values.
  A dense graph is used (sub-problems have at most a few hundred points).
* sigma never falls below the training samples' spacing (the exact problems search [spacing, 4 max(spacing,
  1 / centres)]): the objective only sees the samples and
  would otherwise choose bumps narrower than the gaps between them, which cannot generalise.
* Exact variant (``mode=exact``, at most 4,096 training points): one sigma per training point from the
  objective above on the *whole* set. The graph is sparse: the symmetrised k-nearest-neighbour graph
  (``knn``, default 16) of the points in input space (fixed while sigma moves, so the objective stays
  smooth; neighbours in x are neighbours in the embedding). Between training points sigma is
  interpolated in log space from a grid the per-point solutions are spread onto (saved with the model).
* Scalable variant (``mode=poly``, the default): ``sigma_x = beta_0 + beta_1 g(x) + ...`` (``degree``, default 1: higher degrees
  extrapolate badly past the fitted range) with ``g(x) = ||grad f_bar(x)||`` the gradient norm of the
  box-smoothed signal on a regular grid, averaged over a window of 1/16 of the domain (the local level
  of detail rather than the phase of each oscillation), interpolated to any coordinate. beta is fitted by least squares to (g, sigma) pairs solved exactly on
  ``subproblems`` small neighbourhoods of ``subproblem_points`` training points each (the paper uses
  N = 20), one pair per neighbourhood: its mean g and the geometric mean of its exact per-point sigma. beta and the gradient-norm grid are buffers, saved with the model and used at render time.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..errors import PosencError
from ..grid import box_smooth, fill_unvisited, multilinear_weights
from .base import Encoding, check_allocation, check_positive, register


def rbf_embed(x: torch.Tensor, sigma: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``phi`` per axis: x ``(N, d)``, sigma ``(N,)``, centres ``(C,)`` -> ``(N, d * C)``."""
    diff = x[:, :, None] - centres  # (N, d, C)
    return torch.exp(-diff.square() / (2.0 * sigma[:, None, None] ** 2)).reshape(x.shape[0], -1)


def dense_edges(n: int) -> torch.Tensor:
    """Every unordered pair of ``n`` points: ``(E, 2)`` with ``E = n (n - 1) / 2``."""
    return torch.triu_indices(n, n, 1).T


def knn_edges(x: torch.Tensor, k: int) -> torch.Tensor:
    """The symmetrised k-nearest-neighbour graph of points ``x`` ``(N, d)`` in input space: unique
    unordered pairs ``(E, 2)``, ``E <= N k``. Input-space neighbours are embedding-space neighbours
    here (each axis' embedding is a smooth, locally injective function of the coordinate), and a fixed
    edge set keeps the objective smooth in sigma."""
    n = x.shape[0]
    k = min(k, n - 1)
    nbrs = torch.cat([torch.cdist(chunk, x).topk(k + 1, largest=False).indices[:, 1:] for chunk in x.split(1024)])
    i = torch.arange(n).repeat_interleave(k)
    j = nbrs.reshape(-1)
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    key = torch.unique(lo * n + hi)
    return torch.stack([key // n, key % n], 1)


def graph_terms(phi: torch.Tensor, u: torch.Tensor, eps: float, lam: float,
                edges: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Laplacian energy ``u^T L u`` and ``||A||_F`` of the graph on embedded points ``phi`` ``(L, D)``.

    ``A_ij = (rho_i rho_j)^(-lam) exp(-||phi_i - phi_j||^2 / (2 eps^2))`` on the graph's ``edges``
    ``(E, 2)`` (default: every pair, a dense graph; no self loops), ``rho_i`` the kernel degree of i,
    ``L = D - A``; ``u^T L u = sum_(i,j) in E A_ij (u_i - u_j)^2`` and ``||A||_F^2 = 2 sum_E A_ij^2``.
    """
    if edges is None:
        edges = dense_edges(phi.shape[0])
    i, j = edges[:, 0], edges[:, 1]
    kernel = torch.exp(-(phi[i] - phi[j]).square().sum(-1) / (2 * eps**2))
    rho = torch.zeros(phi.shape[0], dtype=phi.dtype).index_add(0, i, kernel).index_add(0, j, kernel)
    rho = rho.clamp_min(1e-12)
    adj = kernel / (rho[i] * rho[j]) ** lam
    return (adj * (u[i] - u[j]).square()).sum(), (2 * adj.square().sum()).sqrt()


def graph_objective(phi: torch.Tensor, u: torch.Tensor, eps: float, lam: float, reg: float,
                    edges: torch.Tensor | None = None) -> torch.Tensor:
    """``u^T L u - reg ||A||_F`` for the graph on embedded points ``phi`` ``(L, D)`` with values ``u`` ``(L,)``."""
    energy, norm = graph_terms(phi, u, eps, lam, edges)
    return energy - reg * norm


def fit_sigma_exact(x: torch.Tensor, u: torch.Tensor, centres: torch.Tensor, sigma0: float, lam: float,
                    reg: float, steps: int = 200, lr: float = 0.05,
                    bounds: tuple[float, float] | None = None,
                    edges: torch.Tensor | None = None) -> tuple[torch.Tensor, float, float]:
    """Per-point sigma minimising the graph objective on a point set ``x`` ``(L, d)``, values ``u``,
    starting from ``sigma0`` and kept within ``bounds`` (default ``[sigma0 / 20, 4 sigma0]``), on the
    graph ``edges`` (default dense: every pair; see :func:`knn_edges` for large sets). ``lam`` and ``reg``
    have no defaults here: the embedding's settings (:class:`LearnedRBFEmbedding`) are the one place.
    ``eps`` is the median non-zero edge length at ``sigma0`` (1 when every edge has length 0); sigma
    moves by Adam (``steps`` steps of rate ``lr``) in log space.

    Returns sigma ``(L,)`` and the objective before and after.
    """
    lo, hi = bounds or (sigma0 / 20, 4 * sigma0)
    if edges is None:
        edges = dense_edges(x.shape[0])
    with torch.no_grad():
        phi0 = rbf_embed(x, torch.full((x.shape[0],), sigma0), centres)
        d = (phi0[edges[:, 0]] - phi0[edges[:, 1]]).norm(dim=-1)
        eps = float(d[d > 0].median()) if bool((d > 0).any()) else 1.0
    log_sigma = torch.full((x.shape[0],), math.log(sigma0), requires_grad=True)
    opt = torch.optim.Adam([log_sigma], lr=lr)
    start = float(graph_objective(phi0, u, eps, lam, reg, edges))
    for _ in range(steps):
        opt.zero_grad()
        obj = graph_objective(rbf_embed(x, log_sigma.exp(), centres), u, eps, lam, reg, edges)
        obj.backward()
        opt.step()
        with torch.no_grad():
            log_sigma.clamp_(math.log(lo), math.log(hi))
    sigma = log_sigma.detach().exp()
    end = float(graph_objective(rbf_embed(x, sigma, centres), u, eps, lam, reg, edges))
    return sigma, start, end


MAX_EXACT_POINTS = 4096


@register("learned_rbf")
class LearnedRBFEmbedding(Encoding):
    """Radial-basis embedding with a learned, coordinate-dependent bandwidth: ``(..., d) -> (..., d * centres)``.

    Call :meth:`fit_to_data` with the training samples first (the trainer does); until then sigma is
    the constant ``1 / centres`` (the spacing of the shifts). ``sigma > 0`` fixes the bandwidth
    everywhere instead (no fit): the fixed-bandwidth baseline. Input dimension 1 to 4 (sigma lives on
    a ``grad_grid^d`` grid: 512 cells in 1-D, 128^2, 32^3, 12^4 by default).
    """

    max_dim = 4
    dim_defaults = {"grad_grid": {1: 512, 2: 128, 3: 32, 4: 12}}

    def __init__(self, in_dim: int, centres: int = 128, mode: str = "poly", degree: int = 1, subproblems: int = 32,
                 subproblem_points: int = 20, knn: int = 16, lam: float = 1.0, reg: float = 1.0, grad_grid: int | None = None,
                 sigma: float = 0.0, seed: int = 0, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        check_positive("centres", centres)
        check_allocation("learned_rbf", centres * in_dim * 64, "centres")
        check_positive("knn", knn)
        if mode not in ("poly", "exact"):
            raise PosencError(f"mode must be 'poly' (scalable) or 'exact' (whole set, <= {MAX_EXACT_POINTS} points), got {mode!r}")
        self.mode, self.knn = mode, int(knn)
        if sigma < 0:
            raise PosencError(f"sigma must be >= 0 (0 = learn it from the data), got {sigma}")
        self.fixed_sigma = float(sigma)
        check_positive("subproblems", subproblems)
        if degree < 0 or degree > 5:
            raise PosencError(f"degree must be between 0 and 5, got {degree}")
        if subproblem_points < 4:
            raise PosencError(f"subproblem_points must be at least 4, got {subproblem_points}")
        self.n_centres, self.degree = int(centres), int(degree)
        self.subproblems, self.subproblem_points = int(subproblems), int(subproblem_points)
        check_positive("lam", lam, allow_zero=True)
        check_positive("reg", reg, allow_zero=True)
        self.lam, self.reg, self.seed = float(lam), float(reg), int(seed)
        self.sigma0 = 1.0 / self.n_centres
        self.grad_res = int(grad_grid or self.defaults(in_dim)["grad_grid"])
        self.register_buffer("centres", (torch.arange(self.n_centres, dtype=torch.float32) + 0.5) / self.n_centres)
        # beta: sigma = poly(g); default constant sigma0 until fitted
        beta = torch.zeros(self.degree + 1)
        beta[0] = self.fixed_sigma or self.sigma0
        self.register_buffer("beta", beta)
        self.register_buffer("grad_norm", torch.zeros(self.grad_res**in_dim))
        # mode=exact: log sigma of the whole-set solution, spread onto the same grid
        self.register_buffer("log_sigma_grid", torch.full((self.grad_res**in_dim,), math.log(beta[0].item())))
        # sigma is kept within [lo, hi]: lo is raised to the training samples' spacing by fit_to_data,
        # since bumps narrower than the gaps between samples cannot generalise between them
        self.register_buffer("sigma_range", torch.tensor([self.sigma0 / 20, 4 * self.sigma0]))
        if self.fixed_sigma:
            self.sigma_range.fill_(self.fixed_sigma)
        self.fit_report: dict[str, float] = {}
        self._finish(in_dim * self.n_centres)

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        # every centre shares the point's bandwidth: one band (progression has nothing to order here)
        return [(list(range(self.in_dim * self.n_centres)), 1.0 / (2 * math.pi * self.sigma0))]

    # -- sigma(x) -------------------------------------------------------------------------------
    def _on_grid(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-cell ``values`` ``(grad_res^d,)`` interpolated multilinearly at points ``(N, d)``: ``(N,)``."""
        idx, w = multilinear_weights(x, self.grad_res)
        return (values[idx] * w).sum(-1)

    def gradient_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``||grad f_bar||`` at points ``(N, d)``, interpolated from the fitted grid: ``(N,)``."""
        return self._on_grid(self.grad_norm, x)

    def sigma(self, x: torch.Tensor) -> torch.Tensor:
        """sigma_x at points ``(N, d)``: ``(N,)``. ``poly``: the polynomial in the gradient norm;
        ``exact``: the whole-set solution, interpolated (in log space) between training points."""
        lo, hi = float(self.sigma_range[0]), float(self.sigma_range[1])
        if self.mode == "exact":
            return self._on_grid(self.log_sigma_grid, x).exp().clamp(lo, hi)
        g = self.gradient_norm(x)
        powers = torch.stack([g**k for k in range(self.degree + 1)], -1)
        return (powers @ self.beta).clamp(lo, hi)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return rbf_embed(x, self.sigma(x), self.centres)

    def detail_map(self, x: torch.Tensor) -> tuple[torch.Tensor, str, str]:
        """The learned bandwidth at points ``(N, d)``, for pictures: (values, label, file name)."""
        return self.sigma(x), "learned sigma_x (small = sharp embedding)", "sigma_map"

    # -- fitting sigma to a signal ---------------------------------------------------------------
    def _splat(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Weighted mean of samples ``u`` ``(N,)`` at ``x`` ``(N, d)`` per grid cell; cells no sample
        touches take their neighbours' values: ``(grad_res^d,)``."""
        r, d = self.grad_res, self.in_dim
        idx, w = multilinear_weights(x, r)
        num = torch.zeros(r**d).index_add_(0, idx.reshape(-1), (w * u[:, None]).reshape(-1))
        den = torch.zeros(r**d).index_add_(0, idx.reshape(-1), w.reshape(-1))
        return fill_unvisited(num / den.clamp_min(1e-12), den > 0, r, d)

    def _gradient_grid(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Splat the samples onto the grid, fill gaps, box-smooth, finite-difference gradient norm."""
        r, d = self.grad_res, self.in_dim
        smooth = box_smooth(self._splat(x, u), r, d, 3).reshape([r] * d).numpy()
        grads = np.gradient(smooth, 1.0 / r) if d > 1 else [np.gradient(smooth, 1.0 / r)]
        norm = torch.from_numpy(np.sqrt(sum(g**2 for g in grads)).reshape(-1)).float()
        # the local level of detail, not the phase of each oscillation: average |grad| over ~1/16 of the domain
        window = max(3, (r // 16) | 1)
        return box_smooth(norm, r, d, window)

    def fit_to_data(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Learn sigma_x from training samples ``x`` ``(N, d)``, ``y`` ``(N, C)`` (scalable variant).
        With a fixed ``sigma`` there is nothing to learn (the baseline of the 1-D study)."""
        if self.fixed_sigma:
            return {"sigma_fixed": self.fixed_sigma}
        x = x.detach().cpu().float()
        u = y.detach().cpu().float().reshape(x.shape[0], -1).mean(-1)
        probe = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(self.seed))[:512]]
        spacing = float(torch.cdist(probe, x).topk(2, largest=False).values[:, 1].median())
        # the exact problems search the range the embedding may use: from the samples' spacing (narrower
        # bumps cannot generalise between samples) to 4x the larger of spacing and centre spacing
        start = max(self.sigma0, spacing)
        self.sigma_range.copy_(torch.tensor([max(self.sigma0 / 20, spacing), 4 * start]))
        bounds = (float(self.sigma_range[0]), float(self.sigma_range[1]))
        # the fit runs on the CPU (small problems, numpy), whatever device the module lives on
        centres = self.centres.cpu()
        if self.mode == "exact":  # per-point solution: the gradient-norm grid is not used
            return self._fit_exact(x, u, centres, start, bounds)
        grid = self._gradient_grid(x, u)
        self.grad_norm.copy_(grid)
        gen = torch.Generator().manual_seed(self.seed)
        k = min(self.subproblem_points, x.shape[0])
        g_all, s_all, gains = [], [], []
        for _ in range(self.subproblems):
            centre = x[torch.randint(x.shape[0], (1,), generator=gen)]
            near = torch.cdist(centre, x)[0].topk(k, largest=False).indices
            sigma, before, after = fit_sigma_exact(x[near], u[near], centres, start, self.lam, self.reg, bounds=bounds)
            # one (g, sigma) pair per small problem: the per-point optimum of a 20-point graph is noisy,
            # its geometric mean over the neighbourhood is a stable sample of sigma(g)
            g_all.append(float(self._on_grid(grid, x[near]).mean()))
            s_all.append(float(sigma.log().mean().exp()))
            gains.append(before - after)
        g, s = np.asarray(g_all), np.asarray(s_all)
        coeffs = np.polynomial.polynomial.polyfit(g, s, self.degree)
        self.beta.copy_(torch.from_numpy(coeffs).float())
        fitted = np.polynomial.polynomial.polyval(g, coeffs)
        self.fit_pairs = (g, s)
        self.fit_report = {
            "pairs": float(len(g)),
            "objective_gain_mean": float(np.mean(gains)),
            "poly_rel_error": float(np.mean(np.abs(fitted - s) / s)),
            "sigma_min": float(s.min()),
            "sigma_max": float(s.max()),
        }
        return self.fit_report

    def _fit_exact(self, x: torch.Tensor, u: torch.Tensor, centres: torch.Tensor, start: float,
                   bounds: tuple[float, float]) -> dict[str, float]:
        """One sigma per training point from the graph objective on the whole set (sparse kNN graph)."""
        if x.shape[0] > MAX_EXACT_POINTS:
            raise PosencError(f"learned_rbf mode=exact handles at most {MAX_EXACT_POINTS} training points, got "
                              f"{x.shape[0]}; use mode=poly (the scalable variant)")
        edges = knn_edges(x, self.knn)
        sigma, before, after = fit_sigma_exact(x, u, centres, start, self.lam, self.reg, bounds=bounds, edges=edges)
        self.log_sigma_grid.copy_(self._splat(x, sigma.log()))
        self.exact_sigma = sigma
        self.fit_report = {
            "points": float(x.shape[0]),
            "edges": float(edges.shape[0]),
            "objective_before": before,
            "objective_after": after,
            "sigma_min": float(sigma.min()),
            "sigma_max": float(sigma.max()),
        }
        return self.fit_report

    def _bind(self, flat: torch.Tensor) -> Callable[[], torch.Tensor]:
        # sigma(x) is fitted once (fit_to_data) and nothing here is learned by gradient: cache it
        with torch.no_grad():
            out = self(flat)
        return lambda: out
