"""xpnet.model_selection gives scikit-learn's results, with the fits trained as stacks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import model_selection as sk
from sklearn.exceptions import FitFailedWarning

import xpnet
from xpnet.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        yield


def _classification(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = np.argmax(X[:, :3] + 0.5 * rng.normal(size=(n, 3)), axis=1)
    return X, y


def _regression(n=120, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, X @ rng.normal(size=5) + 0.2 * rng.normal(size=n)


def _assert_same_results(ours, theirs, *, atol=1e-9):
    """Every key of scikit-learn's cv_results_, the scores within ``atol``, the rest equal."""
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, expected in theirs.cv_results_.items():
        actual = ours.cv_results_[key]
        if key.endswith("_time"):
            assert actual.shape == expected.shape
        elif key.startswith("param_"):
            assert actual.dtype == expected.dtype
            np.testing.assert_array_equal(actual.mask, expected.mask)
            assert list(actual) == list(expected)
        elif key == "params":
            assert actual == expected
        elif key.startswith("rank_"):
            np.testing.assert_array_equal(actual, expected)
            assert actual.dtype == expected.dtype
        else:
            np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=key)
    if hasattr(theirs, "best_params_"):
        assert ours.best_params_ == theirs.best_params_
        assert ours.best_index_ == theirs.best_index_
    if hasattr(theirs, "best_score_"):
        assert abs(ours.best_score_ - theirs.best_score_) <= atol


@pytest.mark.parametrize("batch_size", [None, 32], ids=["full-batch", "mini-batch"])
def test_grid_search_equals_scikit_learns(batch_size):
    """A grid over learning rates, penalties and layer sizes (so several stacks), with
    train scores: scikit-learn's GridSearchCV over the same estimator gives the same
    cv_results_ and the same best candidate; the refit is the same fit."""
    X, y = _classification()
    est = xpnet.MLPClassifier(max_iter=32, batch_size=batch_size, random_state=0,
                              solver="sgd" if batch_size is None else "adam")  # fmt: skip
    grid = {
        "learning_rate": [0.003, 0.03, 0.3],
        "alpha": [0.0, 0.01],
        "hidden_layer_sizes": [(8,), (5, 4)],
    }
    ours = GridSearchCV(est, grid, cv=4, return_train_score=True).fit(X, y)
    theirs = sk.GridSearchCV(est, grid, cv=4, return_train_score=True).fit(X, y)
    _assert_same_results(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    assert ours.score(X, y) == theirs.score(X, y)


def test_a_grid_of_every_kind_of_fit():
    """Candidates that cannot share a stack (L-BFGS, early stopping) fit one by one; a
    list of grids leaves parameters masked where a candidate lacks them; a regressor,
    its R² and several metrics with refit by name."""
    X, y = _regression()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=40, random_state=2)
    grid = [
        {"learning_rate": [0.001, 0.01], "random_state": [0, 1]},
        {"solver": ["lbfgs"], "alpha": [0.1, 1.0]},
        {"early_stopping": [True], "batch_size": [16]},
    ]
    scoring = {"r2": "r2", "mse": "neg_mean_squared_error"}
    cv = sk.KFold(3, shuffle=True, random_state=0)
    ours = GridSearchCV(est, grid, cv=cv, scoring=scoring, refit="mse").fit(X, y)
    theirs = sk.GridSearchCV(est, grid, cv=cv, scoring=scoring, refit="mse").fit(X, y)
    _assert_same_results(ours, theirs)


def test_a_diverging_candidate_gets_error_score():
    """The fits that diverge score error_score with scikit-learn's FitFailedWarning; the
    others in their stacks are unaffected; error_score="raise" raises the fit's error."""
    X, y = _regression()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=32, solver="sgd", random_state=0)
    grid = {"learning_rate": [0.01, 50.0, 0.03]}
    fitted = []
    for search in (GridSearchCV, sk.GridSearchCV):  # both say so, in the same words
        with (
            pytest.warns(UserWarning, match=r"test scores are non-finite: \[0.11"),
            pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 9"),
        ):
            fitted.append(search(est, grid, cv=3).fit(X, y))
    ours, theirs = fitted
    _assert_same_results(ours, theirs)
    assert np.isnan(ours.cv_results_["mean_test_score"][1])
    with pytest.raises(ValueError, match="diverged"):
        GridSearchCV(est, grid, cv=3, error_score="raise").fit(X, y)


