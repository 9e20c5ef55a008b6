"""scikit-learn's behaviours where a scikit-learn user expects them: the defaults, the stop on
a stalled training loss, ConvergenceWarning, n_iter_ per fit, and what it refuses."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.training.loop import READBACK_EVERY


def _data(N=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 5))
    return X, np.tanh(X @ rng.normal(size=5))


def _labels(N=300):
    X, y = _data(N)
    return X, np.digitize(y, [-0.3, 0.3])  # classes 0, 1, 2


def test_the_defaults_are_scikit_learns():
    sklearn_nn = pytest.importorskip("sklearn.neural_network")
    ours, theirs = xpnet.MLPClassifier().get_params(), sklearn_nn.MLPClassifier().get_params()
    for name in ("hidden_layer_sizes", "activation", "solver", "batch_size", "max_iter",
                 "shuffle", "tol", "n_iter_no_change", "validation_fraction", "beta_1",
                 "beta_2", "epsilon", "max_fun"):  # fmt: skip
        assert ours[name] == theirs[name], name
    assert ours["learning_rate"] is None and xpnet.MLPClassifier()._learning_rate() == 0.001


def test_adam_takes_batches_of_200_and_sgd_alone_is_the_seeds_full_batch_descent():
    X, y = _data(N=500)
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, n_iter_no_change=np.inf)
    adam = xpnet.MLPRegressor(**kw).fit(X, y)
    assert adam._optimizer_state.t == 3 * math.ceil(500 / 200)  # steps: 3 per epoch
    sgd = xpnet.MLPRegressor(solver="sgd", **kw).fit(X, y)
    assert sgd._optimizer_state.t == 3 and sgd._learning_rate() == 0.1  # one step per epoch
    explicit = xpnet.MLPRegressor(solver="sgd", batch_size=None, learning_rate=0.1, **kw)
    np.testing.assert_array_equal(explicit.fit(X, y).weights_[0], sgd.weights_[0])


def test_a_stalled_training_loss_stops_the_fit_at_the_next_read_back():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", max_iter=400, random_state=0)
    est = xpnet.MLPRegressor(tol=1e-2, n_iter_no_change=5, **kw).fit(X, y)
    assert est.n_iter_ < 400 and est.n_iter_ % READBACK_EVERY == 0
    # scikit-learn's rule, epoch by epoch: the first epoch it fires at is in the last block.
    best, count, fired = math.inf, 0, None
    for epoch, loss in enumerate(est.loss_curve_, start=1):
        count = count + 1 if loss > best - 1e-2 else 0
        best = min(best, loss)
        if count > 5:
            fired = epoch
            break
    assert fired is not None and est.n_iter_ - READBACK_EVERY < fired <= est.n_iter_
    endless = xpnet.MLPRegressor(tol=1e-2, n_iter_no_change=np.inf, **kw).fit(X, y)
    assert endless.n_iter_ == 400


def test_max_iter_ending_a_fit_warns_as_scikit_learn_does():
    X, y = _data()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with pytest.warns(xpnet.ConvergenceWarning, match="max_iter=3 epochs reached"):
        est.fit(X, y)
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.warns(sklearn_exceptions.ConvergenceWarning):  # also scikit-learn's class
        est.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.partial_fit(X, y)  # one epoch by definition: nothing to warn about
        stopped = xpnet.MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", tol=10.0,
                                     max_iter=400, random_state=0)  # fmt: skip
        stopped.fit(X, y)  # the stall rule ended it: converged, no warning
    assert stopped.n_iter_ < 400


def test_n_iter_counts_each_fits_own_epochs():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", random_state=0, n_iter_no_change=np.inf)
    warm = xpnet.MLPRegressor(max_iter=20, warm_start=True, **kw).fit(X, y)
    warm.set_params(max_iter=16).fit(X, y)
    assert warm.n_iter_ == 16 and len(warm.loss_curve_) == 36  # the curve goes on
    partial = xpnet.MLPRegressor(**kw)
    for _ in range(3):
        partial.partial_fit(X, y)
    assert partial.n_iter_ == 3


def test_a_validation_set_too_small_to_score_is_refused():
    X, y = _data(N=9)
    est = xpnet.MLPRegressor(early_stopping=True, validation_fraction=0.1)
    with pytest.raises(ValueError, match="The validation set is too small"):
        est.fit(X, y)


def test_warm_start_with_other_classes_is_refused():
    X, y = _labels()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        est.fit(X[y < 2], y[y < 2])  # a subset of the classes
    est.fit(X, y)  # the same classes: goes on


def test_partial_fit_with_other_classes_is_refused():
    X, y = _labels()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,)).partial_fit(X, y, classes=[0, 1, 2])
    est.partial_fit(X, y, classes=[0, 1, 2])  # the same again: fine
    with pytest.raises(ValueError, match=r"`classes=\[0, 1, 2, 3\]` is not the same"):
        est.partial_fit(X, y, classes=[0, 1, 2, 3])
