"""Progressive band masks over any encoding (SAPE, Hertz et al. 2021, Sec. 4), usable in any training loop.

A policy wraps an encoding (anything exposing ``in_dim``, ``out_dim`` and ``bands``) and is itself an
encoding-like module: ``policy(x)`` returns the encoding's features times a soft mask ``alpha`` in
[0, 1] per band, ``(..., in_dim) -> (..., out_dim)``. After each optimiser step, ``policy.update(loss)``
feeds back the per-sample loss of the last training forward pass; the policy counts its own steps::

    sape = SpatialProgression(encoding, mask_grid=64)      # iters: the run's length (default 2000)
    field = Field(sape, MLP(sape.out_dim, 1))
    ...
    per_point.mean().backward(); opt.step()
    sape.update(per_point.detach())                        # reuses the forward pass's interpolation weights

* ``global`` (:class:`GlobalProgression`, Phi_P, eq. 4): band k (k = 0 for the lowest non-identity
  band) has ``alpha_k(t) = clamp(t / tau - k, 0, 1)`` with ``tau = T / (2 n)``: bands open one after
  another in order of frequency, each ramping linearly over tau iterations, all open at T / 2.
  Identity bands are always open; channels of one band (a cos/sin pair) open together. Progression
  stops for good once the mean training loss falls below epsilon (early stop).
* ``spatial`` (:class:`SpatialProgression`, Phi_SA, eq. 5-7): the same ramp, run separately in every
  cell of a grid of resolution r^d. Each sample's loss is splatted into its 2^d neighbouring cells
  with its interpolation weights (eq. 7); at every band step (each tau iterations) a cell's weighted
  mean loss, neighbour-smoothed (over a k^d box; cells with no sample near them take their
  neighbours' value), decides whether it keeps progressing (loss >= epsilon) or freezes for the rest
  of training. The mask at any point is the multilinear interpolation of the cell masks (eq. 6), so
  it is continuous, defined at unseen points, and differentiable in the coordinates.

Both implement the paper's soft linear ramp: a cell's state is one real "level" L (number of bands
opened so far, fractional while a band ramps) and ``alpha_k = clamp(L - k, 0, 1)``; L grows by
``1 / tau`` per step. (The public SAPE code opens whole blocks at once; its ramp sits after an early
``return``.) ``blocks`` groups consecutive bands into that many steps that open together (the public
silhouette setting uses 6); by default every band is its own step. ``mask_blur`` (spatial, odd k,
default 1 = off) box-blurs the cell masks over k^d cells before interpolating them, as the public SAPE
code does (k = 5 at grid 128); the paper's eq. 6 is the unblurred interpolation. The image task sets
``mask_blur`` and ``smooth`` to 5 (``config.TASK_DEFAULTS``).

The iteration budget T can be changed at any time (``policy.iters = T``, e.g. to extend a run): the
ramp then continues from the current levels at the new speed.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from .encodings.base import to_unit
from .errors import PosencError, PosencWarning
from .grid import box_smooth, fill_unvisited, interpolate, multilinear_weights
from .validation import coerce, signature_hints

# mask-grid defaults: 128 for images (SAPE), 64^3 for shapes; in 1-D, 32 cells for the 128 samples of the
# built-in signal (sweep: benchmarks/results/signal1d-mask-grid; finer grids leave cells with too few
# samples to judge, and they stop early); 16^4 for (x, y, z, t) fields
DEFAULT_GRID = {1: 32, 2: 128, 3: 64, 4: 16}
MAX_CELLS = 64**3 * 8
# loss smoothing and mask blur (odd box sizes): 5 and 5 over images, as the public SAPE code does at grid
# 128; 3 and 1 (no blur, the paper's eq. 6) in 1-D, 3-D and 4-D
DEFAULT_SMOOTH = {2: 5}
DEFAULT_BLUR = {2: 5}
DEFAULT_ITERS = 2000
# training forward passes with no update() after which a policy warns that its mask is not moving
UNUPDATED_FORWARDS = 10


def _plan_rows(plan: Any, rows: slice) -> Any:
    """The rows of a mask plan (None, or a tensor / tuple of tensors with one row per point)."""
    if plan is None:
        return None
    if isinstance(plan, torch.Tensor):
        return plan[rows]
    return tuple(_plan_rows(p, rows) for p in plan)


def _same_plan(a: Any, b: Any) -> bool:
    """True when two mask plans (interpolation indices and weights) are those of the same points."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same_plan(u, v) for u, v in zip(a, b))
    return False


