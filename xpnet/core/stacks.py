"""Stacks: K networks with the same layer sizes and activations, trained as one computation.

Every array of the core takes a leading dimension K (``xpnet.core.backprop``): W⁽ˡ⁾ of
shape (K, n_l, n_{l−1}), A⁽ˡ⁾ of (K, n_l, B), and E_total, μ, α and Σᵢ sᵢ of (K,), one
value per network.  Each network may train on its own samples (a fold of
cross-validation, its own shuffle): its batch is gathered from the rows of the shared
X, padded to the stack's batch size with samples of weight zero, which add nothing to
its sums and are not counted in its Σᵢ sᵢ.  A network with nothing left to learn in a
step (fewer batches in its epoch than the others, or weights all zero) keeps its
parameters and optimizer state unchanged through it.

Each network's step is the one it would take alone: the same equations, on the same
samples, in the same order.  The sums over a padded batch add zeros at its end, so a
network equals its separate fit to within the rounding of those sums' order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from .optimizers import OptimizerState
from .per_model import per_model
from .step import Step, step

Array = Any


class StackBatch(NamedTuple):
    """One step's batch for every network of a stack, gathered (see :func:`gather`).

    Attributes
    ----------
    A0 : array of shape (K, n_0, B)
        Each network's input, one column per sample.
    Y : array of shape (K, n_L, B)
        Each network's targets.
    s : array of shape (K, B)
        Each sample's weight: its sample weight (1 without), 0 for padding.
    S : array of shape (K,)
        Σᵢ sᵢ of each network's batch (1 for a network that takes no step, whose sums
        are all zero).
    mu : array of shape (K,)
        Each network's step size for this step (the optimizer's ``step_size``).
    active : array of shape (K,) of bool, or None
        The networks that take this step; None: all of them.
    share : array of shape (K,)
        The weight of this batch's loss in each network's epoch loss (its share of the
        samples stepped on; 0 where the network takes no step).
    """

    A0: Array
    Y: Array
    s: Array
    S: Array
    mu: Array
    active: Array | None
    share: Array


class StackValidation(NamedTuple):
    """Early stopping's held-out samples of every network of a stack, gathered.

    Attributes
    ----------
    A0 : array of shape (K, n_0, V)
        Each network's held-out samples, one column per sample, padded to the longest.
    Y : array of shape (K, n_L, V)
    s : array of shape (K, V)
        Each sample's weight (1 without sample weights), 0 for padding.
    S : array of shape (K,)
        Σᵢ sᵢ of each network's held-out samples.
    score : callable ``score(O, Y, s, *, xp)``
        The validation score (``xpnet.core.scores``), one per network.
    """

    A0: Array
    Y: Array
    s: Array
    S: Array
    score: Any


def gather(X: Array, Y: Array, i: Array, *, xp: Any) -> tuple[Array, Array]:
    """Each network's batch from the shared samples: the samples ``i[k]`` for network k.

    Parameters
    ----------
    X : array of shape (N, n_0)
        The samples as rows.
    Y : array of shape (n_L, N)
        The targets, one column per sample.
    i : integer array of shape (K, B)
        Each network's samples, on the device.

    Returns
    -------
    A0 : array of shape (K, n_0, B)
        A view of the gathered rows, transposed: one column per sample.
    Y : array of shape (K, n_L, B)
        A view of the gathered columns.
    """
    K, B = i.shape
    flat = xp.reshape(i, (K * B,))
    X_B = xp.reshape(xp.take(X, flat, axis=0), (K, B, X.shape[1]))
    Y_B = xp.reshape(xp.take(Y, flat, axis=1), (Y.shape[0], K, B))
    return xp.matrix_transpose(X_B), xp.permute_dims(Y_B, (1, 0, 2))


def stack_step(
    W: list[Array], b: list[Array], state: OptimizerState, batch: StackBatch, *, how: Step
) -> tuple[list[Array], list[Array], OptimizerState, Array]:
    """One gradient step of every network of a stack, each on its own batch.

    The core's :func:`~xpnet.core.step.step` over the stack; then the networks that
    take no step (``batch.active``) get their parameters and moments back, chosen by
    ``xp.where``.  The step count ``state.t`` is the host's, one per network, and is
    left as it came.  Returns W, b, the optimizer state and E (K,) at the parameters
    the step started from.
    """
    xp, active = how.xp, batch.active
    W_new, b_new, new, E = step(
        W, b, state, batch.A0, batch.Y, batch.s, batch.S, mu=batch.mu, how=how
    )
    moments = new.moments
    if active is not None:
        W_new, b_new = _kept(active, W_new, W, xp=xp), _kept(active, b_new, b, xp=xp)
        moments = tuple(
            _kept(active, m_new, m, xp=xp) for m_new, m in zip(moments, state.moments, strict=True)
        )
    return W_new, b_new, OptimizerState(state.t, moments), E


def stack_epoch(
    W: list[Array], b: list[Array], state: OptimizerState, batches: Iterable[StackBatch], *,
    how: Step,
) -> tuple[list[Array], list[Array], OptimizerState, Array]:  # fmt: skip
    """One epoch of every network of a stack: a :func:`stack_step` per batch (``batches``
    may gather each one as it is reached).

    Returns W, b, the optimizer state and each network's epoch loss (K,): its batch
    losses weighted by their ``share`` of its samples, as one network's epoch records
    (``xpnet.core.step.epoch``).
    """
    E: Any = 0.0
    for batch in batches:
        W, b, state, E_B = stack_step(W, b, state, batch, how=how)
        E = E + E_B * batch.share
    return W, b, state, E


def _kept(active: Array, new: list[Array], old: list[Array], *, xp: Any) -> list[Array]:
    """``new`` where the network is active, else ``old``, array by array."""
    return [xp.where(per_model(active, n, xp=xp), n, o) for n, o in zip(new, old, strict=True)]
