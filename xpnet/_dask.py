"""Dask: the core runs once per Dask block of samples, and only sums travel.

On Dask, the samples stay where Dask keeps them (in memory on the workers, or read chunk
by chunk from storage), while the parameters and the optimizer's state are small arrays
of the blocks' own kind, NumPy or CuPy (``block_namespace``), held by the client.  A
full-batch step is then one small graph (:func:`sample_sums`):

- one task per block of samples runs ``xpnet._backprop.chunk_sums`` on that block's
  X, Y and weights, with the block's namespace, at that library's own speed;
- a tree of additions, ``SPLIT_EVERY`` at a time, combines the blocks' sums;
- the client receives only the totals, Σ sᵢE(cᵢ) and the gradient sums: the size of the
  parameters, whatever the number of samples.

The client takes the optimizer's step on those totals, and the next step's graph starts
from the new parameters as data (a single key holding them), not from the tasks that
computed them.  Nothing is carried from one step's graph to the next, so neither the
scheduler's task table nor the client's memory grows with the number of epochs, and the
client never runs ahead of the workers.  Each step costs one reduction of the gradients
and one broadcast of the parameters.

Mini-batches (:func:`epoch_in_blocks`) are drawn within blocks, in a chain of one task
per block: each task runs the ordinary mini-batch epoch over its block's samples,
shuffled by the client's seeded generator, and hands the parameters and optimizer state
on to the next block; the blocks are visited in a shuffled order.  No sample leaves the
worker that holds it.

X is checked for NaN and infinity in the pass that reads it anyway, by each block's task
while the block is in memory, so that X is never read for the check alone; a
``ValueError`` naming X reaches the caller before any parameter changes.  A Dask array
is immutable and its name stands for its contents, so the check is made once per X
(the last ``CHECKED_KEEP`` names are remembered), not at every epoch.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import array_api_compat as aac
import numpy as np  # host-side: the mini-batch order and block sizes

from . import _backprop  # which calls into this module: its functions are found at call time
from ._activations import Activation
from ._losses import Objective

Array = Any

#: How many partial sums one task of the reduction tree adds.
SPLIT_EVERY = 8

#: How many Dask arrays' names are remembered as checked finite.
CHECKED_KEEP = 64
_checked: OrderedDict[str, None] = OrderedDict()


def _needs_check(X: Array) -> bool:
    """Whether the blocks of ``X`` still have to be checked for NaN and infinity."""
    if X.name in _checked:
        _checked.move_to_end(X.name)
        return False
    return True


def _was_checked(X: Array) -> None:
    _checked[X.name] = None
    while len(_checked) > CHECKED_KEEP:
        _checked.popitem(last=False)


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask array."""
    return aac.is_dask_array(x)


def block_namespace(X: Array) -> tuple[Any, Any]:
    """The namespace and device of a Dask array's blocks (from its ``_meta``)."""
    meta = X._meta
    return aac.array_namespace(meta), aac.device(meta)


def as_dask(x: Array, like: Array) -> Array:
    """A small concrete array ``x`` as a Dask array of one block (attributes such as
    ``weights_`` live in the training data's namespace)."""
    import dask.array as da

    return da.from_array(x, chunks=tuple(x.shape), asarray=False, meta=like._meta)


def concrete(x: Array) -> Array:
    """``x`` computed if it is a Dask array (a small one: parameters, outputs of the
    validation pass); any other array as it is."""
    return x.compute() if is_dask(x) else x


def _literal(value: Any, what: str) -> Any:
    """``value`` as a single key of a graph: every task that uses it depends on that key,
    so that it travels to each worker once, and nothing links it to the graph that made
    it.

    On a ``distributed`` cluster the value is scattered to a worker rather than written
    into the graph: the client keeps a log of the last messages it sent to the scheduler
    (``distributed.admin.low-level-log-length``, 1000 of them), and a graph holding the
    parameters would keep hundreds of copies of them alive on the client.
    """
    client = _distributed_client()
    if client is not None:
        return client.scatter([value], hash=False)[0]  # a list: the value as one object
    from dask import delayed

    return delayed(value, name=f"xpnet-{what}-{uuid.uuid4().hex}", traverse=False)


@contextmanager
def one_span(X: Any) -> Iterator[None]:
    """For a fit on Dask: all its graphs in one span of ``distributed`` (a no-op elsewhere).

    The scheduler records every computation that starts after the last one ended in a
    span of its own and keeps them all, with their metrics: one per step, a few tens of
    kB each, for as long as the scheduler runs.  Inside this block a fit's steps share
    a single span, named ``xpnet-fit``.
    """
    if not is_dask(X) or _distributed_client() is None:
        yield
        return
    import distributed

    with distributed.span("xpnet-fit"):
        yield


def _distributed_client() -> Any:
    """The ``distributed.Client`` Dask computes with now, or None (another scheduler)."""
    import dask.base

    try:
        from distributed import Client
    except ImportError:
        return None
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", scheduler)  # the Client, or its ``get``
    return client if isinstance(client, Client) else None


