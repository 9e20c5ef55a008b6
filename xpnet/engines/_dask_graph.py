"""The Dask engine's task graphs: the core runs once per block of samples; only sums travel.

On Dask, the samples stay where Dask keeps them (in memory on the workers, or read chunk
by chunk from storage), while the parameters and the optimizer's state are small arrays
of the blocks' own kind, NumPy or CuPy (``block_namespace``), held by the client.  A
full-batch step is then one small graph (:func:`sample_sums`):

- one task per block of samples runs ``xpnet.core.backprop.chunk_sums`` on that block's
  X, Y and weights, with the block's namespace, at that library's own speed;
- a tree of additions, ``SPLIT_EVERY`` at a time, combines the blocks' sums;
- the client receives only the totals, Σ sᵢE(cᵢ) and the gradient sums: the size of the
  parameters, whatever the number of samples.

The client takes the optimizer's step on those totals, and the next step's graph starts
from the new parameters as data (a single key holding them, scattered to one worker and
fetched from there by the others), not from the tasks that computed them.  Nothing is
carried from one step's graph to the next, so neither the scheduler's task table nor the
client's memory grows with the number of epochs, and the client never runs ahead of the
workers.  Each step costs one reduction of the gradients and one scatter of the
parameters.

A worker lost mid-fit is survived: the scheduler computes its tasks again elsewhere, and
a step whose scattered parameters went with it is made anew from the client's copy
(:func:`_computed`), to the same bits.  A client closed mid-fit ends the fit with a
``ValueError`` that says so.

Mini-batches (:func:`epochs_in_blocks`) are drawn within blocks, in a chain of one task
per block: each task runs the ordinary mini-batch epoch over its block's samples,
shuffled by the client's seeded generator, and hands the parameters and optimizer state
on to the next block; the blocks are visited in a shuffled order.  No sample leaves the
worker that holds it.  Consecutive visits to blocks held by the same worker are one
task: each link of the chain waits on the scheduler (on ``distributed``, about 6 ms:
it batches its messages to a worker every 5 ms), and a task that starts cold takes
about twice as long as its arithmetic on small blocks.

X is checked for NaN and infinity in the pass that reads it anyway, by each block's task
while the block is in memory, so that X is never read for the check alone; a
``ValueError`` naming X reaches the caller before any parameter changes.  The engine asks
for the check in a fit's first graph only (``check``).
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the mini-batch order and block sizes

from ..core.activations import Activation
from ..core.backprop import chunk_sums, forward
from ..core.losses import Objective
from ..core.step import Samples, epoch
from ..training.samples import check_finite

Array = Any

#: How many partial sums one task of the reduction tree adds.
SPLIT_EVERY = 8

#: How many times a graph is built and submitted again when a worker was lost with data
#: scattered to it (see :func:`_computed`), waiting 0.1 s, then twice as long each time,
#: up to ``RESUBMIT_WAIT_S``: together more than a minute, for the cluster to replace
#: the worker if it was the only one.
RESUBMIT = 12
RESUBMIT_WAIT_S = 10.0

#: What ``distributed`` raises when a worker it sends to, or that held a step's
#: scattered inputs, is gone: a task cancelled for its lost dependency, a connection
#: closed or refused, a scatter given up (``SCATTER_TIMEOUT_S``).
_LOST = (
    "FutureCancelledError", "CancelledError", "CommClosedError", "TimeoutError",
    "ConnectionRefusedError", "ConnectionResetError", "OSError",
)  # fmt: skip

#: Seconds a scatter of the parameters may take before the step is made anew.
SCATTER_TIMEOUT_S = 30


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask array.

    (Asked of every step's arrays, also while PyTorch's compiler traces a step, which
    warns about ``array_api_compat.is_dask_array``'s cache: a plain ``isinstance``.)
    """
    dask_array = sys.modules.get("dask.array")  # if Dask is not imported, x is not Dask's
    return dask_array is not None and isinstance(x, dask_array.Array)


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

    On a ``distributed`` cluster the value is scattered to one worker rather than
    written into the graph: the client keeps a log of the last messages it sent to the
    scheduler (``distributed.admin.low-level-log-length``, 1000 of them, each under
    1 MB), and graphs holding the parameters would keep hundreds of copies of them alive
    on the client.  The other workers fetch it from that one, as they fetch any task's
    result.  It is not broadcast to every worker: once a worker dies during a
    broadcast, ``distributed`` may never complete one again on that client.  Scattered
    data has no task to compute it again, so losing its worker cancels the step, which
    :func:`_computed` makes anew; the whole scatter is bounded by ``SCATTER_TIMEOUT_S``.
    """
    client, key = _distributed_client(), _key(what)
    if client is not None:
        return _scattered(client, {key: value})[key]
    from dask import delayed

    return delayed(value, name=key, traverse=False)


def _scattered(client: Any, data: dict[Any, Any]) -> Any:
    """``client.scatter(data)`` to one worker, given up with ``TimeoutError`` after
    ``SCATTER_TIMEOUT_S``."""
    return client.sync(
        client._scatter, data, hash=False, callback_timeout=SCATTER_TIMEOUT_S,
    )  # fmt: skip


def _computed(build: Any) -> Any:
    """``dask.compute`` of the graph ``build()`` makes, built and submitted again (up to
    ``RESUBMIT`` times) when a worker was lost with the data scattered to it.

    A task lost with a worker is computed again by the scheduler from its inputs; data
    scattered to a worker has no task to compute it again, and the computation is
    cancelled (or the scatter itself fails, if the worker dies as it is sent).  The
    client still holds everything the graph was built from, so the step is made anew,
    once the scheduler has had a moment to notice the worker gone.  A client closed
    meanwhile (:func:`fit_context` knows the fit's) ends the fit with a ``ValueError``.
    """
    import dask

    return _retried(lambda: dask.compute(build())[0])


def _retried(run: Any) -> Any:
    """``run()``, run again (up to ``RESUBMIT`` times, waiting longer each time) while it
    fails for a lost worker (``_LOST``); a ``ValueError`` if the fit's client is closed."""
    for attempt in itertools.count():
        _check_open()
        try:
            return run()
        except Exception as exc:
            _check_open(exc)
            if attempt >= RESUBMIT or type(exc).__name__ not in _LOST:
                raise
            time.sleep(min(0.1 * 2**attempt, RESUBMIT_WAIT_S))
    raise AssertionError("unreachable")


def _check_open(error: BaseException | None = None) -> None:
    """Raise ``ValueError`` if the fit's ``distributed`` client was closed (``error``:
    what the computation raised, if it failed)."""
    client = _fit_client.get()
    if client is None or client.status in ("running", "connecting", "newly-created"):
        return
    raise ValueError(
        f"The Dask client the fit computes with was closed while the fit ran (its status "
        f"is {client.status!r}): keep the client open until fit returns."
    ) from error


def _task(fn: Any, *args: Any, what: str) -> Any:
    """``fn(*args)`` as a task of the graph under construction, named by :func:`_key`."""
    from dask import delayed

    return delayed(fn, pure=False)(*args, dask_key_name=_key(what))


#: The name of the current fit's group of tasks on a ``distributed`` scheduler (see
#: :func:`fit_context`), or None; and the client the fit computes with.
_fit_group: ContextVar[str | None] = ContextVar("xpnet_dask_fit_group", default=None)
_fit_client: ContextVar[Any] = ContextVar("xpnet_dask_fit_client", default=None)
_serial = itertools.count()


def _key(what: str) -> Any:
    """A new key: in the current fit's group, or a name of its own."""
    group = _fit_group.get()
    if group is None:
        return f"{what}-{uuid.uuid4().hex}"
    return (group, what, next(_serial))


@contextmanager
def fit_context(X: Any) -> Iterator[None]:
    """Where a fit on a ``distributed`` cluster runs (a no-op elsewhere): in one span, and
    with every task in one group that lasts as long as the fit.

    The scheduler keeps a record of each task group (the tasks whose keys share a
    prefix) in the span it ran in, for as long as it runs, and makes a new group
    whenever a key's prefix comes back after all the tasks of its last group were
    forgotten, as they are at the end of each step; it also opens a new span for each
    computation that starts after the last one ended.  Left alone, each step would add
    a span and a few groups, tens of kB, to the scheduler.  Here every key xpnet makes
    is ``(group, what, n)`` for one group per fit, kept alive by a small value
    scattered under that group for the fit's duration, and the steps share one span,
    ``xpnet-fit``: what the scheduler keeps no longer grows with the epochs.
    """
    client = _distributed_client() if is_dask(X) else None
    if client is None:
        yield
        return
    import distributed

    group = f"xpnet-fit-{uuid.uuid4().hex}"
    token, client_token = _fit_group.set(group), _fit_client.set(client)
    try:
        anchor = _retried(lambda: _scattered(client, {(group, "anchor", 0): 0}))  # noqa: F841
        with distributed.span("xpnet-fit"):
            yield
    finally:
        _fit_group.reset(token)
        _fit_client.reset(client_token)


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


def _aligned(X: Array, Y: Array, s: Array | None) -> tuple[Array, Array, Array | None]:
    """X (N, n_0) in one block of columns, and Y (n_L, N) and s (N,), or (K, N) for a
    stack, in its blocks of rows."""
    import dask.array as da

    X = X.rechunk({1: -1})
    rows = X.chunks[0]
    Y = (Y if is_dask(Y) else da.from_array(Y)).rechunk((Y.shape[0], rows))
    if s is not None:
        s = (s if is_dask(s) else da.from_array(s)).rechunk((*s.shape[:-1], rows))
    return X, Y, s


def weights_in_blocks(s: Array, *, like: Array) -> Array:
    """The concrete sample weights s (..., N) as a Dask array in the blocks of rows of
    ``like`` (X), persisted: on a cluster, sent to the workers once."""
    import dask
    import dask.array as da

    (s,) = dask.persist(da.from_array(s, chunks=(*s.shape[:-1], like.chunks[0])))
    return s


def prepared(data: Samples) -> Samples:
    """Training samples (``xpnet.core.step.Samples``) made ready for many steps: X in one
    block of columns, and Y and the weights (small beside X) in X's blocks of rows,
    computed once and kept (persisted) rather than derived from y again at every step."""
    import dask

    X, Y, s = _aligned(data.X, data.Y, data.s)
    Y, s = dask.persist(Y, s)
    return data._replace(X=X, Y=Y, s=s)


def _block_keys(x: Array | None, n: int = 0) -> list[Any]:
    """The keys of the blocks of ``x`` along its samples, in order (n None if ``x`` is)."""
    from dask.core import flatten

    return [None] * n if x is None else list(flatten(x.__dask_keys__()))


def _chain(
    carried: Any, runs: list[list[Any]], batch_size: int, step: Any, arrays: list[Array]
) -> Any:
    """The chain of tasks that runs ``runs`` in turn (:func:`_blocks_in_turn`), as one
    Delayed, its graph written out directly.

    ``dask.delayed`` would do the same, but each call culls the graph of the chain so far
    to find its inputs: building 16 epochs' chain then took longer than running it (about
    0.1 s for 64 tasks), while the cluster waited.  The tasks name the blocks of
    ``arrays`` by their keys, and ``carried`` and ``step`` (data scattered to the
    workers, or Delayed values) as they are.
    """
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    literals = [v for v in (carried, step) if isinstance(v, Delayed)]
    carried, step = (v.key if isinstance(v, Delayed) else v for v in (carried, step))
    layer = {}
    for run in runs:
        key = _key("block_epoch")
        layer[key] = (_blocks_in_turn, carried, run, batch_size, step)
        carried = key
    name = f"xpnet-chain-{uuid.uuid4().hex}"
    graph = HighLevelGraph.from_collections(name, layer, arrays + literals)
    return Delayed(carried, graph, layer=name)


def _blocks(x: Array | None, n: int) -> list[Any]:
    """The n blocks of ``x`` along its last axis as Delayed objects (n None if ``x`` is)."""
    return [None] * n if x is None else list(x.to_delayed().reshape(-1))


# -- the tasks: each runs the core on one block, with the block's own namespace ---------------


def _block_sums(
    P: tuple[list[Array], list[Array]], X: Array, Y: Array, s: Array | None,
    f: Sequence[Activation], objective: Objective, check: bool,
) -> tuple[Array, list[Array], list[Array]]:  # fmt: skip
    """Σ sᵢE(cᵢ) and the gradient sums over one block of samples (the rows of X)."""
    (W, b), X, Y, s = _realigned((P, X, Y, s))
    xp = aac.array_namespace(X)
    if check:
        check_finite(X, xp, "X")
    return chunk_sums(W, b, X.T, Y, s, f=f, objective=objective, xp=xp)


def _block_output(P: tuple[list[Array], list[Array]], X: Array, f: Sequence[Activation]) -> Array:
    """The network output A⁽ᴸ⁾ for one block of samples (the rows of X)."""
    (W, b), X = _realigned((P, X))
    xp = aac.array_namespace(X)
    check_finite(X, xp, "X")  # the output is computed once: so is the check
    return forward(W, b, X.T, f=f, xp=xp)[-1]


def _realigned(values: Any) -> Any:
    """``values`` (arrays, in tuples, lists and named tuples), each array as it is, or a
    copy where it is not aligned to its element size.

    Arrays that come to a task from another process sit wherever they fell in the
    message that carried them, and NumPy computes a product of unaligned arrays without
    BLAS, in another order of summation: the same block would give other bits on
    another worker, or after a worker was lost.  (The parameters are small; a block of
    X is copied only where it arrives unaligned.)
    """
    if isinstance(values, (tuple, list)):
        realigned = [_realigned(v) for v in values]
        if hasattr(values, "_fields"):
            return type(values)(*realigned)
        return type(values)(realigned)
    flags = getattr(values, "flags", None)
    if flags is None or getattr(flags, "aligned", True):
        return values
    return values.copy()


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
    W: Sequence[Array], b: Sequence[Array], X: Array, Y: Array, s: Array | None = None, *,
    f: Sequence[Activation], objective: Objective, check: bool,
) -> tuple[Array, list[Array], list[Array]]:  # fmt: skip
    """Σᵢ sᵢE(cᵢ) and the gradients summed over all samples of Dask arrays, computed.

    Parameters
    ----------
    W, b : sequences of L concrete arrays (of the blocks' namespace)
    X : Dask array of shape (N, n_0), the samples in its rows
    Y : Dask array of shape (n_L, N)
    s : Dask array of shape (N,), optional
    f, objective : as in :func:`xpnet.core.backprop.chunk_sums`
    check : bool
        Whether each block's task checks its X for NaN and infinity.

    Returns
    -------
    E_sum : 0-D array, sum_W, sum_b : lists of L arrays; all of the blocks' namespace
    """
    X, Y, s = _aligned(X, Y, s)
    n = len(X.chunks[0])

    def graph() -> Any:
        P = _literal((list(W), list(b)), "parameters")
        parts = [
            _task(_block_sums, P, x, y, s_i, f, objective, check, what="block_sums")
            for x, y, s_i in zip(_blocks(X, n), _blocks(Y, n), _blocks(s, n), strict=True)
        ]
        while len(parts) > 1:
            groups = [parts[i : i + SPLIT_EVERY] for i in range(0, len(parts), SPLIT_EVERY)]
            parts = [_task(_add_sums, *g, what="add_sums") if len(g) > 1 else g[0] for g in groups]
        return parts[0]

    E, sum_W, sum_b = _computed(graph)
    return E, list(sum_W), list(sum_b)


