"""Feature-grid encodings: ``dense_grid``, ``multires_grid`` and ``hash_grid`` (Mueller et al. 2022).

Each level is a grid of ``res + 1`` vertices per axis over [0, 1]^d storing ``features`` learned values
per vertex; a point's feature is the multilinear interpolation of its 2^d surrounding vertices, and
the levels' features are concatenated: ``(..., d) -> (..., levels * features)``. Tables start at
``U(-1e-4, 1e-4)`` as in instant-NGP. In ``hash_grid`` a level whose ``(res + 1)^d`` vertices exceed
the table size ``2^log2_table`` is indexed by the spatial hash ``(xor_i c_i * pi_i) mod 2^T`` with
``pi = (1, 2654435761, 805459861, 3674653429)`` (eq. 4 of instant-NGP; the 4th prime is tiny-cuda-nn's);
coarser levels index densely (no collisions).
Level resolutions grow geometrically from ``base_res`` to ``max_res`` (eq. 2-3 of instant-NGP).

Input dimension 1 to 4. Memory: a dense level holds ``(res + 1)^d x features`` floats (a 128-cell
grid: 66 KB in 1-D, 8.5 MB in 2-D, 1.1 GB in 3-D at 4 features), so 3-D and 4-D grids are hashed or
coarse; a hashed level holds at most ``2^log2_table x features`` floats whatever the dimension.
Gradients: twice differentiable in the tables and in the coordinates (multilinear weights), so SDF
normals and eikonal losses work; the derivative jumps across cell faces, as the interpolant's does.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import PosencError
from ..grid import corner_coordinates, flat_index, interpolate
from .base import Encoding, check_allocation, check_positive, register

# instant-NGP / tiny-cuda-nn primes; the 4th is tiny-cuda-nn's, for (x, y, z, t) fields
PRIMES = (1, 2654435761, 805459861, 3674653429)


def spatial_hash(coords: torch.Tensor, table_size: int) -> torch.Tensor:
    """instant-NGP's hash of integer vertex coordinates ``(..., d)`` into ``[0, table_size)``.

    Products are exact in int64; masking with ``table_size - 1`` (a power of two) keeps the same low
    bits as the reference's wrapping uint32 arithmetic.
    """
    h = coords[..., 0] * PRIMES[0]
    for a in range(1, coords.shape[-1]):
        h = torch.bitwise_xor(h, coords[..., a] * PRIMES[a])
    return h & (table_size - 1)


def level_resolutions(levels: int, base_res: int, max_res: int) -> list[int]:
    """``N_l = floor(N_min b^l)`` with ``b = exp((ln N_max - ln N_min) / (L - 1))``."""
    if levels == 1:
        return [base_res]
    b = math.exp((math.log(max_res) - math.log(base_res)) / (levels - 1))
    return [int(math.floor(base_res * b**level + 1e-9)) for level in range(levels)]


class _GridEncoding(Encoding):
    """Shared machinery: per-level tables, index computation, interpolation, bound fast path."""

    beyond = "clamps"  # the border cell beyond [0, 1]

    lr = 1e-2
    max_dim = 4
    # instant-NGP: a small 2 x 64 ReLU MLP after the grid
    preset = {"network": {"width": 64, "depth": 2}}

    def _setup(self, resolutions: list[int], features: int, table_size: int | None, features_name: str = "features") -> None:
        check_positive(features_name, features)
        for res in resolutions:
            check_positive("resolution", res)
        total = sum(min((res + 1) ** self.in_dim, table_size or (res + 1) ** self.in_dim) for res in resolutions) * features
        check_allocation(self.type_name, total, "the resolution, the table size or the number of levels")
        self.resolutions = resolutions
        self.features = features
        self.hashed: list[bool] = []
        self.tables = nn.ParameterList()
        gen = torch.Generator().manual_seed(0)
        for res in resolutions:
            check_positive("resolution", res)
            vertices = (res + 1) ** self.in_dim
            hashed = table_size is not None and vertices > table_size
            size = table_size if hashed else vertices
            self.hashed.append(hashed)
            self.tables.append(nn.Parameter((torch.rand(size, features, generator=gen) * 2 - 1) * 1e-4))
        self._finish(len(resolutions) * features)

    def level_indices(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows ``(N, 2^d)`` and weights ``(N, 2^d)`` of points ``(N, d)`` at one level."""
        res = self.resolutions[level]
        coords, w = corner_coordinates(x, res, vertices=True)
        if self.hashed[level]:
            return spatial_hash(coords, self.tables[level].shape[0]), w
        return flat_index(coords, res + 1), w

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for level, table in enumerate(self.tables):
            idx, w = self.level_indices(x, level)
            feats.append(interpolate(table, idx, w))
        return torch.cat(feats, dim=-1)

    def _bind(self, flat: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Fixed training points: indices and weights of every level are computed once."""
        with torch.no_grad():
            plan = [self.level_indices(flat, level) for level in range(len(self.tables))]

        def encode_bound() -> torch.Tensor:
            out = torch.cat([interpolate(t, idx, w) for t, (idx, w) in zip(self.tables, plan)], dim=-1)
            return torch.cat([flat, out], dim=-1) if self.include_input else out

        return encode_bound

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        # a level resolves up to res / 2 cycles per unit: that is its band's frequency
        f = self.features
        return [(list(range(level * f, (level + 1) * f)), res / 2.0) for level, res in enumerate(self.resolutions)]


@register("dense_grid")
class DenseGridEncoding(_GridEncoding):
    """One dense feature grid of ``res`` cells per axis: ``(..., d) -> (..., features)``."""

    size_knob = "res"

    def __init__(self, in_dim: int, res: int = 128, features: int = 4, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        self._setup([int(res)], int(features), None)


@register("multires_grid")
class MultiResGridEncoding(_GridEncoding):
    """Dense feature grids at ``levels`` resolutions from ``base_res`` to ``max_res``, concatenated:
    ``(..., d) -> (..., levels * features)`` (instant-NGP without hashing)."""

    size_knob = "max_res"

    def __init__(self, in_dim: int, levels: int = 8, features_per_level: int = 2, base_res: int = 16, max_res: int = 256,
                 include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        _check_levels(levels, base_res, max_res)
        self._setup(level_resolutions(levels, base_res, max_res), int(features_per_level), None, "features_per_level")


@register("hash_grid")
class HashGridEncoding(_GridEncoding):
    """Multi-resolution hash encoding (Mueller et al. 2022): ``levels`` levels of ``features_per_level``
    features in tables of ``2^log2_table`` rows: ``(..., d) -> (..., levels * features_per_level)``."""

    size_knob = "log2_table"
    size_range = (4, 26)

    def __init__(self, in_dim: int, levels: int = 16, features_per_level: int = 2, log2_table: int = 14, base_res: int = 16,
                 max_res: int = 512, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        _check_levels(levels, base_res, max_res)
        if not 4 <= log2_table <= 26:
            raise PosencError(f"log2_table must be between 4 and 26, got {log2_table}")
        if levels > 64:
            raise PosencError(f"levels must be between 1 and 64, got {levels}")
        self._setup(level_resolutions(levels, base_res, max_res), int(features_per_level), 2 ** int(log2_table), "features_per_level")


def _check_levels(levels: int, base_res: int, max_res: int) -> None:
    check_positive("levels", levels)
    check_positive("base_res", base_res)
    if max_res < base_res:
        raise PosencError(f"max_res ({max_res}) must be >= base_res ({base_res})")
