"""The training loop: epochs of (mini-)batch gradient descent over the functional core.

It is built from four named pieces, read top to bottom:

- :func:`step`: one gradient step on one batch: E_total and its gradients (the core),
  then the optimizer's update.  Every way of training goes through it.
- :func:`epoch`: one pass over the training samples, as one full-batch step or as a
  step per mini-batch.
- :class:`BestParameters`: with early stopping, the validation pass after each epoch
  and the best parameters so far, both kept on the device.
- :func:`run_epochs`: the loop.  Everything an epoch records (its loss, and with early
  stopping the validation loss and score) stays on the device and is read back a block
  of ``READBACK_EVERY`` epochs at a time: one host synchronisation per block, not per
  epoch.  Decisions that need those values on the host (divergence, early stopping,
  the adaptive learning rate, progress reports) are taken at block boundaries by
  :class:`NoImprovement` and :class:`Schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np  # host-side: the seeded generator that orders mini-batches

from . import _dask
from ._activations import Activation
from ._backprop import loss_and_gradients, output
from ._host import to_numpy
from ._losses import Objective
from ._optimizers import Optimizer, OptimizerState, advance

Array = Any

#: Epoch losses stay on the device and are read back this many at a time: one host
#: synchronisation per block of epochs instead of one per epoch.
READBACK_EVERY = 16


# -- scores ------------------------------------------------------------------------------


def _weighted_mean(x: Array, s: Array | None, *, xp: Any) -> Array:
    """The mean of ``x`` over its last axis (the samples), weighted by ``s`` if given."""
    if s is None:
        return xp.mean(x, axis=-1)
    return xp.sum(s * x, axis=-1) / xp.sum(s)


def accuracy(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """The fraction of samples whose largest output is their class: a 0-D array.

    Parameters
    ----------
    O : array of shape (n_classes, N)
        The network output, one column per sample.
    Y : array of shape (n_classes, N)
        The one-hot labels.
    s : array of shape (N,), optional
        Sample weights: the weighted fraction.
    """
    hit = xp.argmax(O, axis=0) == xp.argmax(Y, axis=0)
    return _weighted_mean(xp.astype(hit, O.dtype), s, xp=xp)


def subset_accuracy(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """Multi-label accuracy: the fraction of samples whose every label is right.

    A label is predicted present where its sigmoid output exceeds 0.5, as
    scikit-learn's ``accuracy_score`` judges multi-label predictions.

    Parameters
    ----------
    O, Y : arrays of shape (n_labels, N)
        The network output and the 0/1 targets, one column per sample.
    s : array of shape (N,), optional
        Sample weights.
    """
    hit = xp.all((O > 0.5) == (Y > 0.5), axis=0)
    return _weighted_mean(xp.astype(hit, O.dtype), s, xp=xp)


def r2_score(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """R² = 1 − Σ(y − o)² / Σ(y − ȳ)², averaged over the outputs: a 0-D array.

    A constant target (Σ(y − ȳ)² = 0) scores 1 when predicted exactly and 0 otherwise,
    as in scikit-learn.  With sample weights, both sums and the mean ȳ are weighted.

    Parameters
    ----------
    O, Y : arrays of shape (n_outputs, N)
        The network output and the targets, one column per sample.
    s : array of shape (N,), optional
        Sample weights.
    """
    w = 1.0 if s is None else s
    y_bar = _weighted_mean(Y, s, xp=xp)[:, None]
    ss_res = xp.sum(w * (Y - O) ** 2, axis=1)
    ss_tot = xp.sum(w * (Y - y_bar) ** 2, axis=1)
    varies = ss_tot > 0
    safe = xp.where(varies, ss_tot, xp.ones_like(ss_tot))
    r2 = xp.where(varies, 1.0 - ss_res / safe, xp.astype(ss_res == 0, O.dtype))
    return xp.mean(r2)


# -- what training works on ----------------------------------------------------------------


class Samples(NamedTuple):
    """Training (or validation) samples and what goes with them.

    Attributes
    ----------
    X : array of shape (N, n_0)
        The samples as rows, as the user passed them; the core sees Xᵀ (a view).
    Y : array of shape (n_L, N)
        The targets, one column per sample.
    s : array of shape (N,) or None
        Sample weights on the device; None weighs every sample 1.
    s_host : numpy.ndarray of shape (N,) or None
        The same weights on the host, where each batch's Σ sᵢ is taken without reading
        the device.
    """

    X: Array
    Y: Array
    s: Array | None = None
    s_host: np.ndarray | None = None

    def weight(self, rows: Any = slice(None)) -> float | None:
        """Σ sᵢ over ``rows`` (a slice or host indices); None without weights (Σ = N)."""
        return None if self.s_host is None else float(np.sum(self.s_host[rows]))


@dataclass(frozen=True)
class Step:
    """Everything a gradient step needs besides the parameters and the data.

    Attributes
    ----------
    f : sequence of L activations
    objective : Objective
        The (loss, output activation) pair.
    optimizer : Optimizer
        The update rule (see ``xpnet._optimizers``).
    alpha : float
        The L2 penalty.
    xp : array namespace
    chunk_size, map
        How each batch's samples are taken, as in ``xpnet._backprop.loss_and_gradients``.
    """

    f: Sequence[Activation]
    objective: Objective
    optimizer: Optimizer
    alpha: float
    xp: Any
    chunk_size: int | None = None
    map: Callable[..., Iterator[Any]] = map


def step(
    W: list[Array],
    b: list[Array],
    state: OptimizerState,
    A0: Array,
    Y: Array,
    s: Array | None,
    S: float | None,
    *,
    mu: float,
    how: Step,
) -> tuple[list[Array], list[Array], OptimizerState, Array]:
    """One gradient step on one batch (samples in the columns of ``A0`` and ``Y``)::

        E, ∇E = E_total and its gradients at (W, b)
        U, state = optimizer.update(∇E, state)
        (W, b) ← (W, b) + U

    ``mu`` is the step's own step size (``how.optimizer.step_size`` of the schedule's
    μ).  Returns the new parameters and optimizer state, and E (at the parameters the
    step started from) as a 0-D array on the device.  ``S`` is Σ sᵢ, or None for N.
    """
    xp = how.xp
    E, grad_W, grad_b = loss_and_gradients(
        W, b, A0, Y, f=how.f, objective=how.objective, xp=xp, s=s, S=S, alpha=how.alpha,
        chunk_size=how.chunk_size, map=how.map,
    )  # fmt: skip
    P, state = advance(how.optimizer, [*W, *b], [*grad_W, *grad_b], state, mu=mu, xp=xp)
    return P[: len(W)], P[len(W) :], state, E


def shuffled(rng: np.random.Generator, X: Array) -> Any:
    """A random order of the samples for a mini-batch epoch, drawn from ``rng``: a
    permutation of the N rows of X (host indices), or on Dask, an order of X's blocks and
    of the samples within each (``xpnet._dask.block_order``)."""
    return _dask.block_order(rng, X) if _dask.is_dask(X) else rng.permutation(X.shape[0])


def epoch(
    W: list[Array],
    b: list[Array],
    state: OptimizerState,
    data: Samples,
    *,
    mu: float,
    batch_size: int | None,
    order: Any,
    how: Step,
    device: Any,
) -> tuple[list[Array], list[Array], OptimizerState, Array]:
    """One pass over the training samples; returns W, b, the optimizer state and E.

    With ``batch_size=None`` (or ≥ N) the epoch is one full-batch step, the seed's
    method, and E is E_total at the parameters it started from (as scikit-learn records
    it).  Otherwise it takes one step per batch of ``batch_size`` samples (the last one
    smaller), visiting the samples in ``order`` (host indices, or None for their own
    order), and E is the mean of the batch losses weighted by batch size.  A batch
    whose sample weights are all zero has nothing to learn from and takes no step.  On
    Dask, batches are drawn within Dask's blocks, in the order of :func:`shuffled`.
    """
    xp = how.xp
    N = data.X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    step_size = how.optimizer.step_size
    if B == N:
        mu_t = step_size(mu, state.t + 1)
        return step(W, b, state, data.X.T, data.Y, data.s, data.weight(), mu=mu_t, how=how)
    if _dask.is_dask(data.X):  # batches within Dask's blocks, a task per block
        W, b, state, E = _dask.epochs_in_blocks(
            W, b, state, data, mu=[mu], batch_size=B, order=[order], how=how
        )
        return W, b, state, E[0]
    if order is not None:
        index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
        on_device = xp.asarray(order, dtype=index, device=device)
    batches = [slice(start, min(start + B, N)) for start in range(0, N, B)]
    weights = [data.weight(rows if order is None else order[rows]) for rows in batches]
    n_stepped = sum(r.stop - r.start for r, S in zip(batches, weights, strict=True) if S != 0.0)
    E = 0.0
    for rows, S in zip(batches, weights, strict=True):
        if S == 0.0:
            continue
        if order is None:
            X_B, Y_B = data.X[rows, :], data.Y[:, rows]
            s_B = None if data.s is None else data.s[rows]
        else:
            i = on_device[rows]
            X_B, Y_B = xp.take(data.X, i, axis=0), xp.take(data.Y, i, axis=1)
            s_B = None if data.s is None else xp.take(data.s, i, axis=0)
        mu_t = step_size(mu, state.t + 1)
        W, b, state, E_B = step(W, b, state, X_B.T, Y_B, s_B, S, mu=mu_t, how=how)
        E = E + E_B * ((rows.stop - rows.start) / n_stepped)
    return W, b, state, E


def keep_the_best(
    W: list[Array], b: list[Array], best_W: list[Array], best_b: list[Array], best: Array,
    validation: Samples, S: Any, score: Callable[..., Array], *, how: Step,
) -> tuple[list[Array], list[Array], Array, Array]:  # fmt: skip
    """The validation pass after an epoch, and the best parameters so far, on the device.

    Returns the best (W, b) and best score after this epoch, and a (2,) array of this
    epoch's validation loss and score.  (W, b) replaces the best if its score is
    strictly higher (as scikit-learn: a tie keeps the earlier epoch), chosen by
    ``xp.where``, so that nothing is read back.  ``S`` is Σ sᵢ of the validation
    samples (their number without weights).
    """
    xp, val = how.xp, validation
    O = output(W, b, val.X.T, f=how.f, xp=xp, chunk_size=how.chunk_size, map=how.map)
    O = _dask.concrete(O)  # on Dask, (n_L, N_val): small
    s = score(O, val.Y, val.s, xp=xp)
    values = xp.stack([how.objective.loss_sum(val.Y, O, val.s, xp=xp) / S, s])
    improved = s > best
    best_W = [xp.where(improved, W_l, V_l) for W_l, V_l in zip(W, best_W, strict=True)]
    best_b = [xp.where(improved, b_l, c_l) for b_l, c_l in zip(b, best_b, strict=True)]
    return best_W, best_b, xp.where(improved, s, best), values


class BestParameters:
    """Early stopping's device side: the validation pass, and the best parameters so far.

    After each epoch, :meth:`after_epoch` scores the network on the validation samples
    and keeps a copy of the parameters if the score beats the best so far.  The choice
    is made by ``xp.where`` on the device, so no value is read back for it; the scores
    and validation losses wait on the device for the read-back.
    """

    def __init__(
        self, W: list[Array], b: list[Array], validation: Samples, score: Callable[..., Array],
        best_score: float, *, how: Step, device: Any,
    ) -> None:  # fmt: skip
        # On Dask the validation samples stay there, their targets and weights (small)
        # come to the client once, as the parameters are.
        validation = validation._replace(
            Y=_dask.concrete(validation.Y), s=_dask.concrete(validation.s)
        )
        self.validation, self.score, self.how = validation, score, how
        self.S = validation.X.shape[0] if validation.s_host is None else validation.weight()
        self.W, self.b = list(W), list(b)
        # The best score lives on the device so that the best parameters can be chosen
        # there; a Python float in xp.where/comparisons would not fix the dtype.
        self.best = how.xp.asarray(best_score, dtype=validation.X.dtype, device=device)
        self.pending: list[Array] = []

    def after_epoch(self, W: list[Array], b: list[Array]) -> None:
        """Score (W, b) on the validation samples; keep them if strictly better."""
        self.W, self.b, self.best, values = keep_the_best(
            W, b, self.W, self.b, self.best, self.validation, self.S, self.score, how=self.how
        )
        self.pending.append(values)


# -- the host side: stopping rules and the learning rate ------------------------------------


@dataclass
class NoImprovement:
    """scikit-learn's count of epochs without improvement, for a value to maximise.

    An epoch counts as no change unless its value beats the best by ``tol``; the best
    itself moves on any strict improvement, and NaN never improves.  The count runs
    over (training loss, negated) or over the validation score.
    """

    tol: float
    patience: int
    best: float = -math.inf
    count: int = 0

    def stalled(self, value: float) -> bool:
        """Count ``value``'s epoch; True once more than ``patience`` epochs in a row failed."""
        self.count = 0 if value >= self.best + self.tol else self.count + 1
        self.best = value if value > self.best else self.best
        return self.count > self.patience


