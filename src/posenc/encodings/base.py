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

Every encoding also takes two settings of the base class (recorded in ``.config`` when not default):

* ``domain=(lo, hi)``: the box [lo, hi]^d its inputs live in (default [0, 1]); points are mapped onto
  [0, 1]^d first, so ``domain=(-1, 1)`` fits an SDF in [-1, 1]^3 and a frequency is in cycles per
  domain side.
* ``outside``: what happens to points outside the domain. ``warn`` (default): they are encoded as the
  encoding does beyond [0, 1] (Fourier-type encodings extend periodically, grids clamp to their border)
  and a :class:`PosencWarning` says how many there were, once per encoding; ``error``: a
  :class:`PosencError`; ``clamp``: clamped into the domain, silently; ``wrap``: wrapped periodically
  into it; ``ignore``: as ``warn``, silently.

The input rule, the same for every encoding: coordinates are a floating-point tensor ``(..., in_dim)``;
they are converted to the encoding's dtype (that of its parameters and buffers, float32 unless the
module was converted with ``.double()``; an encoding with neither computes in float32, or in float64
when given float64); integer, complex and 0-d inputs, a wrong last dimension and NaN are one-line
:class:`PosencError` s. The checks are skipped while ``torch.compile`` traces.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..errors import PosencError, PosencWarning
from ..validation import coerce, signature_hints


OUTSIDE = ("warn", "error", "clamp", "wrap", "ignore")
UNIT_DOMAIN = (0.0, 1.0)


