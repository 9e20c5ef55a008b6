#!/usr/bin/env python
"""Benchmark one full-batch gradient descent epoch of xpnet against its floor and its peers.

What is measured
----------------
Two problems, each in float32 and float64 (sigmoid hidden layer, identity output, squared
error, one gradient step over all N samples per epoch):

* S — N 1797, 64→64→10 (scikit-learn's digits);
* M — N 60000, 784→256→10 (random data of MNIST's shape, fixed seed).

For each, these implementations run in one process, in interleaved rounds (every round
runs each implementation once, in a rotating order, so that the machine's noise falls on
all of them alike; each timing starts after a pause of ``SETTLE_S``, once the thread pools
of the implementation before it have stopped spinning):

* **floor** — exactly the matrix products of a step and nothing else: per layer W·A
  (forward), Wᵀ·Δ (backward, not for the first layer) and Δ·Aᵀ (gradient), written with
  the backend's ``matmul(..., out=...)`` into preallocated arrays laid out as xpnet lays
  them out (samples are columns; A⁽⁰⁾ = Xᵀ is a transposed view of the C-contiguous X).
  No implementation can be faster than this with the same BLAS.
* **xpnet** — ``xpnet.MLPRegressor(...).fit(X, Y)`` with ``max_iter=k``, divided by k.
* **numpy by hand** — the same equations in NumPy, tuned by hand: whole batch, every
  array allocated once and written through ``out=``, bias gradients as products with a
  ones vector.  It steps outside the Array API, so it shows the least any NumPy step
  costs here beyond the floor (``--backend numpy`` and ``torch``).
* **scikit-learn** — ``MLPRegressor(solver="sgd", batch_size=N, momentum=0, alpha=0)``,
  ``fit`` with ``max_iter=k``, divided by k.
* **torch by hand** — the same equations with PyTorch tensors under ``no_grad``;
  **torch autograd** — ``linear`` layers, ``loss.backward()`` and a hand-written update;
  both on the CPU (``--backend numpy/torch``) or CUDA (``--backend cupy``), with
  ``torch.set_num_threads`` set to this machine's cores.
* a **reference floor** in the other library (PyTorch's with NumPy, NumPy's with PyTorch,
  PyTorch CUDA's with CuPy), to show how much of a gap between peers is their BLAS.
* with ``--backend torch``, xpnet with ``engine="jit"`` too (each step compiled by
  ``torch.compile``); with ``--backend cupy``, xpnet on CuPy with ``engine="jit"`` (the
  fused kernels of ``xpnet.engines.fused``), and xpnet on PyTorch CUDA eager and with
  ``engine="jit"`` (the compiled step, blocks of 16 epochs captured as CUDA graphs).
* with ``--backend jax``, on JAX's default device: the **floor** is JAX's own, the
  step's matrix products compiled, one call per epoch as the other floors take them;
  a reference row runs them as one compiled loop over the k epochs, products and
  nothing else (see ``_bench_impls.JaxFloor``); **xpnet** runs with ``engine="jit"`` (blocks of 16
  epochs, each one compiled program) and, beside it, with ``engine="eager"``; **jax by
  hand** is the same equations in ``jax.numpy``, compiled as one loop.  JAX runs with
  float64 enabled and matrix products in full precision, as xpnet's tests run it.

k is chosen per implementation so that one timing lasts about ``--target-seconds``
(at least 2 epochs on M).  ``fit`` validates X and draws initial weights once per call;
that fixed cost (one reduction over X) is spread over the k epochs and is part of the
estimators' numbers; the floor and the torch loops have none.  Once k is chosen, each
implementation runs k epochs once untimed, so that a compiled one has compiled for them.

How to read the table
---------------------
``ms / epoch`` is the median over the rounds (min–max beside it).  ``× floor`` is the
median over the rounds of this row's time over the floor's in the same round: 1.00 would
be pure matrix products, and the rest is overhead (elementwise passes, temporaries,
allocation, Python).  Pairing within rounds matters on a shared machine: it has slow
spells of several seconds (the floor of S taking 0.32 ms instead of 0.22), and a ratio
of medians taken over different rounds can put one row's median inside such a spell and
another's outside.  ``xpnet ÷ this`` is xpnet's time over this row's, paired the same
way: below 1 xpnet is faster.  ``memory`` is the peak that
training adds on top of X and Y, as a multiple of their size, measured in a separate
process per implementation (see ``_bench_impls.measure_memory``; ``traced`` counts NumPy
buffers with tracemalloc, ``rss`` is the resident high-water mark, ``device`` the GPU
allocator's peak).  The JSON also holds every timing and the ratios of the medians.

Under load (``--contention K``)
-------------------------------
K busy processes, each a spin loop in pure Python (``--contention-kind python``) or over
a NumPy array (``numpy``), pinned to no core, are started before the first timing and
killed and reaped at the end, also on Ctrl-C, SIGTERM or an error; each also ends by
itself when this script's process is gone (PR_SET_PDEATHSIG on Linux, and a check of its
parent) or after ``BUSY_LIFETIME_S``.  Every timing is then taken twice, back to back:
on the idle machine and under that load, the order alternating from one timing to the
next.  Between loaded timings the busy processes are stopped (SIGSTOP) and later
continued (SIGCONT), which takes effect at once and costs nothing, rather than started
anew.  Interleaving, rather than all idle rounds first, pairs each loaded timing with an
idle one a moment apart: this machine's slow spells and other users' load then fall on
both alike, and ``loaded ÷ idle`` is the median over the rounds of that pair's ratio.
k is calibrated under load as well, and a loaded timing of an implementation that
loops over epochs itself ends after ``LOADED_BUDGET`` × ``--target-seconds``, so that one
whose epochs take 300× longer in some rounds (OpenBLAS's floor of S) does not take
minutes per timing; an estimator's fixed cost per ``fit`` is then spread over fewer
epochs, a difference lost in the noise here.  The memory is measured idle.  By default the busy
processes share this script's session (``--contention-group same``), so the kernel
shares the cores among all the threads: a program that keeps two cores busy on an idle
two-core machine gets one core beside two busy processes, and takes 2× as long.  With
``--contention-group own`` each runs in a session of its own; where the kernel groups
by session (Linux's autogroup, reported in the JSON as ``sched_autogroup``) it shares
the cores among sessions first, so that this process gets 2/3 of a core beside two busy
processes, however many threads it runs: 3× for a program that used both cores.

The script only measures; it sets no environment variables for the process it runs in
(OPENBLAS_*, OMP_NUM_THREADS, ... are reported as found).

Examples::

    python scripts/bench.py                                  # S and M, float32 and float64
    python scripts/bench.py --problems M --dtypes float32 --rounds 7
    python scripts/bench.py --quick --no-memory              # a smoke run
    python scripts/bench.py --contention 2 --no-memory       # idle and beside 2 busy processes
    python scripts/bench.py --backend cupy --markdown gpu.md # on an NVIDIA GPU
    python scripts/bench.py --backend jax --no-memory        # compiled, on JAX's device
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_impls import (  # the helper module beside this script
    PROBLEMS,
    Impl,
    Problem,
    implementations,
    make_data,
    measure_memory,
    n_cores,
    setup_threads,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "bench-results" / "bench.json"

#: Pause before each timing.  A BLAS or OpenMP library keeps its worker threads spinning
#: for some milliseconds after a call; without the pause, they would take a core from
#: whichever implementation is timed next.  Measured here on S in float32, split over two
#: threads: a step took 0.67 ms when started 0–20 ms after the floor's OpenBLAS calls and
#: 0.52–0.53 ms when started 50, 100 or 400 ms after them.
SETTLE_S = 0.1

#: The goals issue 4 sets for xpnet (its time over the floor, paired within rounds; memory
#: over X + Y).
TARGETS = {"M": 1.10, "S": 1.5, "memory": 0.25}

#: The goals issue 9 sets for xpnet compiled on JAX, over JAX's compiled floor (no memory
#: goal: a compiled step takes the batch whole).
JAX_TARGETS = {"M": 1.10, "S": 1.30}


def targets_for(backend: str) -> dict[str, float]:
    """The goals xpnet's row is held to on ``backend``."""
    return JAX_TARGETS if backend == "jax" else TARGETS


