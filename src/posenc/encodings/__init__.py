"""Input encodings. Build one from a config dict with :func:`build_encoding`.

Every encoding maps ``(..., in_dim)`` coordinates in [0, 1]^d to ``(..., out_dim)`` features and
exposes its channel ``bands`` ordered from low to high frequency. Every module of this package is
imported here, so an encoding is one file with one ``@register`` decorator; each registered class is
exported under its class name (``posenc.encodings.GaussianFourierFeatures``).
"""

import importlib
import pkgutil

from .base import Band, Encoding, build_encoding, describe_doc, encoding_class, encoding_names, encoding_parameters, register

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        importlib.import_module(f"{__name__}.{_module}")

ENCODING_CLASSES = {name: encoding_class(name) for name in encoding_names()}
globals().update({cls.__name__: cls for cls in ENCODING_CLASSES.values()})

__all__ = ["Band", "Encoding", "build_encoding", "describe_doc", "encoding_class", "encoding_names", "encoding_parameters",
           "register", "ENCODING_CLASSES", *sorted(cls.__name__ for cls in ENCODING_CLASSES.values())]
