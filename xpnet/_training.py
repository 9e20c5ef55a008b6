"""The training loop: epochs of (mini-)batch gradient descent over the functional core.

Everything a training run records per epoch (the loss, and with early stopping the
validation loss and score) stays on the device and is read back a block of
``READBACK_EVERY`` epochs at a time: one host synchronisation per block, not per epoch.
Decisions that need those values on the host (divergence, early stopping, progress
reports) are therefore taken at block boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np  # host-side: the seeded generator that orders mini-batches

from ._activations import Activation
from ._backprop import gradient_descent_step, loss_and_gradients, output
from ._host import materialize, to_numpy
from ._losses import Objective

Array = Any

#: Epoch losses stay on the device and are read back this many at a time: one host
#: synchronisation per block of epochs instead of one per epoch.
READBACK_EVERY = 16


def accuracy(O: Array, Y: Array, *, xp: Any) -> Array:
    """The fraction of samples whose largest output is their class: a 0-D array.

    Parameters
    ----------
    O : array of shape (n_classes, N)
        The network output, one column per sample.
    Y : array of shape (n_classes, N)
        The one-hot labels.
    """
    hit = xp.argmax(O, axis=0) == xp.argmax(Y, axis=0)
    return xp.mean(xp.astype(hit, O.dtype))


def r2_score(O: Array, Y: Array, *, xp: Any) -> Array:
    """R² = 1 − Σ(y − o)² / Σ(y − ȳ)², averaged over the outputs: a 0-D array.

    A constant target (Σ(y − ȳ)² = 0) scores 1 when predicted exactly and 0 otherwise,
    as in scikit-learn.

    Parameters
    ----------
    O, Y : arrays of shape (n_outputs, N)
        The network output and the targets, one column per sample.
    """
    ss_res = xp.sum((Y - O) ** 2, axis=1)
    ss_tot = xp.sum((Y - xp.mean(Y, axis=1, keepdims=True)) ** 2, axis=1)
    varies = ss_tot > 0
    safe = xp.where(varies, ss_tot, xp.ones_like(ss_tot))
    r2 = xp.where(varies, 1.0 - ss_res / safe, xp.astype(ss_res == 0, O.dtype))
    return xp.mean(r2)


@dataclass(frozen=True)
class EarlyStopping:
    """A held-out validation set and scikit-learn's rule for stopping on it.

    Training stops once the validation score has failed, more than
    ``n_iter_no_change`` epochs in a row, to exceed the best score so far by at least
    ``tol``; the parameters of the best epoch are then restored.

    Attributes
    ----------
    X : array of shape (N_val, n_0)
        The validation samples, as rows.
    Y : array of shape (n_L, N_val)
        Their targets, one column per sample.
    score : callable ``score(O, Y, *, xp) -> 0-D array``
        Higher is better: :func:`accuracy` or :func:`r2_score`.
    n_iter_no_change : int
    tol : float
    best_score : float
        The score to beat; the starting parameters are "best" until one epoch beats it.
    """

    X: Array
    Y: Array
    score: Callable[..., Array]
    n_iter_no_change: int
    tol: float
    best_score: float = -math.inf


def validation_split(
    X: Array,
    Y: Array,
    *,
    fraction: float,
    rng: np.random.Generator,
    stratify: bool,
    xp: Any,
    device: Any,
) -> tuple[Array, Array, Array, Array]:
    """Hold out ``ceil(fraction · N)`` samples, drawn from ``rng``, for validation.

    With ``stratify`` (Y one-hot), each class gives its share of the held-out samples,
    rounded by largest remainder; finding the classes reads the labels back once.
    Both parts keep the samples in their original order.

    Parameters
    ----------
    X : array of shape (N, n_0)
    Y : array of shape (n_L, N)

    Returns
    -------
    X_train : array of shape (N − N_val, n_0)
    Y_train : array of shape (n_L, N − N_val)
    X_val : array of shape (N_val, n_0)
    Y_val : array of shape (n_L, N_val)
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
    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    train = xp.asarray(np.flatnonzero(~is_val), dtype=index, device=device)
    val = xp.asarray(np.flatnonzero(is_val), dtype=index, device=device)
    return (
        xp.take(X, train, axis=0),
        xp.take(Y, train, axis=1),
        xp.take(X, val, axis=0),
        xp.take(Y, val, axis=1),
    )


class History(NamedTuple):
    """What :func:`run_epochs` returns: the parameters and the per-epoch record."""

    W: list[Array]
    b: list[Array]
    losses: list[float]
    #: Validation loss and score after each epoch; None without early stopping.
    validation_losses: list[float] | None = None
    validation_scores: list[float] | None = None


