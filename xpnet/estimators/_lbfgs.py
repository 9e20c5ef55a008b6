"""``solver="lbfgs"``: a fit by L-BFGS (``xpnet.training.lbfgs``) instead of epochs.

scikit-learn's meaning of the settings: ``max_iter`` counts L-BFGS iterations, ``max_fun``
evaluations of the loss, and ``tol`` bounds the gradient's largest component at
convergence.  Each iteration is one entry of ``loss_curve_`` and one of ``n_iter_``.  As
in scikit-learn, the settings of the other solvers (``learning_rate``, ``batch_size``,
``early_stopping``, ...) are ignored: every evaluation takes all the samples.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

from .. import engines
from .._errors import convergence_warning
from ..core.losses import OBJECTIVES
from ..core.optimizers import OptimizerState
from ..training.checkpoints import CheckpointWriter
from ..training.lbfgs import minimize
from ..training.loop import History
from ..training.samples import Samples
from ..training.schedules import ScheduleState
from ..training.sparse import widest
from ._params import _generator

Array = Any

#: What ``partial_fit`` says with ``solver="lbfgs"``: scikit-learn's words.
NOT_STOCHASTIC = "partial_fit is only available for stochastic optimizers. lbfgs is not stochastic."


def fit_lbfgs(
    est: Any, data: Samples, *, layer_sizes: list[int], f: list[Any], output: str,
    targets: dict[str, Any], continuing: bool, fitted: bool, X_in: Any,
    callback: Callable[..., Any] | None, checkpoint: Any, checkpoint_every: int | None,
) -> Any:  # fmt: skip
    """Fit ``est`` on ``data`` (validated, in the seed's layout) by L-BFGS; return ``est``.

    The objective is E_total over all of ``data``, with its sample weights and ``alpha``,
    as the engine computes it for a full-batch step.  ``callback(losses, None)`` and the
    checkpoint writer are called after every iteration (its values are on the host by
    then).  A ``KeyboardInterrupt`` leaves ``est`` fitted as of the last iteration, and
    goes on to the caller.
    """
    if not (continuing and hasattr(est, "_rng")):
        est._rng = _generator(est.random_state)
    W, b = est._starting_weights(layer_sizes, f, continuing=continuing)
    engine = engines.choose(
        est.engine, data.X, f=f, objective=OBJECTIVES[(est.loss, output)],
        alpha=float(est.alpha), widest=widest(layer_sizes, data.X), chunk_size=est.chunk_size,
        n_epochs=est.max_iter,
    )  # fmt: skip
    W, b = est._as_parameters(engine, W, b, layer_sizes, dtype=data.X.dtype)
    # L-BFGS leaves no optimizer moments and no learning-rate schedule behind: a later
    # partial_fit with another solver starts them afresh (scikit-learn's rule).  The
    # schedule's state only carries t_ through the record.
    state = OptimizerState(0, ())
    sched = ScheduleState(math.nan, getattr(est, "t_", 0) if continuing else 0)
    keep = _keeper(est, targets, fitted, layer_sizes, output, X_in, data.X, engine)
    # n_iter_ counts this fit's iterations (no partial_fit or resume carries them on).
    writer = CheckpointWriter(checkpoint, checkpoint_every, keep, est, n_iter=0)
    report = est._reporter(callback, counted=False)  # verbose's line, then the callback
    losses: list[float] = []
    last: list[History] = []  # the record as of the last iteration, for an interrupt

    def on_iteration(W: list[Array], b: list[Array], E: float) -> None:
        losses.append(E)
        last[:] = [History(W, b, state, sched, losses)]
        if report is not None:
            report([E], None)
        if checkpoint is not None:
            writer.on_block(last[0])

    with writer, engine.open(data) as (data, _):
        try:
            result = minimize(
                W, b, data, engine=engine, max_iter=int(est.max_iter),
                max_fun=int(est.max_fun), tol=float(est.tol), on_iteration=on_iteration,
            )  # fmt: skip
        except KeyboardInterrupt:
            if last:
                writer.last(last[0])
                keep(est, last[0])
            raise
        history = History(result.W, result.b, state, sched, result.losses)
        writer.last(history)
    keep(est, history)
    _warn_unless_converged(est, result)
    return est


def _keeper(est, targets, fitted, layer_sizes, output, X_in, like, engine) -> Callable:
    """``keep(est, history)``: the estimator's own ``_keep``, for a fit without early stopping."""

    def keep(target: Any, history: History) -> None:
        est._keep(
            target, history, targets=targets, fitted=fitted, counted=False, stopping=None,
            split=None,
            layer_sizes=layer_sizes, output=output, X_in=X_in, like=like, engine=engine,
        )  # fmt: skip
        target._schedule_state = None

    return keep


def stochastic_only(method: Callable[..., Any]) -> Any:
    """``method`` (``partial_fit``) as an attribute only while the solver is stochastic.

    With ``solver="lbfgs"`` reading the attribute raises ``AttributeError``, so that
    ``hasattr(est, "partial_fit")`` is False, as with scikit-learn's estimators.
    """

    class StochasticOnly:
        def __get__(self, est: Any, owner: type | None = None) -> Any:
            if est is not None and getattr(est, "solver", None) == "lbfgs":
                raise AttributeError(NOT_STOCHASTIC)
            return method.__get__(est, owner)

    return functools.update_wrapper(StochasticOnly(), method)


def _warn_unless_converged(est: Any, result: Any) -> None:
    """scikit-learn's ``ConvergenceWarning`` when ``max_iter`` or ``max_fun`` ended the fit."""
    if result.status not in ("max_iter", "max_fun"):
        return
    if result.status == "max_iter":
        limit, advice = f"max_iter={est.max_iter} iterations", "Increase max_iter"
    else:
        limit = (
            f"{len(result.losses)} iteration(s) and {result.n_fun} evaluations of the loss, "
            f"more than max_fun={est.max_fun}"
        )
        advice = "Increase max_fun"
    warnings.warn(
        f"lbfgs failed to converge: it stopped after {limit}, with the gradient's largest "
        f"component at {result.g_max:.3g} > tol={est.tol}. {advice}, or scale the data "
        "(for example with sklearn.preprocessing.StandardScaler).",
        convergence_warning(),
        stacklevel=6,  # past fit_lbfgs, _fit, its wrapper and fit: the call to fit
    )
