"""Ensembles over seeds: one estimator's settings trained from several random starts, as
one stack, and their predictions averaged.

A network's trained weights depend on its random start (its initial weights, its
mini-batch order, its early-stopping split); averaging several networks that differ in
nothing else lowers the variance that start adds, and their spread says how sure the
average is.  The members share X, their layer sizes and every setting but
``random_state``, so they train as one stack (``xpnet.training.stacks``): for small
networks, several for little more than the cost of one.  Each member is the estimator
its own ``fit(X, y)`` with its seed would give, to within the rounding of sums taken in
another order (1e-15 in float64).
"""

from __future__ import annotations

from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: seeds, targets for the stack

from .._errors import not_fitted_error
from ._classifier import MLPClassifier, accuracy_of, labels
from ._params import EstimatorProtocol, _generator
from ._regressor import MLPRegressor, r2_of
from ._stack import fit_stack, host_targets, most_per_stack, stack_key, stack_sizes
from ._validation import check_X

Array = Any


class _SeedEnsemble(EstimatorProtocol):
    """What the regressor and the classifier ensembles share: the members' training."""

    #: The estimator class the members are, and the default member.
    _member: type

    def __init__(
        self, estimator: Any = None, n_estimators: int = 5, *, random_state: Any = None,
        max_stack: int | None = None, shared_order: bool = False,
    ) -> None:  # fmt: skip
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.max_stack = max_stack
        self.shared_order = shared_order

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ensemble's parameters; with ``deep``, also the estimator's, as
        ``estimator__<name>`` (what a grid search over the members' settings names)."""
        params = super().get_params(deep=False)
        if deep and self.estimator is not None:
            for name, value in self.estimator.get_params(deep=False).items():
                params[f"estimator__{name}"] = value
        return params

    def set_params(self, **params: Any) -> _SeedEnsemble:
        """Set parameters by name, the estimator's as ``estimator__<name>``."""
        own = {k: v for k, v in params.items() if not k.startswith("estimator__")}
        super().set_params(**own)  # the estimator first, if it is replaced
        nested = {k.removeprefix("estimator__"): v for k, v in params.items() if k not in own}
        if nested:
            if self.estimator is None:
                self.estimator = self._member()
            self.estimator.set_params(**nested)
        return self

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _SeedEnsemble:
        """Train ``n_estimators`` copies of ``estimator``, each from its own seed, on (X, y).

        The seeds are drawn from ``random_state``; the copies are trained as stacks of at
        most ``max_stack`` networks (by default as many as the device holds well), or
        one by one where they cannot share a stack (``solver="lbfgs"``, ``verbose``, a
        sparse X, mini-batches on Dask...: see ``xpnet.estimators._stack.stack_key``).

        Parameters
        ----------
        X : array of shape (N, n_features)
        y : array of shape (N,) or (N, n_outputs)
        sample_weight : array of shape (N,), optional

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As a member's own ``fit`` raises it (the first to fail, by seed order), or
            for a bad ``n_estimators`` or ``max_stack``.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        members, order_seed = self._members()
        key = stack_key(members[0], X)
        if key is None and self.shared_order:
            raise ValueError(
                "shared_order=True trains the members as stacks in one batch order, which "
                f"these cannot share ({members[0]!r} on {type(X).__name__} X: see "
                "xpnet.model_selection for what cannot be stacked)."
            )
        most, y_host = 1, None
        if key is not None and len(members) > 1:
            y_host = host_targets(y)
            most = self._most_per_stack(members[0], X, y_host)
        if most == 1 and not self.shared_order:  # stacks of one would only add their costs
            fitted = [m.fit(X, y, sample_weight=sample_weight) for m in members]
        else:
            y_host = host_targets(y) if y_host is None else y_host
            seed = order_seed if self.shared_order else None
            fitted = self._fit_stacks(members, X, y, y_host, sample_weight, seed, most)
        self.estimators_ = fitted
        first = fitted[0]
        self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        else:  # a refit on an X without column names forgets the last one's
            self.__dict__.pop("feature_names_in_", None)
        return self

    def _members(self) -> tuple[list[Any], int]:
        """The unfitted members: copies of ``estimator`` with seeds of their own; and one
        more seed, for a shared batch order."""
        estimator = self._member() if self.estimator is None else self.estimator
        if type(estimator) is not self._member:
            raise TypeError(
                f"{type(self).__name__} takes an unfitted {self._member.__name__} as its "
                f"estimator, got {estimator!r}."
            )
        n = self.n_estimators
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_estimators must be an int of at least 1, got {n!r}.")
        most = self.max_stack
        if most is not None and (
            isinstance(most, bool) or not isinstance(most, (int, np.integer)) or most < 1
        ):
            raise ValueError(f"max_stack must be None or an int of at least 1, got {most!r}.")
        if not isinstance(self.shared_order, (bool, np.bool_)):
            raise ValueError(f"shared_order must be True or False, got {self.shared_order!r}.")
        if self.shared_order and estimator.early_stopping:
            raise ValueError(
                "shared_order=True cannot be used with early_stopping=True: each member "
                "holds out its own validation samples, so they do not share their batches."
            )
        # One seed per member, as scikit-learn's ensembles draw theirs.
        rng = _generator(self.random_state)
        seeds = rng.integers(np.iinfo(np.int32).max, size=int(n) + 1)
        params = estimator.get_params(deep=False)
        members = [self._member(**{**params, "random_state": int(seed)}) for seed in seeds[:-1]]
        return members, int(seeds[-1])

    def _fit_stacks(
        self, members: list[Any], X: Any, y: Any, y_host: np.ndarray, sample_weight: Any,
        order_seed: int | None, most: int,
    ) -> list[Any]:  # fmt: skip
        """The members trained as stacks of at most ``most`` on all of (X, y) (``y_host``:
        y on the host); with ``order_seed``, every stack in the same batch orders, drawn
        from a generator of that seed: how the members are split into stacks changes
        none of them."""
        rows = np.arange(len(y_host))
        fitted, start = [], 0
        for size in stack_sizes(len(members), most):
            part = members[start : start + size]
            start += size
            order = None if order_seed is None else np.random.default_rng(order_seed)
            done = fit_stack(part, X, y_host, [rows] * size, sample_weight, shared_order=order)
            for member, result in zip(part, done, strict=True):
                if isinstance(result, Exception):
                    raise result
                # None: the stack could not take it (never on all of y); fitted alone.
                fitted.append(member.fit(X, y, sample_weight) if result is None else result)
        return fitted

    def _most_per_stack(self, member: Any, X: Any, y_host: np.ndarray) -> int:
        """How many members one stack holds: as many as the device holds well, at most
        ``max_stack``."""
        X_array, _, _ = check_X(X, estimator=self._member.__name__)
        most = most_per_stack(member, X_array, y_host, len(y_host))
        return most if self.max_stack is None else min(most, int(self.max_stack))

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimators_"):
            raise not_fitted_error(self)

    def _mean(self, outputs: list[Array]) -> Array:
        """The members' outputs averaged, in their namespace and on their device."""
        xp = aac.array_namespace(outputs[0])
        return xp.mean(xp.stack(outputs), axis=0)


class SeedEnsembleRegressor(_SeedEnsemble):
    """The average of ``n_estimators`` regressors that differ only in their seed.

    Each member is ``estimator`` with a ``random_state`` of its own, drawn from this
    ensemble's; the members train together as stacks where they can (see
    ``xpnet.model_selection`` for what a stack is), and each equals the fit it would
    get alone.

    Parameters
    ----------
    estimator : MLPRegressor, optional
        The members' settings (its ``random_state`` is replaced); ``MLPRegressor()`` by
        default.
    n_estimators : int, default 5
    random_state : None, int or numpy.random.Generator
        Where the members' seeds come from.
    max_stack : int, optional
        The most members one stack holds; by default as many as the device holds well
        (4 MiB of a CPU's cache, a quarter of a GPU's free memory).
    shared_order : bool, default False
        Mini-batches in one order for all members (drawn from ``random_state``, the same
        whatever the members' split into stacks), each batch gathered once for a whole
        stack: less work per step, and members that differ only in their initial
        weights.  By default each member draws its own order, as its own fit would.
        Not with early stopping, nor with members that cannot train as stacks.  A
        member's own generator is left as its initial weights left it: a ``warm_start``
        or ``partial_fit`` of it goes on in its own orders.

    Attributes
    ----------
    estimators_ : list of MLPRegressor
        The fitted members, each with its ``random_state``.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Where X had column names.
    """

    _member = MLPRegressor

    def predict(self, X: Any) -> Array:
        """The members' predictions averaged, of shape (N,) or (N, n_outputs)."""
        self._check_fitted()
        return self._mean([m.predict(X) for m in self.estimators_])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of :meth:`predict`, as ``MLPRegressor.score``."""
        return r2_of(self.predict(X), y, sample_weight)

    def __sklearn_tags__(self) -> Any:
        return MLPRegressor().__sklearn_tags__()


class SeedEnsembleClassifier(_SeedEnsemble):
    """Soft voting over ``n_estimators`` classifiers that differ only in their seed: the
    average of their class probabilities, and its most likely class.

    Parameters and training are those of :class:`SeedEnsembleRegressor`, with an
    ``MLPClassifier`` as the estimator.

    Attributes
    ----------
    estimators_ : list of MLPClassifier
    classes_ : array of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Where X had column names.
    """

    _member = MLPClassifier

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SeedEnsembleClassifier:
        super().fit(X, y, sample_weight)
        self.classes_ = self.estimators_[0].classes_
        return self

    def predict_proba(self, X: Any) -> Array:
        """The members' class probabilities averaged, of shape (N, n_classes)."""
        self._check_fitted()
        return self._mean([m.predict_proba(X) for m in self.estimators_])

    def predict_log_proba(self, X: Any) -> Array:
        """The logarithm of :meth:`predict_proba`."""
        P = self.predict_proba(X)
        return aac.array_namespace(P).log(P)

    def predict(self, X: Any) -> Array:
        """The most likely class of the averaged probabilities, of shape (N,) (for
        multi-label targets, the labels whose averaged probability exceeds 0.5)."""
        P = self.predict_proba(X)
        first = self.estimators_[0]
        return labels(P.T, self.classes_, multilabel=first._multilabel,
                      xp=aac.array_namespace(P))  # fmt: skip

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The accuracy of :meth:`predict`, as ``MLPClassifier.score``."""
        return accuracy_of(self.predict(X), y, sample_weight)

    def __sklearn_tags__(self) -> Any:
        return MLPClassifier().__sklearn_tags__()
