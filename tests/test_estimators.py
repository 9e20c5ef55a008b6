"""The estimators: agreement with scikit-learn and across backends, dtypes, inputs left alone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_close, assert_same_kind

import xpnet
from xpnet._host import to_numpy

# The seed's method: full-batch gradient descent with sigmoid hidden units (the defaults
# are scikit-learn's Adam on ReLUs, in mini-batches), for the tests that are about it.
SEED = dict(solver="sgd", activation="sigmoid")


def _data(N=40, n_in=5, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    y = np.tanh(X @ rng.normal(size=(n_in, n_out))) + 0.1 * rng.normal(size=(N, n_out))
    return X, y


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
def test_full_batch_follows_sklearn_sgd_step_for_step(activation):
    sklearn_nn = pytest.importorskip("sklearn.neural_network")
    from sklearn.exceptions import ConvergenceWarning

    X, y = _data(N=50, n_in=4, n_out=2)
    mu, epochs = 0.05, 12
    # Both sides: full-batch gradient descent, no momentum, penalty or stopping rule.
    ours = xpnet.MLPRegressor(
        hidden_layer_sizes=(6, 5), activation=activation, learning_rate=mu, random_state=3,
        solver="sgd", batch_size=None, learning_rate_schedule="constant", momentum=0.0,
        alpha=0.0, shuffle=False, n_iter_no_change=np.inf, tol=0.0,
    )  # fmt: skip
    ours.set_params(max_iter=1).fit(X, y)  # fixes the layer sizes
    rng = np.random.default_rng(7)
    W0 = [rng.uniform(-0.5, 0.5, size=W.shape) for W in ours.weights_]
    b0 = [rng.uniform(-0.5, 0.5, size=b.shape) for b in ours.biases_]
    ours.weights_, ours.biases_ = list(W0), list(b0)

    theirs = sklearn_nn.MLPRegressor(
        hidden_layer_sizes=(6, 5),
        activation={"sigmoid": "logistic"}.get(activation, activation),
        solver="sgd",
        batch_size=len(X),
        learning_rate="constant",
        learning_rate_init=mu,
        momentum=0.0,
        alpha=0.0,
        shuffle=False,
        max_iter=1,
        n_iter_no_change=10**6,
        tol=0.0,
        warm_start=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X, y)  # initialises its state; its parameters are replaced next
        theirs.coefs_ = [W.T.copy() for W in W0]  # scikit-learn stores Wᵀ
        theirs.intercepts_ = [b.copy() for b in b0]
        theirs.loss_curve_ = []
        for _ in range(epochs):
            ours.partial_fit(X, y)
            theirs.fit(X, y)
            for W, b, coef, intercept in zip(
                ours.weights_, ours.biases_, theirs.coefs_, theirs.intercepts_, strict=True
            ):
                np.testing.assert_allclose(W, coef.T, rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(b, intercept, rtol=1e-12, atol=1e-15)
    # scikit-learn's squared loss also averages over the outputs: E_total / n_outputs.
    np.testing.assert_allclose(
        np.array(ours.loss_curve_[1:]) / y.shape[1], theirs.loss_curve_, rtol=1e-12
    )


@pytest.mark.parametrize("batch_size", [None, 16])
def test_same_fit_on_every_backend(backend, batch_size):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(7, 3), max_iter=20, batch_size=batch_size, random_state=0)
    reference = xpnet.MLPRegressor(**kw).fit(X, y)
    est = xpnet.MLPRegressor(**kw).fit(backend.asarray(X), backend.asarray(y))

    for W, W_ref in zip(
        est.weights_ + est.biases_, reference.weights_ + reference.biases_, strict=True
    ):
        assert_close(W, W_ref, backend, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(est.loss_curve_, reference.loss_curve_, rtol=1e-10)
    assert all(type(v) is float for v in est.loss_curve_)
    assert_close(est.predict(backend.asarray(X)), reference.predict(X), backend, rtol=1e-10)


def test_float32_stays_float32(backend):
    X, y = _data()
    X32, y32 = backend.asarray(X, "float32"), backend.asarray(y, "float32")
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X32, y32)
    float32 = backend.dtype("float32")
    for P in est.weights_ + est.biases_:
        assert_same_kind(P, backend, dtype=float32)
    assert_same_kind(est.predict(X32), backend, dtype=float32, shape=y.shape)
    grads = est.gradients(X32, y32)
    for G in grads[0] + grads[1]:
        assert_same_kind(G, backend, dtype=float32)
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    clf.fit(X32, backend.asarray(y[:, 0] > 0))
    assert_same_kind(clf.predict_proba(X32), backend, dtype=float32, shape=(len(X), 2))


def test_integer_input_trains_in_the_default_float(backend):
    X = np.arange(24).reshape(8, 3) % 5
    y = X.sum(axis=1) / 10.0
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    est.fit(backend.asarray(X), backend.asarray(y))
    default = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
    assert_same_kind(est.predict(backend.asarray(X)), backend, dtype=default["real floating"])


def test_inputs_are_left_untouched(backend):
    X, y = _data()
    labels = (y[:, 0] > 0).astype(np.int64)
    X_b, y_b, labels_b = backend.asarray(X), backend.asarray(y), backend.asarray(labels)
    for est, target in (
        (xpnet.MLPRegressor(max_iter=3, batch_size=8, random_state=0), y_b),
        (xpnet.MLPClassifier(max_iter=3, random_state=0), labels_b),
    ):
        est.fit(X_b, target)
        est.partial_fit(X_b, target)
        est.predict(X_b)
        est.gradients(X_b, target)
        est.score(X_b, target)
    np.testing.assert_array_equal(to_numpy(X_b), X)
    np.testing.assert_array_equal(to_numpy(y_b), y)
    np.testing.assert_array_equal(to_numpy(labels_b), labels)


def test_user_parameters_are_not_written(backend):
    X, y = _data()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(X, y)
    W = [backend.asarray(w) for w in est.weights_]
    b = [backend.asarray(c) for c in est.biases_]
    W_copy, b_copy = [to_numpy(w).copy() for w in W], [to_numpy(c).copy() for c in b]
    est.weights_, est.biases_ = W, b
    est.partial_fit(backend.asarray(X), backend.asarray(y))
    for P, P_copy in zip(W + b, W_copy + b_copy, strict=True):
        np.testing.assert_array_equal(to_numpy(P), P_copy)


def test_partial_fit_is_one_gradient_step(backend):
    X, y = _data()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), learning_rate=0.3, random_state=0, **SEED)
    est.set_params(max_iter=1).fit(backend.asarray(X), backend.asarray(y))
    W, b = list(est.weights_), list(est.biases_)
    grad_W, grad_b = est.gradients(backend.asarray(X), backend.asarray(y))
    est.partial_fit(backend.asarray(X), backend.asarray(y))
    for new, old, grad in zip(est.weights_ + est.biases_, W + b, grad_W + grad_b, strict=True):
        assert_close(new, to_numpy(old) - 0.3 * to_numpy(grad), backend, rtol=1e-12, atol=1e-15)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2


def test_mini_batches_are_steps_on_the_batches():
    X, y = _data(N=10)
    est = xpnet.MLPRegressor(
        hidden_layer_sizes=(3,), batch_size=4, shuffle=False, max_iter=1, **SEED
    )  # gradient descent on each mini-batch in turn, μ = 0.1 (sgd's default)
    est.set_params(random_state=0).fit(X, y)
    W, b = list(est.weights_), list(est.biases_)
    step = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, learning_rate=0.1, **SEED)
    step.weights_, step.biases_ = list(W), list(b)
    losses = []
    for start in (0, 4, 8):  # batches of 4, 4 and 2
        step.partial_fit(X[start : start + 4], y[start : start + 4])
        losses.append(step.loss_curve_[-1] * len(X[start : start + 4]))
    est.partial_fit(X, y)
    for P, P_ref in zip(est.weights_ + est.biases_, step.weights_ + step.biases_, strict=True):
        np.testing.assert_allclose(P, P_ref, rtol=1e-13)
    assert est.loss_curve_[-1] == pytest.approx(sum(losses) / len(X), rel=1e-13)


def test_shuffled_mini_batches_depend_on_random_state_only():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(3,), batch_size=8, max_iter=4)
    a = xpnet.MLPRegressor(random_state=1, **kw).fit(X, y)
    b = xpnet.MLPRegressor(random_state=1, **kw).fit(X, y)
    c = xpnet.MLPRegressor(random_state=1, shuffle=False, **kw).fit(X, y)
    np.testing.assert_array_equal(a.weights_[0], b.weights_[0])
    assert not np.allclose(a.weights_[0], c.weights_[0])


def test_warm_start_continues_and_fit_restarts():
    X, y = _data()
    # Gradient descent: no optimizer state, which every fit would restart (Adam's moments).
    kw = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0, **SEED)
    ten = xpnet.MLPRegressor(**{**kw, "max_iter": 10}).fit(X, y)
    warm = xpnet.MLPRegressor(warm_start=True, **kw).fit(X, y).fit(X, y)
    cold = xpnet.MLPRegressor(**kw).fit(X, y)
    cold_again = cold.fit(X, y)
    np.testing.assert_allclose(warm.weights_[0], ten.weights_[0], rtol=1e-13)
    assert warm.loss_curve_ == pytest.approx(ten.loss_curve_, rel=1e-13)
    # As in scikit-learn: the loss curve goes on, n_iter_ counts this fit's epochs.
    assert len(warm.loss_curve_) == 10 and warm.n_iter_ == 5 and cold_again.n_iter_ == 5
    np.testing.assert_array_equal(
        cold_again.weights_[0], xpnet.MLPRegressor(**kw).fit(X, y).weights_[0]
    )


def test_regressor_shapes_follow_y(backend):
    X, y = _data()
    for target, shape in ((y[:, 0], (len(X),)), (y[:, :1], (len(X), 1)), (y, y.shape)):
        est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
        est.fit(backend.asarray(X), backend.asarray(target))
        assert_same_kind(est.predict(backend.asarray(X)), backend, shape=shape)
        assert est.n_outputs_ == (1 if target.ndim == 1 else target.shape[1])
    assert isinstance(est.score(backend.asarray(X), backend.asarray(y)), float)


def test_regressor_learns():
    X, y = _data(N=200, n_out=1)
    # All 500 epochs: slow steady progress is no stall here (see the stopping rule's tests).
    est = xpnet.MLPRegressor(
        hidden_layer_sizes=(16,), max_iter=500, learning_rate=0.5, n_iter_no_change=np.inf, **SEED
    )
    assert est.set_params(random_state=0).fit(X, y).score(X, y) > 0.9


def test_classifier_on_every_backend(backend):
    X, y = _data(N=60)
    labels = np.digitize(y[:, 0], [-0.3, 0.3])  # three classes
    ref = xpnet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, learning_rate=1.0)
    ref.set_params(random_state=0).fit(X, labels)
    est = xpnet.MLPClassifier(**ref.get_params()).fit(backend.asarray(X), backend.asarray(labels))

    assert_same_kind(est.classes_, backend, shape=(3,))
    np.testing.assert_array_equal(to_numpy(est.classes_), [0, 1, 2])
    proba = est.predict_proba(backend.asarray(X))
    assert_close(proba, ref.predict_proba(X), backend, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(proba).sum(axis=1), 1.0, rtol=1e-12)
    pred = est.predict(backend.asarray(X))
    assert_same_kind(pred, backend, shape=(len(X),))
    np.testing.assert_array_equal(to_numpy(pred), ref.predict(X))
    assert est.score(backend.asarray(X), backend.asarray(labels)) == ref.score(X, labels)


def test_string_labels_stay_on_the_host(backend):
    X, y = _data(N=30)
    labels = np.where(y[:, 0] > 0, "yes", "no")
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    est.fit(backend.asarray(X), labels)
    assert isinstance(est.classes_, np.ndarray) and est.classes_.tolist() == ["no", "yes"]
    pred = est.predict(backend.asarray(X))
    assert isinstance(pred, np.ndarray) and set(pred.tolist()) <= {"no", "yes"}
    assert 0.0 <= est.score(backend.asarray(X), labels.tolist()) <= 1.0


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_classifier_losses_and_natural_outputs(loss):
    X, y = _data(N=120)
    labels = (y[:, 0] > 0).astype(int)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(8,), loss=loss, learning_rate=1.0)
    est.set_params(max_iter=200, random_state=0).fit(X, labels)
    assert est.out_activation_ == {"mse": "sigmoid", "cross_entropy": "softmax"}[loss]
    assert est.score(X, labels) > 0.9
    np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)


def test_classifier_partial_fit_with_classes():
    X, y = _data(N=30)
    labels = np.digitize(y[:, 0], [-0.3, 0.3])
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(X[:5], labels[:5], classes=[0, 1, 2, 3])
    est.partial_fit(X, labels)
    np.testing.assert_array_equal(est.classes_, [0, 1, 2, 3])
    assert est.predict_proba(X).shape == (30, 4)
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among classes_"):
        est.partial_fit(X[:2], [0, 7])


def test_single_class_is_predicted():
    X, _ = _data(N=10)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    np.testing.assert_array_equal(est.fit(X, np.full(10, 4)).predict(X), np.full(10, 4))


def test_sklearn_clone_pipeline_and_grid_search():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(N=60)
    labels = (y[:, 0] > 0).astype(int)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0)
    assert clone(est).get_params() == est.get_params()
    pipe = make_pipeline(StandardScaler(), est)
    search = GridSearchCV(pipe, {"mlpclassifier__learning_rate": [0.1, 1.0]}, cv=2)
    search.fit(X, labels)
    assert search.best_params_["mlpclassifier__learning_rate"] in (0.1, 1.0)
    assert repr(est) == "MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0)"


def test_numeric_labels_follow_X_to_another_backend(backend):
    X, y = _data(N=30)
    labels = (y[:, 0] > 0).astype(np.int64)
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    est.fit(X, labels)  # fitted on NumPy
    pred = est.predict(backend.asarray(X))
    assert_same_kind(pred, backend, shape=(30,))
    np.testing.assert_array_equal(to_numpy(pred), est.predict(X))
