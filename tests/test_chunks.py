"""Chunks of samples, and chunks on several cores, change nothing but the order of summation."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_close

import xpnet
from xpnet._host import to_numpy
from xpnet.engines import _threads


def _data(N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 6))
    return X, np.sin(X[:, :2]) + 0.1 * rng.normal(size=(N, 2))


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunked_gradients_equal_whole_batch_gradients(backend, chunk_size):
    N = 30 if chunk_size == 1 else 150  # one-sample chunks are a task each on Dask: fewer
    X, y = _data(N)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(9, 4), max_iter=2, random_state=0)
    est.set_params(chunk_size=N).fit(backend.asarray(X), backend.asarray(y))
    whole_W, whole_b = est.gradients(backend.asarray(X), backend.asarray(y))
    X_c, y_c = _in_chunks(backend, X, chunk_size), _in_chunks(backend, y, chunk_size)
    chunked_W, chunked_b = est.set_params(chunk_size=chunk_size).gradients(X_c, y_c)
    for G, G_whole in zip(chunked_W + chunked_b, whole_W + whole_b, strict=True):
        assert_close(G, to_numpy(G_whole), backend, rtol=1e-12, atol=1e-15)
    assert_close(
        est.predict(X_c),
        to_numpy(est.set_params(chunk_size=None).predict(backend.asarray(X))),
        backend,
        rtol=1e-14,
    )


def _in_chunks(backend, a, chunk_size):
    """``a`` on the backend, in chunks of ``chunk_size`` samples where the chunks are the
    array's own (Dask's blocks: there ``chunk_size`` does not apply, the blocks are the
    chunks), else as it is (the estimator's ``chunk_size`` makes the chunks)."""
    if backend.name != "dask":
        return backend.asarray(a)
    import dask.array as da

    chunked = da.from_array(a, chunks=(chunk_size, *a.shape[1:]))
    assert chunked.numblocks[0] == -(-a.shape[0] // chunk_size)  # really in several blocks
    return chunked


def test_threads_give_the_same_bits_as_one_after_another(monkeypatch):
    pytest.importorskip("threadpoolctl")
    X, y = _data(1200)
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, chunk_size=100, random_state=0)
    monkeypatch.setattr(_threads, "blas_threads", lambda: 2)
    threaded = xpnet.MLPRegressor(**kw).fit(X, y)
    monkeypatch.setattr(_threads, "blas_threads", lambda: 1)
    with _threads._blas_controller().limit(limits=1):  # the same BLAS kernels as the threads'
        serial = xpnet.MLPRegressor(**kw).fit(X, y)
    for P, P_serial in zip(
        threaded.weights_ + threaded.biases_, serial.weights_ + serial.biases_, strict=True
    ):
        np.testing.assert_array_equal(P, P_serial)
    assert threaded.loss_curve_ == serial.loss_curve_


class _CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the calls submitted to it."""

    submitted = 0

    def submit(self, *args, **kwargs):
        type(self).submitted += 1
        return super().submit(*args, **kwargs)


def _threaded_map(monkeypatch, N=1000, chunk_size=10):
    """``chunked``'s context manager, made to run chunks on two threads."""
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_threads, "blas_threads", lambda: 2)
    monkeypatch.setattr(_threads, "ThreadPoolExecutor", _CountingPool)
    monkeypatch.setattr(_CountingPool, "submitted", 0)
    return _threads.chunked(np, None, N=N, widest=4, dtype=np.float64, chunk_size=chunk_size)


def test_threads_take_up_at_most_two_chunks_each_ahead_of_the_sums(monkeypatch):
    # Every chunk's result holds gradient-sized arrays until it is summed: however many
    # chunks a batch has, only a few may be under way or waiting at any time.
    consumed = []
    with _threaded_map(monkeypatch) as (_, map_chunks):
        for result in map_chunks(lambda i: i * i, range(100)):
            assert _CountingPool.submitted - len(consumed) <= 2 * 2 + 1  # + the one in hand
            consumed.append(result)
    assert consumed == [i * i for i in range(100)]
    assert _CountingPool.submitted == 100


def _gated(started, gate, *, fail=None):
    """A chunk function that records its start, fails on chunk ``fail`` and waits for
    ``gate`` from chunk 2 on, so that the chunks queued behind it stay unstarted."""

    def fn(i):
        started.append(i)
        if i == fail:
            raise FloatingPointError(f"chunk {i}")
        if i >= 2:
            assert gate.wait(timeout=10)
        return i

    return fn


