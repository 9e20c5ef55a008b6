"""One gradient step, one epoch, and early stopping's choice of the best parameters.

- :func:`step`: one gradient step on one batch: E_total and its gradients (the core's
  backpropagation), then the optimizer's update.
- :func:`epoch`: one pass over the training samples, as one full-batch step or as a
  step per mini-batch, in an order the caller drew.
- :func:`keep_the_best`: with early stopping, the validation score after an epoch and
  the best parameters so far, chosen on the device.

These are pure functions of their arguments: every engine runs them, one operation at a
time or traced into a compiled program.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .activations import Activation
from .backprop import loss_and_gradients
from .losses import Objective
from .optimizers import Optimizer, OptimizerState, advance
from .per_model import per_model

Array = Any


class Samples(NamedTuple):
    """Training (or validation) samples and what goes with them.

    Attributes
    ----------
    X : array of shape (N, n_0)
        The samples as rows, as the user passed them; the core sees Xᵀ (a view).  Or
        any operand whose transpose the core can take as its input (see
        ``xpnet.core.backprop``), such as a sparse matrix, with the step's ``rows``.
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
    s_host: Any = None

    def weight(self, rows: Any = slice(None)) -> float | None:
        """Σ sᵢ over ``rows`` (a slice or host indices); None without weights (Σ = N)."""
        return None if self.s_host is None else float(self.s_host[rows].sum())


def take_rows(X: Array, i: Array, *, xp: Any) -> Array:
    """The rows ``i`` of the samples X: ``xp.take`` along axis 0."""
    return xp.take(X, i, axis=0)


@dataclass(frozen=True)
class Step:
    """Everything a gradient step needs besides the parameters and the data.

    Attributes
    ----------
    f : sequence of L activations
    objective : Objective
        The (loss, output activation) pair.
    optimizer : Optimizer
        The update rule (see ``xpnet.core.optimizers``).
    alpha : float
        The L2 penalty.
    xp : array namespace
    chunk_size, map
        How each batch's samples are taken, as in ``xpnet.core.backprop.sample_sums``:
        the engine that runs the step sets them.
    rows : callable ``rows(X, i, *, xp) -> X_B``
        The rows ``i`` (indices on the device) of the samples X, for a mini-batch in a
        drawn order: :func:`take_rows` by default; the engine sets its own for samples
        that are not an array of ``xp`` (a sparse matrix).
    """

    f: Sequence[Activation]
    objective: Objective
    optimizer: Optimizer
    alpha: float
    xp: Any
    chunk_size: int | None = None
    map: Callable[..., Iterator[Any]] = map
    rows: Callable[..., Array] = take_rows


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
    whose sample weights are all zero has nothing to learn from and takes no step.
    ``device`` is the data's, where the order's indices go.
    """
    xp = how.xp
    N = data.X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    step_size = how.optimizer.step_size
    if B == N:
        mu_t = step_size(mu, state.t + 1)
        return step(W, b, state, data.X.T, data.Y, data.s, data.weight(), mu=mu_t, how=how)
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
            X_B, Y_B = how.rows(data.X, i, xp=xp), xp.take(data.Y, i, axis=1)
            s_B = None if data.s is None else xp.take(data.s, i, axis=0)
        mu_t = step_size(mu, state.t + 1)
        W, b, state, E_B = step(W, b, state, X_B.T, Y_B, s_B, S, mu=mu_t, how=how)
        E = E + E_B * ((rows.stop - rows.start) / n_stepped)
    return W, b, state, E


def keep_the_best(
    O: Array, W: list[Array], b: list[Array], best_W: list[Array], best_b: list[Array],
    best: Array, validation: Samples, S: Any, score: Callable[..., Array], *, how: Step,
) -> tuple[list[Array], list[Array], Array, Array]:  # fmt: skip
    """Early stopping after an epoch: the validation values, and the best parameters so far.

    ``O`` is the output of (W, b) on the validation samples, (n_L, N_val).  Returns the
    best (W, b) and best score after this epoch, and a (2,) array of this epoch's
    validation loss and score.  (W, b) replaces the best if its score is strictly higher
    (as scikit-learn: a tie keeps the earlier epoch), chosen by ``xp.where``, so that
    nothing is read back.  ``S`` is Σ sᵢ of the validation samples (their number
    without weights).  Over a stack (``xpnet.core.stacks``) every network keeps its own
    best: O is (K, n_L, N_val), ``S`` and the scores (K,), the values (K, 2).
    """
    xp, val = how.xp, validation
    s = score(O, val.Y, val.s, xp=xp)
    values = xp.stack([how.objective.loss_sum(val.Y, O, val.s, xp=xp) / S, s], axis=-1)
    improved = s > best

    def kept(P: list[Array], best_P: list[Array]) -> list[Array]:
        return [
            xp.where(per_model(improved, p, xp=xp), p, q) for p, q in zip(P, best_P, strict=True)
        ]

    return kept(W, best_W), kept(b, best_b), xp.where(improved, s, best), values