def output(W: Sequence[Array], b: Sequence[Array], X: Array, *, f: Sequence[Activation]) -> Array:
    """The network output A⁽ᴸ⁾ of shape (n_L, N) as a lazy Dask array, in X's row chunks.

    ``W`` and ``b`` are concrete arrays; each block of the result is one task.  They are
    written into the graph itself, which goes to the scheduler once, whenever the
    result is computed: no worker lost or client closed meanwhile takes them away.
    """
    from dask import delayed

    P = delayed((list(W), list(b)), name=_key("parameters"), traverse=False)
    return _output_graph(P, W[-1].shape[0], X, f=f)


def output_computed(
    W: Sequence[Array], b: Sequence[Array], X: Array, *, f: Sequence[Activation]
) -> Array:
    """The network output A⁽ᴸ⁾ of shape (n_L, N), computed (a small one: a fit's
    validation pass after each epoch), from the parameters scattered as a step's are."""

    def graph() -> Any:
        return _output_graph(_literal((list(W), list(b)), "parameters"), W[-1].shape[0], X, f=f)

    return _computed(graph)


def _output_graph(P: Any, n_L: int, X: Array, *, f: Sequence[Activation]) -> Array:
    """The output's graph: a task per block of X's rows, from the parameters ``P``."""
    import dask.array as da

    X = X.rechunk({1: -1})
    tasks = [_task(_block_output, P, x, f, what="output") for x in _blocks(X, len(X.chunks[0]))]
    blocks = [
        da.from_delayed(task, shape=(n_L, n), dtype=X.dtype, meta=X._meta)
        for task, n in zip(tasks, X.chunks[0], strict=True)
    ]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=1)