class Progression(nn.Module):
    """Base of the band-mask policies: wraps ``encoding``, multiplies its features by the band mask.

    ``encoding`` is any module with ``in_dim``, ``out_dim`` and ``bands`` (channel groups with a
    ``frequency``, low to high, and an ``identity`` flag). ``iters`` is the run's length T, which
    sets the ramp speed ``tau = T / (2 n)``; it can be set again later.
    """

    type_name: ClassVar[str] = ""

    def __init__(self, encoding: nn.Module, iters: int | None = None, blocks: int = 0) -> None:
        super().__init__()
        for attr in ("in_dim", "out_dim", "bands"):
            if not hasattr(encoding, attr):
                raise PosencError(f"a progressive policy wraps a module with in_dim, out_dim and bands; "
                                  f"{type(encoding).__name__} has no {attr}")
        bands = list(encoding.bands)
        if not bands:
            raise PosencError(f"{type(encoding).__name__} has no bands to open progressively")
        self.encoding = encoding
        self.in_dim, self.out_dim = int(encoding.in_dim), int(encoding.out_dim)
        moving = [b for b in bands if not b.identity]
        if blocks < 0:
            raise PosencError(f"blocks must be >= 0 (0 = one band per step), got {blocks}")
        self.blocks = int(blocks)
        # the ramp moves in steps: one band each, or `blocks` equal groups of consecutive bands
        self.bands_total = len(moving)
        self.n = min(blocks, len(moving)) if blocks else len(moving)
        step = torch.arange(len(moving)) * self.n // max(len(moving), 1)
        self.register_buffer("step_of_band", step.float(), persistent=False)
        # channel -> column of the extended band mask; column n is the always-open identity column
        col = torch.full((self.out_dim,), len(moving), dtype=torch.long)
        for k, band in enumerate(moving):
            col[list(band.channels)] = k
        self.register_buffer("band_of_channel", col, persistent=False)
        self.register_buffer("band_freqs", torch.tensor([b.frequency for b in moving], dtype=torch.float32), persistent=False)
        has_identity = any(b.identity for b in bands)
        # without identity channels the first band starts open, so the network never sees all zeros
        self.start_level = 0.0 if has_identity else 1.0
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # updates so far (checkpointed)
        if iters is None:
            warnings.warn(f"{type(self).__name__}: iters not set, so the bands open over {DEFAULT_ITERS} steps (all "
                          f"open at step {DEFAULT_ITERS // 2}); pass iters=<your run's number of steps>",
                          PosencWarning, stacklevel=3)
            iters = DEFAULT_ITERS
        self.iters = iters
        self.version = 0  # bumped whenever the mask changes (lets bound callers cache masked features)
        self._last: Any = None  # interpolation plan of the last training forward (what update() splats into)
        self._pending = 0  # training forwards (distinct point sets) since the last update()
        self._forwards = 0  # training forwards since the last update()
        self._warned_unupdated = False
        self._held = False  # inside paused(): forwards are not remembered

    # -- what an encoding exposes ------------------------------------------------------------
    @property
    def bands(self) -> list[Any]:
        return list(self.encoding.bands)

    @property
    def lr(self) -> float | None:
        return getattr(self.encoding, "lr", None)

    @property
    def fixed(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    @property
    def iters(self) -> int:
        """The run's length T; ``tau = T / (2 n)`` iterations per band."""
        return self._iters

    @iters.setter
    def iters(self, value: int) -> None:
        value = coerce("iters", value, int)
        if value < 1:
            raise PosencError(f"iters must be >= 1, got {value}")
        self._reanchor()
        self._iters = value
        self.tau = value / (2.0 * max(self.n, 1))

    def _reanchor(self) -> None:
        """Called before the budget changes, so the ramp continues from where it is."""

    def rebase(self) -> None:
        """Continue the ramp from the current state at the current budget's speed (after loading a
        checkpoint made with another budget)."""
        self._reanchor()

    @property
    def active(self) -> bool:
        return self.n > 0

    @property
    def config(self) -> dict[str, Any]:
        """The policy's settings (``build_policy(policy.config, encoding)`` rebuilds it)."""
        return {"type": self.type_name, **{k: getattr(self, k) for k in type(self).settings()}}

    @classmethod
    def settings(cls) -> dict[str, tuple[Any, Any]]:
        return signature_hints(cls.__init__, skip=("self", "encoding"))

    # -- the points' place on the mask grid ------------------------------------------------------
    def _unit(self, flat: torch.Tensor) -> torch.Tensor:
        """Points in the wrapped encoding's domain mapped onto the mask grid's [0, 1]^d."""
        domain, outside = getattr(self.encoding, "domain", (0.0, 1.0)), getattr(self.encoding, "outside", "ignore")
        return to_unit(flat, domain, outside)

    @contextlib.contextmanager
    def paused(self) -> Iterator["Progression"]:
        """Training forwards inside this block are not fed back and not counted: a warm-up fit with the
        mask held at its current state (the silhouettes' unit-circle calibration)."""
        held, self._held = self._held, True
        try:
            yield self
        finally:
            self._held = held

    def _remember(self, plan: Any) -> None:
        """Record the plan of a training forward pass for update(); count distinct point sets so that
        update() can refuse to guess which one a loss belongs to, and warn when none is ever updated."""
        if self._held:
            return
        if torch.compiler.is_compiling():  # bookkeeping stays out of the traced graph
            self._last = plan
            return
        if plan is None or self._pending == 0 or not _same_plan(plan, self._last):
            self._pending += 1
        self._last = plan
        self._forwards += 1
        if self._forwards >= UNUPDATED_FORWARDS and not self._warned_unupdated and self.active:
            self._warned_unupdated = True
            warnings.warn(f"{type(self).__name__}: {self._forwards} training forward passes and no update(): the mask does "
                          f"not move ({self.open_channels()} of {self.out_dim} channels open); call "
                          "policy.update(per_sample_loss) after each optimiser step", PosencWarning, stacklevel=4)

    def _consume(self, x: torch.Tensor | None) -> None:
        """update()'s check that the loss belongs to one known forward pass."""
        if x is None and self._pending > 1:
            n, self._pending = self._pending, 0
            raise PosencError(f"update() after {n} training forward passes on different points: it cannot tell which "
                              "points the loss belongs to; pass them (update(loss, x)), or run evaluation under "
                              "torch.no_grad() or field.eval()")
        self._pending = self._forwards = 0

    def open_channels(self) -> int:
        """Channels whose mask is above zero somewhere (all cells): how far the progression has come."""
        with torch.no_grad():
            alpha = self.current_alpha()
            alpha = alpha if alpha.dim() == 1 else alpha.amax(0)
            return int((self.channel_mask(alpha) > 0).sum())

    def current_alpha(self) -> torch.Tensor:
        """The band masks of every cell ``(cells, n)``, or ``(n,)`` when global."""
        raise NotImplementedError

    # -- masks ----------------------------------------------------------------------------
    def band_alpha(self, x: torch.Tensor) -> torch.Tensor:
        """Band mask at coordinates ``(N, d)``: ``(N, n)``, or ``(n,)`` when the same everywhere."""
        raise NotImplementedError

    def _alpha(self, flat: torch.Tensor, remember: bool) -> torch.Tensor:
        return self.band_alpha(flat)

    def channel_mask(self, alpha: torch.Tensor) -> torch.Tensor:
        """Band mask ``(..., n)`` -> channel mask ``(..., out_dim)`` (identity channels at 1)."""
        ones = torch.ones(*alpha.shape[:-1], 1, dtype=alpha.dtype, device=alpha.device)
        return torch.cat([alpha, ones], dim=-1).index_select(-1, self.band_of_channel)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """Channel mask at coordinates ``(..., d)``: ``(..., out_dim)``, or ``(out_dim,)`` if global."""
        lead = x.shape[:-1]
        m = self.channel_mask(self.band_alpha(self._unit(x.reshape(-1, self.in_dim))))
        return m if m.dim() == 1 else m.reshape(*lead, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masked features ``(..., in_dim) -> (..., out_dim)``: ``alpha(x) * encoding(x)`` (eq. 3)."""
        if x.shape[-1] != self.in_dim:
            raise PosencError(f"expected coordinates with {self.in_dim} components, got shape {tuple(x.shape)}")
        features = self.encoding(x)
        flat = self._unit(x.reshape(-1, self.in_dim).to(features.dtype))
        m = self.channel_mask(self._alpha(flat, remember=self.training and torch.is_grad_enabled()))
        return features * (m if m.dim() == 1 else m.reshape(features.shape))

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """The masked features of the fixed points ``x`` ``(..., d)``, as a function of no arguments.

        The encoding is bound once (its own fast path); the mask's interpolation weights are computed
        once; for a fixed encoding the masked features are cached until the mask changes (after the
        progression ends, never again) and written into the previous step's buffer. ``update`` after
        a bound call uses the bound weights. Points that require a gradient take the general path.
        """
        if x.requires_grad:
            return lambda: self(x)
        plan = self._plan(self._unit(x.reshape(-1, self.in_dim)))
        return self._bind_planned(x, plan, plan)

    def bind_chunks(self, x: torch.Tensor, size: int) -> list[tuple[slice, Callable[[], torch.Tensor]]]:
        """:meth:`bind` on consecutive slices of ``size`` of the flat points ``x`` ``(N, d)``, for a
        full-batch step run pass by pass (``posenc.bound_step``). The mask's interpolation weights are
        computed once for all ``N`` points; after the passes, ``update`` takes the per-sample loss of
        all ``N`` points, in order."""
        flat = x.reshape(-1, self.in_dim)
        plan = None if x.requires_grad else self._plan(self._unit(flat))
        parts = []
        for a in range(0, flat.shape[0], max(int(size), 1)):
            sl = slice(a, min(a + max(int(size), 1), flat.shape[0]))
            part = flat[sl]
            if x.requires_grad:
                parts.append((sl, lambda part=part: self(part)))
            else:
                parts.append((sl, self._bind_planned(part, _plan_rows(plan, sl), plan)))
        return parts

    def _bind_planned(self, x: torch.Tensor, plan: Any, last: Any) -> Callable[[], torch.Tensor]:
        """The bound forward of the points ``x`` with the mask plan of exactly those points; ``last`` is
        the plan ``update`` will use (that of every point bound together)."""
        encode = self.encoding.bind(x) if hasattr(self.encoding, "bind") else (lambda: self.encoding(x))
        lead = x.shape[:-1]

        def bound_mask() -> torch.Tensor:
            m = self.channel_mask(self._alpha_planned(plan))
            return m if m.dim() == 1 else m.reshape(*lead, self.out_dim)

        if not getattr(self.encoding, "fixed", False):
            # a learned encoding runs every step; its mask (no gradient) only when the policy moved
            masks: dict[str, Any] = {"version": None, "mask": None}

            def forward_learned() -> torch.Tensor:
                if masks["version"] != self.version:
                    with torch.no_grad():
                        masks["mask"] = bound_mask()
                    masks["version"] = self.version
                self._remember(last)
                return encode() * masks["mask"]

            return forward_learned
        cache: dict[str, Any] = {"version": None, "inputs": None}

        def forward_fixed() -> torch.Tensor:
            if cache["version"] != self.version:
                with torch.no_grad():
                    # written into last step's buffer (its graph is gone): no fresh page-faulted allocation
                    cache["inputs"] = torch.mul(encode(), bound_mask(), out=cache["inputs"])
                cache["version"] = self.version
            self._remember(last)
            return cache["inputs"]

        return forward_fixed

    def _plan(self, flat: torch.Tensor) -> Any:
        return None

    def _alpha_planned(self, plan: Any) -> torch.Tensor:
        return self.band_alpha(torch.zeros(1, self.in_dim))

    def update(self, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        """Advance one step after an optimiser step, given the per-sample loss ``(...,)`` of the last
        training forward pass (or of the points ``x`` ``(..., d)``)."""
        raise NotImplementedError

    def max_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """Highest unmasked band frequency (alpha > 0) at each point: ``(N, d) -> (N,)``."""
        top = float(self.band_freqs.max()) if self.bands_total else 0.0
        if self.bands_total == 0:
            return torch.full((x.shape[0],), top)
        alpha = self.band_alpha(x)
        alpha = alpha.expand(x.shape[0], -1) if alpha.dim() == 1 else alpha
        open_ = alpha > 1e-6
        ranks = torch.arange(self.bands_total, device=alpha.device)
        last = torch.where(open_, ranks, torch.full_like(alpha, -1, dtype=torch.long)).amax(-1)
        freqs = torch.cat([torch.zeros(1, device=alpha.device), self.band_freqs.to(alpha.device)])
        return freqs[last + 1].cpu()

    def _ramp(self, level: torch.Tensor) -> torch.Tensor:
        """``alpha_k = clamp(level - step_k, 0, 1)`` for levels ``(...,)`` -> ``(..., bands)`` (eq. 4);
        ``step_k = k`` unless bands are grouped into blocks."""
        return (level[..., None] - self.step_of_band.to(level.dtype)).clamp(0.0, 1.0)

    def _is_band_step(self, t: int) -> bool:
        """True when step ``t`` (0-based) ends a band step (every tau iterations)."""
        return math.floor((t + 1) / self.tau) > math.floor(t / self.tau)

    def summary(self) -> dict[str, Any]:
        return {"type": self.type_name, "steps": int(self.steps)}

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, steps={self.n}, iters={self.iters}"


class GlobalProgression(Progression):
    """Progressive Fourier features, Phi_P (SAPE eq. 4): one mask for every position; bands open in
    order of frequency, each over ``tau = T / 2n`` iterations; early stop at mean loss < ``epsilon``."""

    type_name = "global"

    def __init__(self, encoding: nn.Module, iters: int | None = None, epsilon: float = 1e-3, blocks: int = 0) -> None:
        super().__init__(encoding, iters, blocks)
        if not epsilon >= 0:
            raise PosencError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.register_buffer("level", torch.tensor(self.start_level))
        self.register_buffer("stopped", torch.tensor(False))
        # level = anchor_level + (steps - anchor_step) / tau exactly (no drift from adding 1/tau);
        # re-anchored when the budget changes
        self.register_buffer("anchor", torch.tensor([self.start_level, 0.0], dtype=torch.float64))

    def _reanchor(self) -> None:
        if hasattr(self, "anchor") and hasattr(self, "tau"):
            self.anchor.copy_(torch.tensor([float(self.level), float(self.steps)], dtype=torch.float64))

    def band_alpha(self, x: torch.Tensor) -> torch.Tensor:
        return self._ramp(self.level)

    def current_alpha(self) -> torch.Tensor:
        return self._ramp(self.level)

    def _alpha(self, flat: torch.Tensor, remember: bool) -> torch.Tensor:
        if remember:
            self._remember(None)
        return self.band_alpha(flat)

    def update(self, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        self._pending = self._forwards = 0  # the global mask needs no points: any forward's loss will do
        self.steps += 1
        if bool(self.stopped) or float(self.level) >= self.n:
            return
        if float(per_sample_loss.detach().mean()) < self.epsilon:
            self.stopped.fill_(True)
            return
        level = float(self.anchor[0]) + (int(self.steps) - float(self.anchor[1])) / self.tau
        self.level.fill_(min(level, float(self.n)))
        self.version += 1

    def summary(self) -> dict[str, Any]:
        return {"type": self.type_name, "steps": int(self.steps), "level": float(self.level), "band_steps": self.n,
                "bands": self.bands_total, "stopped": bool(self.stopped)}


class SpatialProgression(Progression):
    """Spatially-adaptive progressive encoding, Phi_SA (SAPE eq. 5-7): the eq. 4 ramp runs in every
    cell of an r^d mask grid and freezes where the local loss is below ``epsilon``."""

    type_name = "spatial"

    def __init__(self, encoding: nn.Module, iters: int | None = None, epsilon: float = 1e-3, mask_grid: int | None = None,
                 smooth: int | None = None, blocks: int = 0, mask_blur: int | None = None) -> None:
        super().__init__(encoding, iters, blocks)
        if not epsilon >= 0:
            raise PosencError(f"epsilon must be >= 0, got {epsilon}")
        d = self.in_dim
        if d not in DEFAULT_GRID:
            raise PosencError(f"the SAPE mask grid supports input dimension 1 to 4, got {d}")
        grid = DEFAULT_GRID[d] if mask_grid is None else int(mask_grid)
        smooth = DEFAULT_SMOOTH.get(d, 3) if smooth is None else smooth
        mask_blur = DEFAULT_BLUR.get(d, 1) if mask_blur is None else mask_blur
        if grid < 1 or grid**d > MAX_CELLS:
            raise PosencError(f"mask_grid must be between 1 and {int(MAX_CELLS ** (1 / d) + 1e-9)} in {d}-D, got {grid}")
        if smooth < 1 or smooth % 2 == 0:
            raise PosencError(f"smooth must be an odd kernel size >= 1, got {smooth}")
        if mask_blur < 1 or mask_blur % 2 == 0:
            raise PosencError(f"mask_blur must be an odd kernel size >= 1, got {mask_blur}")
        self.epsilon, self.mask_grid, self.smooth, self.mask_blur = float(epsilon), grid, int(smooth), int(mask_blur)
        cells = grid**d
        self.register_buffer("level", torch.full((cells,), self.start_level))
        self.register_buffer("in_progress", torch.ones(cells, dtype=torch.bool))
        self.register_buffer("loss_sum", torch.zeros(cells))
        self.register_buffer("weight_sum", torch.zeros(cells))

    @property
    def res(self) -> int:
        return self.mask_grid

    # eq. 6: alpha(p) = sum_u w_{p,u} alpha_u, with alpha_u = ramp(level_u) (box-blurred if mask_blur > 1)
    def cell_alpha(self) -> torch.Tensor:
        """Per-cell band masks ``(r^d, bands)``; with ``mask_blur`` = k > 1 each is the mean over its
        k^d neighbourhood (replicate borders)."""
        return box_smooth(self._ramp(self.level), self.res, self.in_dim, self.mask_blur)

    def _alpha_at(self, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Interpolated band masks ``(N, bands)`` at points with grid neighbours ``idx`` / weights ``w``
        ``(N, 2^d)``, by the shared multilinear kernel. Without blur, when the points touch fewer cell
        entries than the grid has (3-D mini-batches), the ramp runs on the gathered levels only."""
        if self.mask_blur == 1 and idx.numel() < self.level.numel():
            return (self._ramp(self.level[idx]) * w[..., None].to(self.level.dtype)).sum(1)
        return interpolate(self.cell_alpha(), idx, w)

    def current_alpha(self) -> torch.Tensor:
        return self.cell_alpha()

    def _plan(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return multilinear_weights(flat.to(self.level.device), self.res)

    def _alpha_planned(self, plan: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self._alpha_at(*plan)

    def band_alpha(self, x: torch.Tensor) -> torch.Tensor:
        return self._alpha_at(*multilinear_weights(x.to(self.level.device), self.res))

    def _alpha(self, flat: torch.Tensor, remember: bool) -> torch.Tensor:
        idx, w = multilinear_weights(flat.to(self.level.device), self.res)
        if remember:
            self._remember((idx, w.detach()))
        return self._alpha_at(idx, w)

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
        num = box_smooth(self.loss_sum, self.res, self.in_dim, self.smooth)
        den = box_smooth(self.weight_sum, self.res, self.in_dim, self.smooth)
        visited = den > 0
        return fill_unvisited(num / den.clamp_min(1e-30), visited, self.res, self.in_dim)

    def update(self, per_sample_loss: torch.Tensor, x: torch.Tensor | None = None) -> None:
        self._consume(x)
        t = int(self.steps)
        self.steps += 1
        if not bool(self.in_progress.any()):
            return
        if x is not None:
            flat = self._unit(x.detach().reshape(-1, self.in_dim))
            idx, w = multilinear_weights(flat.to(self.level.device), self.res)
        elif self._last is not None:
            idx, w = self._last
        else:
            raise PosencError("update() needs the points: call it after a training forward pass, or pass x")
        loss = per_sample_loss.detach().reshape(-1).to(self.level.dtype)
        if loss.shape[0] != idx.shape[0]:
            raise PosencError(f"update() got {loss.shape[0]} losses for {idx.shape[0]} points of the last forward pass; "
                              "pass one loss per point (or the points as x)")
        self.splat_loss(loss, idx, w.to(self.level.dtype))
        top = self.start_level + self.n
        self.level.add_(self.in_progress.to(self.level.dtype) / self.tau).clamp_(max=float(top))
        self.version += 1
        # a band step: every tau iterations, cells whose local loss is below epsilon freeze (eq. 5)
        if self._is_band_step(t):
            self.in_progress &= self.cell_loss() >= self.epsilon
            self.in_progress &= self.level < top
            self.loss_sum.zero_()
            self.weight_sum.zero_()

    def summary(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "steps": int(self.steps),
            "grid": self.res,
            "band_steps": self.n,
            "bands": self.bands_total,
            "mean_level": float(self.level.mean()),
            "frozen_fraction": float((~self.in_progress).float().mean()),
        }


POLICIES: dict[str, type[Progression]] = {"global": GlobalProgression, "spatial": SpatialProgression}


def policy_parameters(in_dim: int | None = None) -> dict[str, dict[str, Any]]:
    """Every policy's settings with their defaults (``iters`` excluded: it is the run's length):
    ``{"spatial": {"epsilon": 1e-3, ...}, ...}``; with ``in_dim`` the mask grid is resolved."""
    out: dict[str, dict[str, Any]] = {"none": {}}
    for name, cls in POLICIES.items():
        out[name] = {k: default for k, (_, default) in cls.settings().items() if k != "iters"}
    if in_dim is not None:
        spatial = out["spatial"]
        for key, by_dim, other in (("mask_grid", DEFAULT_GRID, None), ("smooth", DEFAULT_SMOOTH, 3), ("mask_blur", DEFAULT_BLUR, 1)):
            if spatial.get(key) is None:
                spatial[key] = by_dim.get(in_dim, other)
    return out


def build_policy(config: dict[str, Any] | None, encoding: nn.Module, iters: int | None = None) -> nn.Module:
    """``{"type": "spatial", "mask_grid": 128, "epsilon": 1e-3}`` -> the policy over ``encoding``'s
    bands (``{"type": "none"}`` or None: the encoding itself)."""
    config = dict(config or {"type": "none"})
    name = config.pop("type", "none")
    if name == "none":
        if config:
            raise PosencError(f"policy 'none' takes no settings, got {', '.join(sorted(config))}")
        return encoding
    if name not in POLICIES:
        raise PosencError(f"unknown progressive policy {name!r}; valid: none, {', '.join(POLICIES)}")
    cls = POLICIES[name]
    hints = cls.settings()
    unknown = sorted(set(config) - set(hints))
    if unknown:
        raise PosencError(f"bad settings for policy {name!r}: it does not take {', '.join(unknown)}; "
                          f"it takes: {', '.join(k for k in hints)}")
    if iters is not None:
        config["iters"] = iters
    config = {k: coerce(k, v, hints[k][0], f"{name}: ") for k, v in config.items()}
    return cls(encoding, **config)


def find_policy(module: nn.Module) -> Progression | None:
    """The progressive policy inside a field or encoding stack, if any."""
    for m in module.modules():
        if isinstance(m, Progression):
            return m
    return None
