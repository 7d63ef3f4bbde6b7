"""Method names used by the CLI and the benchmarks, and building a :class:`Field` from a config.

A method is an encoding name (``gaussian``), a preset (``siren``), or a policy over an encoding
(``sape+gaussian``: spatially-adaptive progression, ``progressive+gaussian``: global progression),
optionally with settings: ``sape+gaussian:sigma=20:mask_grid=64``. Settings may name encoding parameters,
policy parameters (``epsilon``, ``mask_grid``, ``smooth``) or the network/training fields ``width``,
``depth``, ``activation``, ``output``, ``omega0``, ``lr``, ``lr_schedule``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from .config import TASK_DEFAULTS, FitConfig, task_policy_defaults
from .encodings import build_encoding, encoding_names, encoding_parameters
from .errors import PosencError
from .networks import MLP, Field, Siren

# Presets that are not just "an encoding in front of the default MLP".
PRESETS: dict[str, dict[str, Any]] = {
    # Sitzmann et al.: raw coordinates into sine layers; lr 1e-4 as in their image experiments.
    "siren": {"encoding": {"type": "none"}, "network": {"type": "siren", "output": "none"}, "train": {"lr": 1e-4}},
    # LPE seed: 3 hidden layers of 64, leaky-ReLU
    "lpe": {"encoding": {"type": "lpe"}, "network": {"width": 64, "depth": 3, "activation": "leaky_relu"}},
    "multires_lpe": {"encoding": {"type": "multires_lpe"}, "network": {"width": 64, "depth": 3, "activation": "leaky_relu"}},
    # instant-NGP: a small 2 x 64 ReLU MLP after the grid
    "dense_grid": {"encoding": {"type": "dense_grid"}, "network": {"width": 64, "depth": 2}},
    "multires_grid": {"encoding": {"type": "multires_grid"}, "network": {"width": 64, "depth": 2}},
    "hash_grid": {"encoding": {"type": "hash_grid"}, "network": {"width": 64, "depth": 2}},
}

# policy prefixes: "sape+ENC" and "progressive+ENC"; SAPE feeds the raw coordinates as identity channels
POLICY_PREFIXES = {"sape": "spatial", "progressive": "global"}
_POLICY_KEYS = {"epsilon": float, "mask_grid": int, "smooth": int, "blocks": int, "mask_blur": int}
_NETWORK_KEYS = {"width": int, "depth": int, "activation": str, "output": str, "omega0": float}
_TRAIN_KEYS = {"lr": float, "lr_schedule": str}


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
    name, *pairs = spec.strip().split(":")
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PosencError(f"bad method setting {pair!r} in {spec!r}; write key=value, e.g. gaussian:sigma=12")
        settings[key.strip().replace("-", "_")] = _parse_value(value.strip())
    if name not in method_names():
        raise PosencError(f"unknown method {name!r}; valid: {', '.join(method_names())}")
    return name, settings


def apply_method(base: FitConfig, spec: str) -> FitConfig:
    """A copy of ``base`` running method ``spec`` (encoding, network and training settings)."""
    name, settings = parse_method(spec)
    cfg = copy.deepcopy(base)
    cfg.method = spec
    policy, _, enc_name = name.rpartition("+")
    preset = PRESETS.get(enc_name, {"encoding": {"type": enc_name}})
    cfg.encoding = dict(preset["encoding"])
    cfg.progressive = {"type": "none"}
    if policy:
        cfg.progressive = {"type": POLICY_PREFIXES[policy], **task_policy_defaults(cfg.task, POLICY_PREFIXES[policy])}
        if "include_input" in encoding_parameters(enc_name):
            cfg.encoding["include_input"] = True
    cfg.network = dataclasses.replace(cfg.network, **preset.get("network", {}))
    cfg.train = dataclasses.replace(cfg.train, **preset.get("train", {}))
    enc_keys = encoding_parameters(cfg.encoding["type"])
    for key, value in TASK_DEFAULTS.get(cfg.task, {}).get("encoding", {}).items():
        if key in enc_keys:  # the task's encoding settings, where the encoding has them
            cfg.encoding[key] = value
    for key, value in settings.items():
        if key in _NETWORK_KEYS:
            setattr(cfg.network, key, _NETWORK_KEYS[key](value))
        elif key in _TRAIN_KEYS:
            setattr(cfg.train, key, _TRAIN_KEYS[key](value))
        elif key in _POLICY_KEYS and policy:
            cfg.progressive[key] = _POLICY_KEYS[key](value)
        elif key in enc_keys:
            cfg.encoding[key] = value
        else:
            valid = sorted(set(enc_keys) | set(_NETWORK_KEYS) | set(_TRAIN_KEYS) | (set(_POLICY_KEYS) if policy else set()))
            raise PosencError(f"method {name!r} has no setting {key!r}; valid: {', '.join(valid)}")
    return cfg


def with_defaults(cfg: FitConfig) -> FitConfig:
    """A copy of ``cfg`` whose encoding and progressive-policy dicts list every setting, the defaults
    included, so a saved ``config.json`` still re-makes the run after a default changes. Settings
    whose default is "decide at build time" keep their sentinel (e.g. ``mask_grid: 0`` = by dimension)."""
    from .progressive import policy_parameters

    def filled(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        return {"type": section["type"], **{k: v for k, v in defaults.items() if v is not None}, **section}

    out = copy.deepcopy(cfg)
    if out.encoding.get("type") is not None:
        out.encoding = filled(out.encoding, encoding_parameters(out.encoding["type"]))
    policies = policy_parameters()
    if out.progressive.get("type", "none") in set(policies) - {"none"}:
        out.progressive = filled(out.progressive, policies[out.progressive["type"]])
    return out


def build_field(cfg: FitConfig, in_dim: int, out_dim: int) -> Field:
    """Encoding (from the registry) + band-mask policy + network, as the config describes."""
    from .progressive import build_policy

    encoding = build_encoding(cfg.encoding, in_dim)
    policy = build_policy(cfg.progressive, encoding, cfg.train.iters)
    net = cfg.network
    if net.type == "mlp":
        network = MLP(encoding.out_dim, out_dim, net.width, net.depth, net.activation, net.output)
    elif net.type == "siren":
        raw = cfg.encoding.get("type") == "none"
        network = Siren(encoding.out_dim, out_dim, net.width, net.depth, net.omega0, net.output, center_input=raw)
    else:
        raise PosencError(f"unknown network {net.type!r}; valid: mlp, siren")
    return Field(encoding, network, policy if policy.active else None)


# the size setting --match-params adjusts first, per encoding; the MLP width is the fallback
SIZE_KNOBS = {"lpe": "grid", "multires_lpe": "max_grid", "dense_grid": "res", "multires_grid": "max_res", "hash_grid": "log2_table"}


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

    The encoding's own size setting (grid resolution, table size) moves first; the MLP width then
    absorbs what is left. Fails with a clear message when no size fits.
    """
    if target <= 0:
        raise PosencError(f"--match-params must be positive, got {target}")
    enc = cfg.encoding["type"]
    out = cfg
    if enc in SIZE_KNOBS:
        key = SIZE_KNOBS[enc]
        hi = 26 if key == "log2_table" else 1 << 16
        lo = 4 if key == "log2_table" else 1
        out, n = _fit_knob(cfg, "encoding", key, target, in_dim, out_dim, lo, hi)
        if abs(n - target) <= 0.02 * target:
            return out
        # leave the rest to the MLP width: the encoding must not overshoot
        out, n = _fit_knob(cfg, "encoding", key, target, in_dim, out_dim, lo, hi, below=True)
    out, n = _fit_knob(out, "network", "width", target, in_dim, out_dim, 1, 1 << 16)
    if abs(n - target) > tolerance * target:
        raise PosencError(f"cannot size {cfg.method!r} to {target:,} parameters (closest {n:,})")
    return out