def _block_epoch(carried, X, Y, s, s_host, order, mu, batch_size, how, check, last):
    """One block's share of a mini-batch epoch: the ordinary epoch over its samples.

    ``carried`` is (W, b, optimizer state, Σ of the batch losses weighted by batch size
    and the samples stepped so far in this epoch, the losses of the epochs done), from
    the block before; the same comes out.  The ``last`` block of an epoch closes it.
    """
    (W, b, state, E_sum, n_done, losses), X, Y, s = _realigned((carried, X, Y, s))
    xp = aac.array_namespace(X)
    if check:
        check_finite(X, xp, "X")
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


def _blocks_in_turn(carried, visits, batch_size, how):
    """Several blocks' shares in turn (:func:`_block_epoch`), in one task: the visits,
    one after another, of blocks that the same worker holds.  Each visit is a list
    (X, Y, s, s_host, order, mu, check, last)."""
    for X, Y, s, s_host, order, mu, check, last in visits:
        carried = _block_epoch(carried, X, Y, s, s_host, order, mu, batch_size, how, check, last)
    return carried


def _stepped(s_host: np.ndarray | None, N: int, B: int, order: np.ndarray | None) -> int:
    """How many of N samples fall in batches of B that take a step (weights not all zero)."""
    if s_host is None:
        return N
    rows = np.arange(N) if order is None else order
    return sum(len(rows[i : i + B]) for i in range(0, N, B) if np.sum(s_host[rows[i : i + B]]))