class ScheduleState(NamedTuple):
    """What the learning-rate schedule carries from one ``partial_fit`` to the next.

    Attributes
    ----------
    mu : float
        The step size of the next epoch, for the "invscaling" and "adaptive" schedules.
    t : int
        The number of samples trained on so far (scikit-learn's ``t_``).
    no_change, best : int, float
        The adaptive schedule's :class:`NoImprovement` count and best value (the
        negated training loss).
    """

    mu: float
    t: int = 0
    no_change: int = 0
    best: float = -math.inf


@dataclass(frozen=True)
class Schedule:
    """The step size μ of each epoch: scikit-learn's three learning-rate schedules.

    - ``"constant"``: μ = ``learning_rate``.
    - ``"invscaling"``: μ = ``learning_rate`` / (t + 1)^``power_t``, with t the number of
      samples trained on before the epoch; the first epoch of every ``fit`` takes
      ``learning_rate`` itself (scikit-learn starts a new optimizer there).
    - ``"adaptive"``: μ starts at ``learning_rate`` and is divided by 5 each time the
      training loss (with early stopping: the validation score) fails to improve by
      ``tol`` for more than ``n_iter_no_change`` epochs in a row; training stops when
      that happens with μ already at 1e-6 or less.  The rule is applied when the epochs
      are read back, so a new μ takes effect from the next read-back block on.
    """

    kind: str
    mu0: float
    power_t: float = 0.5
    tol: float = 1e-4
    n_iter_no_change: int = 10

    def start(self, t: int = 0) -> ScheduleState:
        """The state a ``fit`` starts from, after ``t`` samples already trained on."""
        return ScheduleState(self.mu0, t)

    def mu(self, state: ScheduleState) -> float:
        """The step size of the next epoch."""
        return self.mu0 if self.kind == "constant" else state.mu

    def epoch_end(self, state: ScheduleState, N: int) -> ScheduleState:
        """The state after an epoch of N samples: t grows, and "invscaling" moves μ."""
        t = state.t + N
        if self.kind == "invscaling":
            return state._replace(t=t, mu=self.mu0 / (t + 1) ** self.power_t)
        return state._replace(t=t)

    def stall(self, state: ScheduleState) -> tuple[ScheduleState, bool]:
        """What a stall does: with ``"adaptive"``, μ / 5 (or stop at μ ≤ 1e-6); else stop."""
        if self.kind != "adaptive" or state.mu <= 1e-6:
            return state, True
        return state._replace(mu=state.mu / 5.0), False


