"""Kill a Dask worker at a random moment of each of many fits; count the fits that end right.

A ``LocalCluster`` of worker processes (each under a nanny, which starts a killed worker
again) trains the same network over and over, alternately with full-batch steps and with
mini-batches, on X and y persisted in the workers' memory, while another thread kills
one worker (SIGKILL: no handler runs) at a moment drawn uniformly over the fit's
undisturbed duration.  A fit whose kill came after it ended is run again, until ``--fits``
fits were disturbed.  A fit counts as right when it ends with exactly the weights of an
undisturbed fit of the same blocks, bit for bit.
Its distance to NumPy's fit of the same data is reported beside: full-batch training on
Dask sums the blocks' gradients in another order than NumPy's chunks, so it agrees to
rounding (1e-12), not to the bit.

Not part of the test suite (it takes minutes)::

    python scripts/soak_dask.py                 # 50 fits, 2 workers
    python scripts/soak_dask.py --fits 10 --seed 1
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
import time

import numpy as np

#: The two ways a fit runs on Dask: a graph per full-batch step, or a chain of tasks per
#: block of mini-batch epochs.
KINDS = {
    "full-batch": dict(max_iter=40),
    "mini-batches": dict(max_iter=48, batch_size=100),
}


def _data(N: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, n))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def _weights(est) -> list[np.ndarray]:
    return [np.asarray(p.compute() if hasattr(p, "compute") else p)
            for p in est.weights_ + est.biases_]  # fmt: skip


def _worker_pids(client, n: int, seconds: float = 60.0) -> dict[str, int] | None:
    """The process ids of the cluster's ``n`` workers, once all are back (None if they
    are not within ``seconds``): a worker just started again may still be going away."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.wait_for_workers(n, timeout=max(deadline - time.monotonic(), 1.0))
            pids = client.run(os.getpid)
        except Exception:  # a worker that died as it was asked
            time.sleep(0.5)
            continue
        if len(pids) == n:
            return pids
        time.sleep(0.5)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=50, help="fits to disturb (default: 50)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--blocks", type=int, default=4, help="blocks of samples (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kills (default: 0)")
    parser.add_argument(
        "--fit-timeout", type=float, default=600.0,
        help="seconds after which a fit that has not ended counts as hung: the script "
        "prints every thread's stack and exits with status 3 (default: 600)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import dask.array as da
    import distributed

    import xpnet

    X, y = _data(N=2000, n=16)
    rows = -(-len(X) // args.blocks)
    params = dict(hidden_layer_sizes=(32,), learning_rate=0.1, random_state=0)
    rng = np.random.default_rng(args.seed)

    def fit(kind: str):
        X_d = da.from_array(X, chunks=(rows, -1)).persist()
        y_d = da.from_array(y, chunks=rows).persist()
        return xpnet.MLPRegressor(**params, **KINDS[kind]).fit(X_d, y_d)

    # Each kill makes distributed log warnings and tracebacks by the dozen: this reports.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)

    def new_cluster():
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            dashboard_address=":0", worker_dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )  # fmt: skip
        # The default client, not dask.config.set(scheduler=client): a nanny starting a
        # killed worker again hands it Dask's configuration, where a Client cannot go.
        return cluster, distributed.Client(cluster)

    cluster, client = new_cluster()
    replaced = 0
    try:
        reference, on_numpy, seconds = {}, {}, {}
        for kind in KINDS:
            fit(kind)  # the cluster's first computations are slow: not timed
            took = []
            for _ in range(3):
                start = time.perf_counter()
                reference[kind] = _weights(fit(kind))
                took.append(time.perf_counter() - start)
            seconds[kind] = min(took)
            on_numpy[kind] = _weights(xpnet.MLPRegressor(**params, **KINDS[kind]).fit(X, y))
            print(f"{kind}: an undisturbed fit takes {seconds[kind]:.2f} s at best")

        right = landed = runs = 0
        worst = {kind: 0.0 for kind in KINDS}
        while landed < args.fits and runs < 3 * args.fits:
            kind = list(KINDS)[landed % len(KINDS)]
            runs += 1
            pids = _worker_pids(client, args.workers)
            if pids is None:  # a nanny did not bring its worker back: a new cluster
                client.close()
                cluster.close()
                cluster, client = new_cluster()
                replaced += 1
                pids = client.run(os.getpid)
            victim = sorted(pids)[int(rng.integers(len(pids)))]
            delay = float(rng.uniform(0.0, 0.9 * seconds[kind]))
            done, killed = threading.Event(), threading.Event()

            def kill(pid=pids[victim], delay=delay, done=done, killed=killed):
                if not done.wait(delay):
                    os.kill(pid, signal.SIGKILL)
                    killed.set()

            killer = threading.Thread(target=kill)
            faulthandler.dump_traceback_later(args.fit_timeout, exit=True)
            start = time.perf_counter()
            killer.start()
            try:
                got = _weights(fit(kind))
                error = None
            except Exception as exc:  # counted, and the soak goes on
                got, error = None, exc
            finally:
                done.set()
                killer.join()
                faulthandler.cancel_dump_traceback_later()
            took = time.perf_counter() - start
            if not killed.is_set():
                print(f"        {kind:12s} ended before the kill at {delay:5.2f} s: run again")
                continue
            landed += 1
            same = got is not None and all(
                np.array_equal(a, b) for a, b in zip(got, reference[kind], strict=True)
            )
            right += same
            if got is not None:
                diff = max(float(np.max(np.abs(a - b))) for a, b in
                           zip(got, on_numpy[kind], strict=True))  # fmt: skip
                worst[kind] = max(worst[kind], diff)
            status = "same bits" if same else f"DIFFERENT ({error!r})" if error else "DIFFERENT"
            print(f"fit {landed:2d} {kind:12s} worker killed at {delay:5.2f} s, the fit took "
                  f"{took:5.2f} s: {status}", flush=True)  # fmt: skip
    finally:
        client.close()
        cluster.close()

    print()
    print(f"{right}/{landed} fits with a worker killed mid-fit ended with the undisturbed Dask "
          f"fit's weights, bit for bit ({runs - landed} more ended before their kill)")  # fmt: skip
    for kind in KINDS:
        note = " (mini-batches are drawn within blocks: NumPy's differ)" * (kind != "full-batch")
        print(f"  {kind}: largest |Dask − NumPy| of a weight {worst[kind]:.2e}{note}")
    if replaced:
        print(f"  the cluster was replaced {replaced} time(s): a nanny did not bring its killed "
              "worker back within 60 s")  # fmt: skip
    return 0 if right == landed == args.fits else 1


if __name__ == "__main__":
    sys.exit(main())
