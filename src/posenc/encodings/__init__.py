"""Input encodings. Build one from a config dict with :func:`build_encoding`.

Every encoding maps ``(..., in_dim)`` coordinates in [0, 1]^d to ``(..., out_dim)`` features and
exposes its channel ``bands`` ordered from low to high frequency.
"""

from .base import Band, Encoding, build_encoding, encoding_class, encoding_names, encoding_parameters, register
from .fourier import BasicEncoding, GaussianFourierFeatures, NoEncoding, PositionalEncoding
from .learned_rbf import LearnedRBFEmbedding
from .grids import DenseGridEncoding, HashGridEncoding, MultiResGridEncoding
from .lpe import LocalPositionalEncoding, MultiResLPE
from .rbf import RBFGridEncoding

__all__ = [
    "Band",
    "Encoding",
    "build_encoding",
    "encoding_class",
    "encoding_names",
    "encoding_parameters",
    "register",
    "NoEncoding",
    "BasicEncoding",
    "PositionalEncoding",
    "GaussianFourierFeatures",
    "RBFGridEncoding",
    "DenseGridEncoding",
    "MultiResGridEncoding",
    "HashGridEncoding",
    "LocalPositionalEncoding",
    "MultiResLPE",
    "LearnedRBFEmbedding",
]
