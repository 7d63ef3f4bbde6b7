"""Radial-basis encodings: ``rbf_grid``, the periodic RBF-grid baseline of SAPE Table 1 ("RBFG")."""

from __future__ import annotations

import math

import torch

from .base import Encoding, check_allocation, check_positive, register


@register("rbf_grid")
class RBFGridEncoding(Encoding):
    """Repeated (periodic) radial basis functions on regular lattices, one lattice per band.

    Band i has frequency ``f_i`` (cycles per unit): Gaussian bumps of standard deviation
    ``width / f_i`` centred on the lattice ``o_i + Z^d / f_i`` (random offset ``o_i``), and a second
    channel on the lattice shifted by half a period along every axis, the RBF analogue of a cos/sin
    pair. Each channel is ``2 exp(-||wrap(v - o_i)||^2 / (2 (width / f_i)^2)) - 1`` in [-1, 1], where
    ``wrap`` maps each axis to the nearest lattice node. Frequencies are uniform on (0, sqrt(3) sigma]
    (mid-points of ``features`` equal steps), whose root mean square is ``sigma``, the same second
    moment as a 1-D Gaussian of scale sigma. ``(..., d) -> (..., 2 * features)``.
    """

    def __init__(
        self,
        in_dim: int,
        sigma: float = 10.0,
        features: int = 256,
        width: float = 1.0 / (2.0 * math.sqrt(8.0)),
        seed: int = 0,
        include_input: bool = False,
    ) -> None:
        super().__init__(in_dim, include_input)
        check_positive("sigma", sigma)
        check_positive("features", features)
        check_positive("width", width)
        check_allocation("rbf_grid", features * max(in_dim, 64), "features")
        gen = torch.Generator().manual_seed(int(seed))
        step = math.sqrt(3.0) * sigma / features
        freqs = (torch.arange(features, dtype=torch.float64) + 0.5) * step
        offsets = torch.rand(features, in_dim, generator=gen, dtype=torch.float64) / freqs[:, None]
        self.register_buffer("freqs", freqs.float())
        self.register_buffer("offsets", offsets.float())
        self.width = float(width)
        self._finish(2 * features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # phase in lattice units; distance to the nearest node of each of the two shifted lattices
        phase = (x[:, None, :] - self.offsets) * self.freqs[:, None]  # (N, F, d)
        d_a = phase - torch.round(phase)
        d_b = (phase + 0.5) - torch.round(phase + 0.5)
        scale = -0.5 / self.width**2
        a = torch.exp(scale * d_a.square().sum(-1))
        b = torch.exp(scale * d_b.square().sum(-1))
        return torch.cat([a, b], dim=-1) * 2.0 - 1.0

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        k = self.freqs.numel()
        return [([i, k + i], f) for i, f in enumerate(self.freqs.tolist())]