# -- the loop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyStopping:
    """A held-out validation set and scikit-learn's rule for stopping on it.

    Training stops once the validation score has failed, more than
    ``n_iter_no_change`` epochs in a row, to exceed the best score so far by at least
    ``tol``; the parameters of the best epoch are then restored.

    Attributes
    ----------
    validation : Samples
        The validation samples, their targets and weights.
    score : callable ``score(O, Y, s, *, xp) -> 0-D array``
        Higher is better: :func:`accuracy`, :func:`subset_accuracy` or :func:`r2_score`.
    n_iter_no_change : int
    tol : float
    best_score : float
        The score to beat; the starting parameters are "best" until one epoch beats it.
    """

    validation: Samples
    score: Callable[..., Array]
    n_iter_no_change: int
    tol: float
    best_score: float = -math.inf


class History(NamedTuple):
    """What :func:`run_epochs` returns: the parameters, the states and the per-epoch record."""

    W: list[Array]
    b: list[Array]
    optimizer_state: OptimizerState
    schedule_state: ScheduleState
    losses: list[float]
    #: Validation loss and score after each epoch; None without early stopping.
    validation_losses: list[float] | None = None
    validation_scores: list[float] | None = None
    #: Whether a stopping rule ended training before ``n_epochs``.
    stopped: bool = False


