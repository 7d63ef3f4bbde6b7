"""Method names used by the CLI, config files and benchmarks, and building a :class:`Field` from a run config.

A method is an encoding name (``gaussian``), a network preset (``siren``), or a policy over an
encoding (``sape+gaussian``: spatially-adaptive progression, ``progressive+gaussian``: global
progression), optionally with settings: ``sape+gaussian:sigma=20:mask_grid=64``. Settings may name
encoding parameters, policy parameters (``epsilon``, ``mask_grid``, ``smooth``, ...) or the
network / training fields ``width``, ``depth``, ``activation``, ``output``, ``omega0``, ``lr``,
``lr_schedule``, ``lr_final_ratio``, ``iters``. Encodings declare their own preset networks
(``Encoding.preset``); :func:`posenc.config.resolve_config` applies them.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import TASK_DIMS, FitConfig, resolve_config
from .encodings import encoding_class, encoding_names
from .errors import PosencError
from .networks import Field

# Presets that are not an encoding in front of the default MLP. Sitzmann et al.: raw coordinates into
# sine layers; lr 1e-4 as in their image experiments.
PRESETS: dict[str, dict[str, Any]] = {
    "siren": {"encoding": {"type": "none"}, "network": {"type": "siren", "output": "none"}, "train": {"lr": 1e-4}},
}
PRESET_DESCRIPTIONS = {"siren": "SIREN (Sitzmann et al. 2020): raw coordinates into sine layers (omega_0 = 30, "
                                "their initialisation), linear head, lr 1e-4."}

# policy prefixes: "sape+ENC" and "progressive+ENC"; SAPE feeds the raw coordinates as identity channels
POLICY_PREFIXES = {"sape": "spatial", "progressive": "global"}
PREFIX_DESCRIPTIONS = {
    "progressive": "global progression Phi_P (SAPE eq. 4) over ENC's bands: bands open low to high, each over "
                   "T / 2n iterations, early stop at mean loss < epsilon",
    "sape": "spatially-adaptive progression Phi_SA (SAPE eq. 5-7): the eq. 4 ramp per cell of a mask grid, "
            "frozen where the local loss < epsilon; the mask interpolated between cells",
}


def method_names() -> list[str]:
    base = set(encoding_names()) | set(PRESETS)
    composed = {f"{p}+{e}" for p in POLICY_PREFIXES for e in encoding_names() if e != "none"}
    return sorted(base | composed)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gaussian:sigma=12"`` -> ``("gaussian", {"sigma": 12})``."""
    if not isinstance(spec, str) or not spec.strip():
        raise PosencError(f"method must be a method name such as gaussian or sape+gaussian, got {spec!r}")
    name, *pairs = spec.strip().split(":")
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise PosencError(f"bad method setting {pair!r} in {spec!r}; write key=value, e.g. gaussian:sigma=12")
        if not value.strip():
            raise PosencError(f"method setting {key!r} in {spec!r} has no value; write {key}=VALUE")
        if key in settings:
            raise PosencError(f"method setting {key!r} is given twice in {spec!r}")
        settings[key] = _parse_value(value.strip())
    if name not in method_names():
        raise PosencError(f"unknown method {name!r}; valid: {', '.join(method_names())}")
    return name, settings


def apply_method(base: FitConfig, spec: str) -> FitConfig:
    """A copy of ``base`` running method ``spec`` (its encoding, policy, preset and settings), resolved."""
    return resolve_config(base, method=spec)


def with_defaults(cfg: FitConfig) -> FitConfig:
    """The complete config (every setting listed, defaults included): :func:`resolve_config`."""
    return resolve_config(cfg)


def network_config(cfg: FitConfig, in_dim: int, out_dim: int) -> dict[str, Any]:
    """The network's config (``MLP.config`` / ``Siren.config`` form) for a resolved run config."""
    net = cfg.network
    if net.type == "mlp":
        return {"type": "mlp", "in_dim": in_dim, "out_dim": out_dim, "width": net.width, "depth": net.depth,
                "activation": net.activation, "output": net.output}
    if net.type == "siren":
        # raw coordinates in [0, 1]^d are centred to [-1, 1]^d, the domain omega_0 = 30 was chosen for
        return {"type": "siren", "in_dim": in_dim, "out_dim": out_dim, "width": net.width, "depth": net.depth,
                "omega_0": net.omega0, "output": net.output, "center_input": cfg.encoding["type"] == "none"}
    raise PosencError(f"unknown network {net.type!r}; valid: mlp, siren")