def test_randomized_search_draws_scikit_learns_candidates():
    X, y = _classification()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, batch_size=40)
    space = {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2], "alpha": [0.0, 1e-3, 1e-2],
             "random_state": [0, 1, 2]}  # fmt: skip
    ours = RandomizedSearchCV(est, space, n_iter=5, cv=3, random_state=4).fit(X, y)
    theirs = sk.RandomizedSearchCV(est, space, n_iter=5, cv=3, random_state=4).fit(X, y)
    _assert_same_results(ours, theirs)


def test_cross_validate_equals_scikit_learns():
    X, y = _classification()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(6,), max_iter=24, batch_size=30, random_state=0)
    w = np.random.default_rng(0).uniform(0.5, 1.5, size=len(X))
    ours = cross_validate(est, X, y, cv=5, return_train_score=True, return_estimator=True,
                          params={"sample_weight": w})  # fmt: skip
    theirs = sk.cross_validate(est, X, y, cv=5, return_train_score=True, return_estimator=True,
                               params={"sample_weight": w})  # fmt: skip
    assert set(ours) == set(theirs)
    for key in ("test_score", "train_score"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-12)
    for a, b in zip(ours["estimator"], theirs["estimator"], strict=True):
        np.testing.assert_allclose(a.weights_[0], b.weights_[0], rtol=1e-10, atol=1e-13)


def test_stacks_of_any_size_and_workers_give_the_same_results():
    """max_stack splits the candidates into several stacks, n_jobs runs them in worker
    processes: the same cv_results_ as one stack."""
    X, y = _classification()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(6,), max_iter=16, batch_size=50, random_state=0)
    grid = {"learning_rate": [1e-3, 1e-2, 1e-1], "alpha": [0.0, 0.1]}
    one = GridSearchCV(est, grid, cv=3).fit(X, y)
    small = GridSearchCV(est, grid, cv=3, max_stack=4).fit(X, y)
    workers = GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)
    for other in (small, workers):
        for key in one.cv_results_:
            if "test_score" in key:
                np.testing.assert_array_equal(other.cv_results_[key], one.cv_results_[key])


def test_a_dataframes_feature_names_go_to_every_fit():
    """The stacked fits record a DataFrame's column names, as fits on its rows would: no
    warning when they score the test rows, and the names on every fitted estimator."""
    pd = pytest.importorskip("pandas")
    X, y = _classification()
    X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "X has feature names, but ..."
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        out = cross_validate(est, X, y, cv=3, return_estimator=True)
        theirs = sk.cross_validate(est, X, y, cv=3)
    for fitted in out["estimator"]:
        assert list(fitted.feature_names_in_) == list(X.columns)
    np.testing.assert_allclose(out["test_score"], theirs["test_score"], rtol=0, atol=1e-12)


def test_bad_settings_are_named():
    X, y = _classification()
    est = xpnet.MLPClassifier(max_iter=2)
    with pytest.raises(ValueError, match="error_score must be"):
        GridSearchCV(est, {"alpha": [0.0]}, error_score="zero").fit(X, y)
    with pytest.raises(ValueError, match="refit must be set to a scorer key"):
        GridSearchCV(est, {"alpha": [0.0]}, scoring=["accuracy", "f1_macro"]).fit(X, y)
    with pytest.raises(TypeError, match="sample_weight as its only fit parameter"):
        GridSearchCV(est, {"alpha": [0.0]}).fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="scoring must be"):
        GridSearchCV(est, {"alpha": [0.0]}, scoring=3).fit(X, y)
    with pytest.raises(xpnet.NotFittedError):
        GridSearchCV(est, {"alpha": [0.0]}, refit=False).fit(X, y).predict(X)


def test_a_search_on_dask_stacks_its_full_batch_fits(capsys):
    """On a Dask X, full-batch fits share stacks (a task per block for every network):
    the same scores as the same search on NumPy, to within the sums' rounding."""
    da = pytest.importorskip("dask.array")
    X, y = _classification()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", batch_size=None,
                              max_iter=12, random_state=0)  # fmt: skip
    grid = {"learning_rate": [0.05, 0.2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        on_numpy = GridSearchCV(est, grid, cv=3).fit(X, y)
        capsys.readouterr()
        on_dask = GridSearchCV(est, grid, cv=3, verbose=1).fit(da.from_array(X, chunks=40), y)
    assert "Training 6 networks as 1 stacks and 0 single fits." in capsys.readouterr().out
    scores = [s.cv_results_["mean_test_score"] for s in (on_dask, on_numpy)]
    np.testing.assert_allclose(*scores, rtol=0, atol=1e-12)
    assert on_dask.best_params_ == on_numpy.best_params_
