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
    no_change : int
        Epochs without improvement counted already (a resumed fit's).
    kept : (list of arrays, list of arrays) or None
        The best parameters so far, (W, b), where a resumed fit takes them up; None: the
        starting parameters.
    """

    validation: Samples
    score: Callable[..., Array]
    n_iter_no_change: int
    tol: float
    best_score: float = -math.inf
    no_change: int = 0
    kept: tuple[list[Array], list[Array]] | None = None


class StoppingState(NamedTuple):
    """What carrying on a fit with early stopping needs besides the model itself.

    The model's parameters are the best epoch's; training goes on from the latest ones,
    on the same validation samples, with the rule's count where it was.

    Attributes
    ----------
    split_rng : dict
        The state of the fit's generator (``bit_generator.state``) from which the
        validation split was drawn: the same samples are held out again.
    n_samples : int
        The number of samples the split was drawn from.
    validation_fraction : float
        The share held out.
    no_change : int
        The rule's count of epochs without improvement.
    best : float
        The best validation score (the model's epoch).
    W, b : lists of NumPy arrays
        The parameters after the last step, on the host.
    """

    split_rng: dict[str, Any]
    n_samples: int
    validation_fraction: float
    no_change: int
    best: float
    W: list[Any]
    b: list[Any]


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
    #: With early stopping, where W and b are the best epoch's: the parameters after the
    #: last step, (W, b), from which training would go on.
    latest: tuple[list[Array], list[Array]] | None = None
    #: With early stopping: the rule's count of epochs without improvement, and the best
    #: validation score, as of the last epoch.
    patience: tuple[int, float] | None = None


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
    losses_before: Sequence[float] = (),
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
    losses_before : sequence of float
        The losses of the epochs trained before this run, when it continues a record
        (``warm_start``, ``partial_fit``, resuming): divergence is judged against the
        record's first epoch (see :class:`Record`).

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
        If training diverges (see :meth:`Record.read_back`): the step size is too large
        for the data.
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
        W_best, b_best = (W, b) if es.kept is None else (list(es.kept[0]), list(es.kept[1]))
        kept = Kept(W_best, b_best, best)
    record = Record(validation is not None, xp=engine.xp, before=losses_before)
    # Early stopping's count of epochs without improvement lasts one fit (or is resumed).
    patience = None
    if es is not None:
        patience = NoImprovement(es.tol, es.n_iter_no_change, es.best_score, es.no_change)
    mini = shuffle and batch_size is not None and batch_size < N
    blocks = engine.blocks(data) if mini else None

    def state_after_block(done: int) -> tuple[Any, ...]:
        """What the run has reached, consistent: the kept parameters and the states (and
        with early stopping, the latest parameters and the rule's count)."""
        if kept is None:
            return (W, b, state, sched), {}, done, rng.bit_generator.state
        resume = {"latest": (W, b), "patience": (patience.count, patience.best)}
        return (kept.W, kept.b, state, sched), resume, done, rng.bit_generator.state

    # What an interrupt falls back to: the state after the last block read back.
    last, stop, done = state_after_block(0), False, 0
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
            losses, scores = record.read_back(last_epoch=done, parameters=[*W, *b])
            sched, stop = apply_stopping_rules(schedule, sched, patience, losses, scores)
            last = state_after_block(done)
            if callback is not None:
                callback(losses, scores)
            if on_block is not None:
                on_block(record.history(*last[0], **last[1]))
    except KeyboardInterrupt:
        kept_, resume, n_done, rng.bit_generator.state = last
        at = record.history(*kept_, n_epochs=n_done, **resume) if n_done else None
        raise Interrupted(at) from None
    return record.history(*last[0], **last[1])._replace(stopped=stop)


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


#: A loss this many times the first epoch's, and growing, is taken for divergence (see
#: :meth:`Record.read_back`).
EXPLODED = 1e10


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
    first, previous : float or None
        The loss of the first epoch of the whole record (``before`` included) and of
        the last epoch read back: what divergence is judged against.
    """

    def __init__(self, validating: bool, *, xp: Any, before: Sequence[float] = ()) -> None:
        self.validating, self.xp = validating, xp
        self.losses: list[float] = []
        self.validation_losses = [] if validating else None
        self.scores = [] if validating else None
        self.pending: list[Array] = []
        self.pending_V: list[Array] = []
        self.pending_mu: list[float] = []
        self.first = float(before[0]) if len(before) else None
        self.previous = float(before[-1]) if len(before) else None

    def history(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        *, n_epochs: int | None = None, latest: Any = None, patience: Any = None,
    ) -> History:  # fmt: skip
        """A :class:`History` of these parameters and states with the record's values: of
        the first ``n_epochs`` epochs (copies), or of all read back (the lists themselves,
        so that a checkpoint every block costs no copy of a long record)."""
        values = [self.losses, self.validation_losses, self.scores]
        if n_epochs is not None:
            values = [None if v is None else v[:n_epochs] for v in values]
        return History(W, b, state, sched, *values, latest=latest, patience=patience)

    def add(self, E: list[Array], V: Sequence[Array], mu: list[float]) -> None:
        """Keep a block's losses, validation values and the μ of each epoch."""
        self.pending += E
        self.pending_V += V
        self.pending_mu += mu

    def read_back(
        self, *, last_epoch: int, parameters: Sequence[Array] = ()
    ) -> tuple[list[float], list[float] | None]:
        """The pending epochs' losses (and validation scores) on the host, in one transfer.

        Raises ValueError where training diverged:

        - at the first loss that is not finite;
        - at the first loss more than ``EXPLODED`` (10¹⁰) times the record's first and
          higher than the epoch's before: at the random start the network's outputs are
          of the order of the targets, so the first loss is of the order of their spread,
          and a descent that converges, overshoots and all, stays within a few orders of
          magnitude of it.  A loss 10¹⁰ times larger has outputs 10⁵ times further from
          the targets than a random network's: every step now amplifies the error, until
          it overflows (which in float64 can take tens of epochs);
        - if the squared norm ‖p‖² of any of ``parameters`` (the parameters after the
          block's last step) overflows: an epoch's loss is taken before its step, so the
          last step of a fit would otherwise go unchecked, and could leave infinite
          weights, or finite ones whose outputs overflow.  ‖p‖² overflows for weights
          beyond 1e19 in float32 and 1e154 in float64, about where the squared errors of
          the outputs they make would: no network that trains has them.  Read back with
          the losses, one number per array.
        """
        xp, n = self.xp, len(self.pending_mu)
        values = [xp.reshape(E, (-1,)) for E in self.pending]
        if self.validating:
            V = xp.concat([xp.reshape(v, (-1, 2)) for v in self.pending_V], axis=0)
            values += [V[:, 0], V[:, 1]]
        values += [xp.reshape(xp.sum(p * p), (1,)) for p in parameters]
        values = [float(v) for v in to_numpy(xp.concat(values, axis=0))]
        mu = self.pending_mu
        losses = self.checked(values[:n], first_epoch=last_epoch - n + 1, mu=mu)
        self.check_parameters(values[len(values) - len(parameters) :], last_epoch=last_epoch, mu=mu)
        self.losses += losses
        self.pending, self.pending_V, self.pending_mu = [], [], []
        if not self.validating:
            return losses, None
        self.validation_losses += values[n : 2 * n]
        self.scores += values[2 * n : 3 * n]
        return losses, values[2 * n : 3 * n]

    def check_parameters(self, squares: list[float], *, last_epoch: int, mu: list[float]) -> None:
        """Raise ValueError if any of the squared norms ``squares`` of the parameters after
        the block (read back with its losses) is not finite."""
        if not all(math.isfinite(v) for v in squares):
            raise ValueError(
                f"Training diverged: the step of epoch {last_epoch} with "
                f"learning_rate={mu[-1]} made the parameters overflow (the squares of "
                f"some are infinite or NaN). {_ADVICE}"
            )

    def checked(self, values: list[float], *, first_epoch: int, mu: list[float]) -> list[float]:
        """The epoch losses ``values``, or a ValueError at the first that diverged (see
        :meth:`read_back`); they become the record's last."""
        for k, v in enumerate(values):
            if not math.isfinite(v):
                raise ValueError(
                    f"Training diverged: the loss became {v} at epoch {first_epoch + k} "
                    f"with learning_rate={mu[k]}. {_ADVICE}"
                )
            if self.first is None:
                self.first = v
            elif self.first > 0 and v > EXPLODED * self.first and v > self.previous:
                # No values in the message: where the loss explodes, its digits depend on
                # the order of summation, and every engine tells the same epoch alike.
                raise ValueError(
                    f"Training diverged: the loss of epoch {first_epoch + k} with "
                    f"learning_rate={mu[k]} grew past {EXPLODED:.0e} times the first "
                    f"epoch's. {_ADVICE}"
                )
            self.previous = v
        return values


_ADVICE = "Lower the learning rate or scale X and y (for example to zero mean and unit variance)."
