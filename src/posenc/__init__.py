"""posenc: positional encodings that let small coordinate networks learn high-frequency signals.

Quick start::

    from posenc import FitConfig, fit
    cfg = FitConfig(encoding={"type": "gaussian", "sigma": 10})
    metrics = fit(cfg, "runs/astronaut")
"""

from .config import FitConfig, ImageConfig, NetworkConfig, TrainConfig
from .encodings import Band, Encoding, build_encoding, encoding_names
from .errors import PosencError
from .methods import apply_method, build_field
from .networks import MLP, Field, Siren
from .train import fit, load_model

__version__ = "0.1.0"

__all__ = [
    "Band", "Encoding", "FitConfig", "ImageConfig", "NetworkConfig", "TrainConfig", "PosencError",
    "MLP", "Siren", "Field", "apply_method", "build_encoding", "build_field", "encoding_names", "fit", "load_model",
]
