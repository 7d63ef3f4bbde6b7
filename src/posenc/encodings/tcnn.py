"""Read a tiny-cuda-nn encoding config (its ``DOCUMENTATION.md`` dict) as the posenc encoding that
computes the same features, so a model configured for tcnn runs here (on any device)::

    enc = posenc.from_tcnn_config({"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2,
                                   "log2_hashmap_size": 19, "base_resolution": 16, "per_level_scale": 1.5}, 3)

What maps, with tcnn's defaults where a key is left out:

* ``HashGrid`` / ``Grid`` with ``type`` ``Hash`` -> ``hash_grid`` (``n_levels`` 16, ``n_features_per_level`` 2,
  ``log2_hashmap_size`` 19, ``base_resolution`` 16, ``per_level_scale`` 2): ``max_res`` is
  ``round(base_resolution * per_level_scale^(n_levels - 1))``; the level sizes agree with tcnn's to the
  rounding of the two conventions (tcnn offsets its vertices by half a cell), not bit for bit.
* ``DenseGrid`` / ``Grid`` with ``type`` ``Dense`` -> ``multires_grid`` (the same keys, no hashing).
* ``Frequency`` -> ``positional``: tcnn's ``sin(2^i pi x), cos(2^i pi x)``, i < ``n_frequencies`` (12), are
  posenc's log-linear frequencies 1 .. 2^(n - 1) over the domain (0, 2), which is the same function of
  x in [0, 1] (posenc quotes frequencies in cycles per domain side).
* ``Identity`` -> ``none`` (only with ``scale`` 1 and ``offset`` 0).

Anything else (``OneBlob``, ``SphericalHarmonics``, ``TriangleWave``, ``Composite``, interpolation other
than ``Linear``) is a one-line :class:`PosencError` naming the posenc encodings that exist.
"""

from __future__ import annotations

from typing import Any

from ..errors import PosencError
from .base import Encoding, build_encoding, encoding_names

_GRID_KEYS = {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19, "base_resolution": 16,
              "per_level_scale": 2.0, "interpolation": "Linear"}


def _take(config: dict[str, Any], defaults: dict[str, Any], otype: str) -> dict[str, Any]:
    unknown = sorted(set(config) - set(defaults) - {"otype", "type"})
    if unknown:
        raise PosencError(f"tcnn {otype} encoding: unknown key(s) {', '.join(unknown)}; it takes {', '.join(defaults)}")
    return {k: config.get(k, v) for k, v in defaults.items()}


def tcnn_to_posenc(config: dict[str, Any]) -> dict[str, Any]:
    """The posenc encoding config (``{"type": ..., ...}``) of a tiny-cuda-nn encoding config."""
    if not isinstance(config, dict) or not isinstance(config.get("otype"), str):
        raise PosencError(f"a tiny-cuda-nn encoding config is a dict with an 'otype', got {config!r}")
    otype = config["otype"]
    kind = {"HashGrid": "Hash", "DenseGrid": "Dense"}.get(otype, config.get("type", "Hash") if otype == "Grid" else None)
    if kind is not None:
        g = _take(config, _GRID_KEYS, otype)
        if g["interpolation"] != "Linear":
            raise PosencError(f"tcnn {otype}: interpolation {g['interpolation']!r} has no posenc counterpart (posenc grids are multilinear)")
        if kind not in ("Hash", "Dense"):
            raise PosencError(f"tcnn Grid type {kind!r} has no posenc counterpart; posenc has Hash (hash_grid) and Dense (multires_grid)")
        levels, base, scale = int(g["n_levels"]), int(g["base_resolution"]), float(g["per_level_scale"])
        if levels < 1 or base < 1 or scale < 1:
            raise PosencError(f"tcnn {otype}: n_levels and base_resolution must be >= 1 and per_level_scale >= 1, got {levels}, {base}, {scale}")
        out = {"levels": levels, "features_per_level": int(g["n_features_per_level"]), "base_res": base,
               "max_res": max(base, round(base * scale ** (levels - 1)))}
        if kind == "Hash":
            return {"type": "hash_grid", **out, "log2_table": int(g["log2_hashmap_size"])}
        return {"type": "multires_grid", **out}
    if otype == "Frequency":
        n = int(_take(config, {"n_frequencies": 12}, otype)["n_frequencies"])
        if n < 1:
            raise PosencError(f"tcnn Frequency: n_frequencies must be >= 1, got {n}")
        return {"type": "positional", "frequencies": n, "max_freq": float(2 ** (n - 1)), "domain": [0.0, 2.0]}
    if otype == "Identity":
        ident = _take(config, {"scale": 1.0, "offset": 0.0}, otype)
        if float(ident["scale"]) != 1.0 or float(ident["offset"]) != 0.0:
            raise PosencError("tcnn Identity with a scale or offset: give posenc the coordinates already scaled (or set domain=...)")
        return {"type": "none"}
    raise PosencError(f"tcnn encoding {otype!r} has no posenc counterpart; posenc reads HashGrid, DenseGrid, Grid, Frequency "
                      f"and Identity, and has these encodings: {', '.join(encoding_names())}")


def from_tcnn_config(config: dict[str, Any], in_dim: int) -> Encoding:
    """The posenc encoding for a tiny-cuda-nn encoding config: ``(..., in_dim) -> (..., out_dim)``."""
    return build_encoding(tcnn_to_posenc(config), in_dim)
