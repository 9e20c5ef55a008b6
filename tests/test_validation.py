"""Bad input gets a clear ValueError or TypeError that names the bad value."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet

rng = np.random.default_rng(0)
X = rng.normal(size=(12, 3))
y = rng.normal(size=12)
labels = np.array([0, 1, 2] * 4)

# The seed's method: full-batch gradient descent with sigmoid hidden units, whose steps
# grow with the gradient (Adam's do not: its steps are about μ whatever the gradient).
SEED = dict(solver="sgd", activation="sigmoid")


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"hidden_layer_sizes": (4, 0)}, ValueError, r"hidden_layer_sizes must be > 0, got 0"),
        ({"hidden_layer_sizes": (4, -2)}, ValueError, r"must be > 0, got -2"),
        ({"hidden_layer_sizes": (4.0,)}, TypeError, r"must hold ints, got 4.0"),
        ({"hidden_layer_sizes": "10"}, TypeError, r"an int or a sequence of ints, got '10'"),
        ({"hidden_layer_sizes": (True,)}, TypeError, r"must hold ints, got True"),
        ({"activation": "softmax"}, ValueError, r"activation must be one of .*got 'softmax'"),
        ({"activation": "gelu"}, ValueError, r"got 'gelu'"),
        ({"loss": "hinge"}, ValueError, r"loss must be one of .*got 'hinge'"),
        ({"output_activation": "softmax"}, ValueError, r"'softmax' does not go with loss='mse'"),
        ({"learning_rate": 0.0}, ValueError, r"learning_rate must be None or a positive .*got 0.0"),
        ({"learning_rate": -1}, ValueError, r"got -1"),
        ({"learning_rate": float("nan")}, ValueError, r"got nan"),
        ({"learning_rate": "0.1"}, ValueError, r"got '0.1'"),
        ({"max_iter": 0}, ValueError, r"max_iter must be an int >= 1, got 0"),
        ({"max_iter": 2.5}, ValueError, r"got 2.5"),
        ({"batch_size": 0}, ValueError, r"batch_size must be 'auto', None or an int >= 1, got 0"),
        ({"shuffle": "yes"}, TypeError, r"shuffle must be True or False, got 'yes'"),
        ({"random_state": "seed"}, ValueError, r"random_state must be None, an int .*'seed'"),
    ],
)
def test_bad_hyperparameters(params, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLPRegressor(**params).fit(X, y)


def test_bad_classifier_pairing():
    with pytest.raises(ValueError, match=r"'identity' does not go with loss='cross_entropy'"):
        xpnet.MLPClassifier(output_activation="identity").fit(X, labels)


def test_the_regressor_s_default_output_is_the_loss_s_natural_one():
    # The user set only the loss: the output follows it, never an output they did not set.
    reg = xpnet.MLPRegressor(loss="cross_entropy", max_iter=2)
    assert reg.fit(X, (y > 0) * 1.0).out_activation_ == "sigmoid"
    with pytest.raises(ValueError) as error:  # an output they did set is named as theirs
        xpnet.MLPRegressor(loss="cross_entropy", output_activation="identity").fit(X, y)
    assert "output_activation='identity' does not go with loss='cross_entropy'" in str(error.value)


@pytest.mark.parametrize(
    ("X_bad", "error", "match"),
    [
        (X[:, 0], ValueError, r"Expected a 2-D array X .* got 1-D"),
        (X[None], ValueError, r"got 3-D"),
        (np.empty((0, 3)), ValueError, r"0 sample\(s\)"),
        (np.empty((12, 0)), ValueError, r"0 feature\(s\)"),
        (np.where(X > 1, np.nan, X), ValueError, r"X contains NaN"),
        (np.where(X > 1, np.inf, X), ValueError, r"X contains infinity"),
        (X + 1j, ValueError, r"Complex data not supported"),
        (
            np.full((12, 3), "a"),
            ValueError,
            r"X must hold numbers: could not convert string to float",
        ),
        (None, TypeError, r"X must be an array, got None"),
    ],
)
def test_bad_X(X_bad, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLPRegressor(max_iter=1).fit(X_bad, y[: len(X_bad)] if X_bad is not None else y)


def test_large_finite_values_are_not_mistaken_for_infinity():
    big = np.full((4, 2), 1e308)
    # Sigmoid hidden units saturate: the loss stays finite (ReLUs would carry the overflow).
    est = xpnet.MLPRegressor(hidden_layer_sizes=(2,), max_iter=1, learning_rate=1e-300, **SEED)
    est.fit(big, np.zeros(4))  # the sum overflows, but every element is finite


@pytest.mark.parametrize(
    ("y_bad", "error", "match"),
    [
        (y[:-1], ValueError, r"X has 12 samples but y has 11"),
        (np.where(y > 1, np.nan, y), ValueError, r"y contains NaN"),
        (y + 1j, ValueError, r"Complex data not supported: y"),
        (y.reshape(12, 1, 1), ValueError, r"y must have shape \(n_samples,\)"),
        (np.array(["a"] * 12), ValueError, r"y must hold numbers: could not convert"),
        (None, ValueError, r"MLPRegressor requires y to be passed, but the target y is None"),
    ],
)
def test_bad_regression_targets(y_bad, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLPRegressor(max_iter=1).fit(X, y_bad)


@pytest.mark.parametrize(
    ("y_bad", "error", "match"),
    [
        (y, ValueError, r"Unknown label type: continuous"),
        ([{"a": 1}] * 12, TypeError, r"y must hold class labels that can be sorted .*dict"),
        (labels[:-1], ValueError, r"X has 12 samples but y has 11"),
        (np.stack([labels, labels], axis=1), ValueError, r"must hold only 0 and 1 .*multi-output"),
        (np.where(labels > 1, np.nan, labels), ValueError, r"y contains NaN"),
    ],
)
def test_bad_class_labels(y_bad, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLPClassifier(max_iter=1).fit(X, y_bad)


def test_column_vector_labels_warn_and_work():
    with pytest.warns(xpnet.DataConversionWarning, match="column-vector y"):
        est = xpnet.MLPClassifier(max_iter=1).fit(X, labels[:, None])
    assert est.predict(X).shape == (12,)


def test_y_from_a_third_namespace_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"y is a torch.Tensor but X is an array of"):
        xpnet.MLPRegressor(max_iter=1).fit(X, torch.asarray(y))


def test_wrong_number_of_features_after_fit():
    est = xpnet.MLPRegressor(max_iter=1).fit(X, y)
    for call in (est.predict, est.partial_fit, est.gradients):
        args = (X[:, :2],) if call == est.predict else (X[:, :2], y)
        with pytest.raises(ValueError, match=r"X has 2 features, but MLPRegressor is expecting 3"):
            call(*args)


def test_wrong_number_of_outputs_in_partial_fit():
    est = xpnet.MLPRegressor(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"y has shape \(12, 2\) but .* of shape \(n_samples,\)"):
        est.partial_fit(X, np.stack([y, y], axis=1))


@pytest.mark.parametrize("method", ["predict", "gradients", "score", "predict_proba"])
def test_unfitted_estimator(method):
    est = xpnet.MLPClassifier()
    args = (X,) if method in ("predict", "predict_proba") else (X, labels)
    with pytest.raises(xpnet.NotFittedError, match="not fitted yet"):
        getattr(est, method)(*args)


def test_not_fitted_error_is_sklearns_when_sklearn_is_used():
    exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(exceptions.NotFittedError):
        xpnet.MLPRegressor().predict(X)


def test_assigned_parameters_of_the_wrong_shape():
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=1).fit(X, y)
    est.weights_ = [np.zeros((4, 3)), np.zeros((2, 4))]
    with pytest.raises(ValueError, match=r"weights_\[1\] and biases_\[1\] must have shapes"):
        est.partial_fit(X, y)
    est.weights_ = [np.zeros((4, 3))]
    with pytest.raises(ValueError, match=r"must hold 2 arrays"):
        est.partial_fit(X, y)


def test_divergence_is_reported_with_the_learning_rate():
    with pytest.raises(ValueError, match=r"diverged: .* epoch \d+ with learning_rate=1e\+30"):
        xpnet.MLPRegressor(learning_rate=1e30, max_iter=50, **SEED).fit(X * 1e3, y * 1e3)


def test_invalid_parameter_name_in_set_params():
    # scikit-learn's name for the step size; xpnet's is learning_rate.
    with pytest.raises(ValueError, match=r"Invalid parameter 'learning_rate_init' for MLPReg"):
        xpnet.MLPRegressor().set_params(learning_rate_init=0.1)


def test_a_failed_fit_leaves_the_estimator_as_it_was():
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, labels)
    with pytest.raises(ValueError, match="early stopping needs"):
        clf.set_params(early_stopping=True).fit(X[:1], [7])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict(X).shape == (12,)

    Y2 = np.stack([y, -y], axis=1)
    reg = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0, **SEED)
    reg.fit(X, Y2)
    with pytest.raises(ValueError, match="diverged"):
        reg.set_params(learning_rate=1e30, max_iter=50).fit(X * 1e3, y * 1e3)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (12, 2)


@pytest.mark.parametrize("output", ["identity", "tanh", "relu"])
def test_classifier_outputs_must_be_probabilities(output):
    with pytest.raises(ValueError, match=rf"output_activation='{output}' does not go with"):
        xpnet.MLPClassifier(loss="mse", output_activation=output).fit(X, labels)


def test_assigned_parameters_as_lists_and_with_nan():
    est = xpnet.MLPRegressor(hidden_layer_sizes=(2,), max_iter=1).fit(X, y)
    est.weights_ = [np.ones((2, 3)).tolist(), np.ones((1, 2)).tolist()]
    est.biases_ = [[0.0, 0.0], [0.0]]
    est.partial_fit(X, y)  # nested lists are converted like any array-like
    est.weights_ = [np.full((2, 3), np.nan), np.ones((1, 2))]
    with pytest.raises(ValueError, match=r"Input weights_\[0\] contains NaN"):
        est.partial_fit(X, y)


def test_gradients_after_the_loss_was_changed():
    est = xpnet.MLPRegressor(hidden_layer_sizes=(2,), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"loss='cross_entropy' does not go with the fitted"):
        est.set_params(loss="cross_entropy").gradients(X, y)


def _swapped(a):
    """``a`` in the other byte order than the machine's, with the same values."""
    return a.astype(a.dtype.newbyteorder("S"))


