"""xpnet: multilayer perceptrons trained by backpropagation, on any Array API backend.

One code path, written against the Python Array API standard, trains on NumPy (CPU),
CuPy (NVIDIA GPUs), PyTorch, JAX and array-api-strict arrays alike.

The package is layered, each layer importing only those below it:

- ``xpnet.core``: the derivation (activations, losses, update rules, backpropagation,
  the step), functions over an array namespace ``xp``;
- ``xpnet.training``: the loop of epochs, schedules, stopping rules, checkpoints, and
  the interface of the engines that run it;
- ``xpnet.engines``: the ways to run the core (eager, CuPy's fused kernels, JAX,
  PyTorch, Dask), and the one function that chooses among them;
- ``xpnet.estimators``: ``MLPRegressor``, ``MLPClassifier`` and the model file;
- ``xpnet.cli``: the ``xpnet`` command.

Beside the layers, and usable by all but the core: ``_host`` (arrays brought to the
host), ``_errors`` (scikit-learn-compatible exceptions) and ``_files`` (the files xpnet
saves and reads: regular files only, written atomically).
"""

from ._errors import ConvergenceWarning, DataConversionWarning, NotFittedError
from ._version import __version__
from .estimators import (
    MLPClassifier,
    MLPRegressor,
    SeedEnsembleClassifier,
    SeedEnsembleRegressor,
    load,
)
from .training.interrupts import sigterm_as_interrupt

__all__ = [
    "ConvergenceWarning",
    "DataConversionWarning",
    "MLPClassifier",
    "MLPRegressor",
    "NotFittedError",
    "SeedEnsembleClassifier",
    "SeedEnsembleRegressor",
    "__version__",
    "load",
    "sigterm_as_interrupt",
]
