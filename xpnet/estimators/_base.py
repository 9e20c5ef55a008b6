"""Estimators with scikit-learn's interface: ``MLPRegressor`` and ``MLPClassifier``.

They are the boundary of the library: they validate what users pass, find the array
namespace and device once, turn the user's rows-are-samples ``X`` (N, n_in) into the
seed's columns-are-samples Xᵀ, run the training loop and hand results back in the
input's namespace, on its device and in its floating dtype.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np  # host-side: random state, and class labels that are not numbers

from .. import engines
from .._errors import convergence_warning
from .._host import to_numpy
from ..core.activations import ACTIVATIONS
from ..core.init import glorot_uniform
from ..core.losses import OBJECTIVES
from ..core.optimizers import OptimizerState
from ..core.scores import accuracy, subset_accuracy
from ..training.checkpoints import CheckpointWriter, check_checkpoint
from ..training.engine import Engine
from ..training.loop import EarlyStopping, History, Interrupted, StoppingState, run_epochs
from ..training.samples import Samples, check_finite, validation_split
from ..training.schedules import ScheduleState
from ..training.sparse import widest
from ._feature_names import check_feature_names, feature_names
from ._lbfgs import fit_lbfgs
from ._network import FittedNetwork, _saturation_is_expected
from ._params import EstimatorProtocol, Settings, _generator, _patience
from ._validation import (
    check_hyperparameters,
    check_sample_weight,
    check_X,
    host_or_namespace,
)

Array = Any


class _BaseMLP(EstimatorProtocol, Settings, FittedNetwork):
    """What the regressor and the classifier share: parameters, training and the forward pass."""

    #: The output activation each loss implies when ``output_activation`` is None.
    _natural_output: ClassVar[dict[str, str]] = {}

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
        self.max_fun = max_fun

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
            Any Array API array (NumPy, CuPy, PyTorch, JAX, ...) or array-like, or a
            sparse matrix (``scipy.sparse``, or ``cupyx.scipy.sparse`` on a GPU): its
            products with W⁽¹⁾ and Δ⁽¹⁾ are taken chunk by chunk, never made dense.
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
            A path is checked before the first epoch: its folder must exist and take
            new files, and it must not be a directory or a special file.
        checkpoint_every : int, optional
            Epochs between checkpoints (taken at the read-back after each multiple,
            so every 16 epochs at most); None writes one at the end only.
        resume : bool, default False
            Carry on a fit that was interrupted or checkpointed (also one loaded with
            :func:`xpnet.load`) up to ``max_iter`` epochs in all, with its parameters,
            optimizer and schedule state and mini-batch order as they were: the result
            equals that of the fit never stopped.  With ``early_stopping``, also the
            validation split, the stopping rule's count and best score, and the latest
            parameters beside the best epoch's (``X`` must then be the same samples).

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            Re-raised after an interrupt (Ctrl-C, or SIGTERM inside
            :class:`xpnet.sigterm_as_interrupt`), with the estimator fitted as of the
            last read-back block (every 16 epochs): parameters, optimizer state, loss
            record and mini-batch order consistent with each other, ready for
            ``resume``; the checkpoint is written as well.
        ValueError
            If training diverges (a loss that is not finite, or grows past 10¹⁰ times
            the first epoch's, or parameters that overflow): the estimator is left as
            it was.
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
            y, xp=xp, device=device, dtype=X.dtype, N=X.shape[0], fitted=fitted, classes=classes,
            same_classes=fitted and not incremental,
        )  # fmt: skip
        output = self._output_activation(output, fitted_targets)
        s, s_host = (None, None)
        if sample_weight is not None:
            s, s_host = check_sample_weight(
                sample_weight, xp=xp, device=device, dtype=X.dtype, N=X.shape[0]
            )
        layer_sizes = [X.shape[1], *hidden, Y.shape[0]]
        f = [ACTIVATIONS[self.activation]] * len(hidden) + [ACTIVATIONS[output]]
        if self.solver == "lbfgs":  # a quasi-Newton fit: no epochs, optimizer or schedule
            return fit_lbfgs(
                self, Samples(X, Y, s, s_host), layer_sizes=layer_sizes, f=f, output=output,
                targets=fitted_targets, continuing=continuing, fitted=fitted, X_in=X_in,
                callback=callback, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            )  # fmt: skip

        if not (continuing and hasattr(self, "_rng")):
            self._rng = _generator(self.random_state)
        optimizer, schedule = self._optimizer(), self._schedule()
        W, b = self._starting_weights(layer_sizes, f, continuing=continuing)
        data, stopping, split = Samples(X, Y, s, s_host), None, None
        if self.early_stopping and not incremental:  # partial_fit never stops early
            data, stopping, split = self._hold_out(
                data, fitted_targets, xp=xp, device=device, resume=resume
            )
        if stopping is not None and resume:  # from the latest parameters, the best kept
            W, b = list(self._stopping_state.W), list(self._stopping_state.b)
        n_epochs = self.max_iter if epochs is None else epochs
        batch_size = self._batch_size(data.X.shape[0])
        engine = engines.choose(
            self.engine, data.X, f=f, objective=OBJECTIVES[(self.loss, output)],
            optimizer=optimizer, alpha=float(self.alpha), widest=widest(layer_sizes, X),
            batch_size=batch_size, chunk_size=self.chunk_size, n_epochs=n_epochs,
        )  # fmt: skip
        W, b = self._as_parameters(engine, W, b, layer_sizes, dtype=X.dtype)
        if stopping is not None and resume:
            best = self._as_parameters(engine, self.weights_, self.biases_, layer_sizes,
                                       dtype=X.dtype)  # fmt: skip
            stopping = dataclasses.replace(stopping, kept=best)
        state, sched = self._starting_state(
            engine, W, b, optimizer, schedule, continuing=continuing, carry_on=carry_on,
            dtype=X.dtype,
        )  # fmt: skip
        keep = functools.partial(
            self._keep, targets=fitted_targets, fitted=fitted, counted=fitted and carry_on,
            stopping=stopping, split=split,
            layer_sizes=layer_sizes, output=output, X_in=X_in, like=X, engine=engine,
        )  # fmt: skip
        writer = CheckpointWriter(
            checkpoint, checkpoint_every, keep, self,
            n_iter=getattr(self, "n_iter_", 0) if fitted and carry_on else 0,
        )  # fmt: skip
        validation = None if stopping is None else stopping.validation
        with writer, engine.open(data, validation) as (data, validation):
            if stopping is not None:
                stopping = dataclasses.replace(stopping, validation=validation)
            try:
                history = run_epochs(
                    W, b, data, n_epochs=n_epochs, engine=engine, optimizer_state=state,
                    schedule=schedule, schedule_state=sched, batch_size=batch_size,
                    shuffle=self.shuffle, rng=self._rng, early_stopping=stopping,
                    callback=self._reporter(callback, counted=fitted and carry_on),
                    on_block=writer.on_block if checkpoint is not None else None,
                    losses_before=self.loss_curve_ if fitted else (),
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
        if not incremental and not history.stopped:  # a fit (or a resumed one) at max_iter
            self._warn_not_converged(history)
        return self

    def _warn_not_converged(self, history: History) -> None:
        """scikit-learn's ``ConvergenceWarning``: ``max_iter`` ended a fit that no stopping
        rule had ended (its loss or validation score was still improving by ``tol``)."""
        warnings.warn(
            f"{type(self).__name__}: max_iter={self.max_iter} epochs reached and the "
            "optimization hasn't converged yet (the loss still improved by more than "
            f"tol={self.tol} within n_iter_no_change={self.n_iter_no_change} epochs). "
            "Raise max_iter, or the learning rate.",
            convergence_warning(),
            stacklevel=4,
        )

    def _starting_weights(
        self, layer_sizes: list[int], f: list[Any], *, continuing: bool
    ) -> tuple[list[Array], list[Array]]:
        """Fresh random weights, drawn on the host (float64), or (``continuing``) the
        current ones, as they are."""
        if continuing:
            return list(self.weights_), list(self.biases_)
        return glorot_uniform(layer_sizes, [f_l.name for f_l in f], self._rng)

    def _as_parameters(
        self, engine: Engine, W: list[Array], b: list[Array], layer_sizes: list[int], *,
        dtype: Any,
    ) -> tuple[list[Array], list[Array]]:  # fmt: skip
        """W and b checked against the layer sizes and moved to the engine's namespace,
        device and X's dtype (users may have assigned them)."""
        xp, device = engine.xp, engine.device
        W, b = engine.adopt(W), engine.adopt(b)
        L = len(layer_sizes) - 1
        if len(W) != L or len(b) != L:
            raise ValueError(
                f"weights_ and biases_ must hold {L} arrays for layer sizes {layer_sizes}, "
                f"got {len(W)} and {len(b)}."
            )
        W = [host_or_namespace(W_l, xp=xp, name=f"weights_[{l}]") for l, W_l in enumerate(W)]
        b = [host_or_namespace(b_l, xp=xp, name=f"biases_[{l}]") for l, b_l in enumerate(b)]
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

    def _starting_state(
        self, engine, W, b, optimizer, schedule, *, continuing, carry_on, dtype
    ) -> tuple[OptimizerState, ScheduleState]:
        """Where the optimizer's and the schedule's states start.

        The optimizer's state starts at zero in every fit (scikit-learn's rule, also
        with warm_start); it and the schedule's state go on (``carry_on``) from one
        partial_fit to the next, and into a resumed fit.
        """
        xp, device = engine.xp, engine.device
        carried = carry_on and continuing
        state = getattr(self, "_optimizer_state", None) if carried else None
        if state is None or len(state.moments) != optimizer.n_moments:
            state = optimizer.init([*W, *b], xp=xp)
        else:
            state = _state_as(state, xp=xp, device=device, dtype=dtype)
        sched = getattr(self, "_schedule_state", None) if carried else None
        if sched is None:
            sched = schedule.start(getattr(self, "t_", 0) if continuing else 0)
        return state, sched

    def _hold_out(self, data: Samples, targets: dict[str, Any], *, xp, device, resume: bool):
        """The training samples left, the early-stopping rule on those held out, and
        where the split was drawn from (a resumed fit's split is drawn again from there).
        """
        multilabel = targets.get("_multilabel", False)
        N, fraction = data.X.shape[0], float(self.validation_fraction)
        if resume:
            resumed = self._stopping_state
            if (resumed.n_samples, resumed.validation_fraction) != (N, fraction):
                raise ValueError(
                    f"resume=True carries on a fit that held out validation_fraction="
                    f"{resumed.validation_fraction!r} of {resumed.n_samples} samples; it got "
                    f"{N} samples and validation_fraction={fraction!r}. Resume with the "
                    "same data and settings."
                )
            # The fit's own kind of bit generator (PCG64 unless random_state was another).
            rng = np.random.Generator(getattr(np.random, resumed.split_rng["bit_generator"])())
            rng.bit_generator.state = resumed.split_rng
            split = (resumed.split_rng, N, fraction)
        else:
            rng = self._rng
            split = (copy.deepcopy(rng.bit_generator.state), N, fraction)
        data, validation = validation_split(
            data.X, data.Y, data.s_host, fraction=fraction, rng=rng,
            stratify=self._validation_score is accuracy and not multilabel, xp=xp, device=device,
        )  # fmt: skip
        if data.s_host is not None and not np.any(data.s_host > 0):
            raise ValueError(
                "Every sample left for training after the validation split has weight "
                "zero; give more samples a positive sample_weight."
            )
        # Each fit holds out its own split and is judged on it alone: a best score
        # carried over from another split would not be comparable.  A resumed fit is
        # the same fit, on the same split, and carries on its rule's count.
        resumed = {}
        if resume:
            state = self._stopping_state
            resumed = dict(best_score=state.best, no_change=state.no_change)
        stopping = EarlyStopping(
            validation, score=subset_accuracy if multilabel else self._validation_score,
            n_iter_no_change=_patience(self.n_iter_no_change), tol=float(self.tol), **resumed,
        )  # fmt: skip
        return data, stopping, split

    def _keep(
        self, est: _BaseMLP, history: History, *, targets, fitted, counted, stopping, split,
        layer_sizes, output, X_in, like, engine,
    ) -> None:  # fmt: skip
        """Set ``est``'s fitted attributes from a training run's ``history``.

        ``est`` is this estimator once training has succeeded (or been interrupted):
        every fitted attribute is set here, so a fit that fails (bad input, divergence)
        leaves the estimator as it was.  For a checkpoint it is a copy.  The parameters
        are kept in the namespace of ``like``, the training data, as ``engine`` publishes
        them.
        """
        for name, value in targets.items():
            setattr(est, name, value)
        est.weights_, est.biases_ = (engine.publish(P, like) for P in (history.W, history.b))
        est._optimizer_state, est._schedule_state = history.optimizer_state, history.schedule_state
        est.t_ = history.schedule_state.t
        est._stopped = history.stopped  # by a stopping rule: resume has nothing left to do
        # What resuming early stopping needs; any other fit leaves none (a partial_fit
        # moves on from the best epoch, and the latest parameters no longer apply).
        est._stopping_state = None
        if stopping is not None and history.latest is not None:
            (W_latest, b_latest), (no_change, best) = history.latest, history.patience
            est._stopping_state = StoppingState(
                *split, no_change, best, [to_numpy(W_l) for W_l in W_latest],
                [to_numpy(b_l) for b_l in b_latest],
            )  # fmt: skip
        losses = history.losses
        est.loss_curve_ = (getattr(self, "loss_curve_", []) if fitted else []) + losses
        # As scikit-learn, the epochs of this fit: a warm-started fit counts its own, a
        # partial_fit or a resumed fit goes on counting those it continues.
        est.n_iter_ = (getattr(self, "n_iter_", 0) if counted else 0) + len(losses)
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
        if self.solver == "lbfgs":
            raise ValueError(
                "resume=True cannot carry on a fit with solver='lbfgs': its history of "
                "steps is not kept. Fit again with warm_start=True to go on from the weights."
            )
        if getattr(self, "_stopped", False):
            return 0
        kept = getattr(self, "_stopping_state", None) is not None
        if self.early_stopping and not kept:
            raise ValueError(
                "resume=True cannot carry on this fit with early_stopping=True: its "
                "validation split, stopping count and latest parameters were not kept (it "
                "was made without early stopping, continued by partial_fit, or saved by an "
                "older xpnet). Fit again."
            )
        if kept and not self.early_stopping:
            raise ValueError(
                "resume=True carries on a fit made with early_stopping=True: resume it with "
                "early_stopping=True, or fit again."
            )
        return max(int(self.max_iter) - int(self.n_iter_), 0)

    def _output_activation(self, output: str, fitted_targets: dict[str, Any]) -> str:
        """The output activation, once the targets are known (the classifier's multi-label
        targets change it)."""
        return output

    def _reporter(self, callback: Callable[..., Any] | None, *, counted: bool):
        """The user's callback, preceded by ``verbose``'s line per read-back block."""
        if not self.verbose:
            return callback
        count = [getattr(self, "n_iter_", 0) if counted else 0]

        def report(losses: list[float], scores: list[float] | None) -> None:
            count[0] += len(losses)
            line = f"Iteration {count[0]}, loss = {losses[-1]:.8f}"
            print(line if scores is None else f"{line}, validation score = {scores[-1]:.8f}")
            if callback is not None:
                callback(losses, scores)

        return report

    def _record_validation(self, stopping, val_losses, val_scores, *, fitted: bool) -> None:
        """Set ``validation_scores_``, ``best_validation_score_`` and ``best_loss_``."""
        if stopping is None:
            if not (fitted and getattr(self, "validation_scores_", None) is not None):
                self.validation_scores_ = self.validation_loss_curve_ = None
                self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_, default=None)  # lbfgs may take 0
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
        written to a temporary file beside ``path`` (``.NAME.xpnet-PID-HEX.tmp``) and
        renamed, so an interrupted save leaves any earlier file at ``path`` intact.

        Parameters
        ----------
        path : str or os.PathLike
            Written exactly as given (no suffix is added).  A symbolic link is written
            through: its target gets the new data, and the link stays.

        Raises
        ------
        ValueError
            If ``path`` is a device, a FIFO, a socket or another special file.
        OSError
            If the file cannot be written (its folder is missing, the disk is full...),
            with the errno of the failure and a message that names ``path``.
        """
        from ._format import save

        save(self, path)


def _state_as(state: OptimizerState, *, xp: Any, device: Any, dtype: Any) -> OptimizerState:
    """An optimizer state moved to X's namespace, device and dtype (it may have been
    loaded from a file, or kept from a partial_fit on another backend)."""

    def moved(m: Array) -> Array:
        m = host_or_namespace(m, xp=xp, name="the optimizer state")
        return xp.asarray(m, dtype=dtype, device=device)

    return OptimizerState(state.t, tuple([moved(m) for m in group] for group in state.moments))