def test_non_native_byte_order_keeps_its_precision():
    # Data read from files written on another machine: ">f8" is float64 all the same.
    Xs, ys, w = _swapped(X), _swapped(y), _swapped(np.linspace(0.5, 2.0, 12))
    assert not Xs.dtype.isnative and Xs.dtype.itemsize == 8
    ref = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    ref.fit(X, y, sample_weight=_swapped(w).astype(np.float64))
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    est.fit(Xs, ys, sample_weight=w)
    assert est.weights_[0].dtype == np.float64 and est.predict(Xs).dtype == np.float64
    for got, want in zip(est.weights_ + est.biases_, ref.weights_ + ref.biases_, strict=True):
        np.testing.assert_array_equal(got, want)
    assert est.score(Xs, ys) == ref.score(X, y)
    single = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2)
    single.fit(_swapped(X.astype(np.float32)), y)
    assert single.weights_[0].dtype == np.float32  # float32 stays float32
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    clf.fit(Xs, _swapped(labels.astype(np.int64)))
    assert clf.weights_[0].dtype == np.float64 and clf.classes_.dtype.isnative


def test_divergence_at_the_last_step_fails_the_fit():
    # An epoch's loss is taken before its step: the last step was never checked, and
    # the fit returned weights whose outputs overflow.
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, learning_rate=1e308)
    message = r"diverged: the step of epoch 1 with learning_rate=1e\+308 made the parameters"
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)
    assert not hasattr(est, "weights_")
    # Nor does the next fit blame its own learning rate for what the last one did.
    fitted = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="made the parameters overflow"):
        fitted.set_params(learning_rate=1e308).partial_fit(X, y)
    fitted.set_params(learning_rate=0.1).partial_fit(X, y)
    assert all(np.all(np.isfinite(W)) for W in fitted.weights_)