def test_a_failing_chunk_fails_the_map_and_cancels_the_queued_ones(monkeypatch):
    started, gate = [], threading.Event()
    with _threaded_map(monkeypatch) as (_, map_chunks):
        # Taking result 0 queues chunk 4 behind 1-3; 1 fails while the workers wait in
        # 2 and 3 (or 3 is still queued): 4 must never start, even once they go on.
        with pytest.raises(FloatingPointError, match="chunk 1"):
            list(map_chunks(_gated(started, gate, fail=1), range(100)))
        gate.set()
    assert {0, 1} <= set(started) <= {0, 1, 2, 3}


def test_a_map_closed_early_cancels_the_queued_chunks(monkeypatch):
    started, gate = [], threading.Event()
    with _threaded_map(monkeypatch) as (_, map_chunks):
        # Taking results 0 and 1 queues chunks 4 and 5 behind 2 and 3, where the workers
        # wait (or 3 is still queued): 4 and 5 must never start, even once they go on.
        results = map_chunks(_gated(started, gate), range(100))
        assert list(itertools.islice(results, 2)) == [0, 1]
        results.close()
        gate.set()
    assert {0, 1} <= set(started) <= {0, 1, 2, 3}


def test_saturated_units_do_not_warn_in_worker_threads(monkeypatch):
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_threads, "blas_threads", lambda: 2)
    X, y = _data(1200)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, chunk_size=100)
    est.set_params(random_state=0).fit(X * 1e4, y)  # e^{-z} overflows: a = 0 exactly
    est.predict(X * 1e4)


def test_automatic_chunk_sizes():
    assert _threads.auto_chunk_size(60000, 256, 4, cpu=False, workers=1) is None
    assert _threads.auto_chunk_size(60000, 256, 4, cpu=True, workers=1) == 2048
    assert _threads.auto_chunk_size(60000, 256, 8, cpu=True, workers=2) == 1024
    assert _threads.auto_chunk_size(1797, 64, 8, cpu=True, workers=2) == 899
    assert _threads.auto_chunk_size(1797, 64, 8, cpu=True, workers=1) is None
    # Half of a float32 S batch (225 KiB per temporary) is too little work for a thread.
    assert _threads.auto_chunk_size(1797, 64, 4, cpu=True, workers=2) is None
    assert _threads.auto_chunk_size(4096, 64, 4, cpu=True, workers=2) == 2048
    # Many cores: as many even shares as are worth a thread (1024 samples of 64 here).
    assert _threads.auto_chunk_size(12000, 64, 4, cpu=True, workers=16) == 1091
    assert _threads.auto_chunk_size(1500, 64, 4, cpu=True, workers=16) is None


def test_the_plan_depends_on_the_problem_and_the_cores_only():
    def plan(N, widest, itemsize, cores=2, chunk_size=None):
        return _threads.plan(
            N, widest, itemsize, cpu=True, numpy=True, cores=cores, chunk_size=chunk_size
        )

    # S in float32 (N 1797, 64 wide) is too small to share: it runs whole, BLAS on one
    # thread.  In float64 each core's half is worth a thread: two threads, BLAS on one.
    assert plan(1797, 64, 4) == (None, 1, 1)
    assert plan(1797, 64, 4, cores=16) == (None, 1, 1)
    assert plan(1797, 64, 8) == (899, 2, 1)
    # Chunks the user chose are shared, unless the batch is too small for threads.
    assert plan(1797, 64, 8, chunk_size=100) == (100, 2, 1)
    assert plan(200, 64, 4, chunk_size=50) == (50, 1, 1)
    assert plan(20000, 64, 4) == (8192, 2, 1)
    assert plan(60000, 784, 4) == (668, 2, 1)  # M in float32
    assert plan(60000, 784, 8) == (334, 2, 1)  # M in float64
    # Without threadpoolctl (one core known), off NumPy or on a GPU, BLAS is left alone.
    assert _threads.plan(1797, 64, 4, cpu=True, numpy=True, cores=1) == (None, 1, None)
    assert _threads.plan(60000, 784, 4, cpu=True, numpy=False, cores=1) == (668, 1, None)
    assert _threads.plan(60000, 784, 4, cpu=False, numpy=False, cores=1) == (None, 1, None)