#: A run of visits in one task holds at most this much of X's blocks (each counted once).
#: Fusing saves the scheduler's few milliseconds per task, which matter only beside small
#: blocks; and a task needs all its blocks in memory at once (a spilled one read back).
FUSE_BYTES = 64 * 2**20


def _runs(visits: list[tuple[int, Any]], holders: list[str | None],
          block_bytes: list[int]) -> list[list[Any]]:  # fmt: skip
    """The visits (block, task inputs), in order, cut into runs for one task each:
    consecutive visits to blocks that one worker holds, up to ``FUSE_BYTES`` of blocks.
    A block whose holder is unknown is a run of its own."""
    runs: list[list[Any]] = []
    held, blocks, nbytes = None, set(), 0
    for i, inputs in visits:
        new = i not in blocks
        if (
            holders[i] is None
            or holders[i] != held
            or (new and nbytes + block_bytes[i] > FUSE_BYTES)
        ):
            runs.append([])
            held, blocks, nbytes = holders[i], set(), 0
        if i not in blocks:
            blocks.add(i)
            nbytes += block_bytes[i]
        runs[-1].append(inputs)
    return runs


def _holders(X: Array) -> list[str | None]:
    """For each block of rows of X, the worker that holds it in memory, or None.

    Known only for blocks already in a ``distributed`` cluster's memory (X persisted);
    of several holders, the first by address.
    """
    client = _distributed_client()
    keys = [key for row in X.__dask_keys__() for key in row]
    who = {} if client is None else client.who_has(X)
    return [min(who.get(key) or [None], key=str) for key in keys]


