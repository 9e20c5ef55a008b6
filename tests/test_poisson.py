"""``loss="poisson"``: half the Poisson deviance with an exp output, as scikit-learn's."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from conftest import assert_close, assert_same_kind

import xpnet
from xpnet.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from xpnet.core.losses import OBJECTIVES


def _counts(N=30, n_in=4, n_out=1, seed=0):
    """X (N, n_in) and Poisson counts y whose log-mean is linear in X."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    rate = np.exp(0.5 * X @ rng.normal(size=(n_in, n_out)))
    y = rng.poisson(rate).astype(float)
    return X, (y[:, 0] if n_out == 1 else y)


def _start(layer_sizes, seed=7):
    rng = np.random.default_rng(seed)
    W = [rng.uniform(-0.5, 0.5, size=(m, n)) for n, m in itertools.pairwise(layer_sizes)]
    b = [rng.uniform(-0.5, 0.5, size=m) for m in layer_sizes[1:]]
    return W, b


def _half_deviance(y, o):
    """(1/N) Σᵢ Σₖ [y log(y/o) − y + o], written out with SciPy's xlogy."""
    from scipy.special import xlogy

    y, o = y.reshape(len(y), -1), o.reshape(len(o), -1)
    return np.sum(xlogy(y, y / o) - y + o) / len(y)


def test_the_loss_and_its_output_delta_by_hand():
    import array_api_compat.numpy as xp

    objective = OBJECTIVES[("poisson", "exp")]
    Z = np.array([[-1.0, 0.0, 0.5, 2.0], [0.3, -0.2, 1.0, -3.0]])
    Y = np.array([[0.0, 1.0, 3.0, 7.0], [2.0, 0.0, 1.0, 0.0]])
    A = ACTIVATIONS["exp"].f(Z.copy(), xp=xp)
    np.testing.assert_array_equal(A, np.exp(Z))
    E = float(objective.loss_sum(Y, A, xp=xp))
    assert E == pytest.approx(_half_deviance(Y.T, A.T) * Y.shape[1], rel=1e-15)
    # ∂E/∂z = (1 − y/o) · f'(z), f'(z) = e^z = o: the residual o − y.
    np.testing.assert_allclose(objective.output_delta(Y, A.copy(), xp=xp), A - Y, rtol=1e-15)
    np.testing.assert_allclose(
        ACTIVATIONS["exp"].times_f_prime(np.ones_like(A), A, xp=xp), np.exp(Z), rtol=1e-15
    )
    s = np.array([0.5, 2.0, 0.0, 1.0])
    weighted = float(objective.loss_sum(Y, A, s, xp=xp))
    per_sample = [float(objective.loss_sum(Y[:, [i]], A[:, [i]], xp=xp)) for i in range(4)]
    assert weighted == pytest.approx(float(np.dot(s, per_sample)), rel=1e-15)


def _pair(*, n_out=1, hidden=(5,), **params):
    """xpnet's and scikit-learn's Poisson regressors from the same starting weights,
    set up for full-batch gradient descent in sample order (as tests/test_optimizers.py)."""
    sklearn_nn = pytest.importorskip("sklearn.neural_network")
    from sklearn.exceptions import ConvergenceWarning

    X, y = _counts(n_out=n_out)
    W0, b0 = _start([X.shape[1], *hidden, n_out])
    mu = params.pop("learning_rate", 0.05)
    ours = xpnet.MLPRegressor(
        hidden_layer_sizes=hidden, activation="tanh", loss="poisson", learning_rate=mu,
        batch_size=None, shuffle=False, warm_start=True, tol=0.0, n_iter_no_change=np.inf,
        **(dict(solver="sgd") | params),
    )  # fmt: skip
    ours.weights_, ours.biases_ = [W.copy() for W in W0], [b.copy() for b in b0]
    theirs = sklearn_nn.MLPRegressor(
        hidden_layer_sizes=hidden, activation="tanh", loss="poisson", learning_rate_init=mu,
        batch_size=len(X), shuffle=False, max_iter=1, tol=0.0, n_iter_no_change=10**6,
        warm_start=True, **(dict(solver="sgd", momentum=0.0, alpha=0.0) | params),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X, y)  # builds its layers; the parameters are then replaced
    theirs.coefs_ = [W.T.copy() for W in W0]
    theirs.intercepts_ = [b.copy() for b in b0]
    del theirs._optimizer
    theirs.loss_curve_, theirs.t_, theirs.n_iter_ = [], 0, 0
    theirs.best_loss_, theirs._no_improvement_count = np.inf, 0
    return ours, theirs, X, y


