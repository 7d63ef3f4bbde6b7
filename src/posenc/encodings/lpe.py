"""Local positional encoding (LPE, Fujieda et al.): Fourier features modulated by learned, spatially
interpolated amplitudes, ``z(x) = a(x) * gamma(x)``; and ``multires_lpe``, its multi-resolution extension."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import PosencError
from ..grid import axis_weights, interpolate, multilinear_weights
from .base import Encoding, check_positive, register
from .fourier import GaussianFourierFeatures, PositionalEncoding

FREQS = ("loglinear", "gaussian")


def _tensor_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """If 2-D points ``(N, 2)`` are the row-major product of their unique y and x values (an image's
    pixels), return those axes; else None."""
    if x.shape[-1] != 2:
        return None
    ys, xs = torch.unique(x[:, 0]), torch.unique(x[:, 1])
    if ys.numel() * xs.numel() != x.shape[0]:
        return None
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return (ys, xs) if torch.equal(grid, x) else None


class _ModulatedFourier(Encoding):
    """Fourier features ``gamma`` (log-linear per axis, or Gaussian) times interpolated coefficients."""

    lr = 1e-2

    def _base(self, bands: int, freqs: str, max_freq: float, sigma: float, seed: int) -> None:
        if freqs not in FREQS:
            raise PosencError(f"freqs must be one of {', '.join(FREQS)}, got {freqs!r}")
        check_positive("bands", bands)
        if freqs == "loglinear":
            self.fourier: Encoding = PositionalEncoding(self.in_dim, frequencies=bands, max_freq=max_freq)
        else:
            self.fourier = GaussianFourierFeatures(self.in_dim, sigma=sigma, features=bands, seed=seed)
        self.channels = self.fourier.out_dim

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        return [(list(b.channels), b.frequency) for b in self.fourier.bands]

    def _grid_coefficients(self, res: int) -> nn.Parameter:
        # all ones: LPE starts as the plain positional encoding
        return nn.Parameter(torch.ones((res + 1) ** self.in_dim, self.channels))

    @staticmethod
    def _separable(coeffs: torch.Tensor, res: int, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        """Bilinear interpolation on a pixel grid as two matrix products: ``(Y * X, C)``.

        ``a[y, x] = sum_ij Wy[y, i] Wx[x, j] A[i, j]``: first along x, then along y.
        """
        c = coeffs.shape[-1]
        grid = coeffs.reshape(res + 1, res + 1, c)
        along_x = torch.matmul(wx, grid)  # (res+1, X, C): broadcast over i
        return torch.matmul(wy, along_x.reshape(res + 1, -1)).reshape(-1, c)


@register("lpe")
class LocalPositionalEncoding(_ModulatedFourier):
    """LPE: ``z(x) = a(x) * gamma(x)``, ``(..., d) -> (..., C)``.

    ``gamma`` has C channels: ``freqs="loglinear"`` uses ``bands`` frequencies from 1 to ``max_freq``
    on every axis (C = 2 * bands * d, the positional encoding); ``"gaussian"`` uses ``bands`` random
    vectors of scale ``sigma`` (C = 2 * bands). A grid of ``grid`` cells per axis ((grid + 1)^d
    vertices) stores one amplitude per channel and vertex, multilinearly interpolated at x. The
    amplitudes start at 1 and train with their own learning rate (1e-2).
    """

    def __init__(self, in_dim: int, grid: int = 32, bands: int = 64, freqs: str = "loglinear", max_freq: float = 64.0,
                 sigma: float = 10.0, seed: int = 0, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        check_positive("grid", grid)
        self.res = int(grid)
        self._base(int(bands), freqs, max_freq, sigma, seed)
        self.coeffs = self._grid_coefficients(self.res)
        self._finish(self.channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        idx, w = multilinear_weights(x, self.res, vertices=True)
        return interpolate(self.coeffs, idx, w) * self.fourier.encode(x)

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Fixed points: gamma(x) once; on a pixel grid the interpolation is two matrix products."""
        flat = x.reshape(-1, self.in_dim)
        with torch.no_grad():
            gamma = self.fourier.encode(flat)
            axes = _tensor_grid(flat)
            if axes is not None:
                wy, wx = axis_weights(axes[0], self.res), axis_weights(axes[1], self.res)
            else:
                idx, w = multilinear_weights(flat, self.res, vertices=True)

        def encode_bound() -> torch.Tensor:
            if axes is not None:
                a = self._separable(self.coeffs, self.res, wy, wx)
            else:
                a = interpolate(self.coeffs, idx, w)
            out = a * gamma
            return torch.cat([flat, out], dim=-1) if self.include_input else out

        return encode_bound


@register("multires_lpe")
class MultiResLPE(_ModulatedFourier):
    """Multi-resolution LPE: amplitudes are the product of coefficient grids at ``levels`` resolutions
    from ``base_grid`` to ``max_grid``: ``a(x) = prod_l a_l(x)``, ``z(x) = a(x) * gamma(x)``.

    Design choice: a product (not a sum or a concatenation) keeps the output size of plain LPE, keeps
    "all coefficients 1 = positional encoding", and lets coarse levels set a region's amplitude while
    fine levels modulate it locally, like a multiplicative wavelet cascade.
    """

    def __init__(self, in_dim: int, levels: int = 3, base_grid: int = 8, max_grid: int = 32, bands: int = 64,
                 freqs: str = "loglinear", max_freq: float = 64.0, sigma: float = 10.0, seed: int = 0,
                 include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        check_positive("levels", levels)
        if max_grid < base_grid:
            raise PosencError(f"max_grid ({max_grid}) must be >= base_grid ({base_grid})")
        growth = math.exp((math.log(max_grid) - math.log(base_grid)) / max(levels - 1, 1))
        self.resolutions = [int(round(base_grid * growth**level)) for level in range(levels)]
        self._base(int(bands), freqs, max_freq, sigma, seed)
        self.coeff_levels = nn.ParameterList(self._grid_coefficients(r) for r in self.resolutions)
        self._finish(self.channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        a = None
        for res, coeffs in zip(self.resolutions, self.coeff_levels):
            idx, w = multilinear_weights(x, res, vertices=True)
            level = interpolate(coeffs, idx, w)
            a = level if a is None else a * level
        return a * self.fourier.encode(x)

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        flat = x.reshape(-1, self.in_dim)
        with torch.no_grad():
            gamma = self.fourier.encode(flat)
            axes = _tensor_grid(flat)
            if axes is not None:
                plans = [(axis_weights(axes[0], r), axis_weights(axes[1], r)) for r in self.resolutions]
            else:
                plans = [multilinear_weights(flat, r, vertices=True) for r in self.resolutions]

        def encode_bound() -> torch.Tensor:
            a = None
            for res, coeffs, plan in zip(self.resolutions, self.coeff_levels, plans):
                level = self._separable(coeffs, res, *plan) if axes is not None else interpolate(coeffs, *plan)
                a = level if a is None else a * level
            out = a * gamma
            return torch.cat([flat, out], dim=-1) if self.include_input else out

        return encode_bound
