"""xpnet: multilayer perceptrons trained by backpropagation, on any Array API backend.

One code path, written against the Python Array API standard, trains on NumPy (CPU),
CuPy (NVIDIA GPUs), PyTorch, JAX and array-api-strict arrays alike.
"""

from ._errors import DataConversionWarning, NotFittedError
from ._estimators import MLPClassifier, MLPRegressor
from ._io import load

__version__ = "0.1.0"

__all__ = [
    "DataConversionWarning",
    "MLPClassifier",
    "MLPRegressor",
    "NotFittedError",
    "__version__",
    "load",
]
