"""Fitting many estimators of the same shape at once, as one stack (``xpnet.training.stacks``).

Each estimator is fitted as its own ``fit(X[rows], y[rows])`` would fit it, from the
same random weights, in the same mini-batch order, with its own learning rate, penalty
and stopping rules (with early stopping, its own held-out samples and best epoch), and
comes back fitted as that call leaves it (or with the error its fit would raise).
Estimators that cannot share a stack with others (another layout, a solver without
epochs...) are told apart by :func:`stack_key`; the caller fits them one by one.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np  # host-side: rows, targets on the host

from .. import engines
from .._host import to_numpy
from ..core.activations import ACTIVATIONS
from ..core.init import glorot_uniform
from ..core.losses import OBJECTIVES
from ..core.scores import accuracy, subset_accuracy
from ..training.loop import EarlyStopping
from ..training.samples import Samples, held_out
from ..training.sparse import is_sparse, widest
from ..training.stacks import Member, Report, run_stack
from ._network import _saturation_is_expected
from ._params import _generator, _patience
from ._validation import check_hyperparameters, check_sample_weight, check_X

#: The hyperparameters in which the estimators of one stack may differ: numbers each
#: network of a stack holds for itself (its step size, its penalty, its generator) or
#: that the host applies to it alone (its schedule and stopping rule).
PER_NETWORK = (
    "learning_rate", "alpha", "random_state", "tol", "n_iter_no_change",
    "learning_rate_schedule", "power_t", "momentum", "beta_1", "beta_2", "epsilon",
)  # fmt: skip


def stack_key(est: Any, X: Any) -> tuple | None:
    """What estimators must share to be fitted in one stack on X, or None if ``est``
    cannot be stacked: another solver than "sgd" or "adam", ``engine="jit"`` where it
    does not take stacks (``xpnet.engines.jit_stacks``: on CuPy, and on PyTorch and JAX
    for full-batch estimators), ``verbose``, or a sparse X.  On a Dask X, only
    full-batch estimators without early stopping are stacked: each network's
    mini-batches are drawn within the blocks of its own rows, and its validation
    samples held out of them, which a stack over the shared X's blocks cannot draw."""
    dask = engines.is_dask(X)
    if (
        est.solver == "lbfgs"
        or (est.engine == "jit" and not engines.jit_stacks(X, full_batch=_always_full(est, X)))
        or est.verbose
        or is_sparse(X)
        or (dask and (est.engine == "jit" or est.early_stopping or not _always_full(est, X)))
    ):
        return None
    params = est.get_params(deep=False)
    shared = [(name, repr(v)) for name, v in sorted(params.items()) if name not in PER_NETWORK]
    try:  # the kind of update rule (its constants are each network's own)
        kind = est._optimizer().name
    except (TypeError, ValueError):  # settings its own fit will refuse, with their message
        return None
    return (type(est), kind, *shared)


def _always_full(est: Any, X: Any) -> bool:
    """Whether ``est`` takes every sample in each step on X, and on any fold of it."""
    N = X.shape[0] if hasattr(X, "shape") else len(X)
    B = est._batch_size(N)
    # A batch_size that is not a number is left to the estimator's own fit to name.
    return B is None or (isinstance(B, (int, np.integer)) and B >= N)


