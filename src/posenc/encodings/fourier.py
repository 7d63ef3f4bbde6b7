"""Fourier-type encodings: ``none``, ``basic``, ``positional`` (NeRF) and ``gaussian`` (Tancik et al.)."""

from __future__ import annotations

import math

import torch

from ..errors import PosencError
from .base import Band, Encoding, check_allocation, check_positive, register

TWO_PI = 2.0 * math.pi
SAMPLINGS = ("isotropic", "radial")


def _cos_sin(proj: torch.Tensor) -> torch.Tensor:
    """``(N, k) -> (N, 2k)``: cosines first, then sines, so band i owns channels i and k + i."""
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)


def _paired_bands(freqs: list[float], group: int = 1) -> list[tuple[list[int], float]]:
    """Bands of a ``_cos_sin`` output whose frequencies come in groups of ``group`` columns."""
    k = len(freqs) * group
    return [
        ([c for j in range(group) for c in (i * group + j, k + i * group + j)], f) for i, f in enumerate(freqs)
    ]


@register("none")
class NoEncoding(Encoding):
    """Identity: ``(..., d) -> (..., d)``; the "no encoding" baseline (Tancik et al. Table 1)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__(in_dim, include_input=False)
        self.out_dim = in_dim
        self._bands = [Band(tuple(range(in_dim)), 0.0, identity=True)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register("basic")
class BasicEncoding(Encoding):
    """``gamma(v) = [cos(2 pi v), sin(2 pi v)]`` per axis (Tancik et al. "basic"): ``(..., d) -> (..., 2d)``."""

    def __init__(self, in_dim: int, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        self._finish(2 * in_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return _cos_sin(TWO_PI * x)

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        return _paired_bands([1.0], group=self.in_dim)


@register("positional")
class PositionalEncoding(Encoding):
    """NeRF-style axis-aligned log-linear frequencies (Mildenhall et al. 2020; Tancik et al. eq. "positional").

    ``gamma(v) = [cos(2 pi f_k v_j), sin(2 pi f_k v_j)]`` for ``f_k = max_freq^(k / (frequencies - 1))``,
    k = 0..frequencies-1 (so f runs log-linearly from 1 to ``max_freq`` cycles per unit; with one
    frequency, ``max_freq`` alone) and every axis j.
    ``(..., d) -> (..., 2 * frequencies * d)``. NeRF's ``2^k pi p`` on [-1, 1] is ``max_freq = 2^(L-1)``.
    """

    def __init__(self, in_dim: int, frequencies: int = 64, max_freq: float = 32.0, include_input: bool = False) -> None:
        super().__init__(in_dim, include_input)
        check_positive("frequencies", frequencies)
        check_positive("max_freq", max_freq)
        check_allocation("positional", frequencies * in_dim * 64, "frequencies")  # the network's first layer grows with it
        if frequencies == 1:
            freqs = torch.tensor([float(max_freq)])
        else:
            freqs = torch.logspace(0.0, math.log10(max_freq), frequencies, dtype=torch.float64).float()
        self.register_buffer("freqs", freqs)
        self._finish(2 * frequencies * in_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        proj = TWO_PI * self.freqs[:, None] * x[:, None, :]  # (N, K, d)
        return _cos_sin(proj.reshape(x.shape[0], -1))

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        return _paired_bands(self.freqs.tolist(), group=self.in_dim)


@register("gaussian")
class GaussianFourierFeatures(Encoding):
    """Random Fourier features (Tancik et al. 2020, eq. 2 of SAPE).

    ``gamma(v) = [cos(2 pi B v), sin(2 pi B v)]`` with ``B`` of shape ``(features, d)`` drawn i.i.d. from
    ``N(0, sigma^2)`` (seeded by ``seed``) and sorted by ``|b_i|`` so channel order is low-to-high
    frequency, as SAPE requires. ``(..., d) -> (..., 2 * features)``.

    ``sampling`` picks how the rows ``b_i`` are drawn:

    - ``isotropic`` (default, Tancik et al.): every entry of ``B`` is ``N(0, sigma^2)``, so in d
      dimensions ``|b_i|`` follows a chi distribution with d degrees of freedom scaled by sigma
      (Rayleigh in 2-D: mean ``sigma sqrt(pi/2)``, density 0 at ``|b| = 0``).
    - ``radial`` (the public SAPE code of Hertz et al.): ``|b_i| ~ |N(0, sigma^2)|`` (half-normal,
      mean ``sigma sqrt(2/pi)``, densest at 0) times a direction uniform on the unit sphere. At equal
      sigma its RMS frequency is ``sigma`` against ``sigma sqrt(d)`` for ``isotropic``; in 1-D the two
      are the same distribution.

    ``periodic`` rounds every frequency to a non-zero integer, so ``gamma`` has period 1 on every axis:
    the encoding of a closed curve's parameter p in [0, 1) then closes (silhouettes use it).
    """

    def __init__(self, in_dim: int, sigma: float = 10.0, features: int = 256, seed: int = 0, periodic: bool = False,
                 include_input: bool = False, sampling: str = "isotropic") -> None:
        super().__init__(in_dim, include_input)
        check_positive("sigma", sigma)
        check_positive("features", features)
        check_allocation("gaussian", features * max(in_dim, 64), "features")  # B, and the network's first layer
        if sampling not in SAMPLINGS:
            raise PosencError(f"unknown sampling {sampling!r}; valid: {', '.join(SAMPLINGS)}")
        gen = torch.Generator().manual_seed(int(seed))
        B = torch.randn(features, in_dim, generator=gen, dtype=torch.float64)
        if sampling == "radial":
            magnitude = torch.randn(features, generator=gen, dtype=torch.float64).abs() * sigma
            B = B / B.norm(dim=1, keepdim=True) * magnitude[:, None]
        else:
            B = B * sigma
        self.sampling = sampling
        if periodic:
            rounded = B.round()
            # a row rounded to all zeros would be a constant feature: give it the nearest non-zero integer
            dead = (rounded == 0).all(dim=1)
            largest = B[dead].abs() == B[dead].abs().amax(dim=1, keepdim=True)
            rounded[dead] = B[dead].sign() * largest.double()
            B = rounded
        self.periodic = bool(periodic)
        B = B[B.norm(dim=1).argsort(stable=True)]
        self.register_buffer("B", B.float())
        self._finish(2 * features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return _cos_sin(x @ (TWO_PI * self.B).T)

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        return _paired_bands(self.B.norm(dim=1).tolist())
