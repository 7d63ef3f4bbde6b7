"""Mask policies over an encoding's bands (SAPE, Hertz et al. 2021, Sec. 4).

A policy owns a soft mask ``alpha`` in [0, 1] per band and is advanced by the training loop with
``step(iteration, per_sample_loss)``; it works with any encoding that exposes bands, in 1-3 D.

* ``none``: every band open.
* ``global`` (Phi_P, eq. 4): band k (k = 0 for the lowest non-identity band) has
  ``alpha_k(t) = clamp(t / tau - k, 0, 1)`` with ``tau = T / (2 n)``: bands open one after another in
  order of frequency, each ramping linearly over tau iterations, all open at T / 2. Identity bands are
  always open; channels of one band (a cos/sin pair) open together. Progression stops for good once
  the mean training loss falls below epsilon (early stop).
* ``spatial`` (Phi_SA, eq. 5-7): the same ramp, run separately in every cell of a grid of resolution
  r^d. Each sample's loss is splatted into its 2^d neighbouring cells with its interpolation weights
  (eq. 7); at every band step (each tau iterations) a cell's weighted mean loss, neighbour-smoothed
  (over a 3^d box; cells with no sample near them take their neighbours' value), decides whether it keeps progressing
  (loss >= epsilon) or freezes for the rest of training. The mask at any point is the multilinear
  interpolation of the cell masks (eq. 6), so it is continuous and defined at unseen points.

Both progressive policies implement the paper's soft linear ramp: a cell's state is one real
"level" L (number of bands opened so far, fractional while a band ramps) and ``alpha_k = clamp(L - k,
0, 1)``. (The public SAPE code opens whole blocks at once; its ramp sits after an early ``return``.)
``blocks`` groups consecutive bands into that many steps that open together (the public silhouette
setting uses 6); by default every band is its own step. ``mask_blur`` (spatial, odd k, default 1 = off)
box-blurs the cell masks over k^d cells before interpolating them, as the public SAPE code does (k = 5
at grid 128); the paper's eq. 6 is the unblurred interpolation. The image task sets ``mask_blur`` and
``smooth`` to 5 (``config.TASK_DEFAULTS``): gen25's held-out pixels see interpolated masks between
training pixels, and alike neighbouring masks generalise better there.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
from torch import nn

from .encodings import Encoding
from .errors import PosencError
from .grid import box_smooth, fill_unvisited, interpolation_matrix, multilinear_weights

# mask-grid defaults: 128 for images (SAPE), 64^3 for shapes; in 1-D, 32 cells for the 128 samples of the
# built-in signal (sweep: benchmarks/results/signal1d-mask-grid; finer grids leave cells with too few
# samples to judge, and they stop early)
DEFAULT_GRID = {1: 32, 2: 128, 3: 64}


class MaskPolicy(nn.Module):
    """Base policy: every band open. Subclasses keep per-band levels and implement :meth:`levels`."""

    type_name = "none"

    def __init__(self, encoding: Encoding, iters: int, blocks: int = 0) -> None:
        super().__init__()
        bands = encoding.bands
        moving = [b for b in bands if not b.identity]
        self.d = encoding.in_dim
        self.iters = int(iters)
        if blocks < 0:
            raise PosencError(f"blocks must be >= 0 (0 = one band per step), got {blocks}")
        # the ramp moves in steps: one band each, or `blocks` equal groups of consecutive bands
        self.bands_total = len(moving)
        self.n = min(blocks, len(moving)) if blocks else len(moving)
        step = torch.arange(len(moving)) * self.n // max(len(moving), 1)
        self.register_buffer("step_of_band", step.float(), persistent=False)
        # channel -> column of the extended band mask; column n is the always-open identity column
        col = torch.full((encoding.out_dim,), len(moving), dtype=torch.long)
        for k, band in enumerate(moving):
            col[list(band.channels)] = k
        self.register_buffer("band_of_channel", col, persistent=False)
        self.register_buffer("band_freqs", torch.tensor([b.frequency for b in moving], dtype=torch.float32), persistent=False)
        has_identity = any(b.identity for b in bands)
        # without identity channels the first band starts open, so the network never sees all zeros
        self.start_level = 0.0 if has_identity else 1.0
        self.tau = self.iters / (2.0 * max(self.n, 1))
        self.version = 0  # bumped whenever the mask changes (lets callers cache masked features)

    @property
    def active(self) -> bool:
        return False

    # -- masks ----------------------------------------------------------------------------
    def band_alpha(self, x: torch.Tensor) -> torch.Tensor | None:
        """Band mask at coordinates ``(N, d)``: ``(N, n)`` or ``(n,)`` if the same everywhere; None = all open."""
        return None

    def channel_mask(self, alpha: torch.Tensor | None) -> torch.Tensor | None:
        """Band mask ``(..., n)`` -> channel mask ``(..., out_dim)`` (identity channels at 1)."""
        if alpha is None:
            return None
        ones = torch.ones(*alpha.shape[:-1], 1, dtype=alpha.dtype, device=alpha.device)
        return torch.cat([alpha, ones], dim=-1).index_select(-1, self.band_of_channel)

    def mask(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.channel_mask(self.band_alpha(x))

    def bind(self, x: torch.Tensor) -> None:
        """Pre-compute what depends only on the fixed training coordinates ``(N, d)``."""
        self._bound = x

    def train_mask(self) -> torch.Tensor | None:
        """Channel mask for the bound training points."""
        return self.mask(self._bound)

    def step(self, iteration: int, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        """Advance after optimiser step ``iteration`` (0-based) given the per-sample loss ``(N,)``
        of the bound points (or of the points ``x``)."""

    def max_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """Highest unmasked band frequency (alpha > 0) at each point: ``(N, d) -> (N,)``."""
        top = float(self.band_freqs.max()) if self.bands_total else 0.0
        alpha = self.band_alpha(x)
        if alpha is None or self.bands_total == 0:
            return torch.full((x.shape[0],), top)
        alpha = alpha.expand(x.shape[0], -1) if alpha.dim() == 1 else alpha
        open_ = alpha > 1e-6
        last = torch.where(open_, torch.arange(self.bands_total, device=alpha.device), torch.full_like(alpha, -1, dtype=torch.long)).amax(-1)
        freqs = torch.cat([torch.zeros(1, device=alpha.device), self.band_freqs.to(alpha.device)])
        return freqs[last + 1].cpu()

    def _ramp(self, level: torch.Tensor) -> torch.Tensor:
        """``alpha_k = clamp(level - step_k, 0, 1)`` for levels ``(...,)`` -> ``(..., bands)`` (eq. 4);
        ``step_k = k`` unless bands are grouped into blocks."""
        return (level[..., None] - self.step_of_band.to(level.dtype)).clamp_(0.0, 1.0)

    def summary(self) -> dict[str, Any]:
        return {"type": self.type_name}


class GlobalProgression(MaskPolicy):
    """Phi_P (eq. 4) with early stop at ``mean loss < epsilon``: one mask for every position."""

    type_name = "global"

    def __init__(self, encoding: Encoding, iters: int, epsilon: float = 1e-3, blocks: int = 0) -> None:
        super().__init__(encoding, iters, blocks)
        if not epsilon >= 0:
            raise PosencError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.register_buffer("level", torch.tensor(self.start_level))
        self.register_buffer("stopped", torch.tensor(False))

    @property
    def active(self) -> bool:
        return self.n > 0

    def band_alpha(self, x: torch.Tensor) -> torch.Tensor | None:
        return self._ramp(self.level)

    def step(self, iteration: int, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        if bool(self.stopped) or float(self.level) >= self.n:
            return
        if float(per_sample_loss.mean()) < self.epsilon:
            self.stopped.fill_(True)
            return
        self.level.fill_(min(self.start_level + (iteration + 1) / self.tau, float(self.n)))
        self.version += 1

    def summary(self) -> dict[str, Any]:
        return {"type": self.type_name, "level": float(self.level), "steps": self.n, "bands": self.bands_total, "stopped": bool(self.stopped)}


class SpatialProgression(MaskPolicy):
    """Phi_SA (eq. 5-7): per-cell progression on an r^d grid driven by the local loss."""

    type_name = "spatial"

    def __init__(self, encoding: Encoding, iters: int, epsilon: float = 1e-3, mask_grid: int = 0, smooth: int = 3,
                 blocks: int = 0, mask_blur: int = 1) -> None:
        super().__init__(encoding, iters, blocks)
        if not epsilon >= 0:
            raise PosencError(f"epsilon must be >= 0, got {epsilon}")
        grid = mask_grid or DEFAULT_GRID[self.d]
        if grid < 1 or grid ** self.d > 64**3 * 8:
            raise PosencError(f"mask_grid must be between 1 and {int(round((64**3 * 8) ** (1 / self.d)))} in {self.d}-D, got {grid}")
        if smooth < 1 or smooth % 2 == 0:
            raise PosencError(f"smooth must be an odd kernel size >= 1, got {smooth}")
        if mask_blur < 1 or mask_blur % 2 == 0:
            raise PosencError(f"mask_blur must be an odd kernel size >= 1, got {mask_blur}")
        self.epsilon, self.res, self.smooth = float(epsilon), int(grid), int(smooth)
        self.mask_blur = int(mask_blur)
        cells = self.res**self.d
        self.register_buffer("level", torch.full((cells,), self.start_level))
        self.register_buffer("in_progress", torch.ones(cells, dtype=torch.bool))
        self.register_buffer("loss_sum", torch.zeros(cells))
        self.register_buffer("weight_sum", torch.zeros(cells))
        self._bound_idx: torch.Tensor | None = None
        self._bound_w: torch.Tensor | None = None
        self._bound_matrix: torch.Tensor | None = None

    @property
    def active(self) -> bool:
        return self.n > 0

    # eq. 6: alpha(p) = sum_u w_{p,u} alpha_u, with alpha_u = ramp(level_u) (box-blurred if mask_blur > 1)
    def cell_alpha(self) -> torch.Tensor:
        """Per-cell band masks ``(r^d, bands)``; with ``mask_blur`` = k > 1 each is the mean over its
        k^d neighbourhood (replicate borders)."""
        return box_smooth(self._ramp(self.level), self.res, self.d, self.mask_blur)

    def _alpha_at(self, idx: torch.Tensor, w: torch.Tensor, bound: bool = False) -> torch.Tensor:
        """Interpolated band masks ``(N, bands)`` at points with grid neighbours ``idx`` / weights ``w``
        ``(N, 2^d)``. Without blur, when the points touch fewer cell entries than the grid has (3-D
        mini-batches), the ramp runs on the gathered levels only; else the (blurred) cell masks of
        the whole grid are interpolated by one sparse product (its matrix kept for the ``bound`` points)."""
        if self.mask_blur == 1 and idx.numel() < self.level.numel():
            return (self._ramp(self.level[idx]) * w[..., None]).sum(1)
        matrix = self._bound_matrix if bound else None
        if matrix is None:
            matrix = interpolation_matrix(idx, w, self.res**self.d)
            if bound:
                self._bound_matrix = matrix
        return matrix @ self.cell_alpha()

    def band_alpha(self, x: torch.Tensor) -> torch.Tensor:
        return self._alpha_at(*multilinear_weights(x.to(self.level.device), self.res))

    def bind(self, x: torch.Tensor) -> None:
        super().bind(x)
        self._bound_idx, self._bound_w = multilinear_weights(x.to(self.level.device), self.res)
        self._bound_matrix = None  # built on first use, only if the sparse path needs it

    def train_mask(self) -> torch.Tensor:
        return self.channel_mask(self._alpha_at(self._bound_idx, self._bound_w, bound=True))

    def splat_loss(self, per_sample_loss: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> None:
        """eq. 7: add each sample's loss to its neighbouring cells, weighted by interpolation weights."""
        self.loss_sum.index_add_(0, idx.reshape(-1), (w * per_sample_loss[:, None]).reshape(-1))
        self.weight_sum.index_add_(0, idx.reshape(-1), w.reshape(-1))

    def cell_loss(self) -> torch.Tensor:
        """Neighbour-smoothed mean loss per cell: ``(r^d,)``.

        The splatted sums are box-filtered over the k^d neighbourhood before dividing, so a cell's
        loss is the interpolation-weighted mean of the samples around it; cells with no sample in
        their neighbourhood take the mean of their nearest filled neighbours.
        """
        num = box_smooth(self.loss_sum, self.res, self.d, self.smooth)
        den = box_smooth(self.weight_sum, self.res, self.d, self.smooth)
        visited = den > 0
        return fill_unvisited(num / den.clamp_min(1e-30), visited, self.res, self.d)

    def step(self, iteration: int, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        if not bool(self.in_progress.any()):
            return
        if x is None:
            idx, w = self._bound_idx, self._bound_w
        else:
            idx, w = multilinear_weights(x.to(self.level.device), self.res)
        self.splat_loss(per_sample_loss.detach().to(self.level.dtype), idx, w)
        top = self.start_level + self.n
        self.level.add_(self.in_progress.to(self.level.dtype) / self.tau).clamp_(max=float(top))
        self.version += 1
        # a band step: every tau iterations, cells whose local loss is below epsilon freeze
        if math.floor((iteration + 1) / self.tau) > math.floor(iteration / self.tau):
            self.in_progress &= self.cell_loss() >= self.epsilon
            self.in_progress &= self.level < top
            self.loss_sum.zero_()
            self.weight_sum.zero_()

    def summary(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "grid": self.res,
            "steps": self.n,
            "bands": self.bands_total,
            "mean_level": float(self.level.mean()),
            "frozen_fraction": float((~self.in_progress).float().mean()),
        }


POLICIES: dict[str, Callable[..., MaskPolicy]] = {
    "none": MaskPolicy,
    "global": GlobalProgression,
    "spatial": SpatialProgression,
}


def policy_parameters() -> dict[str, dict[str, Any]]:
    """Every policy's settings with their defaults: ``{"spatial": {"epsilon": 1e-3, ...}, ...}``."""
    out = {}
    for name, cls in POLICIES.items():
        sig = inspect.signature(cls.__init__)
        out[name] = {p.name: p.default for p in sig.parameters.values() if p.name not in ("self", "encoding", "iters")}
    return out


def build_policy(config: dict[str, Any], encoding: Encoding, iters: int) -> MaskPolicy:
    """``{"type": "spatial", "grid": 128, "epsilon": 1e-3}`` -> a policy over ``encoding``'s bands."""
    config = dict(config or {"type": "none"})
    name = config.pop("type", "none")
    if name not in POLICIES:
        raise PosencError(f"unknown progressive policy {name!r}; valid: {', '.join(POLICIES)}")
    try:
        return POLICIES[name](encoding, iters, **config)
    except TypeError as exc:
        raise PosencError(f"bad settings for policy {name!r}: {exc}") from None
