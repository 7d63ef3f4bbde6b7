"""posenc: positional encodings that let small coordinate networks learn high-frequency signals.

Components for your own training loop::

    import torch, posenc
    enc = posenc.build_encoding({"type": "hash_grid", "levels": 16, "log2_table": 19}, in_dim=3)
    sape = posenc.SpatialProgression(enc, mask_grid=64)          # SAPE over any encoding
    field = posenc.Field(sape, posenc.MLP(sape.out_dim, 1, width=64, depth=2))
    opt = torch.optim.Adam(posenc.param_groups(field, lr=1e-3))
    ...                                                          # loss.backward(); opt.step()
    sape.update(per_point_loss.detach())                         # SAPE eq. 5-7 feedback
    posenc.save(field, "f.safetensors"); field = posenc.load("f.safetensors")

Whole fits (what the ``posenc`` command runs)::

    cfg = posenc.resolve_config("image", method="sape+gaussian:sigma=20")
    metrics = posenc.fit(cfg, "runs/astronaut")
"""

from .config import FitConfig, ImageConfig, NetworkConfig, ShapeConfig, Signal1DConfig, SilhouetteConfig, TrainConfig, resolve_config
from .encodings import *  # noqa: F401,F403 - every registered encoding class, by its class name
from .encodings import ENCODING_CLASSES, Band, Encoding, build_encoding, encoding_names, register
from .encodings.tcnn import from_tcnn_config, tcnn_to_posenc
from .errors import PosencError, PosencWarning
from .io import load, save
from .methods import apply_method
from .networks import MLP, Field, Siren, param_groups
from .progressive import GlobalProgression, Progression, SpatialProgression, build_policy
from .train import bound_step, fit, load_model

__version__ = "0.2.0"

__all__ = [
    "Band", "Encoding", "build_encoding", "encoding_names", "register",
    *sorted(cls.__name__ for cls in ENCODING_CLASSES.values()),
    "Progression", "GlobalProgression", "SpatialProgression", "build_policy",
    "MLP", "Siren", "Field", "param_groups", "save", "load",
    "FitConfig", "ImageConfig", "Signal1DConfig", "SilhouetteConfig", "ShapeConfig", "NetworkConfig", "TrainConfig",
    "resolve_config", "apply_method", "fit", "bound_step", "load_model", "PosencError", "PosencWarning",
    "from_tcnn_config", "tcnn_to_posenc",
]
