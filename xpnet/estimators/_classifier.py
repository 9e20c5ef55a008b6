"""``MLPClassifier``: the network fitted to class labels, one output per class."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import array_api_compat as aac
import numpy as np  # host-side: class labels that are not numbers

from .._errors import data_conversion_warning
from .._host import to_numpy
from ..core.scores import accuracy
from ._base import Array, _BaseMLP
from ._lbfgs import stochastic_only
from ._regressor import _host_weights
from ._validation import as_array, check_finite, host_or_namespace


class MLPClassifier(_BaseMLP):
    """A multilayer perceptron classifier, trained by backpropagation and gradient descent.

    Labels are one-hot encoded into Y of shape (n_classes, N).  With the default
    ``loss="cross_entropy"`` the output layer is a softmax and Δ⁽ᴸ⁾ = A⁽ᴸ⁾ − Y; with
    ``loss="mse"`` (the seed's loss) it is a sigmoid and Δ⁽ᴸ⁾ = −(Y − A⁽ᴸ⁾) ⊙ A⁽ᴸ⁾(1 − A⁽ᴸ⁾).

    Parameters
    ----------
    hidden_layer_sizes, activation, learning_rate, max_iter, batch_size, shuffle,
    random_state, warm_start, chunk_size, early_stopping, validation_fraction,
    n_iter_no_change, tol, solver, momentum, nesterovs_momentum, beta_1, beta_2,
    epsilon, alpha, learning_rate_schedule, power_t, verbose, engine, max_fun
        As for :class:`MLPRegressor`; the early-stopping score is the accuracy.
    output_activation : {"softmax", "sigmoid", ...} or None, default=None
        None is the loss's natural output: softmax with "cross_entropy", sigmoid with "mse".
    loss : {"cross_entropy", "mse"}, default="cross_entropy"

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
        The sorted class labels.  Numeric labels live in X's namespace and device, and
        ``predict`` returns them there; other labels (strings) stay a NumPy array, and
        ``predict`` returns a NumPy array of them.
    weights_, biases_, loss_curve_, n_iter_, n_features_in_, n_layers_, out_activation_
    best_loss_, validation_scores_, validation_loss_curve_, best_validation_score_
        As for :class:`MLPRegressor`.
    """

    _natural_output: ClassVar[dict[str, str]] = {"mse": "sigmoid", "cross_entropy": "softmax"}
    #: Outputs in [0, 1] that predict_proba can turn into probabilities.
    _usable_outputs: ClassVar[tuple[str, ...]] = ("sigmoid", "softmax")
    #: The early-stopping score, computed on the device: the accuracy, as ``score``.
    _validation_score = staticmethod(accuracy)

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (100,),
        activation: str = "relu",
        output_activation: str | None = None,
        loss: str = "cross_entropy",
        learning_rate: float | None = None,
        max_iter: int = 200,
        batch_size: int | str | None = "auto",
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
        chunk_size: int | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        solver: str = "adam",
        momentum: float = 0.0,
        nesterovs_momentum: bool = True,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        alpha: float = 0.0,
        learning_rate_schedule: str = "constant",
        power_t: float = 0.5,
        verbose: bool = False,
        engine: str = "auto",
        max_fun: int = 15000,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            output_activation=output_activation,
            loss=loss,
            learning_rate=learning_rate,
            max_iter=max_iter,
            batch_size=batch_size,
            shuffle=shuffle,
            random_state=random_state,
            warm_start=warm_start,
            chunk_size=chunk_size,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            solver=solver,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            alpha=alpha,
            learning_rate_schedule=learning_rate_schedule,
            power_t=power_t,
            verbose=verbose,
            engine=engine,
            max_fun=max_fun,
        )

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(multi_label=True)
        return tags

    @stochastic_only
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """Train for exactly one epoch, continuing from the current parameters if fitted.

        The optimizer's state and the learning-rate schedule carry on from the previous
        call.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        classes : array-like of shape (n_classes,), optional
            Every label that will ever be seen, for the first call when ``y`` of that
            call does not show them all.  A later call may give them again, the same
            (as in scikit-learn, other classes are refused).
        """
        return self._fit(X, y, sample_weight, epochs=1, incremental=True, classes=classes)

    def _encode_targets(self, y, *, xp, device, dtype, N, fitted, classes, same_classes):
        """Y of shape (n_classes, N), the one-hot labels one column per sample, and the
        fitted attributes they imply (set only once training has succeeded).

        ``same_classes``: a warm-started (or resumed) fit, whose labels must be the
        classes it was fitted on, as scikit-learn requires; a ``partial_fit`` may see a
        subset of them."""
        y = host_or_namespace(y, xp=xp, name="y", numeric=False)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                data_conversion_warning(),
                stacklevel=4,
            )
            y = y[:, 0]
        if y.ndim == 2 and y.shape[1] > 1:
            return self._encode_label_indicator(y, xp=xp, device=device, dtype=dtype, N=N,
                                                fitted=fitted)  # fmt: skip
        if y.ndim != 1:
            raise ValueError(
                f"y must be a 1-D array of class labels or a 2-D 0/1 matrix of labels "
                f"(multi-label), got shape {tuple(y.shape)}."
            )
        if fitted and self._multilabel:
            raise ValueError(
                f"y is 1-D but the classifier was fitted on multi-label targets of shape "
                f"(n_samples, {self.classes_.shape[0]})."
            )
        if y.shape[0] != N:
            raise ValueError(f"X has {N} samples but y has {y.shape[0]}; they must match.")
        # Numbers are labels on the device, like X; strings and objects stay on the host.
        numeric = _check_labels(y)
        y = xp.asarray(y, device=device) if numeric else y

        if not fitted:
            classes_ = _unique(y)
            if classes is not None:
                given = _unique(
                    xp.asarray(classes, dtype=y.dtype, device=device)
                    if numeric
                    else np.asarray(classes)
                )
                _check_subset(classes_, given)
                classes_ = given
        else:
            classes_ = self.classes_
            if classes is not None:
                _check_same_classes(classes, classes_, numeric=numeric, xp=xp, device=device)
            if same_classes:
                _check_warm_start_classes(_unique(y), classes_)
            else:
                _check_subset(_unique(y), classes_)

        one_hot = classes_[:, None] == y[None, :]
        Y = (
            xp.astype(one_hot, dtype)
            if numeric
            else xp.asarray(one_hot, dtype=dtype, device=device)
        )
        return Y, {"classes_": classes_, "n_outputs_": 1, "_multilabel": False}

    def _encode_label_indicator(self, y, *, xp, device, dtype, N, fitted):
        """Multi-label targets: y of shape (N, n_labels) holding 0 and 1, as Y = yᵀ.

        As in scikit-learn, ``classes_`` is then 0 .. n_labels − 1 and each label gets a
        sigmoid output of its own.
        """
        if y.shape[0] != N:
            raise ValueError(f"X has {N} samples but y has {y.shape[0]}; they must match.")
        indicator = _check_labels(y)
        if indicator:
            y = xp.asarray(y, device=device)
            indicator = bool(xp.all((y == 0) | (y == 1)))
        if not indicator:
            raise ValueError(
                f"A 2-D y of shape {tuple(y.shape)} is taken as multi-label targets and "
                "must hold only 0 and 1 (a label-indicator matrix); multi-output "
                "classification is not supported."
            )
        n_labels = y.shape[1]
        if fitted and not (self._multilabel and self.classes_.shape[0] == n_labels):
            fitted_as = (
                f"{self.classes_.shape[0]} labels" if self._multilabel else "1-D class labels"
            )
            raise ValueError(
                f"y has shape {tuple(y.shape)} but the classifier was fitted on {fitted_as}."
            )
        index = xp.__array_namespace_info__().default_dtypes(device=device)["integral"]
        classes_ = xp.arange(n_labels, dtype=index, device=device)
        Y = xp.astype(y.T, dtype)
        return Y, {"classes_": classes_, "n_outputs_": n_labels, "_multilabel": True}

    def _output_activation(self, output: str, fitted_targets: dict[str, Any]) -> str:
        """Multi-label targets take one sigmoid per label: softmax would make them compete."""
        if not fitted_targets["_multilabel"] or output == "sigmoid":
            return output
        if self.output_activation is None:
            return "sigmoid"
        raise ValueError(
            f"output_activation={self.output_activation!r} cannot be used with multi-label "
            "targets, whose labels are independent: use 'sigmoid' (or None)."
        )

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities: the network's output for each row of ``X``.

        With sigmoid outputs (``loss="mse"``) the outputs are normalised to sum to 1;
        for multi-label targets each label's sigmoid output is its own probability.

        Returns
        -------
        P : array of shape (N, n_classes)
            In X's namespace, device and floating dtype; columns follow ``classes_``.
        """
        O, xp = self._output(X)
        if self.out_activation_ != "softmax" and not self._multilabel:
            O = O / xp.sum(O, axis=0, keepdims=True)
        return O.T

    def predict_log_proba(self, X: Any) -> Array:
        """The logarithm of :meth:`predict_proba`, of shape (N, n_classes)."""
        P = self.predict_proba(X)
        xp = aac.array_namespace(P)
        return xp.log(P)

    def predict(self, X: Any) -> Array:
        """The most likely class label for each row of ``X``, of shape (N,).

        For multi-label targets: the 0/1 matrix of shape (N, n_labels), a label present
        where its output exceeds 0.5.
        """
        O, xp = self._output(X)
        return labels(O, self.classes_, multilabel=self._multilabel, xp=xp)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The accuracy: the (weighted) fraction of rows of ``X`` whose label is right.

        For multi-label targets a row counts only if every one of its labels is right.
        """
        return accuracy_of(self.predict(X), y, sample_weight)

    #: Whether the classifier was fitted on multi-label (label-indicator) targets.
    _multilabel = False


def labels(O: Array, classes_: Array, *, multilabel: bool, xp: Any) -> Array:
    """The labels that outputs (or probabilities) O of shape (n_classes, N) predict: the
    most likely class of each sample, or for multi-label targets the 0/1 matrix of shape
    (N, n_labels) of those above 0.5."""
    if multilabel:
        return xp.astype(O.T > 0.5, classes_.dtype)
    k = xp.argmax(O, axis=0)
    if aac.is_numpy_array(classes_) and classes_.dtype.kind in "OUS":
        return classes_[to_numpy(k)]  # text labels stay on the host
    # Numeric labels follow X, also when the classifier was fitted on another backend.
    return xp.take(xp.asarray(classes_, device=aac.device(k)), k)


def accuracy_of(y_pred: Array, y: Any, sample_weight: Any = None) -> float:
    """The (weighted) fraction of predictions ``y_pred`` that equal ``y``; a row of
    multi-label predictions counts only if all its labels are right."""
    y_pred = to_numpy(y_pred)
    y_true = to_numpy(as_array(y, "y", numeric=False)[0])
    if y_true.shape != y_pred.shape:
        y_true = y_true.reshape(y_pred.shape)
    hit = y_pred == y_true
    if hit.ndim == 2:
        hit = np.all(hit, axis=1)
    return float(np.average(hit, weights=_host_weights(sample_weight, len(hit))))


def _check_labels(y: Array) -> bool:
    """Whether ``y`` holds numeric class labels; raise for values that are not labels."""
    if aac.is_numpy_array(y) and y.dtype.kind in "OUS":
        return False
    ns = aac.array_namespace(y)
    if ns.isdtype(y.dtype, ("integral", "bool")):
        return True
    if not ns.isdtype(y.dtype, "real floating"):
        raise ValueError(f"Unknown label type: y has dtype {y.dtype}; expected class labels.")
    check_finite(y, ns, "y")
    if not bool(ns.all(y == ns.round(y))):
        raise ValueError(
            "Unknown label type: continuous. y holds non-integer floats, but a classifier "
            "takes class labels; use MLPRegressor for continuous targets."
        )
    return True


def _unique(y: Array) -> Array:
    """The sorted distinct labels of ``y``, in y's namespace."""
    if aac.is_numpy_array(y):
        try:
            return np.unique(y)
        except TypeError:  # objects without an order: dicts, or a mix of str and int
            kinds = sorted({type(v).__name__ for v in y.tolist()})
            raise TypeError(
                f"y must hold class labels that can be sorted (numbers or strings), got {kinds}."
            ) from None
    xp = aac.array_namespace(y)
    if aac.is_dask_array(y):  # Dask: the number of classes fixes the network's shape now
        return xp.asarray(np.unique(to_numpy(y)), device=aac.device(y))
    labels = xp.unique_values(y)
    if xp.isdtype(labels.dtype, "bool"):  # the standard sorts numbers only: False < True
        return xp.take(labels, xp.argsort(xp.astype(labels, xp.int8)))
    return xp.sort(labels)


def _check_subset(labels: Array, classes: Array) -> None:
    unknown = np.setdiff1d(to_numpy(labels), to_numpy(classes))
    if unknown.size:
        raise ValueError(
            f"y holds labels {unknown.tolist()} that are not among classes_ "
            f"{to_numpy(classes).tolist()}."
        )


def _check_same_classes(classes: Any, classes_: Array, *, numeric: bool, xp, device) -> None:
    """A later ``partial_fit``'s ``classes=`` must be the first call's (scikit-learn's rule)."""
    given = to_numpy(
        _unique(xp.asarray(classes, device=device) if numeric else np.asarray(classes))
    )
    if not np.array_equal(given, to_numpy(classes_)):
        raise ValueError(
            f"`classes={np.asarray(classes).tolist()!r}` is not the same as on the first call "
            f"to partial_fit, was: {to_numpy(classes_).tolist()!r}."
        )


def _check_warm_start_classes(labels: Array, classes_: Array) -> None:
    """A warm-started fit's labels must be the classes of the fit it continues."""
    seen, known = to_numpy(labels), to_numpy(classes_)
    if not np.array_equal(np.sort(seen), np.sort(known)):
        raise ValueError(
            "warm_start can only be used where `y` has the same classes as in the previous "
            f"call to fit. Previously got {known.tolist()}, `y` has {seen.tolist()}."
        )