@_saturation_is_expected
def fit_stack(
    estimators: Sequence[Any],
    X: Any,
    y: np.ndarray,
    rows: Sequence[np.ndarray],
    sample_weight: Any = None,
    *,
    report: Report | None = None,
    shared_order: np.random.Generator | None = None,
) -> list[Any]:
    """Fit ``estimators[k]`` on the rows ``rows[k]`` of (X, y), all as one stack.

    Parameters
    ----------
    estimators : sequence of K unfitted estimators of one class, with one
        :func:`stack_key`
    X : array of shape (N, n_features)
    y : numpy.ndarray of shape (N,) or (N, n_outputs)
        On the host.
    rows : sequence of K integer arrays
        Each estimator's training samples, as rows of X (a fold's training indices).
    sample_weight : array of shape (N,), optional
        The weights of all N samples; each estimator takes those of its rows.
    report : callable, optional
        Progress after each read-back (``xpnet.training.stacks.Report``).
    shared_order : numpy.random.Generator, optional
        Mini-batches in one order for every estimator, drawn from this generator
        (``xpnet.training.stacks.run_stack``): all must train on the same rows, without
        early stopping.  They then differ from their own fits in their batch order.

    Returns
    -------
    list of K
        Each estimator, fitted as ``fit(X[rows[k]], y[rows[k]])`` leaves it (with the
        feature names of a DataFrame X), or the ValueError its training raised (it
        diverged), or None where its training samples lack a class the others have: the
        caller fits that one alone.

    Raises
    ------
    ValueError
        If the estimators differ in what a stack shares (:func:`stack_key`).
    """
    first = estimators[0]
    keys = {stack_key(est, X) for est in estimators}
    if len(keys) != 1 or None in keys:
        raise ValueError(
            "fit_stack takes estimators that can share one stack: of one class, differing "
            f"only in {', '.join(PER_NETWORK)}, and stackable (see stack_key)."
        )
    name = type(first).__name__
    X_in = X  # a DataFrame's column names, before X becomes an array
    X, xp, device = check_X(X, estimator=name)
    N = X.shape[0]
    Y, targets = first._encode_targets(
        y, xp=xp, device=device, dtype=X.dtype, N=N, fitted=False, classes=None,
        same_classes=False,
    )  # fmt: skip
    s, s_host = (None, None)
    if sample_weight is not None:
        s, s_host = check_sample_weight(sample_weight, xp=xp, device=device, dtype=X.dtype, N=N)
    hidden, output = check_hyperparameters(first, natural_output=first._natural_output)
    output = first._output_activation(output, targets)
    layer_sizes = [X.shape[1], *hidden, Y.shape[0]]
    f = [ACTIVATIONS[first.activation]] * len(hidden) + [ACTIVATIONS[output]]
    names = [f_l.name for f_l in f]

    results: list[Any] = [None] * len(estimators)
    members, stacked = [], []
    Y_host, every = _own_targets(first, y)  # on the host, to compare with each member's
    multilabel = targets.get("_multilabel", False)
    score = subset_accuracy if multilabel else first._validation_score
    # Early stopping holds out each class's share, where its score is accuracy.
    labels = np.argmax(Y_host, axis=0) if score is accuracy else None
    complete: dict[int, bool] = {}  # by fold (the caller's array): whether it has every class
    for k, (est, r) in enumerate(zip(estimators, rows, strict=True)):
        if id(r) not in complete:
            _, mine = _own_targets(first, y[np.asarray(r)])
            complete[id(r)] = all(_same(mine.get(a), every.get(a)) for a in set(mine) | set(every))
        if not complete[id(r)]:
            continue  # a fold without a class: its output layer is another size
        r = np.asarray(r, dtype=np.int64)
        check_hyperparameters(est, natural_output=est._natural_output)
        rng = _generator(est.random_state)
        W, b = glorot_uniform(layer_sizes, names, rng)  # as the estimator's own fit draws
        validation, split = None, None
        if est.early_stopping:  # its split, drawn next from its generator, as its fit draws it
            fraction = float(est.validation_fraction)
            split = (copy.deepcopy(rng.bit_generator.state), len(r), fraction)
            try:
                train, held = held_out(len(r), fraction=fraction, rng=rng, n_classes=Y.shape[0],
                                       labels=None if labels is None else labels[r])  # fmt: skip
                if s_host is not None and not np.any(s_host[r[train]] > 0):
                    raise ValueError(
                        "Every sample left for training after the validation split has "
                        "weight zero; give more samples a positive sample_weight."
                    )
            except ValueError as error:  # as its own fit would raise it
                results[k] = error
                continue
            r, validation = r[train], r[held]
        members.append(
            Member(r, W, b, est._schedule(), rng, float(est.alpha), est._optimizer(), validation)
        )
        stacked.append((k, est, split))
    if not members:
        return results
    batch_size = first._batch_size(int(min(len(m.rows) for m in members)))
    engine = engines.choose_stack(
        first.engine, X, f=f, objective=OBJECTIVES[(first.loss, output)],
        optimizer=members[0].optimizer,
        widest=widest(layer_sizes, X), K=len(members), batch_size=batch_size,
        chunk_size=first.chunk_size,
    )  # fmt: skip
    with engine.open(Samples(X, Y, s, s_host)) as (data, _):
        outcomes = run_stack(
            members, data, n_epochs=int(first.max_iter), engine=engine,
            batch_size=batch_size, shuffle=bool(first.shuffle),
            score=score if first.early_stopping else None, report=report,
            shared_order=shared_order,
        )  # fmt: skip
    for (k, est, split), member, outcome in zip(stacked, members, outcomes, strict=True):
        if outcome.error is not None:
            results[k] = outcome.error
            continue
        est._rng = member.rng  # where its own fit leaves its generator
        stopping = None
        if split is not None:  # its rule, as its record and a resumed fit read it
            stopping = EarlyStopping(None, score, n_iter_no_change=_patience(est.n_iter_no_change),
                                     tol=float(est.tol))  # fmt: skip
        est._keep(
            est, outcome.history, targets=dict(targets),
            fitted=False, counted=False, stopping=stopping, split=split, layer_sizes=layer_sizes,
            output=output, X_in=X_in, like=X, engine=engine,
        )  # fmt: skip
        if not outcome.history.stopped:
            est._warn_not_converged(outcome.history)
        results[k] = est
    return results


