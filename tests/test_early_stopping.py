"""Early stopping: scikit-learn's rule, decided at read-back blocks, best parameters restored."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import assert_close

import xpnet
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.losses import OBJECTIVES
from xpnet.core.optimizers import gradient_descent
from xpnet.core.scores import accuracy, r2_score
from xpnet.core.step import Samples, Step
from xpnet.engines.eager import Eager
from xpnet.training.loop import READBACK_EVERY, EarlyStopping, run_epochs
from xpnet.training.samples import validation_split
from xpnet.training.schedules import Schedule


def _blobs(N=120, n_in=4, n_classes=3, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_in))
    y = np.arange(N) % n_classes
    return centres[y] + noise * rng.normal(size=(N, n_in)), y


def _regression(N=100, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    return X, np.tanh(X @ rng.normal(size=n_in)) + 0.3 * rng.normal(size=N)


def _network(layer_sizes, seed=0):
    rng = np.random.default_rng(seed)
    W = [rng.normal(scale=0.5, size=(m, n)) for n, m in itertools.pairwise(layer_sizes)]
    b = [rng.normal(scale=0.1, size=m) for m in layer_sizes[1:]]
    return W, b


def _host_score(W, b, X, Y, f, score):
    A = X.T
    for W_l, b_l, f_l in zip(W, b, f, strict=True):
        A = f_l.f(W_l @ A + b_l[:, None], xp=np)
    return float(score(A, Y, xp=np))


@pytest.mark.parametrize("task", ["classify", "regress"])
def test_stops_by_sklearns_rule_at_a_block_boundary_and_restores_the_best(task):
    if task == "classify":
        X, y = _blobs()
        Y = (np.arange(3)[:, None] == y[None, :]).astype(np.float64)
        f = [ACTIVATIONS["sigmoid"], ACTIVATIONS["softmax"]]
        objective, score, mu = OBJECTIVES[("cross_entropy", "softmax")], accuracy, 2.0
    else:
        X, y = _regression()
        Y = y[None, :]
        f = [ACTIVATIONS["tanh"], ACTIVATIONS["identity"]]
        objective, score, mu = OBJECTIVES[("mse", "identity")], r2_score, 0.3
    X_tr, Y_tr, X_val, Y_val = X[:80], Y[:, :80], X[80:], Y[:, 80:]
    W0, b0 = _network([X.shape[1], 8, Y.shape[0]])
    optimizer = gradient_descent()
    schedule = Schedule("constant", mu)
    engine = Eager(Step(f, objective, optimizer, 0.0, np), device="cpu", widest=8)
    kw = dict(engine=engine, schedule=schedule,
              schedule_state=schedule.start(), optimizer_state=optimizer.init([*W0, *b0], xp=np),
              batch_size=None, shuffle=False, rng=np.random.default_rng(0))  # fmt: skip
    n_iter_no_change, tol, max_epochs = 5, 1e-3, 400

    # The oracle: one epoch at a time, scored on the host, sklearn's rule applied per epoch.
    W, b, params, scores, stop_at = W0, b0, [], [], None
    for _ in range(max_epochs):
        with engine.open(Samples(X_tr, Y_tr)) as (data, _):
            W, b, *_ = run_epochs(W, b, data, n_epochs=1, **kw)
        params.append((W, b))
        scores.append(_host_score(W, b, X_val, Y_val, f, score))
    best, no_change = -math.inf, 0
    for epoch, s in enumerate(scores):
        no_change = 0 if s >= best + tol else no_change + 1
        best = max(best, s)
        if no_change > n_iter_no_change:
            stop_at = epoch
            break
    assert stop_at is not None and stop_at < max_epochs - READBACK_EVERY, "no early stop to test"

    with engine.open(Samples(X_tr, Y_tr), Samples(X_val, Y_val)) as (data, validation):
        history = run_epochs(
            W0, b0, data, n_epochs=max_epochs, **kw,
            early_stopping=EarlyStopping(validation, score, n_iter_no_change, tol),
        )  # fmt: skip
    n = len(history.losses)
    assert n == (stop_at // READBACK_EVERY + 1) * READBACK_EVERY  # the end of stop_at's block
    np.testing.assert_allclose(history.validation_scores, scores[:n], rtol=1e-12, atol=1e-15)
    assert len(history.validation_losses) == n
    k = int(np.argmax(scores[:n]))  # the first best epoch
    for got, want in zip(history.W + history.b, params[k][0] + params[k][1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_estimators_default_to_no_early_stopping():
    X, y = _blobs()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X, y)
    assert est.n_iter_ == 20
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.best_loss_ == min(est.loss_curve_)


def test_classifier_early_stopping_attributes():
    X, y = _blobs(N=300)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(8,), learning_rate=2.0, max_iter=2000,
                              random_state=0, early_stopping=True, n_iter_no_change=5)  # fmt: skip
    est.fit(X, y)
    assert est.n_iter_ < 2000 and est.n_iter_ % READBACK_EVERY == 0
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    assert len(est.loss_curve_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    # Accuracy on the 30 held-out samples: multiples of 1/30.
    assert all(abs(s * 30 - round(s * 30)) < 1e-9 for s in est.validation_scores_)
    assert est.score(X, y) > 0.8


def test_regressor_scores_are_r2():
    X, y = _regression(N=200)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", learning_rate=0.3,
                             max_iter=300, random_state=0, early_stopping=True)  # fmt: skip
    est.fit(X, y)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert -1.0 < est.best_validation_score_ <= 1.0 and est.best_loss_ is None


def test_r2_score_matches_sklearn_and_handles_constant_targets():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    Y, O = rng.normal(size=(3, 20)), rng.normal(size=(3, 20))
    assert float(r2_score(O, Y, xp=np)) == pytest.approx(metrics.r2_score(Y.T, O.T), rel=1e-12)
    const = np.ones((1, 5))
    assert float(r2_score(const, const, xp=np)) == 1.0
    assert float(r2_score(const + 1.0, const, xp=np)) == 0.0


def test_validation_split_is_stratified_seeded_and_ordered():
    X, y = _blobs(N=100, n_classes=3)
    y = np.where(np.arange(100) < 70, 0, y)  # unbalanced: 0 dominates
    Y = (np.arange(3)[:, None] == y[None, :]).astype(np.float64)
    parts = validation_split(X, Y, fraction=0.2, rng=np.random.default_rng(1), stratify=True,
                             xp=np, device="cpu")  # fmt: skip
    (X_tr, _, *_), (X_val, Y_val, *_) = parts
    assert X_val.shape == (20, 4) and X_tr.shape == (80, 4)
    counts = Y.sum(axis=1)
    np.testing.assert_allclose(Y_val.sum(axis=1), np.round(counts * 0.2), atol=1)
    assert Y_val.sum() == 20
    # Every sample lands in exactly one part, in its original order.
    rows = [np.flatnonzero((X == x).all(axis=1))[0] for x in np.concatenate([X_tr, X_val])]
    assert sorted(rows) == list(range(100))
    assert rows[:80] == sorted(rows[:80]) and rows[80:] == sorted(rows[80:])
    again = validation_split(X, Y, fraction=0.2, rng=np.random.default_rng(1), stratify=True,
                             xp=np, device="cpu")  # fmt: skip
    np.testing.assert_array_equal(again[1].X, X_val)


def test_early_stopping_on_every_backend(backend):
    X, y = _blobs(N=150)
    kw = dict(hidden_layer_sizes=(6,), learning_rate=2.0, max_iter=200, random_state=0,
              early_stopping=True, n_iter_no_change=3)  # fmt: skip
    reference = xpnet.MLPClassifier(**kw).fit(X, y)
    est = xpnet.MLPClassifier(**kw).fit(backend.asarray(X), backend.asarray(y))
    assert est.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(est.validation_scores_, reference.validation_scores_)
    for W, W_ref in zip(est.weights_, reference.weights_, strict=True):
        assert_close(W, W_ref, backend, rtol=1e-9, atol=1e-12)


def test_callback_sees_every_epoch_in_blocks():
    X, y = _blobs()
    calls = []
    est = xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=40, random_state=0)
    est.fit(X, y, callback=lambda losses, scores: calls.append((losses, scores)))
    assert [len(losses) for losses, _ in calls] == [16, 16, 8]
    assert [v for losses, _ in calls for v in losses] == est.loss_curve_
    assert all(scores is None for _, scores in calls)

    calls.clear()
    est.set_params(early_stopping=True, n_iter_no_change=1000).fit(
        X, y, callback=lambda *a: calls.append(a)
    )
    assert [v for _, scores in calls for v in scores] == est.validation_scores_


def test_partial_fit_never_stops_early():
    X, y = _blobs()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(5,), early_stopping=True, random_state=0)
    est.partial_fit(X, y).partial_fit(X, y)
    assert est.n_iter_ == 2 and est.validation_scores_ is None


def test_warm_start_continues_the_validation_record():
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0, early_stopping=True,
              n_iter_no_change=1000, warm_start=True)  # fmt: skip
    est = xpnet.MLPClassifier(**kw).fit(X, y)
    first, W_first = list(est.validation_scores_), est.weights_[0].copy()
    est.fit(X, y)
    assert est.validation_scores_[:20] == first and len(est.validation_scores_) == 40
    # The second fit is judged on its own split alone, and its training is kept.
    assert est.best_validation_score_ == max(est.validation_scores_[20:])
    assert not np.array_equal(est.weights_[0], W_first)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"early_stopping": "yes"}, TypeError, "early_stopping must be True or False, got 'yes'"),
        ({"validation_fraction": 0.0}, ValueError,
         r"validation_fraction must be a number in \(0, 1\), got 0.0"),
        ({"validation_fraction": 1}, ValueError, "validation_fraction .* got 1"),
        ({"validation_fraction": "a"}, ValueError, "validation_fraction .* got 'a'"),
        ({"n_iter_no_change": 0}, ValueError,
         "n_iter_no_change must be an int >= 1 or numpy.inf, got 0"),
        ({"n_iter_no_change": 2.5}, ValueError, "n_iter_no_change .* got 2.5"),
        ({"tol": -1.0}, ValueError, "tol must be a finite number >= 0, got -1.0"),
        ({"tol": float("nan")}, ValueError, "tol .* got nan"),
    ],
)  # fmt: skip
def test_bad_early_stopping_parameters_are_named(params, error, match):
    X, y = _blobs(N=20)
    with pytest.raises(error, match=match):
        xpnet.MLPClassifier(**params).fit(X, y)


def test_too_few_samples_to_hold_out():
    with pytest.raises(ValueError, match=r"validation_fraction=0.1 of 1 sample\(s\) leaves 0"):
        xpnet.MLPRegressor(early_stopping=True).fit(np.ones((1, 2)), np.ones(1))