def epochs_in_blocks(
    W: list[Array], b: list[Array], state: Any, data: Samples, *, mu: Sequence[float],
    batch_size: int, order: Sequence[Any], how: Any, check: bool,
) -> tuple[list[Array], list[Array], Any, Array]:  # fmt: skip
    """Mini-batch epochs on Dask, as one graph: batches drawn within blocks, a task per
    block and epoch, chained (consecutive visits to blocks one worker holds in one task).

    Epoch e visits the blocks in ``order[e]`` (a ``xpnet.training.samples.BlockOrder``), or
    in their own order with their samples in theirs if it is None, with the schedule's step size
    ``mu[e]``.  Each block's last batch may be smaller than ``batch_size``.  Returns W,
    b, the optimizer state and each epoch's loss (the mean of its batch losses weighted
    by batch size) as a 1-D array, as ``xpnet.core.step.epoch`` does epoch by epoch.
    ``check``: whether the first epoch's tasks check their X for NaN and infinity.
    """
    X, Y, s = _aligned(data.X, data.Y, data.s)
    sizes = X.chunks[0]
    n = len(sizes)
    starts = np.cumsum((0, *sizes))
    # The blocks' keys: the chain's tasks name them, and the graph is written directly.
    X_keys, Y_keys, s_keys = _block_keys(X), _block_keys(Y), _block_keys(s, n)
    xp = how.xp

    def graph() -> Any:
        zero = xp.zeros((), dtype=W[0].dtype)
        carried = _literal((list(W), list(b), state, zero, 0, ()), "state")
        step = _literal(how, "step")  # sent once, not with every task
        visits = []  # (block, what its task needs besides the parameters), in turn
        for e, (mu_e, order_e) in enumerate(zip(mu, order, strict=True)):
            visit = range(n) if order_e is None else order_e.blocks
            for k, i in enumerate(visit):
                s_host = None if data.s_host is None else data.s_host[starts[i] : starts[i + 1]]
                within = None if order_e is None else order_e.within[i]
                # A list: the scheduler finds the blocks' keys in lists, not in tuples.
                visits.append((i, [X_keys[i], Y_keys[i], s_keys[i], s_host, within,
                                   mu_e, check and e == 0, k == n - 1]))  # fmt: skip
        block_bytes = [rows * X.shape[1] * X.dtype.itemsize for rows in sizes]
        runs = _runs(visits, _holders(X), block_bytes)
        return _chain(carried, runs, batch_size, step, [a for a in (X, Y, s) if a is not None])

    W, b, state, _, _, losses = _computed(graph)
    return list(W), list(b), state, xp.stack(losses)
