"""Estimators with scikit-learn's interface: ``MLPRegressor`` and ``MLPClassifier``.

They are the boundary of the library: they validate what users pass, find the array
namespace and device once, turn the user's rows-are-samples ``X`` (N, n_in) into the
seed's columns-are-samples Xᵀ, run the training loop and hand results back in the
input's namespace, on its device and in its floating dtype.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import array_api_compat as aac
import numpy as np  # host-side: random state, and class labels that are not numbers

from . import _dask
from ._activations import ACTIVATIONS
from ._backprop import loss_and_gradients, output
from ._checkpoints import CheckpointWriter, check_checkpoint
from ._compiled import block_runner, step_for
from ._dask import concrete
from ._errors import data_conversion_warning, not_fitted_error
from ._feature_names import check_feature_names, feature_names
from ._host import to_numpy
from ._init import glorot_uniform
from ._losses import OBJECTIVES
from ._optimizers import Optimizer, OptimizerState, make_optimizer
from ._parallel import chunked
from ._training import (
    EarlyStopping,
    History,
    Interrupted,
    Samples,
    Schedule,
    ScheduleState,
    Step,
    accuracy,
    r2_score,
    run_epochs,
    subset_accuracy,
    validation_split,
)
from ._validation import (
    as_array,
    check_finite,
    check_hyperparameters,
    check_sample_weight,
    check_targets,
    check_X,
    host_or_namespace,
)

Array = Any

#: μ for ``learning_rate=None``: the seed's gradient descent takes 0.1.  Adam's steps
#: are about μ in size whatever the gradient's scale; with one full-batch step per
#: epoch, scikit-learn's 0.001 (tuned for its 200-sample mini-batches) moves a weight
#: at most 0.2 in 200 epochs, so full-batch Adam takes 0.01.
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "adam": 0.01}


def _saturation_is_expected(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` with NumPy's overflow warnings off.

    A saturated sigmoid unit computes 1 / (1 + e^{-z}) with e^{-z} = inf, which is the
    correct limit 0; NumPy (alone among the backends) warns about that overflow.  Real
    trouble is not hidden: a diverging loss raises a ValueError of its own.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore"):
            return method(*args, **kwargs)

    return wrapper


class _BaseMLP:
    """What the regressor and the classifier share: parameters, training and the forward pass."""

    #: The output activation each loss implies when ``output_activation`` is None.
    _natural_output: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (100,),
        activation: str = "sigmoid",
        output_activation: str | None = None,
        loss: str = "mse",
        learning_rate: float | None = None,
        max_iter: int = 200,
        batch_size: int | None = None,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
        chunk_size: int | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        solver: str = "sgd",
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
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.chunk_size = chunk_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.solver = solver
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.alpha = alpha
        self.learning_rate_schedule = learning_rate_schedule
        self.power_t = power_t
        self.verbose = verbose
        self.engine = engine

    # -- scikit-learn's estimator protocol ---------------------------------------------

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters, as passed to the constructor."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _BaseMLP:
        """Set hyperparameters by name; returns the estimator."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not (value is defaults[name] or _equal(value, defaults[name]))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        # Called by scikit-learn only, so importing it here adds no dependency.
        from sklearn.utils import Tags, TargetTags

        tags = Tags(estimator_type=None, target_tags=TargetTags(required=True))
        tags.input_tags.two_d_array = True
        return tags

    # -- fitting ----------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        callback: Callable[..., Any] | None = None,
        checkpoint: Any = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> _BaseMLP:
        """Train for ``max_iter`` epochs, from fresh random weights unless ``warm_start``.

        The optimizer's state (momentum, Adam's moments) starts at zero in every ``fit``,
        also with ``warm_start``; ``partial_fit`` carries it on.  With ``early_stopping``,
        training stops once the validation score stops improving (checked every
        ``xpnet._training.READBACK_EVERY`` epochs, so it may run up to 15 epochs past
        that point) and the parameters of the best epoch are restored.

        Parameters
        ----------
        X : array of shape (N, n_features)
            Any Array API array (NumPy, CuPy, PyTorch, JAX, ...) or array-like.
        y : array of shape (N,) or (N, n_outputs)
            Targets (regressor) or class labels (classifier), in X's namespace or on
            the host.
        sample_weight : array of shape (N,) or a number, optional
            Non-negative weights sᵢ: each sample's loss and output delta are scaled by
            sᵢ and sums over samples are divided by Σᵢ sᵢ instead of N.  None weighs
            every sample 1, exactly as the unweighted step.
        callback : callable, optional
            ``callback(losses, validation_scores)``, called every few epochs with the
            new epochs' values as lists of floats (``validation_scores`` is None without
            early stopping): progress reports at no extra host synchronisation.
        checkpoint : str, os.PathLike or callable, optional
            Where to write the model as trained so far, every ``checkpoint_every``
            epochs and at the end: a file path (written atomically, as :meth:`save`
            writes), or ``checkpoint(estimator)``, called with a fitted copy whose
            arrays are on the host.  Either runs in a background thread, from the
            values of the last read-back, so that training does not wait for the disk.
        checkpoint_every : int, optional
            Epochs between checkpoints (taken at the read-back after each multiple,
            so every 16 epochs at most); None writes one at the end only.
        resume : bool, default False
            Carry on a fit that was interrupted or checkpointed (also one loaded with
            :func:`xpnet.load`) up to ``max_iter`` epochs in all, with its parameters,
            optimizer and schedule state and mini-batch order as they were: the result
            equals that of the fit never stopped.  Not with ``early_stopping``.

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            Re-raised after an interrupt, with the estimator fitted as of the last
            read-back block (every 16 epochs): parameters, optimizer state, loss record
            and mini-batch order consistent with each other, ready for ``resume``.
        """
        return self._fit(
            X, y, sample_weight, epochs=None, incremental=False, callback=callback,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
        )  # fmt: skip

    @_saturation_is_expected
    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        epochs: int | None,
        incremental: bool,
        classes: Any = None,
        callback: Callable[..., Any] | None = None,
        checkpoint: Any = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        hidden, output = check_hyperparameters(self, natural_output=self._natural_output)
        check_checkpoint(checkpoint, checkpoint_every)
        if resume:
            epochs = self._epochs_to_resume()
            if epochs == 0:
                return self
        carry_on = incremental or resume  # the optimizer, schedule and batch order go on
        continuing = (carry_on or self.warm_start) and hasattr(self, "weights_")
        fitted = continuing and hasattr(self, "n_features_in_")
        X_in = X  # a DataFrame's column names, before X becomes an array
        if fitted:
            check_feature_names(self, X, reset=False)
        else:
            feature_names(X)  # mixed names fail now, before any training
        X, xp, device = check_X(
            X, n_features=self.n_features_in_ if fitted else None, estimator=type(self).__name__
        )
        Y, fitted_targets = self._encode_targets(
            y, xp=xp, device=device, dtype=X.dtype, N=X.shape[0], fitted=fitted, classes=classes
        )
        output = self._output_activation(output, fitted_targets)
        s, s_host = (None, None)
        if sample_weight is not None:
            s, s_host = check_sample_weight(
                sample_weight, xp=xp, device=device, dtype=X.dtype, N=X.shape[0]
            )
        layer_sizes = [X.shape[1], *hidden, Y.shape[0]]
        f = [ACTIVATIONS[self.activation]] * len(hidden) + [ACTIVATIONS[output]]
        # The parameters are computed on in their own namespace: X's, or on Dask its
        # blocks' (the samples stay with Dask, see xpnet._dask).
        xp_P, device_P = _parameter_namespace(X, xp, device)

        if not (continuing and hasattr(self, "_rng")):
            self._rng = _generator(self.random_state)
        optimizer, schedule = self._optimizer(), self._schedule()
        W, b, state, sched = self._starting_point(
            layer_sizes, f, optimizer, schedule, continuing=continuing, carry_on=carry_on,
            xp=xp_P, device=device_P, dtype=X.dtype,
        )  # fmt: skip
        data, stopping = Samples(X, Y, s, s_host), None
        if self.early_stopping and not incremental:  # partial_fit never stops early
            data, stopping = self._hold_out(data, fitted_targets, xp=xp, device=device)

        if _dask.is_dask(X):
            data = _dask.prepared(data)
        B = X.shape[0] if self.batch_size is None else min(self.batch_size, X.shape[0])
        keep = functools.partial(
            self._keep, targets=fitted_targets, fitted=fitted, stopping=stopping,
            layer_sizes=layer_sizes, output=output, X_in=X_in, like=X,
        )  # fmt: skip
        writer = CheckpointWriter(
            checkpoint, checkpoint_every, keep, self,
            n_iter=getattr(self, "n_iter_", 0) if fitted else 0,
        )  # fmt: skip
        with chunked(xp, device, N=B, widest=max(layer_sizes), dtype=X.dtype,
                     chunk_size=self.chunk_size) as (chunk_size, map_chunks), writer, \
                _dask.fit_context(X):  # fmt: skip
            how = step_for(self.engine, Step(
                f, OBJECTIVES[(self.loss, output)], optimizer, float(self.alpha), xp_P,
                chunk_size=chunk_size, map=map_chunks,
            ))  # fmt: skip
            compiled = block_runner(
                self.engine, how=how, data=data, schedule=schedule, batch_size=self.batch_size,
                n_epochs=self.max_iter if epochs is None else epochs, device=device_P,
                shuffle=self.shuffle, rng=self._rng,
            )  # fmt: skip
            try:
                history = run_epochs(
                    W, b, data, n_epochs=self.max_iter if epochs is None else epochs, how=how,
                    optimizer_state=state, schedule=schedule, schedule_state=sched,
                    batch_size=self.batch_size, shuffle=self.shuffle, rng=self._rng,
                    device=device_P, early_stopping=stopping,
                    callback=self._reporter(callback, fitted=fitted),
                    on_block=writer.on_block if checkpoint is not None else None,
                    compiled=compiled,
                )  # fmt: skip
            except Interrupted as interrupt:
                # Training so far is kept, as of the last block read back, and written
                # to the checkpoint; then the interrupt goes on to the caller.
                if interrupt.history is not None:
                    writer.last(interrupt.history)
                    keep(self, interrupt.history)
                raise
            writer.last(history)
        keep(self, history)
        return self

    def _starting_point(
        self, layer_sizes, f, optimizer, schedule, *, continuing, carry_on, xp, device, dtype
    ) -> tuple[list[Array], list[Array], OptimizerState, ScheduleState]:
        """Where training starts: W, b, the optimizer's state and the schedule's.

        Fresh random weights, or (``continuing``) the current ones.  The optimizer's state
        starts at zero in every fit (scikit-learn's rule, also with warm_start); it and
        the schedule's state go on (``carry_on``) from one partial_fit to the next, and
        into a resumed fit.
        """
        if continuing:
            W, b = self._parameters_as(layer_sizes, xp=xp, device=device, dtype=dtype)
        else:
            W0, b0 = glorot_uniform(layer_sizes, [f_l.name for f_l in f], self._rng)
            W = [xp.asarray(W_l, dtype=dtype, device=device) for W_l in W0]
            b = [xp.asarray(b_l, dtype=dtype, device=device) for b_l in b0]
        carried = carry_on and continuing
        state = getattr(self, "_optimizer_state", None) if carried else None
        if state is None or len(state.moments) != optimizer.n_moments:
            state = optimizer.init([*W, *b], xp=xp)
        else:
            state = _state_as(state, xp=xp, device=device, dtype=dtype)
        sched = getattr(self, "_schedule_state", None) if carried else None
        if sched is None:
            sched = schedule.start(getattr(self, "t_", 0) if continuing else 0)
        return W, b, state, sched

    def _hold_out(self, data: Samples, targets: dict[str, Any], *, xp, device):
        """The training samples left, and the early-stopping rule on those held out."""
        multilabel = targets.get("_multilabel", False)
        data, validation = validation_split(
            data.X, data.Y, data.s_host, fraction=float(self.validation_fraction),
            rng=self._rng, stratify=self._validation_score is accuracy and not multilabel,
            xp=xp, device=device,
        )  # fmt: skip
        if data.s_host is not None and not np.any(data.s_host > 0):
            raise ValueError(
                "Every sample left for training after the validation split has weight "
                "zero; give more samples a positive sample_weight."
            )
        # Each fit holds out its own split and is judged on it alone: a best score
        # carried over from another split would not be comparable.
        return data, EarlyStopping(
            validation, score=subset_accuracy if multilabel else self._validation_score,
            n_iter_no_change=int(self.n_iter_no_change), tol=float(self.tol),
        )  # fmt: skip

    def _keep(
        self, est: _BaseMLP, history: History, *, targets, fitted, stopping, layer_sizes,
        output, X_in, like,
    ) -> None:  # fmt: skip
        """Set ``est``'s fitted attributes from a training run's ``history``.

        ``est`` is this estimator once training has succeeded (or been interrupted):
        every fitted attribute is set here, so a fit that fails (bad input, divergence)
        leaves the estimator as it was.  For a checkpoint it is a copy.  The parameters
        are kept in the namespace of ``like``, the training data.
        """
        for name, value in targets.items():
            setattr(est, name, value)
        est.weights_, est.biases_ = _in_namespace_of(like, history.W, history.b)
        est._optimizer_state, est._schedule_state = history.optimizer_state, history.schedule_state
        est.t_ = history.schedule_state.t
        est._stopped = history.stopped  # by a stopping rule: resume has nothing left to do
        losses = history.losses
        est.loss_curve_ = (getattr(self, "loss_curve_", []) if fitted else []) + losses
        est.n_iter_ = (getattr(self, "n_iter_", 0) if fitted else 0) + len(losses)
        est._record_validation(
            stopping, history.validation_losses, history.validation_scores, fitted=fitted
        )
        est.n_features_in_ = layer_sizes[0]
        if not fitted:
            check_feature_names(est, X_in, reset=True)
        est.n_layers_ = len(layer_sizes)
        est.out_activation_ = output

    def _epochs_to_resume(self) -> int:
        """The epochs ``fit(resume=True)`` has left to train (checked before any work)."""
        if not hasattr(self, "weights_") or not hasattr(self, "n_iter_"):
            raise ValueError(
                "resume=True carries on a fit that was interrupted or checkpointed, but this "
                f"{type(self).__name__} has not been fitted."
            )
        if self.early_stopping:
            raise ValueError(
                "resume=True cannot carry on a fit with early_stopping=True: its validation "
                "split and stopping count are not kept. Fit again, or resume without it."
            )
        if getattr(self, "_stopped", False):
            return 0
        return max(int(self.max_iter) - int(self.n_iter_), 0)

    def _optimizer(self) -> Optimizer:
        """The update rule the hyperparameters name (validated already)."""
        return make_optimizer(
            self.solver, momentum_=float(self.momentum), nesterovs_momentum=self.nesterovs_momentum,
            beta_1=float(self.beta_1), beta_2=float(self.beta_2), epsilon=float(self.epsilon),
        )  # fmt: skip

    def _schedule(self) -> Schedule:
        """The learning-rate schedule the hyperparameters name."""
        return Schedule(
            self.learning_rate_schedule, self._learning_rate(), power_t=float(self.power_t),
            tol=float(self.tol), n_iter_no_change=int(self.n_iter_no_change),
        )  # fmt: skip

    def _learning_rate(self) -> float:
        """μ: ``learning_rate``, or with None the solver's default."""
        if self.learning_rate is None:
            return DEFAULT_LEARNING_RATE[self.solver]
        return float(self.learning_rate)

    def _output_activation(self, output: str, fitted_targets: dict[str, Any]) -> str:
        """The output activation, once the targets are known (the classifier's multi-label
        targets change it)."""
        return output

    def _reporter(self, callback: Callable[..., Any] | None, *, fitted: bool):
        """The user's callback, preceded by ``verbose``'s line per read-back block."""
        if not self.verbose:
            return callback
        count = [getattr(self, "n_iter_", 0) if fitted else 0]

        def report(losses: list[float], scores: list[float] | None) -> None:
            count[0] += len(losses)
            line = f"Iteration {count[0]}, loss = {losses[-1]:.8f}"
            print(line if scores is None else f"{line}, validation score = {scores[-1]:.8f}")
            if callback is not None:
                callback(losses, scores)

        return report

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

    def _record_validation(self, stopping, val_losses, val_scores, *, fitted: bool) -> None:
        """Set ``validation_scores_``, ``best_validation_score_`` and ``best_loss_``."""
        if stopping is None:
            if not (fitted and getattr(self, "validation_scores_", None) is not None):
                self.validation_scores_ = self.validation_loss_curve_ = None
                self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_)
            return
        previous = fitted and getattr(self, "validation_scores_", None) is not None
        self.validation_scores_ = (self.validation_scores_ if previous else []) + val_scores
        self.validation_loss_curve_ = (self.validation_loss_curve_ if previous else []) + val_losses
        best = stopping.best_score
        for s in val_scores:  # the same rule as on the device: strictly better, NaN never
            best = s if s > best else best
        self.best_validation_score_ = best
        self.best_loss_ = None  # as scikit-learn: early stopping judges by validation

    def save(self, path: Any) -> None:
        """Write the fitted estimator to one ``.npz`` file; :func:`xpnet.load` reads it.

        The file holds the parameters and JSON metadata (class, hyperparameters, layer
        sizes, dtype, ``classes_``, ``loss_curve_``); nothing in it is pickled.  It is
        written to a temporary file beside ``path`` and renamed, so an interrupted save
        leaves any earlier file at ``path`` intact.

        Parameters
        ----------
        path : str or os.PathLike
            Written exactly as given (no suffix is added).
        """
        from ._io import save

        save(self, path)

    def _parameters_as(self, layer_sizes: list[int], *, xp: Any, device: Any, dtype: Any):
        """The current ``weights_``/``biases_``, checked against the layer sizes and moved to X's
        namespace, device and dtype (users may have assigned them)."""
        W, b = list(self.weights_), list(self.biases_)
        L = len(layer_sizes) - 1
        if len(W) != L or len(b) != L:
            raise ValueError(
                f"weights_ and biases_ must hold {L} arrays for layer sizes {layer_sizes}, "
                f"got {len(W)} and {len(b)}."
            )
        W = [
            host_or_namespace(concrete(W_l), xp=xp, name=f"weights_[{l}]")
            for l, W_l in enumerate(W)
        ]
        b = [
            host_or_namespace(concrete(b_l), xp=xp, name=f"biases_[{l}]") for l, b_l in enumerate(b)
        ]
        for l in range(L):
            shape_W, shape_b = (layer_sizes[l + 1], layer_sizes[l]), (layer_sizes[l + 1],)
            if tuple(W[l].shape) != shape_W or tuple(b[l].shape) != shape_b:
                raise ValueError(
                    f"weights_[{l}] and biases_[{l}] must have shapes {shape_W} and {shape_b}, "
                    f"got {tuple(W[l].shape)} and {tuple(b[l].shape)}."
                )
        W = [xp.asarray(W_l, dtype=dtype, device=device) for W_l in W]
        b = [xp.asarray(b_l, dtype=dtype, device=device) for b_l in b]
        for l in range(L):
            check_finite(W[l], xp, f"weights_[{l}]")
            check_finite(b[l], xp, f"biases_[{l}]")
        return W, b

    # -- using the network ------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise not_fitted_error(self)

    def _network(self, X: Any) -> tuple[Array, Any, Any, list[Array], list[Array], list[Any]]:
        """Validate ``X`` against the fitted network, and the network in X's terms.

        Returns X, xp, device, and W, b (in X's namespace, device and dtype; on Dask, its
        blocks') and the layers' activations f.
        """
        self._check_fitted()
        check_feature_names(self, X, reset=False)
        X, xp, device = check_X(X, n_features=self.n_features_in_, estimator=type(self).__name__)
        xp_P, device_P = _parameter_namespace(X, xp, device)
        W = [xp_P.asarray(concrete(W_l), dtype=X.dtype, device=device_P) for W_l in self.weights_]
        b = [xp_P.asarray(concrete(b_l), dtype=X.dtype, device=device_P) for b_l in self.biases_]
        f = [ACTIVATIONS[self.activation]] * (len(W) - 1) + [ACTIVATIONS[self.out_activation_]]
        return X, xp, device, W, b, f

    @_saturation_is_expected
    def _output(self, X: Any) -> tuple[Array, Any]:
        """The network output A⁽ᴸ⁾ of shape (n_L, N) for the rows of ``X``, and ``xp``."""
        X, xp, device, W, b, f = self._network(X)
        widest = max(W_l.shape[0] for W_l in W)
        with chunked(xp, device, N=X.shape[0], widest=widest, dtype=X.dtype,
                     chunk_size=self.chunk_size) as (chunk_size, map_chunks):  # fmt: skip
            return output(W, b, X.T, f=f, xp=xp, chunk_size=chunk_size, map=map_chunks), xp

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
        X, xp, device, W, b, f = self._network(X)
        Y, _ = self._encode_targets(y, xp=xp, device=device, dtype=X.dtype, N=X.shape[0],
                                    fitted=True, classes=None)  # fmt: skip
        objective = OBJECTIVES.get((self.loss, self.out_activation_))
        if objective is None:  # set_params changed the loss after fitting
            raise ValueError(
                f"loss={self.loss!r} does not go with the fitted output activation "
                f"{self.out_activation_!r}; fit again after changing the loss."
            )
        s, s_host = (None, None)
        if sample_weight is not None:
            s, s_host = check_sample_weight(
                sample_weight, xp=xp, device=device, dtype=X.dtype, N=X.shape[0]
            )
        widest = max(W_l.shape[0] for W_l in W)
        with chunked(xp, device, N=X.shape[0], widest=widest, dtype=X.dtype,
                     chunk_size=self.chunk_size) as (chunk_size, map_chunks):  # fmt: skip
            _, grad_W, grad_b = loss_and_gradients(
                W, b, X.T, Y, f=f, objective=objective, xp=xp, s=s,
                S=Samples(X, Y, s, s_host).weight(), alpha=float(self.alpha),
                chunk_size=chunk_size, map=map_chunks,
            )  # fmt: skip
        return _in_namespace_of(X, grad_W, grad_b)