#: The goal for xpnet beside one busy process per core: an epoch's time over its idle
#: time, paired within rounds (a fair share of two cores beside two busy processes is 2×).
CONTENTION_TARGET = 2.5

#: A busy process ends by itself after this many seconds, should nothing else end it.
BUSY_LIFETIME_S = 3 * 3600

#: Under load, a timing of an implementation that loops over epochs itself (not an
#: estimator's fit) ends once it has lasted this many times ``--target-seconds``: beside
#: busy processes OpenBLAS's floor of S ran 300× slower in some rounds than in others.
LOADED_BUDGET = 10

#: Implementations timed through an estimator's ``fit(max_iter=k)``.
ESTIMATORS = ("xpnet", "xpnet-torch", "xpnet-jit", "xpnet-torch-jit", "xpnet-eager", "sklearn")

#: Environment variables that change how the BLAS libraries run; reported, never set.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUPY_TF32",
    "NVIDIA_TF32_OVERRIDE",
)


# -- timing ----------------------------------------------------------------------------


def timed(run: Any, k: int) -> float:
    """Seconds that ``run(k)`` takes (``run`` waits for the device before returning)."""
    start = time.perf_counter()
    run(k)
    return time.perf_counter() - start


def timed_in_pieces(run: Any, k: int, budget_s: float) -> tuple[float, int]:
    """Seconds that up to k epochs of ``run`` take, and how many ran: in eight pieces,
    stopping after the piece that ends past ``budget_s``."""
    piece, done = max(1, k // 8), 0
    start = time.perf_counter()
    while done < k:
        n = min(piece, k - done)
        run(n)
        done += n
        if time.perf_counter() - start > budget_s:
            break
    return time.perf_counter() - start, done


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes on this machine have used since boot (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # cpu  user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    ticks = [int(v) for v in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """Measures how many cores *other* processes kept busy, on average, over the blocks
    timed with :meth:`measure`.

    Multithreaded BLAS on a machine whose cores are also taken by someone else slows down
    by large and erratic factors; a non-zero value warns that the block's ratios are
    suspect.  This script's busy processes (``--contention``) count as other processes.
    """

    def __init__(self) -> None:
        self._wall = self._other = 0.0
        self._known = True

    @contextmanager
    def measure(self) -> Iterator[None]:
        wall0, busy0, own0 = time.perf_counter(), _busy_cpu_seconds(), _own_cpu_seconds()
        yield
        busy1 = _busy_cpu_seconds()
        if busy0 is None or busy1 is None:
            self._known = False
            return
        self._wall += time.perf_counter() - wall0
        self._other += (busy1 - busy0) - (_own_cpu_seconds() - own0)

    @property
    def cores(self) -> float | None:
        if not self._known or self._wall == 0:
            return None
        return max(0.0, self._other / self._wall)


# -- busy processes (--contention) -------------------------------------------------------

#: A busy process: ``python -c BUSY_CODE KIND LIFETIME_S MARKER``.  It ignores Ctrl-C (the
#: bench ends it), asks the kernel to kill it when the bench's process ends (Linux), says
#: "ready" once started, and spins until killed, until its parent is gone or for at most
#: LIFETIME_S seconds.  ``numpy`` spins over a 1 MiB array (one thread: its environment
#: holds BLAS and OpenMP to one), ``python`` in the interpreter alone.
BUSY_CODE = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
kind, end, parent = sys.argv[1], time.monotonic() + float(sys.argv[2]), os.getppid()
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if kind == "numpy":
    import numpy as np
    a = np.full(1 << 17, 0.5)
    def work():
        for _ in range(50):
            np.multiply(a, 1.0000001, out=a)
else:
    def work():
        n = 0
        for i in range(20000):
            n += i
print("ready", flush=True)
while os.getppid() == parent and time.monotonic() < end:
    work()
"""

#: In every busy process's command line, for ``ps`` and for the smoke test.
BUSY_MARKER = "xpnet-bench-busy"


class BusyProcesses:
    """K busy processes, started stopped; :meth:`loaded` lets them run for a block.

    Use as a context manager: leaving it kills and reaps every one of them, however it
    is left.
    """

    def __init__(self, k: int, *, kind: str = "python", group: str = "same") -> None:
        self.k, self.kind, self.group = k, kind, group
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> BusyProcesses:
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        try:
            for _ in range(self.k):
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            BUSY_CODE,
                            self.kind,
                            str(BUSY_LIFETIME_S),
                            BUSY_MARKER,
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        env=env,
                        start_new_session=self.group == "own",
                    )
                )
            for proc in self.procs:
                if proc.stdout.readline().strip() != b"ready":
                    raise RuntimeError(f"busy process {proc.pid} failed to start")
            self._signal(signal.SIGSTOP)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def _signal(self, sig: int) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"busy process {proc.pid} ended early (exit {proc.returncode}; it lives "
                    f"at most {BUSY_LIFETIME_S} s)"
                )
            os.kill(proc.pid, sig)

    @contextmanager
    def loaded(self) -> Iterator[None]:
        """Let the busy processes run for the duration of the block."""
        self._signal(signal.SIGCONT)
        try:
            yield
        finally:
            self._signal(signal.SIGSTOP)

    def close(self) -> None:
        """Kill every busy process (stopped ones too) and reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit for the block, so that cleanups run (the busy
    processes would otherwise outlive a ``timeout`` or ``kill``'s default signal until
    the kernel ends them)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def calibrate(run: Any, target_s: float, min_epochs: int, *, compiles: bool = False) -> int:
    """Epochs per timing so that one timing lasts about ``target_s``; warms ``run`` up.

    A compiled implementation compiles anew for each new k: with ``compiles``, every k
    is run once untimed before it is timed.
    """
    run(1)
    k, estimates = 1, []
    while True:
        if compiles:
            run(k)
        t = timed(run, k)
        estimates.append(t / k)
        # Two timings at least: a single one may have met a burst of other load.
        if (t >= target_s / 4 and len(estimates) > 1) or k >= 1 << 20:
            break
        if t < target_s / 4:
            k *= 2
    k = max(min_epochs, round(target_s / min(estimates)))
    run(k)  # a compiled implementation compiles for the shapes of k epochs here
    return k


def time_problem(
    problem: Problem,
    dtype: str,
    impls: list[Impl],
    *,
    rounds: int,
    target_s: float,
    busy: BusyProcesses | None = None,
) -> list[dict[str, Any]]:
    """Time every implementation on one problem and dtype, in interleaved rounds.

    With ``busy``, each timing is taken idle and under its load, back to back, the order
    alternating.  Returns one result dict per implementation, with the seconds per epoch
    of each round (and under ``loaded``, those taken under load).
    """
    X, Y, source = make_data(problem, dtype)
    conditions = ("idle",) if busy is None else ("idle", "loaded")
    runs: dict[str, Any] = {}
    epochs: dict[str, dict[str, int]] = {c: {} for c in conditions}
    for impl in impls:
        runs[impl.key] = impl.build(impl.prepare(X, Y), problem, dtype)
        for condition in conditions:
            with busy.loaded() if condition == "loaded" else _nothing():
                epochs[condition][impl.key] = calibrate(
                    runs[impl.key], target_s, problem.min_epochs, compiles=impl.compiles
                )
    per_epoch: dict[str, dict[str, list[float]]] = {
        c: {impl.key: [] for impl in impls} for c in conditions
    }
    load = {c: OtherLoad() for c in conditions}
    n, started = 0, time.perf_counter()
    for r in range(rounds):
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        longest = (0.0, "")
        for impl in order:
            for condition in conditions if n % 2 == 0 else conditions[::-1]:
                k = epochs[condition][impl.key]
                with busy.loaded() if condition == "loaded" else _nothing():
                    time.sleep(SETTLE_S)
                    with load[condition].measure():
                        if condition == "loaded" and impl.key not in ESTIMATORS:
                            budget = LOADED_BUDGET * target_s
                            seconds, k = timed_in_pieces(runs[impl.key], k, budget)
                        else:
                            seconds = timed(runs[impl.key], k)
                per_epoch[condition][impl.key].append(seconds / k)
                longest = max(longest, (seconds, f"{impl.key} {condition}"))
            n += 1
        print(
            f"  round {r + 1}/{rounds}: {time.perf_counter() - started:.0f} s so far; "
            f"longest timing {longest[0]:.1f} s ({longest[1]})",
            file=sys.stderr,
            flush=True,
        )
    # What one call of an estimator's fit costs beyond its epochs: fit(max_iter=1) less
    # one epoch (validation, initial weights, set-up), spread over k epochs above.  Only
    # on small problems: on M it is lost in the noise of a single epoch.
    small = problem.N < 10000
    single: dict[str, list[float]] = {i.key: [] for i in impls if i.key in ESTIMATORS and small}
    for _ in range(3):
        for key in single:
            single[key].append(timed(runs[key], 1))
    del runs
    gc.collect()

    results = []
    for impl in impls:
        times = per_epoch["idle"][impl.key]
        results.append(
            {
                "problem": problem.name,
                "dtype": dtype,
                "N": problem.N,
                "layers": list(problem.layers),
                "data": source,
                "data_bytes": int(X.nbytes + Y.nbytes),
                "impl": impl.key,
                "label": impl.label,
                "role": impl.role,
                "lib": impl.lib,
                "epochs_per_timing": epochs["idle"][impl.key],
                "seconds_per_epoch": times,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
                "other_load_cores": load["idle"].cores,
                "fit_fixed_s": (
                    statistics.median(single[impl.key]) - statistics.median(times)
                    if impl.key in single
                    else None
                ),
            }
        )
    _add_ratios(results, per_epoch["idle"])
    if busy is not None:
        _add_loaded(results, per_epoch, epochs["loaded"], load["loaded"].cores)
    return results


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _add_ratios(results: list[dict[str, Any]], per_epoch: dict[str, list[float]]) -> None:
    """Ratios of medians to the floor and of xpnet to each row, and their paired versions
    (the median over rounds of the ratio within a round)."""
    by_role = {r["role"]: r for r in results}
    floor, xp = by_role.get("floor"), by_role.get("xpnet")
    for r in results:
        times = per_epoch[r["impl"]]
        r["ratio_to_floor"] = r["paired_ratio_to_floor"] = None
        r["xpnet_over_this"] = r["paired_xpnet_over_this"] = None
        if floor is not None:
            r["ratio_to_floor"] = r["median_s"] / floor["median_s"]
            r["paired_ratio_to_floor"] = _paired(times, per_epoch[floor["impl"]])
        if xp is not None:
            r["xpnet_over_this"] = xp["median_s"] / r["median_s"]
            r["paired_xpnet_over_this"] = _paired(per_epoch[xp["impl"]], times)


def _add_loaded(
    results: list[dict[str, Any]],
    per_epoch: dict[str, dict[str, list[float]]],
    epochs: dict[str, int],
    other_load_cores: float | None,
) -> None:
    """Each row's timings under load, and their ratios to the idle ones of the same round
    and to the floor's under load."""
    floor = next((r for r in results if r["role"] == "floor"), None)
    for r in results:
        idle, loaded = per_epoch["idle"][r["impl"]], per_epoch["loaded"][r["impl"]]
        over_idle = [b / a for a, b in zip(idle, loaded, strict=True)]
        r["loaded"] = {
            "epochs_per_timing": epochs[r["impl"]],
            "seconds_per_epoch": loaded,
            "median_s": statistics.median(loaded),
            "min_s": min(loaded),
            "max_s": max(loaded),
            "paired_over_idle": statistics.median(over_idle),
            "min_over_idle": min(over_idle),
            "max_over_idle": max(over_idle),
            "paired_ratio_to_floor": (
                None if floor is None else _paired(loaded, per_epoch["loaded"][floor["impl"]])
            ),
            "other_load_cores": other_load_cores,
        }


