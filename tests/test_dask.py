"""Training on Dask for real: a task per block, bounded scheduler state, a lost worker.

Every test here runs on a ``distributed.LocalCluster`` of two worker processes (one
thread each), started once for the module, unless it says otherwise.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

import xpnet
from xpnet.engines import _dask_graph as _dask

da = pytest.importorskip("dask.array", reason="Dask is not installed")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        worker_dashboard_address=":0",
    )  # fmt: skip
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def on_cluster(client):
    """Dask's computations go to the cluster for the test's duration."""
    import dask

    with dask.config.set(scheduler=client):
        yield client


def _data(N=600, n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    return X, y


def _blocks(a, rows):
    return da.from_array(a, chunks=(rows, *a.shape[1:]))


# The seed's method: full-batch gradient descent with sigmoid hidden units (the defaults
# are scikit-learn's Adam on ReLUs, in mini-batches of 200).
SEED = dict(solver="sgd", activation="sigmoid")
KW = dict(hidden_layer_sizes=(16,), learning_rate=0.1, random_state=0, **SEED)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 100])
def test_fits_on_a_cluster_give_the_same_bits_every_time(on_cluster, batch_size):
    # Arrays reach a worker's tasks at whatever address they fell in the message: NumPy
    # leaves BLAS out of a product of unaligned arrays, and the bits depended on where
    # each block and the parameters had travelled.
    X, y = _data(N=1000, n=32)
    kw = dict(KW, max_iter=20, batch_size=batch_size)
    fits = [xpnet.MLPRegressor(**kw).fit(_blocks(X, 250), _blocks(y, 250)) for _ in range(4)]
    for est in fits[1:]:
        for got, want in zip(est.weights_ + est.biases_, fits[0].weights_ + fits[0].biases_,
                             strict=True):  # fmt: skip
            np.testing.assert_array_equal(got.compute(), want.compute())


def test_full_batch_equals_numpy_block_by_block(on_cluster):
    X, y = _data()
    for solver in ("sgd", "adam"):
        kw = dict(KW, max_iter=20, solver=solver, alpha=0.01, batch_size=None)
        ref = xpnet.MLPRegressor(**kw).fit(X, y)
        est = xpnet.MLPRegressor(**kw).fit(_blocks(X, 150), _blocks(y, 150))
        for got, want in zip(est.weights_ + est.biases_, ref.weights_ + ref.biases_, strict=True):
            assert _dask.is_dask(got) and got.numblocks == (1,) * got.ndim
            np.testing.assert_allclose(got.compute(), want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-12)
        pred = est.predict(_blocks(X, 150))
        assert _dask.is_dask(pred) and pred.chunks == ((150,) * 4,)  # X's chunks kept
        np.testing.assert_allclose(pred.compute(), ref.predict(X), rtol=1e-12)


def test_a_stack_of_networks_trains_on_the_cluster(on_cluster):
    """Full-batch networks stacked on Dask: each step one graph for the whole stack, its
    members weighing all of X's blocks (0 off their own rows); each equals the same
    stack trained on NumPy, gathering its rows."""
    from xpnet.estimators._stack import fit_stack

    X, y = _data()
    rows = [np.arange(0, 450), np.arange(150, 600), np.arange(600)]

    def make(k):
        return xpnet.MLPRegressor(**dict(KW, max_iter=20, batch_size=None, random_state=k,
                                         alpha=[0.0, 0.01, 0.1][k], momentum=0.9))  # fmt: skip

    on_dask = fit_stack([make(k) for k in range(3)], _blocks(X, 150), y, rows)
    on_numpy = fit_stack([make(k) for k in range(3)], X, y, rows)
    for got, want in zip(on_dask, on_numpy, strict=True):
        assert _dask.is_dask(got.weights_[0]) and got.n_iter_ == want.n_iter_ == 20
        np.testing.assert_allclose(got.loss_curve_, want.loss_curve_, rtol=1e-12)
        for p, q in zip(got.weights_ + got.biases_, want.weights_ + want.biases_, strict=True):
            np.testing.assert_allclose(p.compute(), q, rtol=1e-12, atol=1e-15)


def test_a_step_is_a_task_per_block_and_a_tree_of_sums(monkeypatch):
    import dask
    from dask.utils import key_split

    graphs = []
    compute = dask.compute

    def spy(*collections, **kwargs):
        graphs.append([key_split(k) for c in collections for k in c.__dask_graph__()])
        return compute(*collections, **kwargs)

    monkeypatch.setattr(dask, "compute", spy)
    X, y = _data()
    xpnet.MLPRegressor(**KW, max_iter=2).fit(_blocks(X, 30), _blocks(y, 30))
    assert len(graphs) == 2  # one graph per step
    names = graphs[-1]
    # 20 blocks: a task each (no cache-sized chunks inside, nothing per operation),
    # 3 + 1 additions (20 sums → 3 → 1), and the parameters under one key.
    assert names.count("block_sums") == 20
    assert names.count("add_sums") == 4
    assert names.count("parameters") == 1


@pytest.mark.slow
def test_nothing_grows_with_the_epochs(on_cluster):
    X, y = _data(N=400)
    seen = []

    def sample(losses, scores):
        gc.collect()
        tasks = on_cluster.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        seen.append((tasks, len(on_cluster.futures), len(on_cluster.refcount)))

    # All 96 epochs (no stall of the loss ends the fit sooner): a read-back every 16.
    est = xpnet.MLPRegressor(**KW, max_iter=96, n_iter_no_change=np.inf)
    est.fit(_blocks(X, 100), _blocks(y, 100), callback=sample)
    assert len(seen) == 6
    # Between steps nothing is left on the scheduler or held by the client: the next
    # step starts from the parameters as data.
    first, last = seen[0], seen[-1]
    assert last[0] <= first[0] + 2, seen
    assert last[1] <= first[1] and last[2] <= first[2], seen


def test_mini_batches_stay_in_their_blocks(on_cluster, caplog):
    X, y = _data(N=400)
    kw = dict(KW, max_iter=6, batch_size=32)
    with caplog.at_level(logging.WARNING):
        est = xpnet.MLPRegressor(**kw).fit(_blocks(X, 100), _blocks(y, 100))
    assert not [r for r in caplog.records if "run_spec" in r.getMessage()]
    assert np.all(np.isfinite(est.loss_curve_)) and est.loss_curve_[-1] < est.loss_curve_[0]
    # The same seed gives the same run; the blocks visited in another order give another.
    again = xpnet.MLPRegressor(**kw).fit(_blocks(X, 100), _blocks(y, 100))
    np.testing.assert_array_equal(again.weights_[0].compute(), est.weights_[0].compute())
    other = xpnet.MLPRegressor(**dict(kw, random_state=1)).fit(_blocks(X, 100), _blocks(y, 100))
    assert not np.array_equal(other.weights_[0].compute(), est.weights_[0].compute())


def test_blocks_one_worker_holds_are_visited_in_one_task(on_cluster, monkeypatch):
    X, y = _data(N=400)
    workers = sorted(on_cluster.scheduler_info()["workers"])
    # Blocks 0 and 1 in one worker's memory, 2 and 3 in the other's.
    parts = [
        on_cluster.persist(_blocks(a, 100)[rows], workers=[w])
        for a in (X, y)
        for rows, w in ((slice(0, 200), workers[0]), (slice(200, 400), workers[1]))
    ]
    Xd, yd = on_cluster.persist([da.concatenate(parts[:2]), da.concatenate(parts[2:])])
    on_cluster.gather(distributed.futures_of([Xd, yd]))  # in memory
    assert _dask._holders(Xd) == [workers[0]] * 2 + [workers[1]] * 2

    def fit():
        kw = dict(KW, max_iter=16, batch_size=32)
        with distributed.get_task_stream(on_cluster) as stream:
            est = xpnet.MLPRegressor(**kw).fit(Xd, yd)
        return est, [t["key"] for t in stream.data if "block_epoch" in str(t["key"])]

    together, tasks = fit()
    monkeypatch.setattr(_dask, "_holders", lambda X: [None] * len(X.chunks[0]))
    apart, tasks_apart = fit()
    assert len(tasks_apart) == 16 * 4  # a task per block and epoch
    # One task per run of visits to one worker's blocks: fewer, the same numbers.
    assert 16 <= len(tasks) < len(tasks_apart)
    for got, want in zip(together.weights_, apart.weights_, strict=True):
        np.testing.assert_array_equal(got.compute(), want.compute())
    np.testing.assert_array_equal(together.loss_curve_, apart.loss_curve_)


def test_runs_of_visits_keep_to_one_worker_and_a_bounded_size(monkeypatch):
    monkeypatch.setattr(_dask, "FUSE_BYTES", 100)
    holders, nbytes = ["a", "a", "b", None], [40, 40, 40, 40]
    visits = [(i, f"v{n}") for n, i in enumerate([0, 1, 0, 2, 2, 3, 3, 1, 0])]
    runs = _dask._runs(visits, holders, nbytes)
    # 0 1 0 on worker a (80 bytes); 2 2 on b; 3 unknown: alone each time; 1 0 on a again.
    assert runs == [["v0", "v1", "v2"], ["v3", "v4"], ["v5"], ["v6"], ["v7", "v8"]]
    monkeypatch.setattr(_dask, "FUSE_BYTES", 50)  # one block's worth: a task per block
    assert _dask._runs(visits[:3], holders, nbytes) == [["v0"], ["v1"], ["v2"]]


def test_mini_batches_in_one_block_equal_numpy():
    # Without a cluster: Dask's threaded scheduler.  In one block the samples are
    # shuffled exactly as NumPy's are, from the same generator.
    X, y = _data(N=300)
    for shuffle in (True, False):
        kw = dict(KW, max_iter=4, batch_size=64, shuffle=shuffle)
        ref = xpnet.MLPRegressor(**kw).fit(X, y)
        est = xpnet.MLPRegressor(**kw).fit(da.from_array(X), da.from_array(y))
        np.testing.assert_allclose(est.weights_[0].compute(), ref.weights_[0], rtol=1e-12)
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-12)


def test_mini_batch_losses_are_weighted_by_the_samples_stepped():
    X, y = _data(N=300)
    w = np.ones(300)
    w[:100] = 0.0  # the first block takes no step at all
    kw = dict(KW, max_iter=1, batch_size=50, shuffle=False)
    est = xpnet.MLPRegressor(**kw).fit(
        _blocks(X, 100), _blocks(y, 100), sample_weight=_blocks(w, 100)
    )
    ref = xpnet.MLPRegressor(**kw).fit(X[100:], y[100:])
    np.testing.assert_allclose(est.weights_[0].compute(), ref.weights_[0], rtol=1e-12)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 50])
def test_non_finite_x_is_found_in_the_pass_that_reads_it(batch_size):
    X, y = _data(N=300)
    X[250, 3] = np.inf
    est = xpnet.MLPRegressor(**KW, max_iter=3, batch_size=batch_size).fit(X[:200], y[:200])
    before = [w.copy() for w in est.weights_]
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.partial_fit(_blocks(X, 100), _blocks(y, 100))
    for got, want in zip(est.weights_, before, strict=True):
        np.testing.assert_array_equal(got, want)  # nothing changed
    pred = est.predict(_blocks(X, 100))  # lazy: the check comes with the values
    with pytest.raises(ValueError, match="Input X contains infinity"):
        pred.compute()


def test_created_arrays_follow_the_blocks_type():
    X, y = _data(N=200)
    Xd = _blocks(X, 100)
    clf = xpnet.MLPClassifier(**KW, max_iter=2).fit(Xd, _blocks((y > 0).astype(int), 100))
    for a in clf.weights_ + clf.biases_:
        assert type(a._meta) is type(Xd._meta)
    for out in (clf.predict_proba(Xd), clf.predict(Xd)):
        assert type(out._meta) is type(Xd._meta)
        assert type(out.compute()) is np.ndarray


def test_a_scatter_that_never_ends_is_given_up_and_the_step_made_anew(on_cluster, monkeypatch):
    # As one to a worker killed meanwhile can: the fit goes on with the same numbers.
    import asyncio

    X, y = _data(N=200)
    want = xpnet.MLPRegressor(**KW, max_iter=3).fit(_blocks(X, 100), _blocks(y, 100))
    real, calls = on_cluster._scatter, []

    async def first_never_ends(data, *args, **kwargs):
        if any("parameters" in str(key) for key in data):  # not the fit's anchor
            calls.append(1)
            if len(calls) == 1:
                await asyncio.Event().wait()
        return await real(data, *args, **kwargs)

    monkeypatch.setattr(on_cluster, "_scatter", first_never_ends)
    monkeypatch.setattr(_dask, "SCATTER_TIMEOUT_S", 0.5)
    start = time.perf_counter()
    got = xpnet.MLPRegressor(**KW, max_iter=3).fit(_blocks(X, 100), _blocks(y, 100))
    assert time.perf_counter() - start < 20 and len(calls) > 1
    for a, b in zip(got.weights_, want.weights_, strict=True):
        np.testing.assert_array_equal(a.compute(), b.compute())


@pytest.mark.slow
def test_a_lost_worker_is_survived():
    X, y = _data(N=1000, n=32)
    kw = dict(KW, max_iter=40, n_iter_no_change=np.inf)  # all 40 epochs: long enough
    # A cluster of its own: the one the other tests share keeps both its workers.
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        worker_dashboard_address=":0",
    )  # fmt: skip
    # The default client, not dask.config.set(scheduler=client): the nanny restarting
    # the killed worker pickles Dask's global configuration for the new process, and a
    # Client in it cannot be pickled (the restart then fails, in some runs).
    with cluster, distributed.Client(cluster) as client:
        undisturbed = xpnet.MLPRegressor(**kw).fit(_blocks(X, 250), _blocks(y, 250))
        victim, pid = next(iter(client.run(os.getpid).items()))
        killed = threading.Event()

        def kill_one_worker():
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        disturbed = xpnet.MLPRegressor(**kw).fit(_blocks(X, 250), _blocks(y, 250))
        assert killed.is_set(), "the fit ended before a worker was killed: make it longer"
        killer.join()
        assert victim not in client.scheduler_info()["workers"]  # it did die mid-fit
        client.wait_for_workers(2, timeout=30)  # and its nanny started it again
    for got, want in zip(disturbed.weights_, undisturbed.weights_, strict=True):
        np.testing.assert_array_equal(got.compute(), want.compute())


def _own_cluster():
    # A cluster of its own: the one the other tests share keeps both its workers.
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        worker_dashboard_address=":0",
    )  # fmt: skip


@pytest.mark.slow
def test_a_worker_killed_as_the_parameters_are_scattered_is_survived(monkeypatch):
    # A worker that died while the parameters were broadcast (scatter(broadcast=True))
    # left the scheduler replicating to it forever, under a lock that every later
    # broadcast waits for: each step then timed out, and so did every later fit on the
    # cluster.  The parameters now go to one worker; the step is made anew if it dies.
    import distributed.scheduler

    X, y = _data(N=400)
    monkeypatch.setattr(_dask, "SCATTER_TIMEOUT_S", 5)
    with _own_cluster() as cluster, distributed.Client(cluster) as client:
        kw = dict(KW, max_iter=6)
        undisturbed = xpnet.MLPRegressor(**kw).fit(_blocks(X, 100), _blocks(y, 100))
        real, fits = distributed.scheduler.scatter_to_workers, []
        for victim in ("another worker", "the worker that got them"):
            client.wait_for_workers(2, timeout=30)
            pids, kills = client.run(os.getpid), []

            async def then_kill(workers, data, *args, pids=pids, victim=victim, kills=kills,
                                **kwargs):  # fmt: skip
                # In the scheduler, once the parameters reached a worker.
                sent = await real(workers, data, *args, **kwargs)
                if not kills and any("parameters" in str(key) for key in data):
                    holder = next(iter(sent[1].values()))[0]
                    others = [w for w in pids if w != holder]
                    kills.append(holder if victim.startswith("the") else others[0])
                    os.kill(pids[kills[0]], signal.SIGKILL)
                return sent

            monkeypatch.setattr(distributed.scheduler, "scatter_to_workers", then_kill)
            start = time.perf_counter()
            fits.append(xpnet.MLPRegressor(**kw).fit(_blocks(X, 100), _blocks(y, 100)))
            assert kills and time.perf_counter() - start < 60, victim
            monkeypatch.setattr(distributed.scheduler, "scatter_to_workers", real)
    for est in fits:
        for got, want in zip(est.weights_, undisturbed.weights_, strict=True):
            np.testing.assert_array_equal(got.compute(), want.compute())


@pytest.mark.slow
def test_a_client_closed_mid_fit_is_a_clear_error():
    # It was "Missing dependency" or FutureCancelledError, by when the close came.
    import dask

    X, y = _data(N=400)
    with _own_cluster() as cluster:
        client = distributed.Client(cluster, set_as_default=False)
        closer = threading.Timer(0.1, client.close)  # while a step computes, most likely

        def close_soon(losses, scores):
            if not closer.is_alive() and not closer.finished.is_set():
                closer.start()

        est = xpnet.MLPRegressor(**KW, max_iter=10**4)
        with dask.config.set(scheduler=client):
            with pytest.raises(ValueError, match="Dask client the fit computes with was closed"):
                est.fit(_blocks(X, 100), _blocks(y, 100), callback=close_soon)
        closer.join()
        assert not hasattr(est, "weights_")


def test_unknown_chunk_sizes_are_a_clear_error():
    X, y = _data(N=200)
    X_d, y_d = _blocks(X, 50), _blocks(y, 50)
    keep = X_d[:, 0] > -10  # every row, but Dask cannot know how many
    with pytest.raises(ValueError, match=r"X has unknown dimensions, shape \(nan, 12\)"):
        xpnet.MLPRegressor(**KW, max_iter=2).fit(X_d[keep], y_d[keep])
    with pytest.raises(ValueError, match=r"y has unknown dimensions"):
        xpnet.MLPRegressor(**KW, max_iter=2).fit(X_d, y_d[keep])
    est = xpnet.MLPRegressor(**KW, max_iter=2).fit(X_d, y_d)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        est.predict(X_d[keep])
    X_known = X_d[keep]
    X_known.compute_chunk_sizes()
    assert est.predict(X_known).shape == (200,)