class MLPRegressor(_BaseMLP):
    """A multilayer perceptron for regression, trained by backpropagation and gradient descent.

    The network computes Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾ + b⁽ˡ⁾ and A⁽ˡ⁾ = f(Z⁽ˡ⁾) layer by layer and is
    trained on E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖² by batch gradient descent
    W⁽ˡ⁾ ← W⁽ˡ⁾ − μ ∇W⁽ˡ⁾ E_total.  One code path serves every Array API namespace:
    fit it on NumPy, CuPy, PyTorch or JAX arrays and results come back as the same kind
    of array, on the same device, in the same floating dtype.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        n_1, ..., n_{L-1}: the number of neurons in each hidden layer.
    activation : {"sigmoid", "tanh", "relu", "identity"}, default="sigmoid"
        f of the hidden layers (the seed's f is the sigmoid).
    output_activation : {"identity", "sigmoid", "tanh", "relu"} or None, default="identity"
        f of the output layer.  With ``loss="cross_entropy"``: "sigmoid" or "softmax"
        (None means "sigmoid").
    loss : {"mse", "cross_entropy"}, default="mse"
        "mse" is the seed's E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖²; "cross_entropy" is the binary
        cross-entropy of sigmoid outputs, for targets in [0, 1].
    learning_rate : float or None, default=None
        The step size μ (scikit-learn's ``learning_rate_init``).  None takes 0.1 for
        ``solver="sgd"`` and 0.01 for ``solver="adam"``.
    max_iter : int, default=200
        The number of epochs ``fit`` trains for.
    batch_size : int or None, default=None
        None trains on all N samples at once (batch gradient descent, one step per
        epoch); an int gives mini-batches of that size, one step each.
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
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    tol : float, default=1e-4
        The improvement of the validation score (or, for the adaptive schedule without
        early stopping, of the training loss) that counts.
    solver : {"sgd", "adam"}, default="sgd"
        The update rule.  "sgd" is gradient descent, with ``momentum`` if it is > 0;
        "adam" is Adam in scikit-learn's form (see ``xpnet._optimizers``).  Their state
        starts at zero in every ``fit`` and carries on through ``partial_fit``.
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

    Attributes
    ----------
    weights_ : list of L arrays, ``weights_[l]`` of shape (n_{l+1}, n_l)
        W⁽¹⁾ .. W⁽ᴸ⁾, in the training data's namespace, device and dtype.  Assignable:
        ``partial_fit`` (and ``fit`` with ``warm_start=True``) continues from them.
    biases_ : list of L arrays, ``biases_[l]`` of shape (n_{l+1},)
    loss_curve_ : list of float
        E_total for each epoch trained.
    n_iter_ : int
        The number of epochs trained.
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

    _natural_output: ClassVar[dict[str, str]] = {"mse": "identity", "cross_entropy": "sigmoid"}
    #: The early-stopping score, computed on the device: R², as ``score``.
    _validation_score = staticmethod(r2_score)

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (100,),
        activation: str = "sigmoid",
        output_activation: str | None = "identity",
        loss: str = "mse",
        learning_rate: float | None = None,
        max_iter: int = 200,
        batch_size: int | None = None,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
        chunk_size: int | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        solver: str = "sgd",
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
        )

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train for exactly one epoch, continuing from the current parameters if fitted.

        With ``batch_size=None`` that is one step of batch gradient descent.  The
        optimizer's state and the learning-rate schedule carry on from the previous call.
        ``sample_weight`` is as for :meth:`fit`.
        """
        return self._fit(X, y, sample_weight, epochs=1, incremental=True)

    def _encode_targets(self, y, *, xp, device, dtype, N, fitted, classes):
        """Y of shape (n_outputs, N), the targets one column per sample, and the fitted
        attributes they imply (set only once training has succeeded)."""
        y = check_targets(y, xp=xp, device=device, dtype=dtype, N=N)
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
        y_pred = self.predict(X)
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