def _aligned(A0: Array, Y: Array, s: Array | None) -> tuple[Array, Array, Array | None]:
    """A0 (n_0, N) in one block of rows, and Y (n_L, N) and s (N,) chunked as its columns."""
    import dask.array as da

    A0 = A0.rechunk({0: -1})
    cols = A0.chunks[1]
    Y = (Y if is_dask(Y) else da.from_array(Y)).rechunk((Y.shape[0], cols))
    if s is not None:
        s = (s if is_dask(s) else da.from_array(s)).rechunk((cols,))
    return A0, Y, s


def prepared(data: Any) -> Any:
    """Training samples (``xpnet._training.Samples``) made ready for many steps: X in one
    block of columns, and Y and the weights (small beside X) in X's blocks of rows,
    computed once and kept (persisted) rather than derived from y again at every step."""
    import dask

    X = data.X.rechunk({1: -1})
    _, Y, s = _aligned(X.T, data.Y, data.s)
    Y, s = dask.persist(Y, s)
    return data._replace(X=X, Y=Y, s=s)


def _blocks(x: Array | None, n: int) -> list[Any]:
    """The n blocks of ``x`` along its last axis as Delayed objects (n None if ``x`` is)."""
    return [None] * n if x is None else list(x.to_delayed().reshape(-1))


# -- the tasks: each runs the core on one block, with the block's own namespace ---------------


def _block_sums(
    P: tuple[list[Array], list[Array]], A0: Array, Y: Array, s: Array | None,
    f: Sequence[Activation], objective: Objective, check: bool,
) -> tuple[Array, list[Array], list[Array]]:  # fmt: skip
    """Σ sᵢE(cᵢ) and the gradient sums over one block (samples in the columns of A0)."""
    xp = aac.array_namespace(A0)
    if check:
        _check_block(A0, xp)
    W, b = P
    return _backprop.chunk_sums(W, b, A0, Y, s, f=f, objective=objective, xp=xp)


def _block_output(P: tuple[list[Array], list[Array]], A0: Array, f: Sequence[Activation]) -> Array:
    """The network output A⁽ᴸ⁾ for one block's samples (the columns of A0)."""
    xp = aac.array_namespace(A0)
    _check_block(A0, xp)  # the output is computed once: so is the check
    W, b = P
    return _backprop.forward(W, b, A0, f=f, xp=xp)[-1]


def _check_block(A0: Array, xp: Any) -> None:
    from ._validation import check_finite

    check_finite(A0, xp, "X")


def _add_sums(*parts: tuple[Array, list[Array], list[Array]]):
    """The sums of several blocks (or subtrees), added in order into new arrays."""
    E, sum_W, sum_b = parts[0]
    for E_c, sum_W_c, sum_b_c in parts[1:]:
        E = E + E_c
        sum_W = [a + c for a, c in zip(sum_W, sum_W_c, strict=True)]
        sum_b = [a + c for a, c in zip(sum_b, sum_b_c, strict=True)]
    return E, sum_W, sum_b


# -- what the core's callers use on Dask --------------------------------------------------------


def sample_sums(
    W: Sequence[Array], b: Sequence[Array], A0: Array, Y: Array, s: Array | None = None, *,
    f: Sequence[Activation], objective: Objective,
) -> tuple[Array, list[Array], list[Array]]:  # fmt: skip
    """Σᵢ sᵢE(cᵢ) and the gradients summed over all samples of Dask arrays, computed.

    Parameters
    ----------
    W, b : sequences of L concrete arrays (of the blocks' namespace)
    A0 : Dask array of shape (n_0, N), the samples in its columns (Xᵀ)
    Y : Dask array of shape (n_L, N)
    s : Dask array of shape (N,), optional
    f, objective : as in :func:`xpnet._backprop.chunk_sums`

    Returns
    -------
    E_sum : 0-D array, sum_W, sum_b : lists of L arrays; all of the blocks' namespace
    """
    import dask
    from dask import delayed

    A0, Y, s = _aligned(A0, Y, s)
    n = len(A0.chunks[1])
    P = _literal((list(W), list(b)), "parameters")
    task, check = delayed(_block_sums, pure=False), _needs_check(A0)
    parts = [
        task(P, a, y, s_i, f, objective, check)
        for a, y, s_i in zip(_blocks(A0, n), _blocks(Y, n), _blocks(s, n), strict=True)
    ]
    add = delayed(_add_sums, pure=False)
    while len(parts) > 1:
        parts = [
            add(*parts[i : i + SPLIT_EVERY]) if len(parts[i : i + SPLIT_EVERY]) > 1 else parts[i]
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
    ((E, sum_W, sum_b),) = dask.compute(parts[0])
    _was_checked(A0)
    return E, list(sum_W), list(sum_b)


def output(W: Sequence[Array], b: Sequence[Array], A0: Array, *, f: Sequence[Activation]) -> Array:
    """The network output A⁽ᴸ⁾ of shape (n_L, N) as a lazy Dask array, in A0's column chunks.

    ``W`` and ``b`` are concrete arrays; each block of the result is one task.
    """
    import dask.array as da
    from dask import delayed

    A0 = A0.rechunk({0: -1})
    n_L = W[-1].shape[0]
    P = _literal((list(W), list(b)), "parameters")
    task = delayed(_block_output, pure=False)
    blocks = [
        da.from_delayed(task(P, a, f), shape=(n_L, n), dtype=A0.dtype, meta=A0._meta)
        for a, n in zip(_blocks(A0, len(A0.chunks[1])), A0.chunks[1], strict=True)
    ]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=1)