#: ``callback(losses, validation_scores)``: the values of the epochs of one read-back
#: block, as Python floats (``validation_scores`` is None without early stopping).
Callback = Callable[[list[float], "list[float] | None"], None]


def run_epochs(
    W: Sequence[Array],
    b: Sequence[Array],
    data: Samples,
    *,
    n_epochs: int,
    how: Step,
    optimizer_state: OptimizerState,
    schedule: Schedule,
    schedule_state: ScheduleState,
    batch_size: int | None,
    shuffle: bool,
    rng: np.random.Generator,
    device: Any,
    early_stopping: EarlyStopping | None = None,
    callback: Callback | None = None,
    on_block: Callable[[History], None] | None = None,
    compiled: Callable[..., Any] | None = None,
) -> History:
    """Train for up to ``n_epochs`` epochs; return the new parameters and the record.

    Each :func:`epoch` is one full-batch step (``batch_size=None``) or a step per
    mini-batch, in an order drawn from ``rng`` when ``shuffle`` is set.  With
    ``early_stopping``, each epoch ends with a validation pass (:class:`BestParameters`),
    and the stopping rule is applied when a block of ``READBACK_EVERY`` epochs is read
    back, so training may run up to ``READBACK_EVERY - 1`` epochs past the epoch where
    the rule fires; those epochs are kept in the record, and the best parameters are
    restored all the same.

    Parameters
    ----------
    W, b : sequences of L arrays
        The starting parameters; they are not modified.
    data : Samples
        The training samples.
    how : Step
        The network's activations, the objective, the optimizer and the penalty.
    optimizer_state, schedule_state
        Where the optimizer and the learning-rate schedule take up (fresh ones for a
        new fit, the previous ones for ``partial_fit``).
    schedule : Schedule
        The step size of each epoch.
    rng : numpy.random.Generator
        Orders the mini-batches; drawn on the host, so every backend sees the same batches.
    early_stopping : EarlyStopping, optional
        The validation set and the stopping rule; None trains for ``n_epochs`` epochs.
    callback : callable, optional
        Called after each read-back with that block's values (see ``Callback``), for
        progress reports that cost no extra synchronisation.
    on_block : callable, optional
        Called after each read-back, and the stopping rules, with the :class:`History`
        so far: a consistent state to write a checkpoint from.  Its lists are the
        record itself, to be read at once and never kept.
    compiled : callable, optional
        Runs a block of k full-batch epochs as one compiled program (see
        ``xpnet._compiled``), ``compiled(W, b, state, sched, k, record, best)``, in
        place of the eager loop; None runs them one operation at a time.

    Returns
    -------
    History
        ``W, b``: the parameters after the last step (with early stopping: of the best
        epoch); the optimizer and schedule states after the last step.  ``losses``:
        E_total for each epoch (see :func:`epoch`).  ``validation_losses``,
        ``validation_scores``: after each epoch, or None.

    Raises
    ------
    ValueError
        If the loss becomes NaN or infinite: the step size is too large for the data.
    Interrupted
        On a ``KeyboardInterrupt``, with the :class:`History` of the last block read
        back (and ``rng`` put back to where that block left it).
    """
    W, b, state, sched = list(W), list(b), optimizer_state, schedule_state
    N = data.X.shape[0]
    es = early_stopping
    best = None if es is None else BestParameters(
        W, b, es.validation, es.score, es.best_score, how=how, device=device
    )  # fmt: skip
    record = Record(best, xp=how.xp)
    # Early stopping's count of epochs without improvement lasts one fit.
    patience = None if es is None else NoImprovement(es.tol, es.n_iter_no_change, es.best_score)
    # What an interrupt falls back to: the state after the last block read back.
    last, stop, done = (W, b, state, sched, 0, rng.bit_generator.state), False, 0

    def eager_block(W, b, state, sched, k, record, best):
        """k epochs, one operation at a time: the reference way of running them."""
        for _ in range(k):
            mu = schedule.mu(sched)
            mini = shuffle and batch_size is not None and batch_size < N
            order = None if not mini else shuffled(rng, data.X)
            W, b, state, E = epoch(W, b, state, data, mu=mu, batch_size=batch_size,
                                   order=order, how=how, device=device)  # fmt: skip
            sched = schedule.epoch_end(sched, N)
            record.add(E, mu)
            if best is not None:
                best.after_epoch(W, b)
        return W, b, state, sched

    try:
        while done < n_epochs and not stop:
            k = min(READBACK_EVERY, n_epochs - done)
            W, b, state, sched = (compiled or eager_block)(W, b, state, sched, k, record, best)
            done += k
            losses, scores = record.read_back(last_epoch=done)
            sched, stop = apply_stopping_rules(schedule, sched, patience, losses, scores)
            W_kept, b_kept = (W, b) if best is None else (best.W, best.b)
            last = (W_kept, b_kept, state, sched, done, rng.bit_generator.state)
            if callback is not None:
                callback(losses, scores)
            if on_block is not None:
                on_block(record.history(*last[:4]))
    except KeyboardInterrupt:
        *kept, n_done, rng.bit_generator.state = last
        raise Interrupted(record.history(*kept, n_epochs=n_done) if n_done else None) from None
    return record.history(*last[:4])._replace(stopped=stop)


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` during :func:`run_epochs`.

    Attributes
    ----------
    history : History or None
        The parameters, states and record after the last block that was read back, all
        consistent with each other; None if the interrupt came before the first.
    """

    def __init__(self, history: History | None) -> None:
        super().__init__()
        self.history = history


class Record:
    """The per-epoch record: values wait on the device and are read back a block at a time.

    Attributes
    ----------
    losses : list of float
        E_total of each epoch read back so far.
    validation_losses, scores : lists of float, or None without early stopping
        The validation loss and score of each epoch read back so far.
    pending : list of 0-D arrays
        The losses of the epochs not yet read back.
    """

    def __init__(self, best: BestParameters | None, *, xp: Any) -> None:
        self.best, self.xp = best, xp
        self.losses: list[float] = []
        self.validation_losses = None if best is None else []
        self.scores = None if best is None else []
        self.pending: list[Array] = []
        self.pending_mu: list[float] = []

    def history(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        *, n_epochs: int | None = None,
    ) -> History:  # fmt: skip
        """A :class:`History` of these parameters and states with the record's values: of
        the first ``n_epochs`` epochs (copies), or of all read back (the lists themselves,
        so that a checkpoint every block costs no copy of a long record)."""
        values = [self.losses, self.validation_losses, self.scores]
        if n_epochs is not None:
            values = [None if v is None else v[:n_epochs] for v in values]
        return History(W, b, state, sched, *values)

    def add(self, E: Array, *mu: float) -> None:
        """Keep the losses of one or more epochs (a 0-D or 1-D array on the device) and
        the μ of each."""
        self.pending.append(E)
        self.pending_mu += mu

    def read_back(self, *, last_epoch: int) -> tuple[list[float], list[float] | None]:
        """The pending epochs' losses (and validation scores) on the host, in one transfer.

        Raises ValueError at the first loss that is not finite.
        """
        xp, n, best = self.xp, len(self.pending_mu), self.best
        values = [xp.reshape(E, (-1,)) for E in self.pending]
        if best is not None:
            V = xp.concat([xp.reshape(v, (-1, 2)) for v in best.pending], axis=0)
            values += [V[:, 0], V[:, 1]]
            best.pending = []
        values = [float(v) for v in to_numpy(xp.concat(values, axis=0))]
        losses = _check_losses(values[:n], first_epoch=last_epoch - n + 1, mu=self.pending_mu)
        self.losses += losses
        self.pending, self.pending_mu = [], []
        if best is None:
            return losses, None
        self.validation_losses += values[n : 2 * n]
        self.scores += values[2 * n :]
        return losses, values[2 * n :]


def apply_stopping_rules(
    schedule: Schedule,
    sched: ScheduleState,
    patience: NoImprovement | None,
    losses: list[float],
    scores: list[float] | None,
) -> tuple[ScheduleState, bool]:
    """scikit-learn's rules, epoch by epoch through a block read back: the new schedule
    state, and whether training stops.

    With early stopping, the validation scores are counted by ``patience``, which
    lives as long as the fit; with the adaptive schedule alone, the training losses,
    by a count kept in the schedule's state and carried from one ``partial_fit`` to the
    next.  A stall stops training, or with the adaptive schedule divides μ by 5
    (:meth:`Schedule.stall`).
    """
    if patience is not None:
        rule, values = patience, scores
    elif schedule.kind == "adaptive":
        rule = NoImprovement(schedule.tol, schedule.n_iter_no_change, sched.best, sched.no_change)
        values = [-v for v in losses]  # lower losses are better: count their negatives
    else:
        return sched, False
    stop = False
    for v in values:
        if rule.stalled(v):
            sched, stop = schedule.stall(sched)
            if stop:
                break
            rule.count = 0
    if patience is None:
        sched = sched._replace(no_change=rule.count, best=rule.best)
    return sched, stop


def validation_split(
    X: Array,
    Y: Array,
    s_host: np.ndarray | None = None,
    *,
    fraction: float,
    rng: np.random.Generator,
    stratify: bool,
    xp: Any,
    device: Any,
) -> tuple[Samples, Samples]:
    """Hold out ``ceil(fraction · N)`` samples, drawn from ``rng``, for validation.

    With ``stratify`` (Y one-hot), each class gives its share of the held-out samples,
    rounded by largest remainder; finding the classes reads the labels back once.
    Both parts keep the samples in their original order.

    Parameters
    ----------
    X : array of shape (N, n_0)
    Y : array of shape (n_L, N)
    s_host : numpy.ndarray of shape (N,), optional
        Sample weights, on the host; split alike and moved to the device.

    Returns
    -------
    train, validation : Samples
    """
    N = X.shape[0]
    n_val = math.ceil(fraction * N)
    if not 0 < n_val < N:
        raise ValueError(
            f"validation_fraction={fraction!r} of {N} sample(s) leaves "
            f"{N - n_val} for training and {n_val} for validation; early stopping needs "
            "at least one of each."
        )
    if not stratify:
        val = rng.permutation(N)[:n_val]
    else:
        label = to_numpy(xp.argmax(Y, axis=0))
        members = [np.flatnonzero(label == k) for k in range(Y.shape[0])]
        quota = np.array([n_val * len(m) / N for m in members])
        take = np.floor(quota).astype(np.int64)
        # Largest remainders first; a stable sort breaks ties by class order.
        for k in np.argsort(-(quota - take), kind="stable")[: n_val - int(take.sum())]:
            take[k] += 1
        val = np.concatenate([rng.permutation(m)[:t] for m, t in zip(members, take, strict=True)])
    is_val = np.zeros(N, dtype=bool)
    is_val[val] = True
    parts = []
    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    for rows in (np.flatnonzero(~is_val), np.flatnonzero(is_val)):
        i = xp.asarray(rows, dtype=index, device=device)
        s_part = None if s_host is None else s_host[rows]
        s = None if s_part is None else xp.asarray(s_part, dtype=X.dtype, device=device)
        parts.append(Samples(xp.take(X, i, axis=0), xp.take(Y, i, axis=1), s, s_part))
    return parts[0], parts[1]


def _check_losses(values: list[float], *, first_epoch: int, mu: list[float]) -> list[float]:
    """The epoch losses ``values``, or a ValueError at the first that is not finite."""
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(
                f"Training diverged: the loss became {v} at epoch {first_epoch + k} "
                f"with learning_rate={mu[k]}. Lower the learning rate or scale X and y "
                "(for example to zero mean and unit variance)."
            )
    return values
