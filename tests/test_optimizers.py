"""Update rules, schedules, sample weights and multi-label targets, against scikit-learn's MLP."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import warnings

import array_api_compat.numpy as np_xp
import numpy as np
import pytest
from conftest import assert_close, assert_same_kind

import xpnet
from xpnet._host import to_numpy
from xpnet.core.optimizers import adam, gradient_descent, momentum
from xpnet.training.loop import READBACK_EVERY

#: scikit-learn's settings of the three update rules, which xpnet takes by the same names.
OPTIMIZERS = {
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam"),
}
#: Step sizes small enough that 12 full-batch steps stay well behaved.
MU = {"sgd": 0.05, "adam": 0.01}


# -- data ----------------------------------------------------------------------------------


def _regression(N=30, n_in=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    return X, np.tanh(X @ rng.normal(size=n_in)) + 0.1 * rng.normal(size=N)


def _three_classes(N=30, seed=0):
    X, y = _regression(N=N, seed=seed)
    return X, np.digitize(y, [-0.3, 0.3])


def _multilabel(N=30, seed=0):
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(
        n_samples=N, n_features=4, n_classes=3, n_labels=2, random_state=seed
    )
    return (X - X.mean(axis=0)) / X.std(axis=0), Y


def _start(layer_sizes, seed=7):
    """Starting weights W⁽ˡ⁾ of shape (n_l, n_{l-1}) and biases, shared by both libraries."""
    rng = np.random.default_rng(seed)
    W = [rng.uniform(-0.5, 0.5, size=(m, n)) for n, m in itertools.pairwise(layer_sizes)]
    b = [rng.uniform(-0.5, 0.5, size=m) for m in layer_sizes[1:]]
    return W, b


def _positive_weights(N, seed=1):
    return np.random.default_rng(seed).uniform(0.2, 2.0, size=N)


def _assert_same_parameters(est, theirs, *, rtol=1e-10):
    for W, b, coef, intercept in zip(
        est.weights_, est.biases_, theirs.coefs_, theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(W, coef.T, rtol=rtol, atol=1e-14)
        np.testing.assert_allclose(b, intercept, rtol=rtol, atol=1e-14)


# -- step for step against scikit-learn ----------------------------------------------------


def _pair(task, *, alpha=0.0, hidden=(5,), batch_size=None, **params):
    """xpnet's and scikit-learn's estimator for ``task``, from the same starting weights.

    Both are set up for epochs in sample order (full batch unless ``batch_size``) that
    never stop by themselves.  scikit-learn is fitted once to build its layers; its
    parameters, optimizer, sample count and stopping record are then replaced by a
    fresh start.  xpnet's estimator is unfitted with its parameters assigned, so its
    first fit or partial_fit starts from them with a fresh optimizer state.
    """
    sklearn_nn = pytest.importorskip("sklearn.neural_network")
    from sklearn.exceptions import ConvergenceWarning

    X, y = {"regress": _regression, "classify": _three_classes, "multilabel": _multilabel}[task]()
    n_out = {"regress": 1, "classify": 3, "multilabel": 3}[task]
    W0, b0 = _start([X.shape[1], *hidden, n_out])
    mu = params.pop("learning_rate", MU[params["solver"]])
    if params["solver"] == "sgd":
        params.setdefault("momentum", 0.0)  # scikit-learn's default is 0.9, xpnet's 0
    ours_cls = xpnet.MLPRegressor if task == "regress" else xpnet.MLPClassifier
    ours = ours_cls(
        hidden_layer_sizes=hidden, activation="tanh", learning_rate=mu, alpha=alpha,
        batch_size=batch_size, shuffle=False, warm_start=True, **params,
    )  # fmt: skip
    ours.weights_, ours.biases_ = [W.copy() for W in W0], [b.copy() for b in b0]

    schedule = params.pop("learning_rate_schedule", "constant")
    theirs_cls = sklearn_nn.MLPRegressor if task == "regress" else sklearn_nn.MLPClassifier
    theirs = theirs_cls(
        hidden_layer_sizes=hidden, activation="tanh", learning_rate_init=mu, alpha=alpha,
        learning_rate=schedule, batch_size=batch_size or len(X), shuffle=False, max_iter=1,
        tol=params.pop("tol", 0.0), n_iter_no_change=params.pop("n_iter_no_change", 10**6),
        warm_start=True, **params,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X, y)
    theirs.coefs_ = [W.T.copy() for W in W0]  # scikit-learn stores Wᵀ
    theirs.intercepts_ = [b.copy() for b in b0]
    del theirs._optimizer  # partial_fit would carry on the setup fit's optimizer
    theirs.loss_curve_, theirs.t_, theirs.n_iter_ = [], 0, 0
    theirs.best_loss_, theirs._no_improvement_count = np.inf, 0
    return ours, theirs, X, y


@pytest.mark.parametrize("route", ["fit", "partial_fit"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_regressor_follows_sklearn_step_for_step(optimizer, alpha, weighted, route):
    _follow_sklearn("regress", optimizer, alpha, weighted, route)


@pytest.mark.parametrize(
    ("optimizer", "alpha", "weighted", "route"),
    [
        ("momentum", 0.1, True, "partial_fit"),
        ("nesterov", 0.0, False, "fit"),
        ("nesterov", 0.1, True, "partial_fit"),
        ("adam", 0.0, True, "fit"),
        ("adam", 0.1, False, "partial_fit"),
    ],
)
def test_classifier_follows_sklearn_step_for_step(optimizer, alpha, weighted, route):
    _follow_sklearn("classify", optimizer, alpha, weighted, route)


@pytest.mark.parametrize(
    ("optimizer", "alpha", "weighted", "route"),
    [
        ("momentum", 0.1, False, "fit"),
        ("nesterov", 0.0, True, "partial_fit"),
        ("adam", 0.1, True, "partial_fit"),
        ("adam", 0.0, False, "fit"),
    ],
)
def test_multilabel_classifier_follows_sklearn_step_for_step(optimizer, alpha, weighted, route):
    _follow_sklearn("multilabel", optimizer, alpha, weighted, route)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_fit_restarts_the_optimizer_as_sklearn_does(optimizer):
    from sklearn.exceptions import ConvergenceWarning

    ours, theirs, X, y = _pair("regress", **OPTIMIZERS[optimizer])
    for _ in range(2):  # warm_start keeps the parameters; the moments start from zero
        ours.set_params(max_iter=6).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.set_params(max_iter=6).fit(X, y)
        _assert_same_parameters(ours, theirs)
        assert ours._optimizer_state.t == 6 and ours.n_iter_ == theirs.n_iter_ == 6
        assert len(ours.loss_curve_) == len(theirs.loss_curve_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_mini_batches_follow_sklearn_step_for_step(optimizer):
    # Batches of 7, 7, 7, 7 and 2 in sample order: Adam counts a step per batch.
    _follow_sklearn("regress", optimizer, 0.1, True, "partial_fit", steps=4, batch_size=7)


def _follow_sklearn(task, optimizer, alpha, weighted, route, *, steps=12, batch_size=None):
    from sklearn.exceptions import ConvergenceWarning

    ours, theirs, X, y = _pair(task, alpha=alpha, batch_size=batch_size, **OPTIMIZERS[optimizer])
    s = _positive_weights(len(X)) if weighted else None
    if task == "multilabel":
        assert theirs.out_activation_ == "logistic"
    if route == "fit":
        # scikit-learn's fit restarts its optimizer even with warm_start: one fit of 12 epochs.
        ours.set_params(max_iter=steps).fit(X, y, sample_weight=s)
        theirs.set_params(max_iter=steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.fit(X, y, sample_weight=s)
        _assert_same_parameters(ours, theirs)
    else:
        for _ in range(steps):
            ours.partial_fit(X, y, sample_weight=s)
            theirs.partial_fit(X, y, sample_weight=s)
            _assert_same_parameters(ours, theirs)
    assert ours.n_iter_ == steps and ours.t_ == steps * len(X)
    # One output (or labels whose binary log losses are summed): the same E_total.
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_invscaling_follows_sklearn_step_for_step():
    ours, theirs, X, y = _pair(
        "regress", solver="sgd", momentum=0.5, learning_rate=0.2,
        learning_rate_schedule="invscaling", power_t=0.25,
    )  # fmt: skip
    for k in range(12):
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
        _assert_same_parameters(ours, theirs)
        assert ours.t_ == theirs.t_ == (k + 1) * len(X)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert theirs._optimizer.learning_rate == pytest.approx(0.2 / (12 * len(X) + 1) ** 0.25)


def test_invscaling_restarts_at_each_warm_start_fit_as_sklearn_does():
    from sklearn.exceptions import ConvergenceWarning

    # scikit-learn starts a new optimizer at every fit: its first epoch takes μ itself,
    # the later ones μ / (t + 1)^power_t with t counted on from the earlier fits.
    ours, theirs, X, y = _pair(
        "regress", solver="sgd", learning_rate=0.2, learning_rate_schedule="invscaling",
        power_t=0.25,
    )  # fmt: skip
    for _ in range(2):
        ours.set_params(max_iter=6).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.set_params(max_iter=6).fit(X, y)
        _assert_same_parameters(ours, theirs)
    assert ours.t_ == theirs.t_ == 12 * len(X)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_adaptive_schedule_follows_sklearn_call_for_call():
    # A large tol makes every epoch "no improvement": μ is divided every third call.
    ours, theirs, X, y = _pair(
        "regress", solver="sgd", learning_rate=0.1, learning_rate_schedule="adaptive",
        tol=0.05, n_iter_no_change=2,
    )  # fmt: skip
    rates = []
    for _ in range(30):
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
        _assert_same_parameters(ours, theirs)
        assert ours._schedule_state.mu == pytest.approx(theirs._optimizer.learning_rate, rel=1e-15)
        # Below μ = 1e-6 a stall "stops" (a no-op for partial_fit) and keeps the count.
        assert ours._schedule_state.no_change == theirs._no_improvement_count
        rates.append(ours._schedule_state.mu)
    assert len(set(rates)) == 9, f"μ was not divided 8 times: {rates}"
    assert min(rates) == pytest.approx(0.1 / 5**8, rel=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_adaptive_schedule_in_fit_decides_at_read_back_blocks():
    """With fit, μ changes only between blocks of READBACK_EVERY epochs.

    The oracle trains block by block at a constant μ and applies scikit-learn's rule to
    each block's losses on the host: divide μ by 5 after more than n_iter_no_change
    epochs without an improvement of tol, stop at a stall with μ ≤ 1e-6.
    """
    X, y = _regression()
    W0, b0 = _start([X.shape[1], 5, 1])
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd")
    mu0, tol, patience, max_iter = 0.1, 0.05, 2, 4 * READBACK_EVERY
    est = xpnet.MLPRegressor(
        learning_rate=mu0, learning_rate_schedule="adaptive", tol=tol,
        n_iter_no_change=patience, max_iter=max_iter, warm_start=True, **kw,
    )  # fmt: skip
    est.weights_, est.biases_ = list(W0), list(b0)
    est.fit(X, y)

    mu, best, count, stop = mu0, math.inf, 0, False
    W, b, losses, first_division = list(W0), list(b0), [], None
    while not stop and len(losses) < max_iter:
        block = xpnet.MLPRegressor(
            learning_rate=mu, max_iter=min(READBACK_EVERY, max_iter - len(losses)),
            warm_start=True, **kw,
        )  # fmt: skip
        block.weights_, block.biases_ = W, b
        block.fit(X, y)
        W, b = block.weights_, block.biases_
        first_epoch = len(losses) + 1
        losses += block.loss_curve_  # the whole block is trained before the rule is applied
        for epoch, E in enumerate(block.loss_curve_, start=first_epoch):
            count = count + 1 if E > best - tol else 0
            best = min(best, E)
            if count > patience:
                if mu <= 1e-6:
                    stop = True
                    break
                mu, count = mu / 5.0, 0
                first_division = first_division or epoch

    # The rule fired inside the first block, yet μ changed only from the second block on.
    assert first_division is not None and first_division < READBACK_EVERY
    assert stop and len(losses) % READBACK_EVERY == 0 and len(losses) < max_iter
    assert est.n_iter_ == len(losses)
    np.testing.assert_array_equal(est.loss_curve_, losses)
    for P, P_ref in zip(est.weights_ + est.biases_, W + b, strict=True):
        np.testing.assert_array_equal(P, P_ref)
    assert est._schedule_state.mu == mu <= 1e-6


# -- sample weights ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 8])
def test_weights_of_one_change_nothing(batch_size):
    X, y = _regression()
    kw = dict(hidden_layer_sizes=(4,), solver="adam", alpha=0.1, max_iter=10, random_state=0)
    kw |= dict(batch_size=batch_size)
    plain = xpnet.MLPRegressor(**kw).fit(X, y)
    ones = xpnet.MLPRegressor(**kw).fit(X, y, sample_weight=np.ones(len(X)))
    one = xpnet.MLPRegressor(**kw).fit(X, y, sample_weight=1)
    for est in (ones, one):
        for P, P_ref in zip(
            est.weights_ + est.biases_, plain.weights_ + plain.biases_, strict=True
        ):
            np.testing.assert_array_equal(P, P_ref)
        np.testing.assert_array_equal(est.loss_curve_, plain.loss_curve_)


def test_integer_weights_equal_repeated_rows():
    X, y = _regression()
    counts = np.random.default_rng(3).integers(1, 4, size=len(X))
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", momentum=0.9, learning_rate=0.05)
    kw |= dict(alpha=0.1, max_iter=10, random_state=0)
    weighted = xpnet.MLPRegressor(**kw).fit(X, y, sample_weight=counts)
    repeated = xpnet.MLPRegressor(**kw).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    for P, P_ref in zip(
        weighted.weights_ + weighted.biases_, repeated.weights_ + repeated.biases_, strict=True
    ):
        np.testing.assert_allclose(P, P_ref, rtol=1e-10)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)


def test_a_scalar_weight_equals_no_weights():
    # Without a penalty, every sample weighing c is the unweighted mean (α/Σsᵢ would differ).
    X, y = _regression()
    kw = dict(hidden_layer_sizes=(4,), solver="adam", max_iter=10, random_state=0)
    plain = xpnet.MLPRegressor(**kw).fit(X, y)
    scalar = xpnet.MLPRegressor(**kw).fit(X, y, sample_weight=3.0)
    for P, P_ref in zip(
        scalar.weights_ + scalar.biases_, plain.weights_ + plain.biases_, strict=True
    ):
        np.testing.assert_allclose(P, P_ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(scalar.loss_curve_, plain.loss_curve_, rtol=1e-12)


def _host_loss(W, b, X, y, s, alpha, task):
    """E_total written out on the host: Σᵢ sᵢ E(cᵢ) / Σᵢ sᵢ + (α / 2Σᵢ sᵢ) Σₗ ‖W⁽ˡ⁾‖²."""
    A = X.T
    for l, (W_l, b_l) in enumerate(zip(W, b, strict=True)):
        Z = W_l @ A + b_l[:, None]
        A = np.tanh(Z) if l < len(W) - 1 else Z
    if task == "regress":
        E = 0.5 * np.sum((y[None, :] - A) ** 2, axis=0)
    else:  # multi-label: one sigmoid per label, binary cross-entropy summed over the labels
        P = 1.0 / (1.0 + np.exp(-A))
        E = -np.sum(y.T * np.log(P) + (1 - y.T) * np.log(1 - P), axis=0)
    S = np.sum(s)
    return np.sum(s * E) / S + alpha / (2 * S) * sum(np.sum(W_l**2) for W_l in W)


@pytest.mark.parametrize("task", ["regress", "multilabel"])
def test_weighted_gradients_are_finite_differences_of_the_penalised_loss(task):
    X, y = _regression(N=20) if task == "regress" else _multilabel(N=20)
    n_out = 1 if task == "regress" else 3
    cls = xpnet.MLPRegressor if task == "regress" else xpnet.MLPClassifier
    alpha, s = 0.3, _positive_weights(len(X))
    est = cls(hidden_layer_sizes=(4,), activation="tanh", alpha=alpha, max_iter=1)
    est.set_params(random_state=0).fit(X, y)
    W, b = _start([X.shape[1], 4, n_out])
    est.weights_, est.biases_ = W, b
    grad_W, grad_b = est.gradients(X, y, sample_weight=s)

    h = 1e-6
    for P, G in zip(W + b, grad_W + grad_b, strict=True):
        numeric = np.zeros_like(P)
        for i in np.ndindex(P.shape):
            old = P[i]
            P[i] = old + h
            up = _host_loss(W, b, X, y, s, alpha, task)
            P[i] = old - h
            down = _host_loss(W, b, X, y, s, alpha, task)
            P[i] = old
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(G, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_batches_of_zero_weight_take_no_step(solver):
    X, y = _regression(N=20)
    s = np.r_[np.zeros(10), np.ones(10)]
    kw = dict(hidden_layer_sizes=(4,), solver=solver, momentum=0.9, max_iter=5, random_state=0)
    weighted = xpnet.MLPRegressor(batch_size=10, shuffle=False, **kw).fit(X, y, sample_weight=s)
    second_half = xpnet.MLPRegressor(**kw).fit(X[10:], y[10:])
    for P, P_ref in zip(
        weighted.weights_ + weighted.biases_,
        second_half.weights_ + second_half.biases_,
        strict=True,
    ):
        np.testing.assert_allclose(P, P_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(weighted.loss_curve_, second_half.loss_curve_, rtol=1e-13)
    assert weighted._optimizer_state.t == second_half._optimizer_state.t == 5


BAD_WEIGHTS = [
    (np.r_[-1.0, np.ones(19)], ValueError, r"sample_weight must be >= 0, got \[-1\.0\]"),
    (np.r_[np.nan, np.ones(19)], ValueError, "sample_weight contains NaN or infinity"),
    (np.r_[np.inf, np.ones(19)], ValueError, "sample_weight contains NaN or infinity"),
    (np.ones(19), ValueError, r"sample_weight must have shape \(20,\).*got shape \(19,\)"),
    (np.ones((20, 1)), ValueError, r"sample_weight must have shape \(20,\).*got shape \(20, 1\)"),
    (np.zeros(20), ValueError, "sample_weight is zero for every sample"),
    (np.array(["a"] * 20), ValueError, "sample_weight must hold numbers"),
    (-2.0, ValueError, r"sample_weight must be >= 0, got \[-2\.0"),
]


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    BAD_WEIGHTS,
    ids=["negative", "nan", "inf", "wrong-length", "2-d", "all-zero", "strings", "negative-scalar"],
)
def test_bad_sample_weights_are_refused(weights, error, match):
    X, y = _regression(N=20)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises(error, match=match):
        est.fit(X, y, sample_weight=weights)
    assert not hasattr(est, "weights_")
    fitted = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    for method in (fitted.partial_fit, fitted.gradients, fitted.score):
        with pytest.raises(error, match=match):
            method(X, y, sample_weight=weights)
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y > 0)
    with pytest.raises(error, match=match):
        clf.score(X, y > 0, sample_weight=weights)


def test_sample_weights_are_not_written():
    X, y = _regression()
    s = _positive_weights(len(X))
    s_copy = s.copy()
    s.flags.writeable = False  # a write would raise
    for batch_size in (None, 8):
        est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), solver="adam", batch_size=batch_size)
        est.set_params(max_iter=3, random_state=0).fit(X, y, sample_weight=s)
        est.partial_fit(X, y, sample_weight=s)
        est.gradients(X, y, sample_weight=s)
        est.score(X, y, sample_weight=s)
    np.testing.assert_array_equal(s, s_copy)


# -- the update rules themselves -----------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        gradient_descent(),
        momentum(0.9, nesterov=False),
        momentum(0.9, nesterov=True),
        adam(0.9, 0.999, 1e-8),
    ],
    ids=lambda r: r.name,
)
def test_update_rules_are_pure(rule):
    rng = np.random.default_rng(0)
    P = [rng.normal(size=(3, 2)), rng.normal(size=(3,)).astype(np.float32)]
    state = rule.init(P, xp=np_xp)
    assert state.t == 0 and len(state.moments) == rule.n_moments
    for moment in state.moments:
        for m, p in zip(moment, P, strict=True):
            assert m.shape == p.shape and m.dtype == p.dtype
            np.testing.assert_array_equal(m, 0)
    for t in range(1, 4):
        G = [rng.normal(size=p.shape).astype(p.dtype) for p in P]
        G_copy = [g.copy() for g in G]
        moments_copy = [[m.copy() for m in moment] for moment in state.moments]
        U, new = rule.update(G, state, mu=0.1, xp=np_xp)
        for g, g_copy in zip(G, G_copy, strict=True):
            np.testing.assert_array_equal(g, g_copy)
        for moment, moment_copy in zip(state.moments, moments_copy, strict=True):
            for m, m_copy in zip(moment, moment_copy, strict=True):
                np.testing.assert_array_equal(m, m_copy)
        assert new.t == t and [u.shape for u in U] == [p.shape for p in P]
        state = new


def test_update_rules_follow_their_equations():
    g = np.array([0.5, -2.0])
    for rule, expected in (
        (gradient_descent(), [-0.1 * g, -0.1 * g]),
        # V₁ = −μg, V₂ = βV₁ − μg: classical U = V, Nesterov U = βV − μg.
        (momentum(0.9, nesterov=False), [-0.1 * g, -0.19 * g]),
        (momentum(0.9, nesterov=True), [-0.19 * g, -0.271 * g]),
        # A constant gradient gives M = (1 − β₁ᵗ) g and V = (1 − β₂ᵗ) g², so
        # U = −μ √(1 − β₂ᵗ) g / (√(1 − β₂ᵗ) |g| + ε) ≈ −μ sign(g).
        (adam(0.9, 0.999, 1e-3), [_adam_step(g, t) for t in (1, 2)]),
    ):
        state = rule.init([g], xp=np_xp)
        for U_expected in expected:
            mu_t = rule.step_size(0.1, state.t + 1)  # Adam's bias correction; μ for the rest
            (U,), state = rule.update([g], state, mu=mu_t, xp=np_xp)
            np.testing.assert_allclose(U, U_expected, rtol=1e-12)


def _adam_step(g, t, mu=0.1, beta_2=0.999, epsilon=1e-3):
    c = math.sqrt(1 - beta_2**t)
    return -mu * c * g / (c * np.abs(g) + epsilon)


# -- every backend ---------------------------------------------------------------------------

BACKEND_CASES = {
    "adam-alpha-weights": dict(solver="adam", alpha=0.1, weighted=True),
    "nesterov": dict(solver="sgd", momentum=0.9, learning_rate=0.05),
    "adam-minibatch-shuffled": dict(solver="adam", weighted=True, batch_size=16, shuffle=True),
    "multilabel-momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, alpha=0.1),
}


@pytest.mark.parametrize("case", list(BACKEND_CASES))
def test_optimizers_agree_on_every_backend(backend, case):
    params = dict(BACKEND_CASES[case])
    weighted = params.pop("weighted", False)
    multilabel = case.startswith("multilabel")
    X, y = _multilabel(N=40) if multilabel else _regression(N=40)
    s = _positive_weights(len(X)) if weighted else None
    cls = xpnet.MLPClassifier if multilabel else xpnet.MLPRegressor
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", max_iter=8, random_state=0) | params
    ref = cls(**kw).fit(X, y, sample_weight=s)
    est = cls(**kw).fit(
        backend.asarray(X),
        backend.asarray(y),
        sample_weight=None if s is None else backend.asarray(s),
    )
    for P, P_ref in zip(est.weights_ + est.biases_, ref.weights_ + ref.biases_, strict=True):
        assert_close(P, P_ref, backend, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-9)
    pred = est.predict(backend.asarray(X))
    assert_same_kind(pred, backend, shape=y.shape)
    if multilabel:
        np.testing.assert_array_equal(to_numpy(pred), ref.predict(X))
    else:
        assert_close(pred, ref.predict(X), backend, rtol=1e-9)
    # partial_fit carries the optimizer state on, on the backend's own arrays and from a
    # model trained on NumPy alike.
    from_numpy = copy.deepcopy(ref)
    for model in (est, from_numpy):
        model.partial_fit(backend.asarray(X), backend.asarray(y))
    ref.partial_fit(X, y)
    for model in (est, from_numpy):
        for P, P_ref in zip(
            model.weights_ + model.biases_, ref.weights_ + ref.biases_, strict=True
        ):
            assert_close(P, P_ref, backend, rtol=1e-9, atol=1e-14)


# -- hyperparameters ----------------------------------------------------------------------

BAD_HYPERPARAMETERS = [
    (
        dict(solver="newton"),
        ValueError,
        r"solver must be one of \('sgd', 'adam', 'lbfgs'\), got 'newton'",
    ),
    (dict(momentum=1.5), ValueError, r"momentum must be a number in \[0\.0, 1\.0\], got 1\.5"),
    (dict(beta_1=1.0), ValueError, r"beta_1 must be a number in \[0\.0, 1\.0\), got 1\.0"),
    (dict(beta_2=-0.1), ValueError, r"beta_2 must be a number in \[0\.0, 1\.0\), got -0\.1"),
    (dict(epsilon=0), ValueError, r"epsilon must be a number in \(0\.0, inf\), got 0"),
    (dict(alpha=-1), ValueError, r"alpha must be a number in \[0\.0, inf\), got -1"),
    (dict(power_t=-1), ValueError, r"power_t must be a number in \[0\.0, inf\), got -1"),
    (
        dict(nesterovs_momentum="yes"),
        TypeError,
        "nesterovs_momentum must be True or False, got 'yes'",
    ),
    (
        dict(learning_rate_schedule="optimal"),
        ValueError,
        r"learning_rate_schedule must be one of \('constant', 'invscaling', 'adaptive'\), "
        "got 'optimal'",
    ),
    (dict(verbose=-1), ValueError, "verbose must be True, False or an int >= 0, got -1"),
    (
        dict(learning_rate=0),
        ValueError,
        "learning_rate must be None or a positive finite number, got 0",
    ),
    (
        dict(solver="adam", learning_rate_schedule="adaptive"),
        ValueError,
        "learning_rate_schedule='adaptive' applies to solver='sgd' only: Adam adapts its own",
    ),
]


@pytest.mark.parametrize(("params", "error", "match"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_named(params, error, match):
    X, y = _regression(N=10)
    for est in (xpnet.MLPRegressor(**params), xpnet.MLPClassifier(**params)):
        target = y if isinstance(est, xpnet.MLPRegressor) else y > 0
        with pytest.raises(error, match=match):
            est.fit(X, target)
        with pytest.raises(error, match=match):
            est.partial_fit(X, target)
        assert not hasattr(est, "weights_")


def test_default_learning_rate_depends_on_the_solver():
    # None: 0.1 for gradient descent; for Adam, scikit-learn's 0.001 in mini-batches
    # ("auto", or a size), and 0.01 in full batches (batch_size=None).
    X, y = _regression(N=10)
    for solver, batch_size, mu in [
        ("sgd", "auto", 0.1), ("sgd", None, 0.1), ("sgd", 4, 0.1),
        ("adam", "auto", 0.001), ("adam", 4, 0.001), ("adam", None, 0.01),
    ]:  # fmt: skip
        est = xpnet.MLPRegressor(
            hidden_layer_sizes=(3,), solver=solver, batch_size=batch_size, random_state=0
        )
        explicit = xpnet.MLPRegressor(**(est.get_params() | dict(learning_rate=mu)))
        est.set_params(max_iter=3).fit(X, y)
        explicit.set_params(max_iter=3).fit(X, y)
        np.testing.assert_array_equal(est.weights_[0], explicit.weights_[0])


# -- verbose -----------------------------------------------------------------------------


def test_verbose_prints_a_line_per_read_back_block_and_calls_back(capsys):
    X, y = _regression()
    blocks = []
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=40, verbose=True, random_state=0)
    est.fit(X, y, callback=lambda losses, scores: blocks.append((list(losses), scores)))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "Iteration 16",
        "Iteration 32",
        "Iteration 40",
    ]
    for line, epoch in zip(lines, (16, 32, 40), strict=True):
        assert re.fullmatch(r"Iteration \d+, loss = \d+\.\d{8}", line)
        assert float(line.split("= ")[1]) == pytest.approx(est.loss_curve_[epoch - 1], abs=1e-8)
    assert [len(losses) for losses, _ in blocks] == [16, 16, 8]
    assert [v for losses, _ in blocks for v in losses] == est.loss_curve_
    assert all(scores is None for _, scores in blocks)

    # With early stopping the line also shows the validation score; quiet prints nothing.
    est.set_params(early_stopping=True, max_iter=16).fit(X, y)
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Iteration 16, loss = \S+, validation score = -?\d+\.\d{8}", line)
    est.set_params(verbose=False).fit(X, y)
    assert capsys.readouterr().out == ""


# -- probabilities and multi-label targets --------------------------------------------------


def test_predict_log_proba_is_the_log_of_predict_proba(backend):
    X, labels = _three_classes()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), solver="adam", max_iter=10, random_state=0)
    est.fit(backend.asarray(X), backend.asarray(labels))
    log_proba = est.predict_log_proba(backend.asarray(X))
    expected = np.log(to_numpy(est.predict_proba(backend.asarray(X))))
    assert_close(log_proba, expected, backend, rtol=1e-12)


def test_multilabel_predictions_and_score():
    from sklearn.metrics import accuracy_score

    X, Y = _multilabel(N=60)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(8,), solver="adam", max_iter=60)
    est.set_params(random_state=0).fit(X, Y)
    assert est.out_activation_ == "sigmoid" and est.n_outputs_ == 3
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    pred = est.predict(X)
    assert pred.shape == Y.shape and np.issubdtype(pred.dtype, np.integer)
    assert set(np.unique(pred).tolist()) <= {0, 1}
    proba = est.predict_proba(X)
    assert proba.shape == Y.shape and np.all((proba > 0) & (proba < 1))
    assert not np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(pred.dtype))
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-12)
    score = est.score(X, Y)
    assert score == accuracy_score(Y, pred)
    assert 0 < score < np.mean(pred == Y)  # subset accuracy: every label of a row right
    s = _positive_weights(len(X))
    assert est.score(X, Y, sample_weight=s) == pytest.approx(
        accuracy_score(Y, pred, sample_weight=s), rel=1e-12
    )


def test_weighted_scores_are_sklearns_metrics():
    from sklearn.metrics import accuracy_score, r2_score

    X, y = _regression()
    s = _positive_weights(len(X))
    Y = np.c_[y, X[:, 0]]  # two outputs: R² averaged uniformly over them
    reg = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=10, random_state=0).fit(X, Y)
    expected = r2_score(Y, reg.predict(X), sample_weight=s)
    assert reg.score(X, Y, sample_weight=s) == pytest.approx(expected, rel=1e-12)
    labels = np.digitize(y, [-0.3, 0.3])
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0)
    clf.fit(X, labels)
    expected = accuracy_score(labels, clf.predict(X), sample_weight=s)
    assert clf.score(X, labels, sample_weight=s) == pytest.approx(expected, rel=1e-12)


def test_multilabel_targets_are_checked():
    X, Y = _multilabel(N=20)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="y is 1-D but the classifier was fitted on multi-label"):
        est.partial_fit(X, Y[:, 0])
    with pytest.raises(ValueError, match=r"fitted on 3 labels"):
        est.partial_fit(X, Y[:, :2])
    softmax = xpnet.MLPClassifier(hidden_layer_sizes=(3,), output_activation="softmax")
    with pytest.raises(ValueError, match="'softmax' cannot be used with multi-label targets"):
        softmax.fit(X, Y)
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        xpnet.MLPClassifier(hidden_layer_sizes=(3,)).fit(X, 2 * Y)
    single = xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="fitted on 1-D class labels"):
        single.partial_fit(X, Y)


def test_multilabel_early_stopping():
    X, Y = _multilabel(N=60)
    est = xpnet.MLPClassifier(
        hidden_layer_sizes=(8,), solver="adam", early_stopping=True, validation_fraction=0.2,
        max_iter=40, random_state=0,
    )  # fmt: skip
    est.fit(X, Y)
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    # Subset accuracy on 12 held-out rows: multiples of 1/12.
    scores = np.array(est.validation_scores_)
    np.testing.assert_allclose(scores * 12, np.round(scores * 12), atol=1e-9)
    assert np.all((scores >= 0) & (scores <= 1))
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.predict(X).shape == Y.shape


# -- scikit-learn's parameter layout ---------------------------------------------------------


def test_coefs_and_intercepts_are_sklearns_read_only_layout():
    X, y = _regression()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4, 3), max_iter=2, random_state=0)
    with pytest.raises(xpnet.NotFittedError, match="not fitted yet"):
        est.coefs_  # noqa: B018
    with pytest.raises(xpnet.NotFittedError, match="not fitted yet"):
        est.intercepts_  # noqa: B018
    assert not hasattr(est, "coefs_")
    est.fit(X, y)
    assert [c.shape for c in est.coefs_] == [(4, 4), (4, 3), (3, 1)]
    for coef, W in zip(est.coefs_, est.weights_, strict=True):
        np.testing.assert_array_equal(coef, W.T)
    for intercept, b in zip(est.intercepts_, est.biases_, strict=True):
        np.testing.assert_array_equal(intercept, b)
    with pytest.raises(AttributeError, match="coefs_"):
        est.coefs_ = [W.T for W in est.weights_]
    with pytest.raises(AttributeError, match="intercepts_"):
        est.intercepts_ = est.biases_


# -- saving and loading the optimizer's state -------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam", alpha=0.1),
        dict(solver="sgd", momentum=0.9, learning_rate_schedule="invscaling"),
        dict(
            solver="sgd",
            momentum=0.9,
            learning_rate_schedule="adaptive",
            tol=0.05,
            n_iter_no_change=1,
        ),
    ],
    ids=["adam", "momentum-invscaling", "nesterov-adaptive"],
)
def test_saved_model_carries_on_training_where_it_stopped(tmp_path, params):
    X, y = _three_classes()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=7, random_state=0, **params)
    est.fit(X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = xpnet.load(path)
    assert loaded.t_ == est.t_ == 7 * len(X)
    assert loaded._schedule_state == est._schedule_state
    assert loaded._optimizer_state.t == est._optimizer_state.t == 7
    for _ in range(5):
        est.partial_fit(X, y)
        loaded.partial_fit(X, y)
    for P, P_ref in zip(loaded.weights_ + loaded.biases_, est.weights_ + est.biases_, strict=True):
        np.testing.assert_array_equal(P, P_ref)
    assert loaded.t_ == est.t_ == 12 * len(X)
    assert loaded._schedule_state == est._schedule_state
    assert loaded.loss_curve_ == est.loss_curve_
    if params.get("learning_rate_schedule") == "adaptive":  # the carried count mattered
        assert est._schedule_state.mu < 0.1


@pytest.mark.parametrize(
    ("fitted_with", "changed_to"),
    [
        (dict(solver="adam"), dict(solver="sgd", momentum=0.9)),
        (dict(solver="sgd", momentum=0.9), dict(momentum=0.0)),
        (dict(solver="sgd"), dict(solver="adam")),
    ],
    ids=["adam-to-momentum", "momentum-to-plain", "plain-to-adam"],
)
def test_a_model_saved_after_changing_the_solver_loads(tmp_path, fitted_with, changed_to):
    # partial_fit after set_params starts the new rule from a fresh state; so must a
    # model saved in between, instead of writing a file that load refuses.
    X, y = _three_classes()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, **fitted_with)
    est.fit(X, y).set_params(**changed_to)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = xpnet.load(path)
    assert loaded.get_params() == est.get_params()
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    for P, P_ref in zip(loaded.weights_ + loaded.biases_, est.weights_ + est.biases_, strict=True):
        np.testing.assert_array_equal(P, P_ref)


def test_format_version_1_file_loads_and_trains_from_a_fresh_state(tmp_path):
    X, y = _three_classes()
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), solver="adam", max_iter=5, random_state=0)
    est.fit(X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files if not name.startswith("moment_")}
    meta = json.loads(arrays["metadata"].tobytes().decode("utf-8"))
    for key in ("optimizer", "schedule", "t"):
        del meta[key]
    meta["format_version"] = 1
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    old = tmp_path / "version1.npz"
    np.savez(old, **arrays)

    loaded = xpnet.load(old)
    assert loaded.t_ == 0
    loaded.partial_fit(X, y)
    # A fresh state, as after fit: the same step as from unfitted weights just assigned.
    fresh = xpnet.MLPClassifier(**est.get_params())
    fresh.weights_, fresh.biases_ = list(est.weights_), list(est.biases_)
    fresh.partial_fit(X, y)
    for P, P_ref in zip(
        loaded.weights_ + loaded.biases_, fresh.weights_ + fresh.biases_, strict=True
    ):
        np.testing.assert_array_equal(P, P_ref)
    assert loaded.n_iter_ == 6 and loaded.t_ == len(X)


# -- Adam on real data ------------------------------------------------------------------------


def test_adam_learns_raw_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    est = xpnet.MLPClassifier(solver="adam", hidden_layer_sizes=(64,), random_state=0)
    assert est.fit(X_train, y_train).score(X_test, y_test) >= 0.97