def _block_epoch(carried, X, Y, s, s_host, order, mu, batch_size, how, check, last):
    """One block's share of a mini-batch epoch: the ordinary epoch over its samples.

    ``carried`` is (W, b, optimizer state, Σ of the batch losses weighted by batch size
    and the samples stepped so far in this epoch, the losses of the epochs done), from
    the block before; the same comes out.  The ``last`` block of an epoch closes it.
    """
    from ._training import Samples, epoch

    W, b, state, E_sum, n_done, losses = carried
    xp = aac.array_namespace(X)
    if check:
        _check_block(X, xp)
    W, b, state, E = epoch(
        W, b, state, Samples(X, Y, s, s_host), mu=mu, batch_size=batch_size, order=order,
        how=how, device=aac.device(X),
    )  # fmt: skip
    n = _stepped(s_host, X.shape[0], batch_size, order)
    E_sum, n_done = (E_sum + E * n) if n else E_sum, n_done + n
    if last:
        losses = (*losses, E_sum / n_done if n_done else E_sum)
        E_sum, n_done = xp.zeros_like(E_sum), 0
    return W, b, state, E_sum, n_done, losses


def _stepped(s_host: np.ndarray | None, N: int, B: int, order: np.ndarray | None) -> int:
    """How many of N samples fall in batches of B that take a step (weights not all zero)."""
    if s_host is None:
        return N
    rows = np.arange(N) if order is None else order
    return sum(len(rows[i : i + B]) for i in range(0, N, B) if np.sum(s_host[rows[i : i + B]]))


class BlockOrder(NamedTuple):
    """The order of a mini-batch epoch on Dask: the blocks', and each block's samples'."""

    blocks: np.ndarray
    within: list[np.ndarray]


def block_order(rng: np.random.Generator, X: Array) -> BlockOrder:
    """A random order of X's blocks of rows, and of the samples within each, from ``rng``."""
    sizes = X.chunks[0]
    # One block is visited first without a draw, so that the samples' order is the one a
    # NumPy X gets from the same generator.
    blocks = rng.permutation(len(sizes)) if len(sizes) > 1 else np.zeros(1, dtype=np.intp)
    return BlockOrder(blocks, [rng.permutation(n) for n in sizes])


def epochs_in_blocks(
    W: list[Array], b: list[Array], state: Any, data: Any, *, mu: Sequence[float],
    batch_size: int, order: Sequence[BlockOrder | None], how: Any,
) -> tuple[list[Array], list[Array], Any, Array]:  # fmt: skip
    """Mini-batch epochs on Dask, as one graph: batches drawn within blocks, a task per
    block and epoch, chained.

    Epoch e visits the blocks in ``order[e]`` (see :func:`block_order`), or in their own
    order with their samples in theirs if it is None, with the schedule's step size
    ``mu[e]``.  Each block's last batch may be smaller than ``batch_size``.  Returns W,
    b, the optimizer state and each epoch's loss (the mean of its batch losses weighted
    by batch size) as a 1-D array, as ``xpnet._training.epoch`` does epoch by epoch.
    """
    import dask
    from dask import delayed

    X = data.X.rechunk({1: -1})  # rows: the blocks themselves (no transposing tasks)
    _, Y, s = _aligned(X.T, data.Y, data.s)
    sizes = X.chunks[0]
    n = len(sizes)
    starts = np.cumsum((0, *sizes))
    X_blocks, Y_blocks, s_blocks = _blocks(X, n), _blocks(Y, n), _blocks(s, n)
    zero = how.xp.zeros((), dtype=W[0].dtype)
    xp = how.xp
    carried = _literal((list(W), list(b), state, zero, 0, ()), "state")
    how = _literal(how, "step")  # sent once, not with every task
    task, check = delayed(_block_epoch, pure=False), _needs_check(X)
    for e, (mu_e, order_e) in enumerate(zip(mu, order, strict=True)):
        visit = range(n) if order_e is None else order_e.blocks
        for k, i in enumerate(visit):
            s_host = None if data.s_host is None else data.s_host[starts[i] : starts[i + 1]]
            within = None if order_e is None else order_e.within[i]
            carried = task(
                carried, X_blocks[i], Y_blocks[i], s_blocks[i], s_host, within, mu_e,
                batch_size, how, check and e == 0, k == n - 1,
            )  # fmt: skip
    ((W, b, state, _, _, losses),) = dask.compute(carried)
    _was_checked(X)
    return list(W), list(b), state, xp.stack(losses)
