"""The host's side of training: the step size of each epoch, and scikit-learn's stopping rules.

Decisions that need values read back from the device (early stopping, the adaptive
learning rate) are taken at read-backs, epoch by epoch through the block just read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


@dataclass
class NoImprovement:
    """scikit-learn's count of epochs without improvement, for a value to maximise.

    An epoch counts as no change unless its value beats the best by ``tol``; the best
    itself moves on any strict improvement, and NaN never improves.  The count runs
    over (training loss, negated) or over the validation score.
    """

    tol: float
    patience: float
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
    n_iter_no_change: float = 10

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
    lives as long as the fit; without it, the training losses, by a count kept in the
    schedule's state and carried from one ``partial_fit`` to the next.  A stall stops
    training, or with the adaptive schedule divides μ by 5 (:meth:`Schedule.stall`).
    ``n_iter_no_change=inf`` never stalls.
    """
    if patience is not None:
        rule, values = patience, scores
    else:
        rule = NoImprovement(schedule.tol, schedule.n_iter_no_change, sched.best, sched.no_change)
        values = [-v for v in losses]  # lower losses are better: count their negatives
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