def most_per_stack(est: Any, X: Any, y: np.ndarray, n_train: int) -> int:
    """How many networks like ``est`` one stack on X's device should hold
    (``xpnet.engines.most_per_stack``), each trained on ``n_train`` samples.

    Parameters
    ----------
    est : estimator
    X : array of shape (N, n_features)
        The samples, already an array (``check_X``).
    y : numpy.ndarray of shape (N,) or (N, n_outputs)
        The targets on the host: they decide the output layer's size.
    n_train : int
        The fewest training samples of a network of the stack.
    """
    hidden, _ = check_hyperparameters(est, natural_output=est._natural_output)
    Y, _ = _own_targets(est, y)
    sizes = [X.shape[1], *hidden, Y.shape[0]]
    batch = est._batch_size(n_train) or n_train
    return engines.most_per_stack(
        X, n_parameters=sum(a * b + b for a, b in itertools.pairwise(sizes)),
        n_moments=est._optimizer().n_moments, widest=max(sizes), batch=min(batch, n_train),
        n_layers=len(sizes) - 1,
    )  # fmt: skip


def host_targets(y: Any) -> np.ndarray:
    """The targets y as a NumPy array on the host, as :func:`fit_stack` takes them (from
    any backend's array, or a list or pandas Series)."""
    try:
        return to_numpy(y)
    except TypeError:  # not an array of any backend
        return np.asarray(y)


def stack_sizes(n: int, most: int) -> list[int]:
    """n networks as stacks of at most ``most``, as even as can be."""
    count = -(-n // max(most, 1))
    return [n // count + (1 if i < n % count else 0) for i in range(count)]


def _own_targets(est: Any, y_rows: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The targets ``y_rows`` as ``est`` encodes them on the host, one column per sample,
    and the fitted attributes they give it (its ``classes_``...)."""
    return est._encode_targets(
        y_rows, xp=np, device="cpu", dtype=np.float64, N=len(y_rows), fitted=False,
        classes=None, same_classes=False,
    )  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b
