"""``MLPRegressor``: the network fitted to continuous targets."""

from __future__ import annotations

from typing import Any, ClassVar

import array_api_compat as aac
import numpy as np  # host-side: the score's sample weights

from ..core.scores import r2_score
from ._base import Array, _BaseMLP
from ._lbfgs import stochastic_only
from ._validation import check_sample_weight, check_targets


class MLPRegressor(_BaseMLP):
    """A multilayer perceptron for regression, trained by backpropagation and gradient descent.

    The network computes Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾ + b⁽ˡ⁾ and A⁽ˡ⁾ = f(Z⁽ˡ⁾) layer by layer and is
    trained on E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖² (or another ``loss``) by batch gradient descent
    W⁽ˡ⁾ ← W⁽ˡ⁾ − μ ∇W⁽ˡ⁾ E_total.  One code path serves every Array API namespace:
    fit it on NumPy, CuPy, PyTorch or JAX arrays and results come back as the same kind
    of array, on the same device, in the same floating dtype.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        n_1, ..., n_{L-1}: the number of neurons in each hidden layer.
    activation : {"relu", "sigmoid", "tanh", "identity"}, default="relu"
        f of the hidden layers (scikit-learn's default; the seed's f is the sigmoid).
    output_activation : {"identity", "sigmoid", "tanh", "relu", "softmax", "exp"} or None, \
default=None
        f of the output layer.  None takes the loss's natural one: "identity" with
        ``loss="mse"`` (which also takes "sigmoid", "tanh" and "relu"), "sigmoid" with
        ``loss="cross_entropy"`` (or "softmax"), "exp" with ``loss="poisson"``.
    loss : {"mse", "cross_entropy", "poisson"}, default="mse"
        "mse" is the seed's E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖²; "cross_entropy" is the binary
        cross-entropy of sigmoid outputs, for targets in [0, 1]; "poisson" is half the
        Poisson deviance, (1/N) Σᵢ Σₖ [yₖ log(yₖ/oₖ) − yₖ + oₖ], of outputs o = e^z (the
        log link), for counts or rates y ≥ 0, as scikit-learn's ``loss="poisson"``.
    learning_rate : float or None, default=None
        The step size μ (scikit-learn's ``learning_rate_init``).  None takes 0.1 for
        ``solver="sgd"``; for ``solver="adam"``, scikit-learn's 0.001 with mini-batches,
        and 0.01 with ``batch_size=None`` (one full-batch step per epoch moves the
        weights ten times less often).
    max_iter : int, default=200
        The number of epochs ``fit`` trains for; with ``solver="lbfgs"``, the most
        L-BFGS iterations it takes.
    batch_size : int, "auto" or None, default="auto"
        Samples per step.  None trains on all N samples at once (batch gradient
        descent, one step per epoch: the seed's method); an int gives mini-batches of
        that size, one step each.  "auto" is scikit-learn's min(200, N) for
        ``solver="adam"`` and all N for ``solver="sgd"``, so that ``solver="sgd"`` alone
        is the seed's full-batch gradient descent.
    shuffle : bool, default=True
        Whether mini-batches are drawn in a new random order each epoch.
    random_state : int, numpy.random.Generator or None, default=None
        Seeds the initial weights (drawn on the host, the same on every backend) and the
        mini-batch order.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current ``weights_`` and ``biases_`` instead
        of drawing new ones.
    chunk_size : int or None, default=None
        How many samples the forward and backward passes take at a time.  The gradient
        is a sum over samples, so chunking changes nothing but the order of summation.
        None chooses per device: all at once on a GPU; on a CPU, chunks whose
        temporaries stay in cache, spread over the cores on NumPy when threadpoolctl
        (installed with scikit-learn) is present.
    early_stopping : bool, default=False
        Whether ``fit`` holds out ``validation_fraction`` of the samples and stops when
        the score on them (R² here, the accuracy for the classifier) has not improved
        by ``tol`` for more than ``n_iter_no_change`` epochs; the parameters of the
        best epoch are restored.  The rule is checked each time the epoch values are
        read back from the device (every 16 epochs), so training may run up to 15
        epochs past the point where it fires.  ``partial_fit`` never stops early.
    validation_fraction : float, default=0.1
        The share of the training samples held out for early stopping (stratified by
        class for the classifier), drawn with ``random_state``.
    n_iter_no_change : int or numpy.inf, default=10
        Epochs without an improvement of ``tol`` before stopping (or, with the adaptive
        schedule, dividing μ by 5), as in scikit-learn: of the validation score with
        early stopping, else of the training loss.  ``numpy.inf`` never stops.  A fit
        that ``max_iter`` ends first warns with a ``ConvergenceWarning``.
    tol : float, default=1e-4
        The improvement of the validation score (without early stopping, of the
        training loss) that counts.  With ``solver="lbfgs"``: the fit has converged once
        no component of ∇E_total exceeds ``tol`` in size.
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        The update rule.  "adam" is Adam in scikit-learn's form, scikit-learn's default
        (see ``xpnet.core.optimizers``); "sgd" is gradient descent, with ``momentum`` if
        it is > 0, full-batch unless ``batch_size`` says otherwise.  Their state
        starts at zero in every ``fit`` and carries on through ``partial_fit``.
        "lbfgs" is L-BFGS (``xpnet.training.lbfgs``), a quasi-Newton method on E_total
        of all the samples, as scikit-learn's "lbfgs": it stops once the gradient is
        within ``tol``, E_total stalls, or at ``max_iter`` iterations or ``max_fun``
        evaluations (the last two with a ``ConvergenceWarning``).  It ignores the
        other solvers' settings (``learning_rate``, ``batch_size``, ``momentum``, the
        schedule, ``early_stopping``), has no ``partial_fit`` and cannot ``resume``.
    momentum : float in [0, 1], default=0
        β of gradient descent with momentum: V ← β V − μ ∇E_total.  0 is the seed's
        plain step (scikit-learn's default is 0.9).
    nesterovs_momentum : bool, default=True
        Whether the step is Nesterov's, β V − μ ∇E_total with the new V, or V itself.
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates of the first and second moments.
    epsilon : float > 0, default=1e-8
        Added to √V in Adam's step.
    alpha : float >= 0, default=0
        The L2 penalty: E_total gains (α/2N) Σₗ ‖W⁽ˡ⁾‖² and ∇W⁽ˡ⁾ gains α W⁽ˡ⁾ / N
        (weights only, never biases; with sample weights, N is Σᵢ sᵢ).  ``loss_curve_``
        includes it.  scikit-learn's default is 1e-4.
    learning_rate_schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        scikit-learn's ``learning_rate`` (for ``solver="sgd"`` only).  "invscaling":
        μ / (t + 1)^``power_t`` with t the samples trained on so far; "adaptive": μ is
        divided by 5 whenever the training loss (the validation score with early
        stopping) fails to improve by ``tol`` for more than ``n_iter_no_change``
        epochs, and training stops once μ would fall below 1e-6.  Decided when the
        epochs are read back (every 16), like early stopping.
    power_t : float >= 0, default=0.5
        The exponent of the "invscaling" schedule.
    verbose : bool or int, default=False
        Print a line with the epoch count and loss (and validation score) each time
        the epochs are read back, every 16 epochs.
    engine : {"auto", "eager", "jit"}, default="auto"
        How the epochs are run.  "eager": one array operation at a time, on every
        backend.  "jit": full-batch epochs compiled, the same functions traced, each
        batch whole (``chunk_size`` does not apply): on JAX arrays each block of 16
        epochs as one program (``jax.jit``), on PyTorch tensors each step as one
        program (``torch.compile``, whose first compilation takes seconds, and again
        for each new number of samples), on CUDA with each block of 16 such steps
        captured as one CUDA graph; on CuPy arrays (and Dask arrays of CuPy blocks),
        every step (mini-batches too) with its elementwise work in fused kernels
        (``xpnet._fused``, compiled once per dtype and cached by CuPy).  "auto": "jit"
        on JAX where it applies and the fit trains at least
        ``xpnet._compiled.MIN_EPOCHS_TO_COMPILE`` epochs (a shorter fit would spend
        more time compiling than it saves), else "eager"; on Dask, mini-batch epochs
        run as one task graph per block of 16 (per epoch with early stopping).  CUDA
        graphs and fused kernels are for "jit" alone until measured on a GPU.
        ``solver="lbfgs"`` computes each evaluation one operation at a time, not
        compiled (with "jit" on CuPy, through the fused kernels; on Dask, a task graph
        each).
    max_fun : int, default=15000
        With ``solver="lbfgs"``: no iteration starts once E_total has been evaluated
        more than ``max_fun`` times (scikit-learn's ``max_fun``).

    Attributes
    ----------
    weights_ : list of L arrays, ``weights_[l]`` of shape (n_{l+1}, n_l)
        W⁽¹⁾ .. W⁽ᴸ⁾, in the training data's namespace, device and dtype.  Assignable:
        ``partial_fit`` (and ``fit`` with ``warm_start=True``) continues from them.
    biases_ : list of L arrays, ``biases_[l]`` of shape (n_{l+1},)
    loss_curve_ : list of float
        E_total for each epoch trained (at the parameters the epoch started from); with
        ``solver="lbfgs"``, after each iteration.
    n_iter_ : int
        The number of epochs trained, or of L-BFGS iterations.
    best_loss_ : float or None
        The smallest value in ``loss_curve_``; None after ``fit`` with early stopping
        (as in scikit-learn, whose early stopping judges by the validation score).
    validation_scores_ : list of float or None
        The validation score after each epoch, with ``early_stopping``; else None.
    validation_loss_curve_ : list of float or None
        The loss on the validation samples after each epoch, with ``early_stopping``.
    best_validation_score_ : float or None
        The best of ``validation_scores_``: the epoch whose parameters were kept.
    n_features_in_ : int
    n_outputs_ : int
    n_layers_ : int
        L + 1, counting the input layer.
    out_activation_ : str
    t_ : int
        The number of samples trained on, counting each epoch's; the "invscaling"
        schedule's t.
    coefs_, intercepts_ : lists of L arrays
        Read-only, in scikit-learn's layout: ``coefs_[l]`` is ``weights_[l].T`` of
        shape (n_l, n_{l+1}), ``intercepts_[l]`` is ``biases_[l]``.
    feature_names_in_ : numpy.ndarray of str
        The column names of a DataFrame ``X`` passed to ``fit``, when they are all
        strings; ``predict`` and ``score`` then check them.
    """

    _natural_output: ClassVar[dict[str, str]] = {
        "mse": "identity",
        "cross_entropy": "sigmoid",
        "poisson": "exp",
    }
    #: The early-stopping score, computed on the device: R², as ``score``.
    _validation_score = staticmethod(r2_score)

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (100,),
        activation: str = "relu",
        output_activation: str | None = None,
        loss: str = "mse",
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
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    @stochastic_only
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train for exactly one epoch, continuing from the current parameters if fitted.

        With ``batch_size=None`` that is one step of batch gradient descent.  The
        optimizer's state and the learning-rate schedule carry on from the previous call.
        ``sample_weight`` is as for :meth:`fit`.
        """
        return self._fit(X, y, sample_weight, epochs=1, incremental=True)

    def _encode_targets(self, y, *, xp, device, dtype, N, fitted, classes, same_classes):
        """Y of shape (n_outputs, N), the targets one column per sample, and the fitted
        attributes they imply (set only once training has succeeded)."""
        y = check_targets(y, xp=xp, device=device, dtype=dtype, N=N)
        if self.loss == "poisson" and bool(xp.any(y < 0.0)):  # one read-back, at the boundary
            raise ValueError(
                f"loss='poisson' needs targets y >= 0 (counts or rates); y holds negative "
                f"values, down to {float(xp.min(y))!r}."
            )
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if fitted and (n_outputs, y.ndim) != (self.n_outputs_, self._y_ndim):
            fitted_shape = (
                "(n_samples,)" if self._y_ndim == 1 else f"(n_samples, {self.n_outputs_})"
            )
            raise ValueError(
                f"y has shape {tuple(y.shape)} but the estimator was fitted with y of shape "
                f"{fitted_shape}."
            )
        Y = y[None, :] if y.ndim == 1 else y.T
        return Y, {"n_outputs_": n_outputs, "_y_ndim": y.ndim}

    def predict(self, X: Any) -> Array:
        """The network's output for each row of ``X``.

        Returns
        -------
        y : array of shape (N,) or (N, n_outputs)
            As ``y`` was shaped in ``fit``; in X's namespace, device and floating dtype.
        """
        O, _ = self._output(X)
        return O[0, :] if self._y_ndim == 1 else O.T

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R², the coefficient of determination, averaged uniformly over the outputs.

        With ``sample_weight``, both sums of squares and the targets' mean are weighted.
        """
        return r2_of(self.predict(X), y, sample_weight)


