"""How the eager engine computes chunks of samples: their size, and the cores they run on.

The gradient is a sum over samples, so the core takes the samples in chunks (see
``xpnet.core.backprop.sample_sums``).  On a CPU, chunks of about ``CHUNK_BYTES`` per
temporary keep the elementwise work in cache.  On NumPy they also run concurrently,
one thread per core (NumPy releases the GIL inside its kernels and BLAS calls), with
BLAS held to one thread per call meanwhile: nested BLAS threads would fight over the
same cores.  A batch too small to share runs in the caller's thread, with BLAS on one
thread as well (see :func:`plan` for why).  A GPU is kept busy only by large products, so
there a batch is one chunk.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

import array_api_compat as aac

#: Target size of one (n_l, chunk) temporary on a CPU: large enough for efficient
#: matrix products, small enough to stay in a core's cache (measured in scripts/bench.py).
CHUNK_BYTES = 2 * 2**20

#: The least work per worker for which a batch is split over the cores: one (n_l, chunk)
#: temporary of at least this size.  Below it, each NumPy operation is so short that the
#: threads' hand-offs of the GIL cost more than another core gives.  Measured on two
#: cores, N samples through 64→64→10 in float32, epochs split in two against whole:
#: 2.0× the floor against 1.8× at 225 KiB per thread (N 1797), level at 300 KiB
#: (N 2400), 1.69× against 1.88× at 375 KiB (N 3000).
MIN_SHARE_BYTES = 256 * 2**10

#: How many (widest × chunk) temporaries a chunk's step frees together, about: the
#: allocator is asked to keep that much for reuse (see :func:`prime_allocator`).
TEMPORARIES_PER_CHUNK = 4


#: glibc's ceiling for its adaptive mmap threshold on 64-bit systems
#: (DEFAULT_MMAP_THRESHOLD_MAX): freeing a larger block leaves the thresholds as they are.
_GLIBC_ADAPTIVE_MAX = 32 * 2**20

#: The largest block :func:`prime_allocator` has freed in this process so far.
_primed_bytes = 0


def prime_allocator(xp: Any, nbytes: int) -> None:
    """Let the C allocator keep about ``nbytes`` of freed temporaries for reuse.

    Every epoch frees its temporaries and allocates them again.  glibc's malloc hands
    memory at the top of its heap back to the system whenever more than its trim
    threshold is free, so with the default threshold (twice the largest block freed
    so far, starting from 128 KiB) each epoch returns the pages and then faults them
    back in, zeroed by the kernel: a one-thread float32 epoch on N 1797, 64→64→10 took
    1.26 ms, and takes 0.39 ms once primed.  glibc raises its thresholds itself
    whenever a block it had mapped separately (above the mmap threshold) is freed;
    allocating and freeing one such block of ``nbytes`` triggers exactly that, once.
    The block is never written, so no page of it is touched.  The effect is the one
    any program gets after freeing an array of that size; a block below the current
    threshold, or another allocator, is simply allocated and freed.

    Parameters
    ----------
    xp : a NumPy namespace (arrays from C ``malloc``)
    nbytes : int
        About the memory one chunk's temporaries take together.  Capped at glibc's
        adaptive maximum; a size not above an earlier call's does nothing.
    """
    global _primed_bytes
    nbytes = min(nbytes, _GLIBC_ADAPTIVE_MAX - 2**20)
    if nbytes <= _primed_bytes:
        return
    block = xp.empty((nbytes,), dtype=xp.uint8)
    del block
    _primed_bytes = nbytes


def on_cpu(xp: Any, device: Any) -> bool:
    """Whether arrays of namespace ``xp`` on ``device`` are computed by the CPU."""
    if aac.is_torch_namespace(xp):
        return device.type == "cpu"
    if aac.is_jax_namespace(xp):
        return getattr(device, "platform", "cpu") == "cpu"
    return not aac.is_cupy_namespace(xp)  # NumPy, array-api-strict and Dask (of NumPy)


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's handle on the BLAS libraries loaded (NumPy's among them), or None.

    Finding the libraries reads the process's memory map, which takes about a
    millisecond: done once.  The handle reads and sets the thread counts live.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().select(user_api="blas")


def blas_threads() -> int:
    """How many threads NumPy's BLAS would use: the cores xpnet's own threads may take.

    Known only through threadpoolctl (installed with scikit-learn); without it, 1, and
    chunks run one after another while BLAS threads each product itself.  While xpnet
    itself holds BLAS to one thread (:func:`one_blas_thread`, in this thread or any
    other), the count from before it did: a fit's plan never depends on what other
    threads are doing.
    """
    blas = _blas_controller()
    if blas is None:
        return 1
    with _held_lock:
        if _held.count:
            return _held.threads
        return _threads_of(blas)


def _threads_of(blas: Any) -> int:
    return max((lib.num_threads for lib in blas.lib_controllers), default=1)


class _Held:
    """xpnet's hold on BLAS's thread count: how many are holding it, and what it was."""

    count = 0
    threads = 1
    limiter: Any = None


_held = _Held()
_held_lock = threading.Lock()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold BLAS to one thread per call while the block runs, safely under threads.

    Overlapping holds (fits and predictions in several threads) share one limit: the
    first sets it, the last puts back what was there before the first, whatever order
    they end in.  (Each taking and restoring a limit of its own would leave BLAS on one
    thread for good when they end out of order.)
    """
    blas = _blas_controller()
    with _held_lock:
        if _held.count == 0:
            _held.threads = _threads_of(blas)
            _held.limiter = blas.limit(limits=1)
        _held.count += 1
    try:
        yield
    finally:
        with _held_lock:
            _held.count -= 1
            if _held.count == 0:
                _held.limiter.restore_original_limits()
                _held.limiter = None


