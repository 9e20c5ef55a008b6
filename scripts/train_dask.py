#!/usr/bin/env python
"""Train xpnet out of core on a Dask array larger than its workers' memory.

What is measured
----------------
X is never held whole anywhere: each of its blocks of rows is drawn, inside the task
that needs it, from a NumPy generator seeded with (``--seed``, the block's index), and
drawn again at every pass, as data read block by block from storage would be.  The
targets come from a fixed random "teacher" network (features → 16 → 1, tanh, plus 1%
noise), so that the fit means something; y (one number per sample, 1/features of X) is
computed once and kept on the workers.  By default X is 3 GiB of float32 (12,582,912
samples × 64 features) in 24 blocks of 128 MiB, on a LocalCluster of 2 worker
processes × 1 thread with ``memory_limit="1GiB"`` each: X is three times what the
workers may hold together.

One sigmoid hidden layer (``--hidden``), identity output, squared error, plain gradient
descent (μ = 0.1), one full-batch step per epoch.  Three ways of running it:

* **xpnet** — ``xpnet.MLPRegressor.partial_fit(X, y)`` on the Dask X, one call per
  epoch, each call timed (one pass over X per call: y is already computed).  xpnet runs
  its core once per block and sums the blocks' gradients in a tree.
* **plain Dask** — the same step written directly with ``dask.array``: Z = X·W₁ᵀ + b₁,
  A = σ(Z), O = A·W₂ᵀ + b₂, R = O − y, Δ₁ = (R·W₂) ⊙ A ⊙ (1 − A), and one
  ``dask.compute`` of ½ΣR², RᵀA, ΣR, Δ₁ᵀX and ΣΔ₁, then the update on the client in
  NumPy.  That is the floor xpnet is compared to: what a user writing the step by hand
  with Dask would get.
* **NumPy in memory** — ``MLPRegressor.partial_fit`` on the first ``--numpy-samples``
  samples (by default two blocks' worth) held as one NumPy array in this process; its
  number is samples per second, since it sees fewer samples per epoch.

and, for reference, **draw X only**: a pass that draws every block of X and sums it,
what the data source alone costs per epoch.

The Dask timings include drawing X's blocks (standing in for reading them), for xpnet and
plain Dask alike; NumPy's do not.  The first epoch of each is not counted (it warms the
workers, their imports and caches); ``s / epoch`` is the median of the others and
``samples / s`` is N over it.  ``xpnet ÷ plain Dask`` is the ratio of those medians: 1.0
would mean xpnet's structure (the per-block core, the tree of sums, the checks) costs
nothing over the hand-written step.

Worker memory
-------------
A background thread asks every worker, every ``SAMPLE_S`` seconds, for its process's
resident memory (psutil), its status (``paused`` when over the pause threshold) and its
spill counters (``dask_worker.data.cumulative_metrics`` of the SpillBuffer: bytes
written to disk, since the worker started); the worker's own ``SystemMonitor`` history
(``dask_worker.monitor``, every 0.5 s) is read as well, which catches peaks between two
samples.  Reported per method: the peak resident memory of each worker; and for the run,
the bytes spilled to disk, whether a worker was ever seen paused (or logged pausing),
and whether one was restarted (a new worker address appeared, or a nanny logged a
restart).  The client's own peak resident memory, before the NumPy run, shows that X
did not pass through it either.

Examples::

    python scripts/train_dask.py                              # 3 GiB of X, 2 × 1 GiB workers
    python scripts/train_dask.py --quick --json quick.json    # a smoke run of seconds
    python scripts/train_dask.py --samples 2000000 --blocks 8 --epochs 4 --hidden 32
    python scripts/train_dask.py --dtype float64 --memory-limit 2GiB
    python scripts/train_dask.py --scheduler tcp://10.0.0.5:8786 --samples 100000000 --blocks 800
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # xpnet from this checkout, when not installed

from xpnet.cli._argtypes import _positive_int  # noqa: E402  (the command's own check of counts)

#: The default problem: 3 GiB of float32 X in 24 blocks of 128 MiB.
FEATURES = 64
BLOCKS = 24
SAMPLES = BLOCKS * (128 * 2**20 // (FEATURES * 4))
#: Seconds between two samples of the workers' memory.
SAMPLE_S = 0.25
LEARNING_RATE = 0.1
TEACHER_HIDDEN = 16
NOISE = 0.01


# -- the data: each block drawn inside its task ----------------------------------------


def block_rows(samples: int, blocks: int) -> tuple[int, ...]:
    """``samples`` split into ``blocks`` sizes that differ by at most one."""
    return tuple(samples // blocks + (i < samples % blocks) for i in range(blocks))


def draw_block(
    block_id: Any = None, *, seed: int, rows: tuple[int, ...], features: int, kind: str
) -> np.ndarray:
    """Block ``block_id[0]`` of X (of dtype ``kind``), from its own generator: the same
    on every draw."""
    i = block_id[0]
    rng = np.random.default_rng([seed, i])
    return rng.standard_normal((rows[i], features), dtype=np.dtype(kind))


def teacher(features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed network the targets come from: V (16, features) and v (16,)."""
    rng = np.random.default_rng([seed, 2**31])
    V = rng.standard_normal((TEACHER_HIDDEN, features)) / math.sqrt(features)
    v = rng.standard_normal(TEACHER_HIDDEN) / math.sqrt(TEACHER_HIDDEN)
    return V, v