def r2_of(y_pred: Array, y: Any, sample_weight: Any = None) -> float:
    """R² of the predictions ``y_pred`` of shape (N,) or (N, n_outputs) against ``y``,
    averaged uniformly over the outputs; with ``sample_weight``, both sums of squares
    and the targets' mean are weighted."""
    xp = aac.array_namespace(y_pred)
    device = aac.device(y_pred)
    y = check_targets(y, xp=xp, device=device, dtype=y_pred.dtype, N=y_pred.shape[0])
    y = xp.reshape(y, y_pred.shape)
    s = None
    if sample_weight is not None:
        s, _ = check_sample_weight(sample_weight, xp=xp, device=device,
                                   dtype=y_pred.dtype, N=y_pred.shape[0])  # fmt: skip
    if y.ndim == 1:
        y, y_pred = y[None, :], y_pred[None, :]
    else:
        y, y_pred = y.T, y_pred.T
    return float(r2_score(y_pred, y, s, xp=xp))  # columns are samples, as in training


def _host_weights(sample_weight: Any, N: int) -> np.ndarray | None:
    """Sample weights for a score computed on the host: checked, as NumPy."""
    if sample_weight is None:
        return None
    import array_api_compat.numpy as np_xp

    return check_sample_weight(sample_weight, xp=np_xp, device="cpu", dtype=np.float64, N=N)[1]
