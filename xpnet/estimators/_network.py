"""A fitted network put to use: its output and its gradients on new samples, and its
parameters in scikit-learn's layout.  The estimators inherit it; fitting is elsewhere
(``_base``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np  # host-side: NumPy's floating-point warnings

from .. import engines
from .._errors import not_fitted_error
from ..core.activations import ACTIVATIONS
from ..core.losses import OBJECTIVES
from ..training.engine import Engine
from ..training.samples import Samples
from ._feature_names import check_feature_names
from ._validation import check_sample_weight, check_X

Array = Any


def _saturation_is_expected(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` with NumPy's overflow warnings off.

    A saturated sigmoid unit computes 1 / (1 + e^{-z}) with e^{-z} = inf, which is the
    correct limit 0; NumPy (alone among the backends) warns about that overflow, and
    about the division by an exp output that underflowed to 0 (the Poisson loss's y/o,
    rightly infinite).  Real trouble is not hidden: a diverging loss raises a ValueError
    of its own.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return method(*args, **kwargs)

    return wrapper


class FittedNetwork:
    """The forward pass and the gradients of a fitted estimator (``weights_``,
    ``biases_``, ``activation``, ``out_activation_``), for any samples X."""

    @property
    def coefs_(self) -> list[Array]:
        """The weights in scikit-learn's layout: ``coefs_[l]`` = W⁽ˡ⁺¹⁾ᵀ, of shape
        (n_l, n_{l+1}).  Read-only views of ``weights_``; assign ``weights_`` instead."""
        self._check_fitted()
        return [W_l.T for W_l in self.weights_]

    @property
    def intercepts_(self) -> list[Array]:
        """The biases, as scikit-learn names them: ``intercepts_[l]`` = ``biases_[l]``."""
        self._check_fitted()
        return list(self.biases_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise not_fitted_error(self)

    def _engine(self, X: Array) -> Engine:
        """The engine that computes outputs and gradients for the rows of X (eager)."""
        f = [ACTIVATIONS[self.activation]] * (len(self.weights_) - 1)
        f.append(ACTIVATIONS[self.out_activation_])
        objective = OBJECTIVES.get((self.loss, self.out_activation_))
        return engines.choose(
            "eager", X, f=f, objective=objective, alpha=float(self.alpha),
            widest=max(W_l.shape[0] for W_l in self.weights_), chunk_size=self.chunk_size,
        )  # fmt: skip

    def _network(self, X: Any) -> tuple[Array, Any, Any, Engine, list[Array], list[Array]]:
        """Validate ``X`` against the fitted network, and the network in X's terms.

        Returns X, xp, device, the engine, and W, b as it computes on them (in X's
        namespace, device and dtype; on Dask, its blocks').
        """
        self._check_fitted()
        check_feature_names(self, X, reset=False)
        X, xp, device = check_X(X, n_features=self.n_features_in_, estimator=type(self).__name__)
        engine = self._engine(X)
        xp_P, device_P = engine.xp, engine.device
        W, b = (
            [xp_P.asarray(P_l, dtype=X.dtype, device=device_P) for P_l in engine.adopt(P)]
            for P in (self.weights_, self.biases_)
        )
        return X, xp, device, engine, W, b

    @_saturation_is_expected
    def _output(self, X: Any) -> tuple[Array, Any]:
        """The network output A⁽ᴸ⁾ of shape (n_L, N) for the rows of ``X``, and ``xp``."""
        X, xp, _, engine, W, b = self._network(X)
        with engine.open(Samples(X, None)):
            return engine.output(W, b, X), xp

    @_saturation_is_expected
    def gradients(
        self, X: Any, y: Any, sample_weight: Any = None
    ) -> tuple[list[Array], list[Array]]:
        """∇W⁽ˡ⁾ E_total and ∇b⁽ˡ⁾ E_total at the current parameters, over all of ``X``.

        E_total is the loss that training minimises: with ``alpha`` > 0 it includes the
        L2 penalty, and with ``sample_weight`` it is the weighted mean.

        Parameters
        ----------
        X : array of shape (N, n_features)
        y : array of shape (N,) or (N, n_outputs), or class labels for a classifier
        sample_weight : array of shape (N,) or a number, optional

        Returns
        -------
        grad_W : list of L arrays, ``grad_W[l]`` shaped like ``weights_[l]``
        grad_b : list of L arrays, ``grad_b[l]`` shaped like ``biases_[l]``
        """
        X, xp, device, engine, W, b = self._network(X)
        Y, _ = self._encode_targets(y, xp=xp, device=device, dtype=X.dtype, N=X.shape[0],
                                    fitted=True, classes=None, same_classes=False)  # fmt: skip
        if engine.how.objective is None:  # set_params changed the loss after fitting
            raise ValueError(
                f"loss={self.loss!r} does not go with the fitted output activation "
                f"{self.out_activation_!r}; fit again after changing the loss."
            )
        s, s_host = (None, None)
        if sample_weight is not None:
            s, s_host = check_sample_weight(
                sample_weight, xp=xp, device=device, dtype=X.dtype, N=X.shape[0]
            )
        data = Samples(X, Y, s, s_host)
        with engine.open(data) as (data, _):
            _, grad_W, grad_b = engine.loss_and_gradients(W, b, data)
        return tuple(engine.publish(G, X) for G in (grad_W, grad_b))
