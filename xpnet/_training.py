"""The training loop: epochs of (mini-)batch gradient descent over the functional core."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np  # host-side: the seeded generator that orders mini-batches

from ._activations import Activation
from ._backprop import gradient_descent_step, loss_and_gradients
from ._host import materialize, to_numpy
from ._losses import Objective

Array = Any

#: Epoch losses stay on the device and are read back this many at a time: one host
#: synchronisation per block of epochs instead of one per epoch.
READBACK_EVERY = 16


def run_epochs(
    W: Sequence[Array],
    b: Sequence[Array],
    X: Array,
    Y: Array,
    *,
    n_epochs: int,
    batch_size: int | None,
    shuffle: bool,
    rng: np.random.Generator,
    mu: float,
    f: Sequence[Activation],
    objective: Objective,
    xp: Any,
    device: Any,
    chunk_size: int | None = None,
    map: Callable[..., Iterator[Any]] = map,
) -> tuple[list[Array], list[Array], list[float]]:
    """Train for ``n_epochs`` epochs and return the new parameters and the loss per epoch.

    With ``batch_size=None`` (or ≥ N) each epoch is one step of batch gradient descent
    over all N samples, the seed's method.  Otherwise each epoch visits the samples in
    batches of ``batch_size`` (the last one smaller), in an order drawn from ``rng`` when
    ``shuffle`` is set, with one step per batch.

    Parameters
    ----------
    W, b : sequences of L arrays
        The starting parameters; they are not modified.
    X : array of shape (N, n_0)
        The samples as rows, as the user passed them; the core sees Xᵀ (a view).
    Y : array of shape (n_L, N)
        The targets, one column per sample.
    rng : numpy.random.Generator
        Orders the mini-batches; drawn on the host, so every backend sees the same batches.
    mu : float
        The learning rate μ.
    chunk_size, map
        How each batch's samples are taken, as in ``xpnet._backprop.loss_and_gradients``.

    Returns
    -------
    W, b : lists of L arrays
        The parameters after the last step.
    losses : list of float
        E_total for each epoch: in full-batch mode the loss at the parameters the epoch
        started from (as scikit-learn records it), in mini-batch mode the mean of the
        batch losses weighted by batch size.

    Raises
    ------
    ValueError
        If the loss becomes NaN or infinite: the step size is too large for the data.
    """
    N = X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    losses: list[float] = []
    pending: list[Array] = []
    for epoch in range(n_epochs):
        if B == N:
            E, grad_W, grad_b = loss_and_gradients(
                W, b, X.T, Y, f=f, objective=objective, xp=xp, chunk_size=chunk_size, map=map
            )
            W, b = gradient_descent_step(W, b, grad_W, grad_b, mu=mu)
        else:
            order = xp.asarray(rng.permutation(N), device=device) if shuffle else None
            E = 0.0
            for start in range(0, N, B):
                stop = min(start + B, N)
                if order is None:
                    X_B, Y_B = X[start:stop, :], Y[:, start:stop]
                else:
                    i = order[start:stop]
                    X_B, Y_B = xp.take(X, i, axis=0), xp.take(Y, i, axis=1)
                E_B, grad_W, grad_b = loss_and_gradients(
                    W,
                    b,
                    X_B.T,
                    Y_B,
                    f=f,
                    objective=objective,
                    xp=xp,
                    chunk_size=chunk_size,
                    map=map,
                )
                W, b = gradient_descent_step(W, b, grad_W, grad_b, mu=mu)
                E = E + E_B * ((stop - start) / N)
        pending.append(E)
        if len(pending) == READBACK_EVERY or epoch == n_epochs - 1:
            W, b, pending = materialize(W, b, pending)
            losses += _read_back(pending, xp=xp, first_epoch=epoch + 2 - len(pending), mu=mu)
            pending = []
    return list(W), list(b), losses


def _read_back(E: list[Array], *, xp: Any, first_epoch: int, mu: float) -> list[float]:
    """Copy a block of epoch losses to the host in one transfer and check them."""
    values = [float(v) for v in to_numpy(xp.stack(E))]
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(
                f"Training diverged: the loss became {v} at epoch {first_epoch + k} "
                f"with learning_rate={mu}. Lower the learning rate or scale X and y "
                "(for example to zero mean and unit variance)."
            )
    return values
