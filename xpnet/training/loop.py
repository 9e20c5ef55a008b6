"""The training loop: blocks of epochs between read-backs, run by an engine.

Everything an epoch records (its loss, and with early stopping the validation loss and
score) stays on the device and is read back a block of ``READBACK_EVERY`` epochs at a
time: one host synchronisation per block, not per epoch.  Before each block the loop
decides on the host what the engine needs (each epoch's step size and sample order, in
a :class:`~xpnet.training.engine.BlockPlan`); after it, the decisions that need the
values read back (divergence, early stopping, the adaptive learning rate, progress
reports, checkpoints) are taken (``xpnet.training.schedules``).  The loop never learns
which engine runs the blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np  # host-side: the seeded generator that orders mini-batches

from .._host import to_numpy
from ..core.optimizers import OptimizerState
from ..core.step import Samples
from .engine import BlockPlan, Engine, Kept, Validation
from .samples import sample_order
from .schedules import NoImprovement, Schedule, ScheduleState, apply_stopping_rules

Array = Any

#: Epoch losses stay on the device and are read back this many at a time: one host
#: synchronisation per block of epochs instead of one per epoch.
READBACK_EVERY = 16


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
        Higher is better (``xpnet.core.scores``).
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
    engine: Engine,
    optimizer_state: OptimizerState,
    schedule: Schedule,
    schedule_state: ScheduleState,
    batch_size: int | None,
    shuffle: bool,
    rng: np.random.Generator,
    early_stopping: EarlyStopping | None = None,
    callback: Callback | None = None,
    on_block: Callable[[History], None] | None = None,
) -> History:
    """Train for up to ``n_epochs`` epochs; return the new parameters and the record.

    Each epoch is one full-batch step (``batch_size=None``) or a step per mini-batch,
    in an order drawn from ``rng`` when ``shuffle`` is set.  With ``early_stopping``,
    each epoch ends with a validation pass, and the stopping rule is applied when a
    block of ``READBACK_EVERY`` epochs is read back, so training may run up to
    ``READBACK_EVERY - 1`` epochs past the epoch where the rule fires; those epochs are
    kept in the record, and the best parameters are restored all the same.

    Parameters
    ----------
    W, b : sequences of L arrays
        The starting parameters, as the engine computes on; they are not modified.
    data : Samples
        The training samples, made ready by the engine (``engine.open``).
    engine : Engine
        Runs the blocks of epochs (``xpnet.training.engine``).
    optimizer_state, schedule_state
        Where the optimizer and the learning-rate schedule take up (fresh ones for a
        new fit, the previous ones for ``partial_fit``).
    schedule : Schedule
        The step size of each epoch.
    rng : numpy.random.Generator
        Orders the mini-batches; drawn on the host, so every backend sees the same batches.
    early_stopping : EarlyStopping, optional
        The validation set (made ready by the engine) and the stopping rule; None
        trains for ``n_epochs`` epochs.
    callback : callable, optional
        Called after each read-back with that block's values (see ``Callback``), for
        progress reports that cost no extra synchronisation.
    on_block : callable, optional
        Called after each read-back, and the stopping rules, with the :class:`History`
        so far: a consistent state to write a checkpoint from.  Its lists are the
        record itself, to be read at once and never kept.

    Returns
    -------
    History
        ``W, b``: the parameters after the last step (with early stopping: of the best
        epoch); the optimizer and schedule states after the last step.  ``losses``:
        E_total for each epoch.  ``validation_losses``, ``validation_scores``: after
        each epoch, or None.

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
    es, validation, kept = early_stopping, None, None
    if es is not None:
        val = es.validation
        S = val.X.shape[0] if val.s_host is None else val.weight()
        validation = Validation(val, S, es.score)
        # The best score lives on the device so that the best parameters can be chosen
        # there; a Python float in xp.where/comparisons would not fix the dtype.
        best = engine.xp.asarray(es.best_score, dtype=val.X.dtype, device=engine.device)
        kept = Kept(W, b, best)
    record = Record(validation is not None, xp=engine.xp)
    # Early stopping's count of epochs without improvement lasts one fit.
    patience = None if es is None else NoImprovement(es.tol, es.n_iter_no_change, es.best_score)
    mini = shuffle and batch_size is not None and batch_size < N
    blocks = engine.blocks(data) if mini else None
    # What an interrupt falls back to: the state after the last block read back.
    last, stop, done = (W, b, state, sched, 0, rng.bit_generator.state), False, 0
    try:
        while done < n_epochs and not stop:
            k = min(READBACK_EVERY, n_epochs - done)
            mus, orders = [], []
            for _ in range(k):
                mus.append(schedule.mu(sched))
                orders.append(sample_order(rng, blocks, N) if mini else None)
                sched = schedule.epoch_end(sched, N)
            plan = BlockPlan(mus, orders, batch_size)
            W, b, state, E, kept, V = engine.run_block(W, b, state, plan, data, validation, kept)
            record.add(E, V, mus)
            done += k
            losses, scores = record.read_back(last_epoch=done)
            sched, stop = apply_stopping_rules(schedule, sched, patience, losses, scores)
            W_kept, b_kept = (W, b) if kept is None else (kept.W, kept.b)
            last = (W_kept, b_kept, state, sched, done, rng.bit_generator.state)
            if callback is not None:
                callback(losses, scores)
            if on_block is not None:
                on_block(record.history(*last[:4]))
    except KeyboardInterrupt:
        *kept_, n_done, rng.bit_generator.state = last
        raise Interrupted(record.history(*kept_, n_epochs=n_done) if n_done else None) from None
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
    pending, pending_V : lists of arrays
        The losses (0-D or 1-D), and validation values ((2,) or (k, 2)), of the epochs
        not yet read back.
    """

    def __init__(self, validating: bool, *, xp: Any) -> None:
        self.validating, self.xp = validating, xp
        self.losses: list[float] = []
        self.validation_losses = [] if validating else None
        self.scores = [] if validating else None
        self.pending: list[Array] = []
        self.pending_V: list[Array] = []
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

    def add(self, E: list[Array], V: Sequence[Array], mu: list[float]) -> None:
        """Keep a block's losses, validation values and the μ of each epoch."""
        self.pending += E
        self.pending_V += V
        self.pending_mu += mu

    def read_back(self, *, last_epoch: int) -> tuple[list[float], list[float] | None]:
        """The pending epochs' losses (and validation scores) on the host, in one transfer.

        Raises ValueError at the first loss that is not finite.
        """
        xp, n = self.xp, len(self.pending_mu)
        values = [xp.reshape(E, (-1,)) for E in self.pending]
        if self.validating:
            V = xp.concat([xp.reshape(v, (-1, 2)) for v in self.pending_V], axis=0)
            values += [V[:, 0], V[:, 1]]
        values = [float(v) for v in to_numpy(xp.concat(values, axis=0))]
        losses = _check_losses(values[:n], first_epoch=last_epoch - n + 1, mu=self.pending_mu)
        self.losses += losses
        self.pending, self.pending_V, self.pending_mu = [], [], []
        if not self.validating:
            return losses, None
        self.validation_losses += values[n : 2 * n]
        self.scores += values[2 * n :]
        return losses, values[2 * n :]


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