def teach(
    X: np.ndarray, block_id: Any = None, *, V: np.ndarray, v: np.ndarray, seed: int
) -> np.ndarray:
    """The targets of one block of X: the teacher's output plus a little noise."""
    noise = np.random.default_rng([seed, block_id[0], 1]).standard_normal(X.shape[0])
    y = np.tanh(X @ V.T.astype(X.dtype)) @ v.astype(X.dtype)
    return (y + NOISE * noise).astype(X.dtype)


def dask_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """X, lazy (never computed whole), and y, computed and kept on the workers."""
    import dask.array as da
    from distributed import wait

    rows = block_rows(args.samples, args.blocks)
    X = da.map_blocks(
        draw_block,
        chunks=(rows, (args.features,)),
        dtype=args.dtype,
        meta=np.empty((0, 0), dtype=args.dtype),
        token="draw-X",
        seed=args.seed,
        rows=rows,
        features=args.features,
        kind=args.dtype,
    )
    V, v = teacher(args.features, args.seed)
    y = X.map_blocks(
        teach,
        drop_axis=1,
        dtype=args.dtype,
        meta=np.empty(0, dtype=args.dtype),
        V=V,
        v=v,
        seed=args.seed,
    )
    y = y.persist()
    wait(y)
    return X, y


def host_data(args: argparse.Namespace, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` samples of the same X and y, in this process."""
    rows = block_rows(args.samples, args.blocks)
    V, v = teacher(args.features, args.seed)
    X_parts, y_parts, have, i = [], [], 0, 0
    while have < n:
        X_i = draw_block((i, 0), seed=args.seed, rows=rows, features=args.features, kind=args.dtype)
        X_parts.append(X_i)
        y_parts.append(teach(X_i, (i, 0), V=V, v=v, seed=args.seed))
        have, i = have + rows[i], i + 1
    return np.concatenate(X_parts)[:n], np.concatenate(y_parts)[:n]


# -- the three methods -------------------------------------------------------------------


def run_xpnet(X: Any, y: Any, args: argparse.Namespace) -> dict[str, Any]:
    """xpnet's full-batch epochs, one ``partial_fit`` each, each timed."""
    from xpnet import MLPRegressor

    est = MLPRegressor(
        hidden_layer_sizes=(args.hidden,),
        solver="sgd",
        activation="sigmoid",
        learning_rate=LEARNING_RATE,
        random_state=args.seed,
    )
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        est.partial_fit(X, y)
        times.append(time.perf_counter() - start)
    return {"seconds_per_epoch": times, "losses": [float(v) for v in est.loss_curve_]}


def run_plain_dask(X: Any, y: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The same step with dask.array by hand: the floor xpnet's Dask path is compared to."""
    import dask
    import dask.array as da

    dtype = np.dtype(args.dtype)
    N, n_in, H = X.shape[0], X.shape[1], args.hidden
    rng = np.random.default_rng(args.seed)
    r1, r2 = math.sqrt(2.0 / (n_in + H)), math.sqrt(6.0 / (H + 1))  # xpnet's Glorot ranges
    # xpnet's initial weights: the same draws from the same generator.
    W1, b1 = rng.uniform(-r1, r1, (H, n_in)), rng.uniform(-r1, r1, H)
    W2, b2 = rng.uniform(-r2, r2, (1, H)), rng.uniform(-r2, r2, 1)
    W1, b1, W2, b2 = (a.astype(dtype) for a in (W1, b1, W2, b2))
    times, losses = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        A = 1.0 / (1.0 + da.exp(-(X @ W1.T + b1)))  # (N, H)
        R = (A @ W2.T + b2)[:, 0] - y  # (N,)
        D1 = R[:, None] * W2 * A * (1.0 - A)  # (N, H)
        E, gW2, gb2, gW1, gb1 = dask.compute(
            0.5 * (R * R).sum(), R @ A, R.sum(), D1.T @ X, D1.sum(axis=0)
        )
        step = LEARNING_RATE / N
        W1, b1 = W1 - (step * gW1).astype(dtype), b1 - (step * gb1).astype(dtype)
        W2, b2 = W2 - (step * gW2[None, :]).astype(dtype), b2 - (step * gb2).astype(dtype)
        times.append(time.perf_counter() - start)
        losses.append(float(E) / N)
    return {"seconds_per_epoch": times, "losses": losses}


def run_draw_only(X: Any, y: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A pass that only draws X's blocks (and sums each): what the data source costs."""
    import dask

    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        dask.compute(X.sum(axis=0))
        times.append(time.perf_counter() - start)
    return {"seconds_per_epoch": times}


def run_numpy(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """xpnet on NumPy, on the first ``n`` samples held in memory."""
    X, y = host_data(args, n)
    return {**run_xpnet(X, y, args), "samples": n}


def summarise(result: dict[str, Any], samples: int) -> dict[str, Any]:
    """Median seconds per epoch after the first, and samples per second."""
    times = result["seconds_per_epoch"]
    counted = times[1:] or times
    median = statistics.median(counted)
    return {
        **result,
        "median_s": median,
        "samples_per_s": samples / median,
        "epochs_counted": len(counted),
    }


# -- the workers' memory -----------------------------------------------------------------


def probe(dask_worker: Any) -> dict[str, Any]:
    """What one worker says of itself (run there by ``client.run``)."""
    import psutil

    data = dask_worker.data
    metrics = getattr(data, "cumulative_metrics", {})  # a SpillBuffer's; a dict has none
    spilled = getattr(data, "spilled_total", None)
    history = dask_worker.monitor.quantities.get("memory") or [0]
    return {
        "rss": psutil.Process().memory_info().rss,
        "monitor_peak": max(history),
        "status": dask_worker.status.name,
        "disk_write_bytes": int(metrics.get(("disk-write", "bytes"), 0)),
        "spilled_now": int(spilled.disk) if spilled is not None else 0,
        "memory_limit": dask_worker.memory_manager.memory_limit,
    }


class WorkerWatch:
    """Samples every worker's memory and status in a background thread, per phase."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.phase = "setup"
        self.peaks: dict[str, dict[str, int]] = {}  # phase -> worker -> peak RSS
        self.first_workers = set(client.scheduler_info()["workers"])
        self.seen_workers = set(self.first_workers)
        self.paused_seen: set[str] = set()
        self.disk_write: dict[str, int] = {}  # worker -> most bytes written to disk
        self.spilled_by_phase: dict[str, int] = {}
        self.memory_limit: dict[str, int | None] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the last word, with each worker's monitor history

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        self.sample()
        spilled_before = sum(self.disk_write.values())
        self.phase = phase
        try:
            yield
        finally:
            self.sample()
            self.phase = "between"
            self.spilled_by_phase[phase] = sum(self.disk_write.values()) - spilled_before

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        try:
            answers = self.client.run(probe, on_error="return")
        except Exception as exc:  # the cluster is busy restarting a worker, or closing
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        peaks = self.peaks.setdefault(self.phase, {})
        for worker, a in answers.items():
            if isinstance(a, BaseException):
                continue
            self.seen_workers.add(worker)
            peaks[worker] = max(peaks.get(worker, 0), a["rss"])
            if a["status"] == "paused":
                self.paused_seen.add(worker)
            self.disk_write[worker] = max(
                self.disk_write.get(worker, 0), a["disk_write_bytes"], a["spilled_now"]
            )
            self.memory_limit[worker] = a["memory_limit"]
            peaks_all = self.peaks.setdefault("monitor (whole run)", {})
            peaks_all[worker] = max(peaks_all.get(worker, 0), a["monitor_peak"])

    def report(self) -> dict[str, Any]:
        logs = self._logs()
        paused_logged = sorted(w for w, text in logs["workers"].items() if "Pausing worker" in text)
        restart_lines = [
            line
            for text in logs["nannies"].values()
            for line in text.splitlines()
            if re.search(r"Restarting worker|was killed|exceeded.*memory", line)
        ]
        return {
            "peak_rss_bytes": self.peaks,
            "memory_limit_bytes": self.memory_limit,
            "spilled_to_disk_bytes": sum(self.disk_write.values()),
            "spilled_to_disk_bytes_per_worker": self.disk_write,
            "spilled_to_disk_bytes_by_phase": self.spilled_by_phase,
            "paused": bool(self.paused_seen or paused_logged),
            "paused_workers": sorted(self.paused_seen | set(paused_logged)),
            "restarted": bool(self.seen_workers - self.first_workers or restart_lines),
            "workers_at_start": len(self.first_workers),
            "workers_seen": len(self.seen_workers),
            "restart_log_lines": restart_lines[:20],
            "sampling_errors": self.errors[:20],
        }

    def _logs(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {"workers": {}, "nannies": {}}
        for kind, nanny in (("workers", False), ("nannies", True)):
            try:
                logs = self.client.get_worker_logs(nanny=nanny)
            except Exception:  # no nannies (workers started without one): nothing to read
                continue
            for worker, records in logs.items():
                if isinstance(records, list):
                    out[kind][worker] = "\n".join(msg for _, msg in records)
        return out


# -- the run ---------------------------------------------------------------------------


@contextmanager
def cluster_client(args: argparse.Namespace) -> Iterator[Any]:
    """A Client of ``--scheduler``, or of a LocalCluster started (and closed) here."""
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        try:
            client = Client(args.scheduler, timeout="10s")
            client.wait_for_workers(1, timeout=30)
        except Exception as exc:  # each way of failing to connect raises its own type
            problem = " ".join(str(exc).split()) or type(exc).__name__
            raise CommandError(f"--scheduler {args.scheduler!r}: {problem}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _bytes(n: float) -> str:
    from dask.utils import format_bytes

    return format_bytes(int(n))


def _attempt(name: str, failures: dict[str, str], run: Callable[[], dict[str, Any]]) -> Any:
    """``run()``, or None with its error kept: one method failing (a worker killed for
    memory) still leaves the others' figures."""
    try:
        return run()
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
        print(f"train_dask: {name} failed: {failures[name]}", file=sys.stderr)
        return None


class CommandError(Exception):
    """A bad option found late (an address that leads nowhere): told in one line."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CommandError as exc:
        print(f"train_dask: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Every measurement, printed and written to ``--json``; 1 if a method failed."""
    import dask
    import distributed

    import xpnet

    itemsize = np.dtype(args.dtype).itemsize
    x_bytes = args.samples * args.features * itemsize
    rows = block_rows(args.samples, args.blocks)
    numpy_samples = args.numpy_samples or min(args.samples, sum(rows[:2]))
    config = {
        "samples": args.samples,
        "features": args.features,
        "blocks": args.blocks,
        "block_rows": [min(rows), max(rows)],
        "block_bytes": max(rows) * args.features * itemsize,
        "x_bytes": x_bytes,
        "hidden": args.hidden,
        "epochs": args.epochs,
        "dtype": args.dtype,
        "learning_rate": LEARNING_RATE,
        "seed": args.seed,
        "numpy_samples": numpy_samples,
        "scheduler": args.scheduler or "LocalCluster",
        "quick": args.quick,
    }
    print(
        f"X: {args.samples:,} samples × {args.features} features, {args.dtype}, "
        f"{_bytes(x_bytes)} in {args.blocks} blocks of {_bytes(config['block_bytes'])}; "
        f"hidden {args.hidden}, {args.epochs} epochs",
        flush=True,
    )

    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    with cluster_client(args) as client:
        info = client.scheduler_info()["workers"]
        config["workers"] = len(info)
        config["threads"] = sum(w["nthreads"] for w in info.values())
        config["memory_limit_bytes"] = sorted(
            {w.get("memory_limit") for w in info.values()}, key=str
        )
        limits = ", ".join(_bytes(m) if m else "none" for m in config["memory_limit_bytes"])
        print(
            f"cluster: {config['workers']} workers, {config['threads']} threads, "
            f"memory limit {limits} each",
            flush=True,
        )
        with WorkerWatch(client) as watch:
            start = time.perf_counter()
            X, y = dask_data(args)
            config["setup_s"] = time.perf_counter() - start  # one pass: y from the teacher
            methods = (("xpnet", run_xpnet), ("plain Dask", run_plain_dask),
                       ("draw X only", run_draw_only))  # fmt: skip
            for name, method in methods:
                print(f"{name} ...", flush=True)
                with watch.during(name):
                    result = _attempt(name, failures, lambda m=method: m(X, y, args))
                if result is not None:
                    results[name] = summarise(result, args.samples)
        memory = watch.report()
    client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
        1 if sys.platform == "darwin" else 1024
    )
    print("NumPy in memory ...", flush=True)
    result = _attempt("NumPy in memory", failures, lambda: run_numpy(args, numpy_samples))
    if result is not None:
        results["NumPy in memory"] = summarise(result, numpy_samples)

    ratio = same_step = None
    if "xpnet" in results and "plain Dask" in results:
        ratio = results["xpnet"]["median_s"] / results["plain Dask"]["median_s"]
        # Both start from the same weights (xpnet's Glorot draws, redone by hand), so
        # their losses agree to rounding if the hand-written step is xpnet's step.
        a, b = np.array(results["xpnet"]["losses"]), np.array(results["plain Dask"]["losses"])
        same_step = float(np.max(np.abs(a - b) / np.abs(b)))
    report = {
        "config": config,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {
                "xpnet": xpnet.__version__,
                "numpy": np.__version__,
                "dask": dask.__version__,
                "distributed": distributed.__version__,
            },
        },
        "results": results,
        "xpnet_over_plain_dask": ratio,
        "losses_max_relative_difference": same_step,
        "workers": memory,
        "client_peak_rss_bytes": client_peak,
        "failures": failures,
    }
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written to {args.json}")
    return 1 if failures else 0


def print_report(report: dict[str, Any]) -> None:
    results, memory = report["results"], report["workers"]
    print(
        f"\n{'method':<16} {'s / epoch':>10} {'samples / s':>12} {'peak worker RSS':>16}"
        f" {'spilled':>11}"
    )
    for name, r in results.items():
        peaks = memory["peak_rss_bytes"].get(name, {})
        peak = _bytes(max(peaks.values())) if peaks else "-"
        spilled = memory["spilled_to_disk_bytes_by_phase"].get(name)
        spilled = "-" if spilled is None else _bytes(spilled)
        note = f"  (in this process, {r['samples']:,} samples)" if "samples" in r else ""
        print(
            f"{name:<16} {r['median_s']:>10.3g} {r['samples_per_s']:>12.3g} {peak:>16}"
            f" {spilled:>11}{note}"
        )
    if report["xpnet_over_plain_dask"] is not None:
        print(
            f"xpnet ÷ plain Dask: {report['xpnet_over_plain_dask']:.2f} (their losses "
            f"differ by {report['losses_max_relative_difference']:.1e} at most, relative)"
        )
    monitor = memory["peak_rss_bytes"].get("monitor (whole run)", {})
    print(
        f"peak worker RSS over the run (workers' own monitor): "
        f"{_bytes(max(monitor.values())) if monitor else '-'}; "
        f"spilled to disk: {memory['spilled_to_disk_bytes']:,} bytes; "
        f"paused: {'yes' if memory['paused'] else 'no'}; "
        f"restarted: {'yes' if memory['restarted'] else 'no'}; "
        f"client peak RSS: {_bytes(report['client_peak_rss_bytes'])}"
    )
    for name, error in report["failures"].items():
        print(f"{name} failed: {error}")


# -- the command line --------------------------------------------------------------------


def _memory(text: str) -> str:
    from dask.utils import parse_bytes

    try:
        if parse_bytes(text) <= 0:
            raise ValueError
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"expected an amount of memory like 1GiB or 512MB, got {text!r}"
        ) from None
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, naming the option and the bad value; --help tells the rest.
        self.exit(2, f"train_dask: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        description="Train xpnet out of core on a Dask array larger than its workers' "
        "memory; compare with the same step in plain Dask and with NumPy in memory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    add = parser.add_argument
    add(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler (default: a LocalCluster started here)",
    )
    add("--samples", type=_positive_int, help=f"N (default: {SAMPLES:,})")
    add("--features", type=_positive_int, help=f"features per sample (default: {FEATURES})")
    add("--blocks", type=_positive_int, help=f"blocks of rows of X (default: {BLOCKS})")
    add("--hidden", type=_positive_int, help="hidden units (default: 32)")
    add(
        "--epochs", type=_positive_int, help="epochs per method, the first not counted (default: 3)"
    )
    add("--dtype", choices=("float32", "float64"), default="float32")
    add(
        "--workers",
        type=_positive_int,
        default=2,
        help="LocalCluster worker processes, 1 thread each (default: 2)",
    )
    add(
        "--memory-limit",
        type=_memory,
        default="1GiB",
        metavar="BYTES",
        help="each LocalCluster worker's memory limit (default: 1GiB)",
    )
    add(
        "--numpy-samples",
        type=_positive_int,
        metavar="N",
        help="samples of the NumPy run in memory (default: two blocks' worth)",
    )
    add("--seed", type=int, default=0, help="seeds X's blocks, the teacher and the weights")
    add("--json", type=Path, metavar="PATH", help="write every figure to PATH")
    add(
        "--quick",
        action="store_true",
        help="a tiny problem (4,096 × 16 in 4 blocks, hidden 8, 3 epochs): a smoke run",
    )
    args = parser.parse_args(argv)
    quick = {"samples": 4096, "features": 16, "blocks": 4, "hidden": 8, "epochs": 3}
    full = {"samples": SAMPLES, "features": FEATURES, "blocks": BLOCKS, "hidden": 32, "epochs": 3}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.blocks > args.samples:
        parser.error(f"--blocks {args.blocks} is more than --samples {args.samples}")
    if args.epochs < 2:
        print("train_dask: note: with --epochs 1 the first epoch is timed too", file=sys.stderr)
    return args


if __name__ == "__main__":
    sys.exit(main())
