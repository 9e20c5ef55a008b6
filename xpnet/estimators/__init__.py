"""The scikit-learn face of xpnet: the estimators, and loading them from a model file.

- ``_base``: what the regressor and the classifier share (parameters, ``fit``, the
  forward pass), and where a fit meets the training loop and its engine;
- ``_regressor``, ``_classifier``: the two estimators;
- ``_validation``, ``_feature_names``: what users pass, checked at the boundary;
- ``_format``: the model file, written and checked, knowing no estimator class;
  ``_loading``: estimators built from it;
- ``_stack``: many estimators fitted as one stack; ``_ensemble``: ensembles over seeds,
  built on it;
- ``_devices``: devices named by strings (``"cpu"``, ``"cuda:1"``), read alike by
  ``load`` and the ``xpnet`` command's ``--device``.
"""

from ._classifier import MLPClassifier
from ._ensemble import SeedEnsembleClassifier, SeedEnsembleRegressor
from ._loading import load, load_with_metadata
from ._regressor import MLPRegressor

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "SeedEnsembleClassifier",
    "SeedEnsembleRegressor",
    "load",
    "load_with_metadata",
]