def build_field(cfg: FitConfig, in_dim: int | None = None, out_dim: int | None = None) -> Field:
    """The field a run config describes: encoding (registry) -> policy (over ``train.iters``) -> network."""
    from .encodings import build_encoding
    from .networks import build_network
    from .progressive import build_policy

    cfg = resolve_config(cfg)
    d_in, d_out = TASK_DIMS[cfg.task]
    in_dim, out_dim = in_dim or d_in, out_dim or d_out
    encoding = build_encoding(cfg.encoding, in_dim)
    network = build_network(network_config(cfg, encoding.out_dim, out_dim))
    wrapped = build_policy(cfg.progressive, encoding, cfg.train.iters)
    if getattr(wrapped, "active", True) is False:  # nothing to open (e.g. a one-band encoding)
        wrapped = encoding
    return Field(wrapped, network)


def count_params(cfg: FitConfig, in_dim: int, out_dim: int) -> int:
    return build_field(cfg, in_dim, out_dim).parameter_counts()["total"]


def _fit_knob(cfg: FitConfig, section: str, key: str, target: int, in_dim: int, out_dim: int, lo: int, hi: int,
              below: bool = False) -> tuple[FitConfig, int]:
    """Integer value of one (monotone) size setting closest to ``target`` parameters, by bisection
    (``below``: the largest value that stays at or under the target)."""

    def with_value(v: int) -> FitConfig:
        c = copy.deepcopy(cfg)
        if section == "encoding":
            c.encoding[key] = v
        else:
            setattr(c.network, key, v)
        return c

    def fits(v: int) -> bool:
        try:
            return count_params(with_value(v), in_dim, out_dim) <= target
        except PosencError:  # below a setting's minimum (e.g. max_grid < base_grid): too small
            return True

    # grow geometrically first, so no candidate is ever built far above the target size
    top = lo
    while top < hi and fits(top):
        lo, top = top, min(hi, top * 2)
    hi = top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    sized = []
    for v in [lo] if below else [lo, hi]:
        try:
            sized.append((abs(count_params(with_value(v), in_dim, out_dim) - target), v))
        except PosencError:
            continue
    if not sized:
        raise PosencError(f"cannot size {cfg.method!r} to {target:,} parameters with {key}")
    best = with_value(min(sized)[1])
    return best, count_params(best, in_dim, out_dim)


def match_params(cfg: FitConfig, target: int, in_dim: int, out_dim: int, tolerance: float = 0.1) -> FitConfig:
    """Resize ``cfg`` so its learned parameters (MLP + encoding) are within ``tolerance`` of ``target``.

    The encoding's own size setting (its declared ``size_knob``: grid resolution, table size) moves
    first; the MLP width then absorbs what is left. Fails with a clear message when no size fits.
    """
    if target <= 0:
        raise PosencError(f"--match-params must be positive, got {target}")
    cfg = resolve_config(cfg)
    enc_cls = encoding_class(cfg.encoding["type"])
    out = cfg
    if enc_cls.size_knob:
        key = enc_cls.size_knob
        lo, hi = enc_cls.size_range
        out, n = _fit_knob(cfg, "encoding", key, target, in_dim, out_dim, lo, hi)
        if abs(n - target) <= 0.02 * target:
            return out
        # leave the rest to the MLP width: the encoding must not overshoot
        out, n = _fit_knob(cfg, "encoding", key, target, in_dim, out_dim, lo, hi, below=True)
    out, n = _fit_knob(out, "network", "width", target, in_dim, out_dim, 1, 1 << 16)
    if abs(n - target) > tolerance * target:
        raise PosencError(f"cannot size {cfg.method!r} to {target:,} parameters (closest {n:,})")
    return out
