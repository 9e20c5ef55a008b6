"""scikit-learn's own estimator checks, on NumPy input.

xpnet's estimators implement scikit-learn's protocol without inheriting from its
``BaseEstimator`` (scikit-learn is not a dependency), which scikit-learn notes with a
warning; that warning is the only one silenced here.
"""

from __future__ import annotations

import warnings

import pytest

import xpnet

estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")

NOT_A_BASE_ESTIMATOR = r".*does not inherit from `sklearn.base.BaseEstimator`"

# The regressor's step size keeps full-batch descent stable on the checks' small data sets:
# check_sample_weight_equivalence_on_dense_data compares a weighted fit with a fit on
# repeated rows, which are equal up to the order of summation; at μ = 0.5 the loss
# oscillates on its 15 samples and that rounding grows to 1e-2, at μ = 0.3 it stays 1e-10.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=NOT_A_BASE_ESTIMATOR)
    parametrize = estimator_checks.parametrize_with_checks(
        [
            xpnet.MLPRegressor(hidden_layer_sizes=(10,), learning_rate=0.3, max_iter=300),
            xpnet.MLPClassifier(hidden_layer_sizes=(10,), learning_rate=1.0, max_iter=300),
            xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=300),
            xpnet.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=300),
            xpnet.SeedEnsembleRegressor(
                xpnet.MLPRegressor(hidden_layer_sizes=(10,), learning_rate=0.3, max_iter=300),
                n_estimators=3,
            ),
            xpnet.SeedEnsembleClassifier(
                xpnet.MLPClassifier(hidden_layer_sizes=(10,), learning_rate=1.0, max_iter=300),
                n_estimators=3,
            ),
        ]
    )


@parametrize
@pytest.mark.filterwarnings(f"ignore:{NOT_A_BASE_ESTIMATOR}")
# The checks' data sets are small and odd: L-BFGS meets max_iter on some, as scikit-learn's does.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("Estimator", [xpnet.MLPRegressor, xpnet.MLPClassifier])
def test_dataframe_column_names_are_checked_as_sklearn_does(Estimator):
    # Not part of check_estimator's list in scikit-learn 1.9, so called here by name.
    pytest.importorskip("pandas")
    estimator = Estimator(hidden_layer_sizes=(5,), max_iter=20)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NOT_A_BASE_ESTIMATOR)
        estimator_checks.check_dataframe_column_names_consistency(Estimator.__name__, estimator)
