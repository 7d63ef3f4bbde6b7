"""The encoding interface, frequency bands and the registry that builds encodings from config dicts.

Coordinates are in [0, 1]^d (Tancik et al.'s convention, see PROTOCOLS.md): a frequency f means
f cycles per unit length, so ``sigma=10`` names the same bandwidth in every encoding.

An encoding is one class with one decorator::

    @register("my_enc")
    class MyEncoding(Encoding):
        \"\"\"One line that says what it is (the paper). The formula, the arguments.\"\"\"
        preset = {"network": {"width": 64, "depth": 2}}   # optional: the network it is used with
        size_knob = "res"                                 # optional: what --match-params resizes
        def __init__(self, in_dim: int, res: int = 16) -> None: ...

Registering records everything else: the config it was built from (``.config``), its settings and
their types (for the CLI, config files and method strings), its description (``posenc encodings``).
A file dropped into ``posenc/encodings/`` is imported by the package, so nothing else is edited.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..errors import PosencError
from ..validation import coerce, signature_hints


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

    Subclasses set ``out_dim`` at construction (through :meth:`_finish`) and implement
    :meth:`encode`; ``include_input`` prepends the raw coordinates as an identity band.

    Gradients: every encoding is differentiable (twice) with respect to its input coordinates and
    its parameters, on the general path (``forward``) and on the bound path (:meth:`bind`).
    """

    type_name: ClassVar[str] = ""
    # learning rate of this encoding's own parameters (None: the run's lr); LPE and grids train faster
    lr: ClassVar[float | None] = None
    # input dimensions the encoding takes: Fourier-type encodings any, grids 1-4 (memory ~ res^d)
    max_dim: ClassVar[int | None] = None
    # method preset: network / train settings this encoding is used with (e.g. LPE's 3x64 leaky-ReLU)
    preset: ClassVar[dict[str, dict[str, Any]]] = {}
    # the setting --match-params resizes first (grid resolution, table size) and its range
    size_knob: ClassVar[str | None] = None
    size_range: ClassVar[tuple[int, int]] = (1, 1 << 16)
    # settings whose default depends on the input dimension: {name: {d: value}} (None in the signature)
    dim_defaults: ClassVar[dict[str, dict[int, Any]]] = {}

    def __init__(self, in_dim: int, include_input: bool = False) -> None:
        super().__init__()
        if not isinstance(in_dim, int) or isinstance(in_dim, bool) or in_dim < 1:
            raise PosencError(f"input dimension must be a positive integer, got {in_dim!r}")
        if self.max_dim is not None and in_dim > self.max_dim:
            raise PosencError(f"{self.type_name or type(self).__name__} supports input dimension 1 to {self.max_dim}, got {in_dim}")
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

    def fit_to_data(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float] | None:
        """Data-dependent encodings (learned_rbf) fit themselves to the training samples ``x``, ``y``
        before training; returns a report for ``metrics.json``. Default: nothing to fit (None)."""
        return None

    def detail_map(self, x: torch.Tensor) -> tuple[torch.Tensor, str, str] | None:
        """A per-point property worth a picture (values ``(N,)``, label, file name), or None."""
        return None

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Return a function that encodes the fixed points ``x`` ``(..., in_dim)`` -> ``(..., out_dim)``.

        Whatever does not depend on parameters is computed here, once: a fixed encoding returns its
        cached output, learned encodings override :meth:`_bind` with their precomputed interpolation.
        Points that require a gradient (normals, eikonal terms) take the general path, so gradients
        reach them.
        """
        if x.shape[-1] != self.in_dim:
            raise PosencError(f"{self.type_name} expects coordinates with {self.in_dim} components, got shape {tuple(x.shape)}")
        if x.requires_grad:
            return lambda: self(x)
        lead = x.shape[:-1]
        bound = self._bind(x.reshape(-1, self.in_dim))
        return lambda: bound().reshape(*lead, self.out_dim)

    def bind_chunks(self, x: torch.Tensor, size: int) -> list[tuple[slice, Callable[[], torch.Tensor]]]:
        """:meth:`bind` on consecutive slices of ``size`` of the flat points ``x`` ``(N, in_dim)``:
        ``[(rows, () -> (rows, out_dim))]``, for a full-batch step run pass by pass."""
        flat = x.reshape(-1, self.in_dim)
        size = max(int(size), 1)
        return [(sl, self.bind(flat[sl])) for sl in (slice(a, min(a + size, flat.shape[0])) for a in range(0, flat.shape[0], size))]

    def _bind(self, flat: torch.Tensor) -> Callable[[], torch.Tensor]:
        """:meth:`bind` on flat points ``(N, in_dim)``; the default caches a fixed encoding's output."""
        if self.fixed:
            with torch.no_grad():
                out = self(flat)
            return lambda: out
        return lambda: self(flat)

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

    @property
    def config(self) -> dict[str, Any]:
        """The config dict that rebuilds this encoding: ``build_encoding(enc.config, enc.in_dim)``."""
        return dict(getattr(self, "_config", {"type": self.type_name}))

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

    # -- class-level description ----------------------------------------------------------
    @classmethod
    def settings(cls) -> dict[str, tuple[Any, Any]]:
        """Every setting (``in_dim`` excluded) -> (type hint, default as in the signature)."""
        return signature_hints(cls.__init__, skip=("self", "in_dim"))

    @classmethod
    def defaults(cls, in_dim: int | None = None) -> dict[str, Any]:
        """Every setting's default; with ``in_dim``, dimension-dependent ones are resolved too."""
        out = {name: default for name, (_, default) in cls.settings().items()}
        if in_dim is not None:
            for name, by_dim in cls.dim_defaults.items():
                if out.get(name) is None:
                    out[name] = by_dim.get(in_dim, by_dim[max(by_dim)])
        return out

    @classmethod
    def describe(cls) -> str:
        """The docstring's first paragraph on one line, without reST markup (for ``posenc encodings``)."""
        return describe_doc(cls.__doc__)