#: ``callback(losses, validation_scores)``: the values of the epochs of one read-back
#: block, as Python floats (``validation_scores`` is None without early stopping).
Callback = Callable[[list[float], "list[float] | None"], None]


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
    early_stopping: EarlyStopping | None = None,
    callback: Callback | None = None,
) -> History:
    """Train for up to ``n_epochs`` epochs; return the new parameters and the loss per epoch.

    With ``batch_size=None`` (or ≥ N) each epoch is one step of batch gradient descent
    over all N samples, the seed's method.  Otherwise each epoch visits the samples in
    batches of ``batch_size`` (the last one smaller), in an order drawn from ``rng`` when
    ``shuffle`` is set, with one step per batch.

    With ``early_stopping``, each epoch ends with a forward pass over the validation set;
    its loss and score stay on the device, and a copy of the best parameters so far is
    kept there too (chosen by ``xp.where`` on the device, so no value is read back for
    it).  The stopping rule is applied when a block of ``READBACK_EVERY`` epochs is read
    back, so training may run up to ``READBACK_EVERY - 1`` epochs past the epoch where
    the rule fires; those epochs are kept in the record, and the best parameters are
    restored all the same.

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
    early_stopping : EarlyStopping, optional
        The validation set and the stopping rule; None trains for ``n_epochs`` epochs.
    callback : callable, optional
        Called after each read-back with that block's values (see ``Callback``), for
        progress reports that cost no extra synchronisation.

    Returns
    -------
    History
        ``W, b``: the parameters after the last step (with early stopping: of the best
        epoch).  ``losses``: E_total for each epoch, in full-batch mode the loss at the
        parameters the epoch started from (as scikit-learn records it), in mini-batch
        mode the mean of the batch losses weighted by batch size.
        ``validation_losses``, ``validation_scores``: after each epoch, or None.

    Raises
    ------
    ValueError
        If the loss becomes NaN or infinite: the step size is too large for the data.
    """
    N = X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    es = early_stopping
    losses: list[float] = []
    pending: list[Array] = []
    if es is not None:
        val_losses: list[float] = []
        val_scores: list[float] = []
        pending_val: list[Array] = []
        best_W, best_b = list(W), list(b)
        # The best score lives on the device so that the best parameters can be chosen
        # there; a Python float in xp.where/comparisons would not fix the dtype.
        best = xp.asarray(es.best_score, dtype=X.dtype, device=device)
        host_best, no_change = es.best_score, 0
    for epoch in range(n_epochs):
        if B == N:
            E, grad_W, grad_b = loss_and_gradients(
                W, b, X.T, Y, f=f, objective=objective, xp=xp, chunk_size=chunk_size, map=map
            )
            W, b = gradient_descent_step(W, b, grad_W, grad_b, mu=mu)
            W, b, (E,) = materialize(W, b, [E])  # Dask: evaluate each step, keep graphs small
        else:
            index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
            order = xp.asarray(rng.permutation(N), dtype=index, device=device) if shuffle else None
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
                W, b, (E_B,) = materialize(W, b, [E_B])
                E = E + E_B * ((stop - start) / N)
        pending.append(E)
        if es is not None:
            O = output(W, b, es.X.T, f=f, xp=xp, chunk_size=chunk_size, map=map)
            score = es.score(O, es.Y, xp=xp)
            pending_val.append(
                xp.stack([objective.loss_sum(es.Y, O, xp=xp) / es.X.shape[0], score])
            )
            # Strictly better, as scikit-learn: a tie keeps the earlier epoch.
            improved = score > best
            best = xp.where(improved, score, best)
            best_W = [xp.where(improved, W_l, V_l) for W_l, V_l in zip(W, best_W, strict=True)]
            best_b = [xp.where(improved, b_l, c_l) for b_l, c_l in zip(b, best_b, strict=True)]
        if len(pending) < READBACK_EVERY and epoch < n_epochs - 1:
            continue
        first_epoch = epoch + 2 - len(pending)
        if es is None:
            W, b, pending = materialize(W, b, pending)
            block = _check_losses(_to_host(pending, xp=xp), first_epoch=first_epoch, mu=mu)
            losses += block
            pending = []
            if callback is not None:
                callback(block, None)
            continue
        W, b, best_W, best_b, (best,), pending, pending_val = materialize(
            W, b, best_W, best_b, [best], pending, pending_val
        )
        # The block's losses, validation losses and scores in one transfer.
        n = len(pending)
        values = _to_host(
            [*pending, *[v[0] for v in pending_val], *[v[1] for v in pending_val]], xp=xp
        )
        block = _check_losses(values[:n], first_epoch=first_epoch, mu=mu)
        scores = values[2 * n :]
        losses += block
        val_losses += values[n : 2 * n]
        val_scores += scores
        pending, pending_val = [], []
        if callback is not None:
            callback(block, scores)
        stop = False
        for s in scores:
            # scikit-learn's rule: an epoch counts as no change unless it beats the best
            # by tol; the best itself moves on any strict improvement.
            no_change = 0 if s >= host_best + es.tol else no_change + 1
            host_best = s if s > host_best else host_best
            stop = stop or no_change > es.n_iter_no_change
        if stop:
            break
    if es is None:
        return History(list(W), list(b), losses)
    return History(list(best_W), list(best_b), losses, val_losses, val_scores)


def _to_host(values: list[Array], *, xp: Any) -> list[float]:
    """Copy a block of 0-D arrays to the host in one transfer, as Python floats."""
    return [float(v) for v in to_numpy(xp.stack(values))]


def _check_losses(values: list[float], *, first_epoch: int, mu: float) -> list[float]:
    """The epoch losses ``values``, or a ValueError at the first that is not finite."""
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(
                f"Training diverged: the loss became {v} at epoch {first_epoch + k} "
                f"with learning_rate={mu}. Lower the learning rate or scale X and y "
                "(for example to zero mean and unit variance)."
            )
    return values