def auto_chunk_size(
    N: int, widest: int, itemsize: int, *, cpu: bool, workers: int, least: int = 256
) -> int | None:
    """The samples per chunk, or None for all N at once.

    None on a GPU.  On a CPU, about ``CHUNK_BYTES`` per (widest layer × chunk)
    temporary but at least ``least`` samples, and the batch shared among as many
    workers as get at least ``MIN_SHARE_BYTES`` each: a batch too small for two shares
    runs whole.
    """
    if not cpu:
        return None
    chunk = max(least, CHUNK_BYTES // (widest * itemsize))
    min_share = math.ceil(MIN_SHARE_BYTES / (widest * itemsize))
    shares = max(1, min(workers, N // min_share))
    chunk = min(chunk, math.ceil(N / shares))
    return chunk if chunk < N else None


class Plan(NamedTuple):
    """How a batch is computed: what :func:`plan` decides and :func:`chunked` carries out."""

    #: Samples per chunk; None: all N at once.
    chunk_size: int | None
    #: Threads the chunks run on; 1: one after another, in the caller's thread.
    workers: int
    #: BLAS threads per matrix product meanwhile; None: BLAS is left as it is.
    blas_threads: int | None


def plan(
    N: int, widest: int, itemsize: int, *, cpu: bool, numpy: bool, cores: int,
    chunk_size: int | None = None, least: int = 256,
) -> Plan:  # fmt: skip
    """Decide the chunk size and the threads for a batch of N samples.

    On NumPy with several cores (as threadpoolctl tells them), a batch whose part per
    core is worth a thread (``MIN_SHARE_BYTES``) is shared among one xpnet thread per
    core, and any other batch runs in the caller's thread; either way BLAS runs each
    product on one thread.  Elsewhere the chunks run one after another and BLAS is left
    alone.  The plan depends on the problem and the cores only, never on the machine's
    load, so that the same fit gives the same bits however busy the machine is.

    Parameters
    ----------
    N, widest, itemsize : samples per batch, the largest layer size, bytes per element
    cpu, numpy : whether the arrays are computed by the CPU, and are NumPy's
    cores : the cores xpnet's own threads may take (:func:`blas_threads`)
    chunk_size : the user's choice; None chooses automatically
    least : the fewest samples an automatic chunk takes (see :func:`chunked`)
    """
    if not (cpu and numpy) or cores == 1:
        # Without threadpoolctl, or with BLAS held to one thread already, xpnet cannot
        # (or need not) steer BLAS: the chunks run one after another.
        if chunk_size is None:
            chunk_size = auto_chunk_size(N, widest, itemsize, cpu=cpu, workers=1, least=least)
        return Plan(chunk_size, 1, None)
    workers = cores if N > 256 else 1
    if chunk_size is None:
        chunk_size = auto_chunk_size(
            N, widest, itemsize, cpu=cpu, workers=workers, least=least
        )  # fmt: skip
    if workers > 1 and chunk_size is not None and chunk_size < N:
        # BLAS threads inside xpnet's threads would fight them for the same cores.
        return Plan(chunk_size, workers, 1)
    # A batch too small to share runs whole, with BLAS on one thread too.  OpenBLAS's
    # threads spin while they wait, for work and for each other, so they pay only while
    # each has a core to itself: once other processes want the cores, one that loses
    # its core leaves the others spinning on theirs.  Beside two busy processes on two
    # cores, an epoch of S in float32 (N 1797, 64→64→10: too small to share) took 5–8×
    # its idle time with BLAS on two threads, and 2.1–2.3× on one
    # (``scripts/bench.py --contention 2``).  On an idle machine BLAS's second thread
    # makes that epoch about 10 % faster; the plan could follow the load instead, but
    # BLAS's result then depends on its thread count (float32 products differ in the
    # last bits), and a fit would give different bits on a busy machine than on an
    # idle one.
    return Plan(chunk_size, 1, 1)


@contextmanager
def chunked(
    xp: Any,
    device: Any,
    *,
    N: int,
    widest: int,
    dtype: Any,
    chunk_size: int | None = None,
    least: int = 256,
) -> Iterator[tuple[int | None, Callable[..., Iterator[Any]]]]:
    """Decide how to compute N samples (:func:`plan`), and provide the means for it.

    Parameters
    ----------
    xp, device : the namespace and device of the data
    N : int
        Samples per batch.
    widest : int
        The largest layer size n_l: the height of the largest temporary.
    dtype : the floating dtype of the data
    chunk_size : int, optional
        The user's choice; None chooses automatically.
    least : int, default 256
        The fewest samples an automatic chunk takes.  Every chunk pays for some work
        of the parameters' size whatever its samples (its own gradient sums, one
        (n_l, n_{l-1}) array per layer): worth it for a chunk of dense samples, whose
        products cost n_{l-1} per sample and output, but not for a few sparse samples.

    Yields
    ------
    chunk_size : int or None
        Samples per chunk (None: all at once).
    map : callable
        The built-in ``map``, or, while the chunks run on several cores, a map over a
        thread pool that yields the results in order and has at most two chunks per
        worker under way.
    """
    numpy = aac.is_numpy_namespace(xp)
    itemsize = xp.finfo(dtype).bits // 8
    how = plan(
        N, widest, itemsize, cpu=on_cpu(xp, device), numpy=numpy,
        cores=blas_threads() if numpy else 1, chunk_size=chunk_size, least=least,
    )  # fmt: skip
    if numpy:
        # A chunk's step holds a few (widest × chunk) temporaries at once.
        prime_allocator(xp, TEMPORARIES_PER_CHUNK * widest * min(how.chunk_size or N, N) * itemsize)
    if how.blas_threads is None:
        yield how.chunk_size, map
        return
    with one_blas_thread():
        if how.workers == 1:
            yield how.chunk_size, map
            return
        with ThreadPoolExecutor(how.workers) as pool:

            def map_in_context(fn: Callable[..., Any], items: Any) -> Iterator[Any]:
                """``fn`` over ``items`` on the pool, in order, two per worker under way."""
                # Worker threads start with an empty context: carry the caller's over, so
                # that context-local settings such as NumPy's errstate hold in them too.
                context = contextvars.copy_context()
                return _in_order(
                    pool,
                    lambda item: context.copy().run(fn, item),
                    items,
                    ahead=2 * how.workers,
                )

            yield how.chunk_size, map_in_context


def _in_order(
    pool: ThreadPoolExecutor, fn: Callable[..., Any], items: Any, *, ahead: int
) -> Iterator[Any]:
    """The results of ``fn`` over ``items``, computed on ``pool``, in order.

    Besides the result in the caller's hands, at most ``ahead`` calls are under way or
    waiting to be consumed: a pool's own ``map`` submits every call at once, and each
    chunk's result holds gradient-sized arrays until it is summed.  A call that fails,
    or a caller that closes the iterator early, cancels the calls not yet started.
    """
    items = iter(items)
    under_way: deque[Any] = deque()
    try:
        under_way.extend(pool.submit(fn, item) for item in itertools.islice(items, ahead))
        while under_way:
            result = under_way.popleft().result()
            under_way.extend(pool.submit(fn, item) for item in itertools.islice(items, 1))
            yield result
    finally:
        for future in under_way:
            future.cancel()