def _assert_same_parameters(ours, theirs, *, rtol=1e-12):
    for W, b, coef, intercept in zip(
        ours.weights_, ours.biases_, theirs.coefs_, theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(W, coef.T, rtol=rtol, atol=1e-15)
        np.testing.assert_allclose(b, intercept, rtol=rtol, atol=1e-15)


@pytest.mark.parametrize(
    ("n_out", "params"),
    [(1, {}), (2, {}), (1, dict(alpha=0.1, momentum=0.9)), (2, dict(solver="adam"))],
    ids=["sgd", "sgd-two-outputs", "momentum-alpha", "adam-two-outputs"],
)
def test_partial_fit_follows_sklearn_step_for_step(n_out, params):
    ours, theirs, X, y = _pair(n_out=n_out, **params)
    assert theirs.out_activation_ == "exp"
    for _ in range(12):
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
        _assert_same_parameters(ours, theirs)
    assert ours.out_activation_ == "exp"
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    assert ours.loss_curve_[-1] < ours.loss_curve_[0]


def test_fit_follows_sklearn_and_predicts_its_exp_outputs():
    from sklearn.exceptions import ConvergenceWarning

    ours, theirs, X, y = _pair()
    ours.set_params(max_iter=40).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.set_params(max_iter=40).fit(X, y)
    _assert_same_parameters(ours, theirs)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12)
    assert np.all(ours.predict(X) > 0)
    (W1, W2), (b1, b2) = _start([X.shape[1], 5, 1])
    o_start = np.exp(np.tanh(X @ W1.T + b1) @ W2.T + b2)  # the first epoch's outputs
    assert ours.loss_curve_[0] == pytest.approx(_half_deviance(y, o_start), rel=1e-12)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-10)  # R², as sklearn


def test_zero_counts_give_finite_losses_and_gradients():
    X, _ = _counts(N=12)
    y = np.zeros(12)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), loss="poisson", max_iter=5, random_state=0)
    est.fit(X, y)
    assert np.all(np.isfinite(est.loss_curve_))
    grad_W, grad_b = est.gradients(X, y)
    assert all(np.all(np.isfinite(g)) for g in grad_W + grad_b)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_a_fit_on_every_backend_equals_numpy(backend, batch_size):
    X, y = _counts(N=40, n_out=2)
    s = np.random.default_rng(3).uniform(0.5, 2.0, size=len(X))
    kw = dict(
        hidden_layer_sizes=(6,), loss="poisson", learning_rate=0.05, max_iter=8,
        batch_size=batch_size, random_state=0,
    )  # fmt: skip
    ref = xpnet.MLPRegressor(**kw).fit(X, y, sample_weight=s)
    est = xpnet.MLPRegressor(**kw).fit(
        backend.asarray(X), backend.asarray(y), sample_weight=backend.asarray(s)
    )
    for P, P_ref in zip(est.weights_ + est.biases_, ref.weights_ + ref.biases_, strict=True):
        assert_close(P, P_ref, backend, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-10)
    pred = est.predict(backend.asarray(X))
    assert_same_kind(pred, backend, shape=y.shape)
    assert_close(pred, ref.predict(X), backend, rtol=1e-10)


def test_float32_counts_train_in_float32():
    X, y = _counts(N=40)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), loss="poisson", max_iter=5, random_state=0)
    est.fit(X.astype(np.float32), y.astype(np.float32))
    assert est.weights_[0].dtype == np.float32
    assert est.predict(X.astype(np.float32)).dtype == np.float32


def test_the_output_defaults_to_exp_and_saves_and_loads(tmp_path):
    X, y = _counts(N=20)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), loss="poisson", max_iter=3, random_state=0)
    assert est.output_activation is None
    est.fit(X, y)
    assert est.out_activation_ == "exp"
    est.save(tmp_path / "poisson.npz")
    loaded = xpnet.load(tmp_path / "poisson.npz")
    assert loaded.loss == "poisson" and loaded.out_activation_ == "exp"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    mse = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, y)
    assert mse.out_activation_ == "identity"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: xpnet.MLPRegressor(loss="poisson", output_activation="identity"),
            r"output_activation='identity' does not go with loss='poisson'; choose one of "
            r"\('exp',\)",
        ),
        (
            lambda: xpnet.MLPRegressor(output_activation="exp"),
            r"output_activation='exp' does not go with loss='mse'",
        ),
        (
            lambda: xpnet.MLPRegressor(activation="exp"),
            r"activation must be one of \('identity', 'sigmoid', 'tanh', 'relu'\), got 'exp'",
        ),
        (
            lambda: xpnet.MLPClassifier(loss="poisson"),
            r"loss must be one of \('mse', 'cross_entropy'\), got 'poisson'",
        ),
    ],
)
def test_bad_pairings_are_named(make, match):
    X, y = _counts(N=12)
    with pytest.raises(ValueError, match=match):
        make().fit(X, y.astype(int) % 2)


def test_negative_targets_are_refused_before_training():
    X, y = _counts(N=12)
    y[3] = -0.5
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), loss="poisson", max_iter=2)
    with pytest.raises(ValueError, match=r"loss='poisson' needs targets y >= 0 .* down to -0\.5"):
        est.fit(X, y)
    assert not hasattr(est, "weights_")
    y[3] = 1.0
    est.fit(X, y)
    y[3] = -2.0
    with pytest.raises(ValueError, match=r"down to -2\.0"):
        est.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"down to -2\.0"):
        est.gradients(X, y)


def test_exp_is_an_output_activation_only():
    assert "exp" in ACTIVATIONS and "exp" not in HIDDEN_ACTIVATIONS
    assert [pair for pair in OBJECTIVES if "exp" in pair] == [("poisson", "exp")]