def check_domain(domain: Any, outside: Any, owner: str = "encoding") -> tuple[tuple[float, float], str]:
    """A valid ``(lo, hi)`` and ``outside`` policy, or a one-line :class:`PosencError`."""
    try:
        lo, hi = (float(v) for v in domain)
    except (TypeError, ValueError):
        raise PosencError(f"{owner}: domain must be two numbers (lo, hi), e.g. (-1, 1); got {domain!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise PosencError(f"{owner}: domain must be finite with lo < hi, got ({lo:g}, {hi:g})")
    if outside not in OUTSIDE:
        raise PosencError(f"{owner}: outside must be one of {', '.join(OUTSIDE)}; got {outside!r}")
    return (lo, hi), str(outside)


def to_unit(x: torch.Tensor, domain: tuple[float, float], outside: str) -> torch.Tensor:
    """Coordinates in ``domain`` mapped onto [0, 1]^d, clamped or wrapped as ``outside`` says."""
    lo, hi = domain
    if (lo, hi) != UNIT_DOMAIN:
        x = (x - lo) / (hi - lo)
    if outside == "clamp":
        return x.clamp(0.0, 1.0)
    if outside == "wrap":
        return torch.remainder(x, 1.0)
    return x


def coordinate_dtype(module: nn.Module, x: torch.Tensor) -> torch.dtype:
    """The dtype an encoding computes in: its first floating parameter's or buffer's; else float64 for
    float64 inputs and float32 for every other floating input (half precision is too coarse for a
    coordinate: 2^-11 is a quarter of a 512-px image's pixel)."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def check_coordinates(x: Any, in_dim: int, owner: str) -> None:
    """The shape and type part of the input rule (module docstring)."""
    if not isinstance(x, torch.Tensor):
        raise PosencError(f"{owner} expects a torch.Tensor of coordinates (..., {in_dim}), got {type(x).__name__}")
    if x.dim() == 0:
        raise PosencError(f"{owner} expects coordinates of shape (..., {in_dim}), got a 0-d tensor")
    if x.shape[-1] != in_dim:
        raise PosencError(f"{owner} expects coordinates with {in_dim} components, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise PosencError(f"{owner} expects floating-point coordinates, got {x.dtype}; convert them with x.float()")


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
    # what the encoding's formula does with points beyond [0, 1]: "extends" (Fourier-type: the formula
    # holds everywhere) or "clamps" (grids: the border cell's value); named in the out-of-domain warning
    beyond: ClassVar[str] = "extends"

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
        self.domain, self.outside = UNIT_DOMAIN, "warn"
        self._warned = False

    # -- the input rule and the domain (module docstring) ------------------------------------
    def set_domain(self, domain: Any = UNIT_DOMAIN, outside: str = "warn") -> "Encoding":
        """Set the box [lo, hi]^d of the inputs and what happens outside it; returns ``self``."""
        self.domain, self.outside = check_domain(domain, outside, self.type_name or type(self).__name__)
        self._warned = False
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates as the encoding computes on them: checked, in its dtype, mapped from the domain
        onto [0, 1]^d and clamped or wrapped as ``outside`` says. ``(..., in_dim) -> (..., in_dim)``."""
        name = self.type_name or type(self).__name__
        check_coordinates(x, self.in_dim, name)
        dtype = coordinate_dtype(self, x)
        if x.dtype != dtype:
            x = x.to(dtype)
        lo, hi = self.domain
        if x.numel() and not torch.compiler.is_compiling():
            with torch.no_grad():
                low, high = (float(v) for v in torch.aminmax(x.detach()))
            if math.isnan(low) or math.isnan(high):
                bad = int(torch.isnan(x.detach()).any(dim=-1).sum())
                raise PosencError(f"{name} got NaN coordinates ({bad:,} of {x[..., 0].numel():,} points)")
            if (low < lo or high > hi) and self.outside in ("warn", "error"):
                self._outside(x.detach(), low, high, name)
        return to_unit(x, self.domain, self.outside)

    def _outside(self, x: torch.Tensor, low: float, high: float, name: str) -> None:
        lo, hi = self.domain
        count = int(((x < lo) | (x > hi)).any(dim=-1).sum())
        what = (f"{name}: {count:,} of {x[..., 0].numel():,} points lie outside its domain [{lo:g}, {hi:g}]^{self.in_dim} "
                f"(coordinates from {low:.4g} to {high:.4g})")
        fix = f"set domain=({low:.3g}, {high:.3g}) or the like, or outside='clamp' / 'wrap' / 'ignore'"
        if self.outside == "error":
            raise PosencError(f"{what}; {fix}")
        if not self._warned:
            self._warned = True
            beyond = "clamped to the border" if self.beyond == "clamps" else "encoded as they are"
            warnings.warn(f"{what}: they are {beyond}; {fix}", PosencWarning, stacklevel=4)

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
        if isinstance(x, torch.Tensor) and x.requires_grad:
            check_coordinates(x, self.in_dim, self.type_name)
            return lambda: self(x)
        x = self.prepare(x)
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
        """:meth:`bind` on flat points ``(N, in_dim)`` already :meth:`prepare` d; the default caches a
        fixed encoding's output."""
        if self.fixed:
            with torch.no_grad():
                out = self._encode_prepared(flat)
            return lambda: out
        return lambda: self._encode_prepared(flat)

    def _encode_prepared(self, flat: torch.Tensor) -> torch.Tensor:
        """Features of prepared flat points ``(N, in_dim)`` (in [0, 1]^d): ``(N, out_dim)``."""
        out = self.encode(flat)
        return torch.cat([flat, out], dim=-1) if self.include_input else out

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
        """The config dict that rebuilds this encoding, ``in_dim`` included:
        ``build_encoding(enc.config)`` (``domain`` and ``outside`` listed when not the default)."""
        out = dict(getattr(self, "_config", {"type": self.type_name}))
        if self.domain != UNIT_DOMAIN:
            out["domain"] = list(self.domain)
        if self.outside != "warn":
            out["outside"] = self.outside
        return {**out, "in_dim": self.in_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_dim) -> (..., out_dim)``."""
        x = self.prepare(x)
        lead = x.shape[:-1]
        return self._encode_prepared(x.reshape(-1, self.in_dim)).reshape(*lead, self.out_dim)

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
        def __init__(self: Encoding, in_dim: int, *args: Any, domain: Any = UNIT_DOMAIN, outside: str = "warn",
                     **kwargs: Any) -> None:
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
            checked = check_domain(domain, outside, name)
            init(self, in_dim, **kwargs)
            self.set_domain(*checked)
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


def build_encoding(config: dict[str, Any], in_dim: int | None = None) -> Encoding:
    """Build an encoding from a config dict such as ``{"type": "gaussian", "sigma": 10}``; ``in_dim``
    from the argument or the config's ``in_dim`` (``enc.config`` has it)."""
    if not isinstance(config, dict):
        raise PosencError(f"an encoding config is a mapping such as {{'type': 'gaussian'}}, got {config!r}")
    config = dict(config)
    name = config.pop("type", None)
    if name is None:
        raise PosencError("encoding config needs a 'type'")
    given = config.pop("in_dim", None)
    if in_dim is None:
        in_dim = given
    elif given is not None and given != in_dim:
        raise PosencError(f"encoding config says in_dim={given!r}, the call in_dim={in_dim!r}")
    if in_dim is None:
        raise PosencError("build_encoding needs in_dim (the argument, or 'in_dim' in the config)")
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
