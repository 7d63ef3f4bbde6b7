"""Multilinear interpolation on regular grids over [0, 1]^d (cell-centred), shared by mask and feature grids.

A grid of resolution r has its values at the cell centres ``(i + 0.5) / r``; points outside the
centres' range are clamped to the border cells, so every point has 2^d neighbours whose weights sum
to 1 (the interpolation of SAPE eq. 6).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def multilinear_weights(x: torch.Tensor, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour cells and weights of ``x`` ``(N, d)`` on an ``res^d`` grid.

    Returns flat cell indices ``(N, 2^d)`` (row-major: axis 0 slowest) and weights ``(N, 2^d)``
    that are non-negative and sum to 1.
    """
    n, d = x.shape
    pos = (x * res - 0.5).clamp(0.0, res - 1.0)  # continuous cell coordinate
    lo = pos.floor().clamp(max=max(res - 2, 0)).long()
    frac = pos - lo
    if res == 1:
        lo, frac = torch.zeros_like(lo), torch.zeros_like(frac)
    strides = [res ** (d - 1 - a) for a in range(d)]
    idx, wts = [], []
    for corner in itertools.product((0, 1), repeat=d):
        flat = torch.zeros(n, dtype=torch.long, device=x.device)
        w = torch.ones(n, dtype=x.dtype, device=x.device)
        for a, c in enumerate(corner):
            flat = flat + (lo[:, a] + c).clamp(max=res - 1) * strides[a]
            w = w * (frac[:, a] if c else 1.0 - frac[:, a])
        idx.append(flat)
        wts.append(w)
    return torch.stack(idx, 1), torch.stack(wts, 1)


def box_smooth(values: torch.Tensor, res: int, d: int, k: int = 3) -> torch.Tensor:
    """Mean over the k^d neighbourhood of each cell (replicate borders): ``(res^d,) -> (res^d,)``."""
    if k <= 1 or res == 1:
        return values
    conv = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[d - 1]
    grid = values.reshape(1, 1, *([res] * d))
    pad = k // 2
    grid = F.pad(grid, [pad] * (2 * d), mode="replicate")
    return conv(grid, k, stride=1).reshape(-1)


def fill_unvisited(values: torch.Tensor, visited: torch.Tensor, res: int, d: int) -> torch.Tensor:
    """Give cells that no sample touched the mean of their visited neighbours, growing outwards
    until every cell has a value (SAPE: unvisited cells take their neighbours' value)."""
    if visited.all() or not visited.any():
        return values if visited.any() else torch.zeros_like(values)
    values = torch.where(visited, values, torch.zeros_like(values))
    have = visited.to(values.dtype)
    for _ in range(res):
        if bool(have.gt(0).all()):
            break
        num = box_smooth(values * have, res, d) 
        den = box_smooth(have, res, d)
        grow = (have == 0) & (den > 0)
        values = torch.where(grow, num / den.clamp_min(1e-12), values)
        have = torch.where(grow, torch.ones_like(have), have)
    return values