class MLPClassifier(_BaseMLP):
    """A multilayer perceptron classifier, trained by backpropagation and gradient descent.

    Labels are one-hot encoded into Y of shape (n_classes, N).  With the default
    ``loss="cross_entropy"`` the output layer is a softmax and Δ⁽ᴸ⁾ = A⁽ᴸ⁾ − Y; with
    ``loss="mse"`` (the seed's loss) it is a sigmoid and Δ⁽ᴸ⁾ = −(Y − A⁽ᴸ⁾) ⊙ A⁽ᴸ⁾(1 − A⁽ᴸ⁾).

    Parameters
    ----------
    hidden_layer_sizes, activation, learning_rate, max_iter, batch_size, shuffle,
    random_state, warm_start, chunk_size, early_stopping, validation_fraction,
    n_iter_no_change, tol
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
        activation: str = "sigmoid",
        output_activation: str | None = None,
        loss: str = "cross_entropy",
        learning_rate: float | None = None,
        max_iter: int = 200,
        batch_size: int | None = None,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
        chunk_size: int | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        solver: str = "sgd",
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
        )

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(multi_label=True)
        return tags

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
            call does not show them all.  Ignored once fitted.
        """
        return self._fit(X, y, sample_weight, epochs=1, incremental=True, classes=classes)

    def _encode_targets(self, y, *, xp, device, dtype, N, fitted, classes):
        """Y of shape (n_classes, N), the one-hot labels one column per sample, and the
        fitted attributes they imply (set only once training has succeeded)."""
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
        if self._multilabel:
            return xp.astype(O.T > 0.5, self.classes_.dtype)
        k = xp.argmax(O, axis=0)
        if aac.is_numpy_array(self.classes_) and self.classes_.dtype.kind in "OUS":
            return self.classes_[to_numpy(k)]  # text labels stay on the host
        # Numeric labels follow X, also when the classifier was fitted on another backend.
        return xp.take(xp.asarray(self.classes_, device=aac.device(k)), k)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The accuracy: the (weighted) fraction of rows of ``X`` whose label is right.

        For multi-label targets a row counts only if every one of its labels is right.
        """
        y_pred = to_numpy(self.predict(X))
        y_true = to_numpy(as_array(y, "y", numeric=False)[0])
        if y_true.shape != y_pred.shape:
            y_true = y_true.reshape(y_pred.shape)
        hit = y_pred == y_true
        if hit.ndim == 2:
            hit = np.all(hit, axis=1)
        return float(np.average(hit, weights=_host_weights(sample_weight, len(hit))))

    #: Whether the classifier was fitted on multi-label (label-indicator) targets.
    _multilabel = False


def _host_weights(sample_weight: Any, N: int) -> np.ndarray | None:
    """Sample weights for a score computed on the host: checked, as NumPy."""
    if sample_weight is None:
        return None
    import array_api_compat.numpy as np_xp

    return check_sample_weight(sample_weight, xp=np_xp, device="cpu", dtype=np.float64, N=N)[1]


def _parameter_namespace(X: Array, xp: Any, device: Any) -> tuple[Any, Any]:
    """The namespace and device the parameters are computed on: X's, or on Dask its
    blocks' (NumPy or CuPy)."""
    return _dask.block_namespace(X) if _dask.is_dask(X) else (xp, device)