def test_a_loss_that_explodes_is_divergence_before_it_overflows():
    # With μ = 1e6 the loss grows by orders of magnitude each epoch, and overflows
    # float64 after 24 epochs: a fit of 20 returned, with a loss of 2.7e253.
    Xl, yl = np.random.default_rng(1).normal(size=(50, 4)), np.random.default_rng(2).normal(size=50)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(8,), learning_rate=1e6, max_iter=20,
                             random_state=0)  # fmt: skip
    message = r"diverged: the loss of epoch \d+ with learning_rate=1000000.0 grew past 1e\+10"
    with pytest.raises(ValueError, match=message + r" times the first epoch's"):
        est.fit(Xl, yl)


def test_the_explosion_rule_judges_against_the_first_epoch_and_wants_growth():
    from xpnet.training.loop import EXPLODED, Record

    def read(losses, before=()):
        record = Record(False, xp=np, before=before)
        record.add([np.asarray(losses)], [], [0.1] * len(losses))
        return record.read_back(last_epoch=len(losses))[0]

    # A spike of 1e9 and a loss above the threshold that is coming down are not it.
    assert read([1.0, 1e9, 3.0]) == [1.0, 1e9, 3.0]
    assert read([5e10, 2e10], before=[1.0, 6e10])[-1] == 2e10
    with pytest.raises(ValueError, match=r"the loss of epoch 3 with learning_rate=0\.1 grew"):
        read([1.0, 0.5, 2.0 * EXPLODED])
    # Continued training is judged against the record's first epoch, not its own.
    with pytest.raises(ValueError, match=r"the loss of epoch 2 .* grew past"):
        read([1e-3, 2e10], before=[1.0])
    assert read([2e10, 3e10], before=[1e3]) == [2e10, 3e10]