def _paired(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# -- memory ----------------------------------------------------------------------------


def memory_in_subprocess(impl: Impl, problem: Problem, dtype: str, backend: str) -> dict:
    """Run ``measure_memory`` for one implementation in a fresh interpreter.

    glibc's ``MALLOC_MMAP_THRESHOLD_`` is fixed at 64 KiB in the child only, so that every
    array is its own mapping and freeing it lowers the resident size at once.
    """
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--backend",
        backend,
        "--memory-child",
        impl.key,
        problem.name,
        dtype,
    ]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 600 s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


def memory_child(backend: str, key: str, problem: str, dtype: str) -> None:
    """The ``--memory-child`` entry point: measure, print one JSON line."""
    impl = next(i for i in implementations(backend) if i.key == key)
    print(json.dumps(measure_memory(impl, PROBLEMS[problem], dtype)))


# -- the machine -----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sched_autogroup() -> bool | None:
    """Whether Linux shares the cores among sessions before threads (None: unknown)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(backend: str) -> dict[str, Any]:
    """Processor, libraries and their versions, BLAS thread pools and relevant settings."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": n_cores(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backend": backend,
        "sched_autogroup": _sched_autogroup(),
        "versions": {"numpy": np.__version__},
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("OPENBLAS_") or k in THREAD_ENV
        },
    }
    for name in ("xpnet", "array_api_compat", "sklearn", "torch", "cupy"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except ImportError:
                continue
        info["versions"][name] = getattr(mod, "__version__", "?")
        if name == "xpnet":
            info["xpnet_imported_from"] = str(Path(mod.__file__).resolve().parent)
    head, dirty = (
        _git("log", "-1", "--format=%h", "--", "xpnet"),
        _git("status", "--porcelain", "xpnet"),
    )
    if head:
        info["xpnet_source"] = f"{head}{' + uncommitted changes' if dirty else ''}"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["threadpools"] = "threadpoolctl is not installed"
    else:
        keys = (
            "user_api",
            "internal_api",
            "version",
            "num_threads",
            "architecture",
            "threading_layer",
        )
        info["threadpools"] = [
            {**{k: p.get(k) for k in keys}, "file": Path(p.get("filepath", "")).name}
            for p in threadpool_info()
        ]
    torch = sys.modules.get("torch")
    if torch is not None:
        config = torch.__config__.show()
        blas = [
            part.split("=", 1)[1]
            for part in config.replace(",", "\n").split()
            if part.startswith("BLAS_INFO=")
        ]
        info["torch"] = {
            "threads": torch.get_num_threads(),
            "blas": blas[0] if blas else "?",
            "cuda": torch.cuda.is_available(),
        }
        if torch.cuda.is_available():
            info["torch"]["device"] = torch.cuda.get_device_name()
            info["torch"]["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        try:
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            info["gpu"] = (
                props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            )
            info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        except Exception as exc:
            info["gpu"] = f"unavailable ({type(exc).__name__})"
    return info


# -- output ----------------------------------------------------------------------------


def _ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _memory_cell(mem: dict[str, Any] | None) -> str:
    if not mem:
        return "—"
    if "error" in mem:
        return "error"
    x = mem.get("added_over_data")
    return "—" if x is None else f"{x:.2f} ({mem['method']})"


def target_lines(results: list[dict[str, Any]], targets: dict[str, float]) -> list[str]:
    """One line per problem and dtype: xpnet against its goals (``targets_for``)."""
    lines = []
    for r in results:
        if r["role"] != "xpnet" or r["problem"] not in targets:
            continue
        goal = targets[r["problem"]]
        speed = r["paired_ratio_to_floor"]
        met = "met" if speed is not None and speed <= goal else "not met"
        text = (
            f"{r['problem']} {r['dtype']}: xpnet {_ratio(speed)}× floor (goal ≤ {goal:.2f}: {met})"
        )
        mem = (r.get("memory") or {}).get("added_over_data")
        if mem is not None and "memory" in targets:
            met = "met" if mem <= targets["memory"] else "not met"
            text += f"; memory {mem:.2f}× (X+Y) (goal ≤ {targets['memory']:.2f}: {met})"
        if "loaded" in r:
            over = r["loaded"]["paired_over_idle"]
            met = "met" if over <= CONTENTION_TARGET else "not met"
            text += f"; loaded ÷ idle {over:.2f} (goal ≤ {CONTENTION_TARGET:.1f}: {met})"
        lines.append(f"- {text}")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: settings, the table, the goals and the machine."""
    m, cfg = report["machine"], report["config"]
    out = [f"# xpnet full-batch epoch benchmark — backend {cfg['backend']}", ""]
    out.append(
        f"{report['created']}; rounds {cfg['rounds']}; about {cfg['target_seconds']} s "
        "per timing; medians over interleaved rounds."
    )
    if report.get("interrupted"):
        out.append(f"**Incomplete**: {report['interrupted']}; the rows below are those done.")
    busy = cfg.get("contention")
    if busy:
        where = "in the bench's session" if busy["group"] == "same" else "each in its own session"
        autogroup = "on" if m.get("sched_autogroup") else "off or unknown"
        out.append(
            f"Under load: {busy['processes']} busy processes ({busy['kind']} spin loops, "
            f"{where}; Linux autogroup {autogroup}); each timing taken idle and loaded "
            "back to back."
        )
    out.append("")
    for name in cfg["problems"]:
        p = PROBLEMS[name]
        sizes = sorted(
            {(r["dtype"], r["data_bytes"]) for r in report["results"] if r["problem"] == name}
        )
        size = ", ".join(f"{b / 1e6:.3g} MB in {d}" for d, b in sizes)
        out.append(
            f"- **{name}**: {p.describe()}; {p.data}; learning rate {p.learning_rate}; "
            f"X + Y = {size}"
        )
    loaded_cols = bool(busy)
    head = "| problem | dtype | implementation | " + ("idle " if loaded_cols else "")
    head += "ms / epoch | min–max ms | epochs × rounds | × floor | xpnet ÷ this | "
    if loaded_cols:
        head += "loaded ms / epoch | loaded ÷ idle | min–max |"
    out += ["", head + " memory added ×(X+Y) |"]
    out.append("|---|---|---|" + "--:|" * (9 if loaded_cols else 6))
    for r in report["results"]:
        name = f"**{r['label']}**" if r["role"] == "xpnet" else r["label"]
        row = (
            f"| {r['problem']} | {r['dtype']} | {name} | {_ms(r['median_s'])} | "
            f"{_ms(r['min_s'])}–{_ms(r['max_s'])} | {r['epochs_per_timing']} × "
            f"{len(r['seconds_per_epoch'])} | {_ratio(r['paired_ratio_to_floor'])} | "
            f"{_ratio(r['paired_xpnet_over_this'])} | "
        )
        if loaded_cols:
            ld = r["loaded"]
            over = _ratio(ld["paired_over_idle"])
            row += (
                f"{_ms(ld['median_s'])} | {f'**{over}**' if r['role'] == 'xpnet' else over} | "
                f"{_ratio(ld['min_over_idle'])}–{_ratio(ld['max_over_idle'])} | "
            )
        out.append(row + f"{_memory_cell(r.get('memory'))} |")
    for s in report["skipped"]:
        out.append(
            f"| | | {s['label']} | skipped: {s['reason']} |" + " |" * (8 if loaded_cols else 5)
        )
    loads = {(r["problem"], r["dtype"]): r["other_load_cores"] for r in report["results"]}
    if any(v is not None for v in loads.values()):
        text = ", ".join(f"{p} {d} {v:.2f}" for (p, d), v in loads.items() if v is not None)
        during = "the idle timings" if busy else "the timings"
        out += ["", f"Cores kept busy by other processes during {during}: {text}."]
        if busy:
            loaded = {
                (r["problem"], r["dtype"]): r["loaded"]["other_load_cores"]
                for r in report["results"]
            }
            text = ", ".join(f"{p} {d} {v:.2f}" for (p, d), v in loaded.items() if v is not None)
            out.append(
                f"During the loaded timings, the {busy['processes']} busy processes "
                f"included: {text}."
            )
        if any(v is not None and v > 0.1 * m["cores"] for v in loads.values()):
            out.append(
                "**Warning:** other processes competed for the cores; multithreaded BLAS "
                "slows down erratically then, and these ratios are not reliable. Rerun on a "
                "quiet machine."
            )
    fixed = [
        f"{r['label']} {r['problem']} {r['dtype']} {_ms(r['fit_fixed_s'])} ms"
        for r in report["results"]
        if r.get("fit_fixed_s") is not None
    ]
    if fixed:
        out += [
            "",
            "Cost of one `fit` call beyond its epochs (fit(max_iter=1) − one epoch; "
            f"included above, spread over the k epochs of a timing): {'; '.join(fixed)}.",
        ]
    goals = target_lines(report["results"], report["targets"])
    if goals:
        out += ["", "Goals:", *goals]
    out += [
        "",
        "Machine:",
        f"- CPU: {m['cpu']}, {m['cores']} cores usable "
        f"({m['logical_cpus']} logical); {m['platform']}; Python {m['python']}",
    ]
    if "gpu" in m or "device" in m.get("torch", {}):
        out.append(f"- GPU: {m.get('gpu') or m['torch'].get('device')}")
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out.append(f"- versions: {versions}")
    if "xpnet_source" in m:
        out.append(f"- xpnet source: {m['xpnet_source']}")
    if isinstance(m.get("threadpools"), list):
        for p in m["threadpools"]:
            arch = f", {p['architecture']}" if p.get("architecture") else ""
            out.append(
                f"- thread pool: {p['internal_api']} {p['version'] or ''} ({p['file']}"
                f"{arch}), {p['num_threads']} threads"
            )
    if "torch" in m:
        t = m["torch"]
        out.append(f"- torch: {t['threads']} threads, BLAS {t['blas']}")
    env = ", ".join(f"{k}={v}" for k, v in m["env"].items()) or "none set"
    out.append(f"- BLAS environment (as found, not changed): {env}")
    if "OPENBLAS_CORETYPE" in m["env"]:
        out.append(
            f"  - OPENBLAS_CORETYPE={m['env']['OPENBLAS_CORETYPE']} makes OpenBLAS use "
            "that kernel set instead of detecting this processor; NumPy's and the "
            "floor's numbers depend on it."
        )
    out += [
        "",
        "× floor: this row's time over the backend's floor (the step's matrix products "
        "alone) within each round, the median over the rounds. xpnet ÷ this: likewise "
        "xpnet's time over this row's; below 1, xpnet is faster. (The ratios of the medians "
        "are in the JSON; a slow spell of the machine that covers some rows' rounds and not "
        "others' skews them.) Memory: peak added "
        "by building and training on top of X and Y, in its own process (traced = "
        "tracemalloc, rss = resident high-water mark, device = GPU allocator).",
    ]
    if busy:
        out[-1] += (
            " Loaded ÷ idle: a row's time under load over its idle time taken just before "
            "or after, the median over the rounds, and its least and greatest; × floor and "
            "xpnet ÷ this are the idle ones (the JSON has the loaded × floor)."
        )
    return "\n".join(out) + "\n"


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time xpnet's full-batch epoch against the matrix-product floor and peers.",
    )
    parser.add_argument("--problems", default="S,M", help="comma-separated, from S,M")
    parser.add_argument("--dtypes", default="float32,float64", help="float32 and/or float64")
    parser.add_argument(
        "--backend",
        default="numpy",
        choices=("numpy", "torch", "cupy", "jax"),
        help="the array library xpnet trains on (default numpy)",
    )
    parser.add_argument(
        "--impls",
        default=None,
        help="comma-separated subset of floor,xpnet,numpy-hand,sklearn,torch-hand,"
        "torch-autograd,floor-torch,floor-numpy,xpnet-torch; with --backend torch or cupy "
        "also xpnet-jit (on CuPy: the fused kernels), with cupy xpnet-torch-jit (CUDA "
        "graphs), with jax xpnet-eager,jax-hand,floor-loop (default: all)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default: S 15, M 5)"
    )
    parser.add_argument(
        "--target-seconds",
        type=float,
        default=None,
        help="about how long one timing lasts (default 0.3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 rounds of short timings"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--contention",
        type=int,
        default=0,
        metavar="K",
        help="also time every implementation beside K busy processes (one per core: the "
        "number of cores), each timing idle and loaded back to back",
    )
    parser.add_argument(
        "--contention-kind",
        default="python",
        choices=("python", "numpy"),
        help="what the busy processes spin on (default python)",
    )
    parser.add_argument(
        "--contention-group",
        default="same",
        choices=("same", "own"),
        help="run the busy processes in this script's session (default), or each in a "
        "session of its own (which Linux's autogroup schedules as a group)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the results (default {DEFAULT_JSON})",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("IMPL", "PROBLEM", "DTYPE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    args.problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for p in args.problems:
        if p not in PROBLEMS:
            parser.error(f"unknown problem {p!r}; choose from {sorted(PROBLEMS)}")
    for d in args.dtypes:
        if d not in ("float32", "float64"):
            parser.error(f"unknown dtype {d!r}; choose float32 or float64")
    if args.contention < 0:
        parser.error(f"--contention must be >= 0, got {args.contention}")
    if args.target_seconds is None:
        args.target_seconds = 0.05 if args.quick else 0.3
    return args


def run_timings(
    args: argparse.Namespace, impls: list[Impl], busy: BusyProcesses | None,
    results: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Time every problem and dtype asked for (and measure memory, idle), adding each
    problem and dtype's rows to ``results`` as soon as they are done."""
    for name in args.problems:
        problem = PROBLEMS[name]
        rounds = args.rounds or (
            min(problem.rounds, 3 if name == "S" else 2) if args.quick else problem.rounds
        )
        for dtype in args.dtypes:
            print(f"timing {name} {dtype}: {rounds} rounds ...", file=sys.stderr, flush=True)
            rows = time_problem(
                problem, dtype, impls, rounds=rounds, target_s=args.target_seconds, busy=busy
            )
            if not args.no_memory:
                print(f"memory {name} {dtype} ...", file=sys.stderr, flush=True)
                for impl, row in zip(impls, rows, strict=True):
                    if not impl.compiled:  # a compiler's own memory would count
                        row["memory"] = memory_in_subprocess(impl, problem, dtype, args.backend)
            results += rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.backend, *args.memory_child)
        return 0

    try:  # a benchmark without xpnet's rows would measure nothing of xpnet: no table
        import xpnet  # noqa: F401
    except ImportError as exc:
        print(
            f"bench.py: xpnet is not importable ({exc}): install it (pip install .) or "
            f"put the repository on the path (PYTHONPATH={REPO})",
            file=sys.stderr,
        )
        return 2
    setup_threads()
    impls, skipped = [], []
    wanted = None if args.impls is None else {k.strip() for k in args.impls.split(",")}
    for impl in implementations(args.backend):
        if wanted is not None and impl.key not in wanted:
            continue
        reason = impl.missing()
        if reason is None:
            impls.append(impl)
        else:
            skipped.append({"impl": impl.key, "label": impl.label, "reason": reason})
            print(f"skipping {impl.label}: {reason}", file=sys.stderr)
    if not impls:
        print("nothing to run", file=sys.stderr)
        return 2

    started = time.perf_counter()
    busy = None
    if args.contention:
        busy = BusyProcesses(
            args.contention, kind=args.contention_kind, group=args.contention_group
        )
    # What is done when a SIGTERM (a `timeout`) ends the run is still written, marked as
    # such: on a machine lent for minutes, part of a table beats none.
    results: list[dict[str, Any]] = []
    interrupted = None
    try:
        with _sigterm_as_exit(), busy or _nothing():
            if busy is not None:
                print(
                    f"started {busy.k} busy processes (stopped between loaded timings): pids "
                    + " ".join(map(str, busy.pids)),
                    file=sys.stderr,
                    flush=True,
                )
            run_timings(args, impls, busy, results)
    except SystemExit as exit_:
        if exit_.code != 128 + signal.SIGTERM:
            raise
        interrupted = f"ended by SIGTERM after {time.perf_counter() - started:.0f} s"
        print(f"{interrupted}: writing the rows done so far", file=sys.stderr, flush=True)
    if busy is not None:
        print(f"killed and reaped the busy processes {busy.pids}", file=sys.stderr, flush=True)

    report = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
        "config": {
            "backend": args.backend,
            "problems": args.problems,
            "dtypes": args.dtypes,
            "rounds": args.rounds or ("quick" if args.quick else "default"),
            "target_seconds": args.target_seconds,
            "memory": not args.no_memory,
            "contention": busy
            and {
                "processes": busy.k,
                "kind": busy.kind,
                "group": busy.group,
                "pids": busy.pids,
                "order": "each timing idle and loaded back to back, alternating which first",
                "goal_loaded_over_idle": CONTENTION_TARGET,
            },
        },
        "machine": machine_info(args.backend),
        "targets": targets_for(args.backend),
        "results": results,
        "skipped": skipped,
        "elapsed_s": time.perf_counter() - started,
        "interrupted": interrupted,
    }
    markdown = render_markdown(report)
    print(markdown)
    print(write_report(report, markdown, args.json, args.markdown), file=sys.stderr)
    return 0 if interrupted is None else 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