def _in_namespace_of(X: Array, *groups: list[Array]) -> tuple[list[Array], ...]:
    """Lists of parameter-shaped arrays as the attributes and results of a fit on ``X``
    keep them: as they are, or on Dask, as Dask arrays of one block each."""
    if not _dask.is_dask(X):
        return tuple(list(group) for group in groups)
    return tuple([_dask.as_dask(a, like=X) for a in group] for group in groups)


def _state_as(state: OptimizerState, *, xp: Any, device: Any, dtype: Any) -> OptimizerState:
    """An optimizer state moved to X's namespace, device and dtype (it may have been
    loaded from a file, or kept from a partial_fit on another backend)."""

    def moved(m: Array) -> Array:
        m = host_or_namespace(m, xp=xp, name="the optimizer state")
        return xp.asarray(m, dtype=dtype, device=device)

    return OptimizerState(state.t, tuple([moved(m) for m in group] for group in state.moments))


def _generator(random_state: Any) -> np.random.Generator:
    """A NumPy ``Generator`` from ``random_state`` (None, an int, a Generator or a RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, bool) or not (
        random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator))
    ):
        raise ValueError(
            f"random_state must be None, an int or a numpy.random.Generator, got {random_state!r}."
        )
    return np.random.default_rng(random_state)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


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
