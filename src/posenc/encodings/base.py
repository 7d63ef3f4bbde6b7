"""The encoding interface, frequency bands and the registry that builds encodings from config dicts.

Coordinates are in [0, 1]^d (Tancik et al.'s convention, see PROTOCOLS.md): a frequency f means
f cycles per unit length, so ``sigma=10`` names the same bandwidth in every encoding.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..errors import PosencError


@dataclass(frozen=True)
class Band:
    """A group of output channels that share one frequency magnitude.

    ``channels`` index the encoding's last dimension; ``frequency`` is the band's magnitude in
    cycles per unit (its Lipschitz constant up to 2 pi), the key SAPE sorts by; identity bands
    (the raw coordinates) have frequency 0 and are always open under a progressive mask.
    """

    channels: tuple[int, ...]
    frequency: float
    identity: bool = False


class Encoding(nn.Module):
    """Base class: maps coordinates ``(..., in_dim)`` in [0, 1]^d to features ``(..., out_dim)``.

    Subclasses set ``in_dim`` and ``out_dim`` at construction and implement :meth:`encode`;
    ``include_input`` prepends the raw coordinates as an identity band.
    """

    type_name: ClassVar[str] = ""
    # learning rate of this encoding's own parameters (None: the run's lr); LPE and grids train faster
    lr: float | None = None

    def __init__(self, in_dim: int, include_input: bool = False) -> None:
        super().__init__()
        if in_dim not in (1, 2, 3):
            raise PosencError(f"encodings support input dimension 1, 2 or 3, got {in_dim}")
        self.in_dim = in_dim
        self.include_input = include_input
        self.out_dim = 0  # set by subclasses via _finish()
        self._bands: list[Band] = []

    # -- subclass hooks -------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim) -> (N, encoded_dim)`` without the optional identity channels."""
        raise NotImplementedError

    def band_frequencies(self) -> list[tuple[list[int], float]]:
        """Channel groups of :meth:`encode`'s output (0-based) with their frequency magnitude."""
        raise NotImplementedError

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Return a function that encodes the fixed points ``x`` ``(N, in_dim)`` -> ``(N, out_dim)``.

        Whatever does not depend on parameters is computed here, once; a fixed encoding returns its
        cached output, learned encodings override this with their precomputed interpolation.
        """
        if self.fixed:
            with torch.no_grad():
                out = self(x)
            return lambda: out
        return lambda: self(x)

    @property
    def fixed(self) -> bool:
        """True when the encoding has no learned parameters, so a fixed grid can be pre-encoded."""
        return not any(p.requires_grad for p in self.parameters())

    # -- shared machinery ----------------------------------------------------------------
    def _finish(self, encoded_dim: int) -> None:
        """Set ``out_dim`` and build bands sorted low-to-high, identity channels first."""
        offset = self.in_dim if self.include_input else 0
        self.out_dim = offset + encoded_dim
        bands = [Band(tuple(offset + c for c in chans), float(freq)) for chans, freq in self.band_frequencies()]
        bands.sort(key=lambda b: b.frequency)
        if offset:
            bands.insert(0, Band(tuple(range(offset)), 0.0, identity=True))
        self._bands = bands

    @property
    def bands(self) -> list[Band]:
        """Channel groups ordered from low to high frequency (identity bands first)."""
        return list(self._bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_dim) -> (..., out_dim)``."""
        if x.shape[-1] != self.in_dim:
            raise PosencError(f"{self.type_name} expects coordinates with {self.in_dim} components, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_dim)
        out = self.encode(flat)
        if self.include_input:
            out = torch.cat([flat, out], dim=-1)
        return out.reshape(*lead, self.out_dim)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}"


_REGISTRY: dict[str, type[Encoding]] = {}


def register(name: str) -> Callable[[type[Encoding]], type[Encoding]]:
    """Class decorator: make an encoding buildable as ``{"type": name, ...}``."""

    def wrap(cls: type[Encoding]) -> type[Encoding]:
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def encoding_names() -> list[str]:
    return sorted(_REGISTRY)


def encoding_class(name: str) -> type[Encoding]:
    if name not in _REGISTRY:
        raise PosencError(f"unknown encoding {name!r}; valid encodings: {', '.join(encoding_names())}")
    return _REGISTRY[name]


def encoding_parameters(name: str) -> dict[str, Any]:
    """The config keys an encoding accepts with their defaults (``in_dim`` excluded)."""
    sig = inspect.signature(encoding_class(name).__init__)
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.name not in ("self", "in_dim")
    }


def build_encoding(config: dict[str, Any], in_dim: int) -> Encoding:
    """Build an encoding from a config dict such as ``{"type": "gaussian", "sigma": 10}``."""
    config = dict(config)
    name = config.pop("type", None)
    if name is None:
        raise PosencError("encoding config needs a 'type'")
    cls = encoding_class(name)
    allowed = encoding_parameters(name)
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise PosencError(
            f"encoding {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(allowed)) or 'nothing'}"
        )
    return cls(in_dim=in_dim, **config)


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value is None or value < 0 or (value == 0 and not allow_zero) or value != value:
        raise PosencError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