def describe_doc(doc: str | None) -> str:
    """First paragraph of a docstring, joined into one line, ``literal`` markup removed."""
    first = (doc or "").strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in first.splitlines())
    return re.sub(r"``([^`]*)``", r"\1", text).replace("`", "")


_REGISTRY: dict[str, type[Encoding]] = {}


def register(name: str) -> Callable[[type[Encoding]], type[Encoding]]:
    """Class decorator: make an encoding buildable as ``{"type": name, ...}``.

    It also wraps the constructor so that every instance keeps the complete config it was built
    with (``.config``: defaults filled in, dimension-dependent ones resolved) and refuses settings
    of the wrong type with a :class:`PosencError`.
    """

    def wrap(cls: type[Encoding]) -> type[Encoding]:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"encoding names are lower-case identifiers, got {name!r}")
        if name in _REGISTRY and _REGISTRY[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"encoding {name!r} is registered twice ({_REGISTRY[name].__qualname__}, {cls.__qualname__})")
        cls.type_name = name
        init = cls.__init__
        hints = cls.settings()

        @functools.wraps(init)
        def __init__(self: Encoding, in_dim: int, *args: Any, **kwargs: Any) -> None:
            names = list(hints)
            if len(args) > len(names):
                raise PosencError(f"encoding {name!r} takes at most {len(names)} settings after in_dim, got {len(args)}")
            for key, value in zip(names, args):
                if key in kwargs:
                    raise PosencError(f"encoding {name!r}: {key} given twice")
                kwargs[key] = value
            unknown = sorted(set(kwargs) - set(hints))
            if unknown:
                raise PosencError(f"encoding {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(hints)) or 'nothing'}")
            kwargs = {k: coerce(k, v, hints[k][0], f"{name}: ") for k, v in kwargs.items()}
            init(self, in_dim, **kwargs)
            if type(self) is cls:  # the outermost registered class records the config
                given = {k: v for k, v in kwargs.items() if v is not None}
                self._config = {"type": name, **cls.defaults(self.in_dim), **given}

        cls.__init__ = __init__  # type: ignore[method-assign]
        _REGISTRY[name] = cls
        return cls

    return wrap


def encoding_names() -> list[str]:
    return sorted(_REGISTRY)


def encoding_class(name: str) -> type[Encoding]:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise PosencError(f"unknown encoding {name!r}; valid encodings: {', '.join(encoding_names())}")
    return _REGISTRY[name]


def encoding_parameters(name: str, in_dim: int | None = None) -> dict[str, Any]:
    """The config keys an encoding accepts with their defaults (``in_dim`` excluded; with ``in_dim``
    the dimension-dependent defaults resolved)."""
    return encoding_class(name).defaults(in_dim)


def build_encoding(config: dict[str, Any], in_dim: int) -> Encoding:
    """Build an encoding from a config dict such as ``{"type": "gaussian", "sigma": 10}``."""
    if not isinstance(config, dict):
        raise PosencError(f"an encoding config is a mapping such as {{'type': 'gaussian'}}, got {config!r}")
    config = dict(config)
    name = config.pop("type", None)
    if name is None:
        raise PosencError("encoding config needs a 'type'")
    return encoding_class(name)(in_dim, **config)


# the most floats one encoding may allocate for its tables / frequencies: 2^28 (1 GB in float32, 4 GB
# with Adam's moments and the gradient); anything larger is refused before it is allocated
MAX_ENCODING_FLOATS = 1 << 28


def check_allocation(owner: str, floats: int, hint: str) -> None:
    """Refuse an encoding whose tensors would hold more than MAX_ENCODING_FLOATS numbers, naming what to lower."""
    if floats > MAX_ENCODING_FLOATS:
        raise PosencError(f"{owner} would hold {floats:,} numbers ({4 * floats / 1e9:.1f} GB), above the "
                          f"{MAX_ENCODING_FLOATS:,} an encoding may have; lower {hint}")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value is None or value < 0 or (value == 0 and not allow_zero) or value != value:
        raise PosencError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