def test_a_batch_run_whole_holds_blas_to_one_thread_while_it_lasts(monkeypatch):
    pytest.importorskip("threadpoolctl")
    blas = _threads._blas_controller()
    before = [lib.num_threads for lib in blas.lib_controllers]
    monkeypatch.setattr(_threads, "blas_threads", lambda: 2)
    with _threads.chunked(np, None, N=1797, widest=64, dtype=np.float32) as (size, _):
        assert size is None
        assert max(lib.num_threads for lib in blas.lib_controllers) == 1
    assert [lib.num_threads for lib in blas.lib_controllers] == before


def test_blas_threads_do_not_change_the_bits(monkeypatch):
    # OpenBLAS's float32 products differ in the last bits with its thread count; xpnet
    # holds it to one thread inside a fit, so the count a user (or a busy machine) set
    # does not reach the result.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_threads, "blas_threads", lambda: 2)
    X, y = _data(1500)
    X = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(64,), max_iter=5, random_state=0)
    fits = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            fits.append(xpnet.MLPRegressor(**kw).fit(X, y))
    for got, want in zip(fits[0].weights_, fits[1].weights_, strict=True):
        np.testing.assert_array_equal(got, want)


def test_devices_that_are_cpus(backend):
    expected = backend.name != "cupy" and not (
        backend.name == "jax" and backend.device.platform != "cpu"
    )
    assert _threads.on_cpu(backend.xp, backend.device) == expected


def test_bad_chunk_size():
    with pytest.raises(ValueError, match=r"chunk_size must be None or an int >= 1, got 0"):
        xpnet.MLPRegressor(chunk_size=0).fit(*_data(10))


def test_allocator_is_primed_once_per_larger_size(monkeypatch):
    freed = []

    class NumpyLike:  # records the blocks prime_allocator allocates (and drops)
        uint8 = np.uint8

        @staticmethod
        def empty(shape, dtype):
            freed.append(shape[0])
            return np.empty(shape, dtype=dtype)

    monkeypatch.setattr(_threads, "_primed_bytes", 0)
    _threads.prime_allocator(NumpyLike, 3 * 2**20)
    _threads.prime_allocator(NumpyLike, 2**20)  # not larger: nothing to do
    _threads.prime_allocator(NumpyLike, 10 * 2**30)  # beyond glibc's adaptive range: capped
    _threads.prime_allocator(NumpyLike, 10 * 2**30)
    assert freed == [3 * 2**20, 31 * 2**20]


def _live_blas_threads():
    """The threads of the BLAS libraries xpnet steers (those loaded when it first looked:
    NumPy's among them; a library loaded later, SciPy's own, is not NumPy's BLAS)."""
    return max(lib.num_threads for lib in _threads._blas_controller().lib_controllers)


def test_overlapping_holds_on_blas_end_in_any_order_and_put_its_threads_back():
    pytest.importorskip("threadpoolctl")
    before = _live_blas_threads()
    if before < 2:
        pytest.skip("BLAS runs on one thread here: there is no limit to hold")
    first, second = _threads.one_blas_thread(), _threads.one_blas_thread()
    first.__enter__()
    second.__enter__()
    assert _live_blas_threads() == 1
    # A plan made meanwhile sees the cores BLAS had, not xpnet's own limit.
    assert _threads.blas_threads() == before
    first.__exit__(None, None, None)  # the first to take it ends first
    assert _live_blas_threads() == 1, "the other hold is still on"
    second.__exit__(None, None, None)
    assert _live_blas_threads() == before


def test_fits_in_threads_give_the_bits_of_a_fit_alone_and_leave_blas_as_it_was():
    pytest.importorskip("threadpoolctl")
    before = _live_blas_threads()
    X, y = _data(3000)
    # Samples enough to share among the cores, so that each fit holds BLAS to one thread.
    kw = dict(hidden_layer_sizes=(64,), max_iter=3, random_state=0)
    alone = xpnet.MLPRegressor(**kw).fit(X, y)
    with ThreadPoolExecutor(4) as pool:
        fits = list(pool.map(lambda _: xpnet.MLPRegressor(**kw).fit(X, y), range(8)))
    for est in fits:
        for got, want in zip(est.weights_ + est.biases_, alone.weights_ + alone.biases_,
                             strict=True):  # fmt: skip
            np.testing.assert_array_equal(got, want)
    assert _live_blas_threads() == before
