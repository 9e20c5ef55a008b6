#!/usr/bin/env python
"""Time K networks fitted one by one against the same K fitted as one stack.

What is measured
----------------
For each problem of ``scripts/bench.py`` (``S``: digits, 64→64→10; ``M``: random data of
MNIST's shape, 784→256→10; a sigmoid hidden layer, an identity output, the squared
error), each batch size (``full``: one step per epoch, ``solver="sgd"``; a number:
mini-batches of that size, ``solver="adam"``) and each K, K estimators
(``xpnet.MLPRegressor``) are built that differ in their learning rate (spread
geometrically: the problem's rate ÷ 5 up to it for full-batch descent, 1e-3 up to 1e-2
for Adam) and their ``random_state`` (k), each trained on its own random 80% of the rows
(as a fold of cross-validation; drawn with a fixed seed per problem and K).  Every fit
runs exactly ``--epochs`` epochs: ``max_iter=epochs`` and ``n_iter_no_change=numpy.inf``,
so no stopping rule ends one early.

Each round times, in turn (the order alternating from one round to the next, each timing
after a pause of ``bench.SETTLE_S``):

* **separate** — the K fits one after another, each ``est.fit(X[rows_k], y[rows_k])``,
  its rows taken from X (``xp.take``, on X's device) inside the timing, as
  cross-validation takes a fold;
* **stacked** — one ``xpnet.estimators._stack.fit_stack(estimators, X, y, rows)``, which
  takes the rows itself and trains the K networks as one computation.

Both are reported as time per model-epoch (the timing ÷ (K × epochs)), and their ratio
**separate ÷ stacked** is taken within each round: the table gives its median over the
rounds and its least and greatest (above 1, the stack is faster).  Both include what a
fit costs once (validating X, drawing the initial weights, reading the losses back),
which K separate fits pay K times and a stack once: with few epochs per fit that is a
large share.  With ``--max-separate m`` below K, only m of the K separate fits (spread
over the learning rates) are timed, and their time per model-epoch stands for all K:
the fits are independent and of the same size, and at K = 256 on a GPU timing all of
them would take minutes.

Before the first round of each problem and batch size, one separate fit and one stack of
two run one epoch, untimed (on a model's number of rows, or a few mini-batches), so that
kernels compiled on first use (CuPy's) and the libraries' lazy set-up are not timed.
(On JAX, whose operations compile for each new shape, the first stack of each K still
takes seconds more: the first round's outlier.)  Once per (problem, batch, K), outside the
timings, the first round's stacked fits are compared with its separate fits: the largest
absolute difference of their ``weights_`` and ``biases_`` is reported (the stack should
give each estimator exactly what its own fit gives: below 1e-9 in float64; the exit
status is 1 where it does not).

A cell whose stack would take more than half the free memory to hold its gathered rows
(every epoch's batches are gathered at once, up to ``READBACK_EVERY`` epochs of them), or
whose time, extrapolated from the previous K of the same problem and batch size, would
exceed ``--cell-budget-s``, is skipped and listed as such.

Defaults: ``--epochs`` 20 on S and 1 on M (an epoch of M takes 0.5 s full-batch and 3 s in
mini-batches of 64 per model on a 2-core machine); K 1, 4, 16, 64 on S and 1, 4 on M on
the CPU (a stack of 64 on M would gather 19 GB of rows), 1, 16, 256 on a GPU.  The
default run (NumPy, S and M, full and 64) takes about three minutes on 2 cores.

Usage::

    python scripts/bench_stacks.py                                 # NumPy, S and M
    python scripts/bench_stacks.py --backend torch --problems S --K 1,16 --rounds 2
    python scripts/bench_stacks.py --backend cupy --problems S     # K 1, 16, 256
    python scripts/bench_stacks.py --backend dask --batch full     # X in 4 blocks
    python scripts/bench_stacks.py --json /tmp/s.json --markdown /tmp/s.md

On a GPU (``cupy``, ``torch-cuda``) X is moved to the device before the timings, and every
timing waits for the device before it stops.  A SIGTERM (``timeout``) or
``--time-limit-s`` ends the run with the rows done so far written, marked incomplete
(exit status 143, or 124 for the time limit).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (scripts/bench.py: machine_info, SETTLE_S)
from _bench_impls import (  # noqa: E402
    PROBLEMS,
    Problem,
    make_data,
    setup_threads,
    to_lib,
    write_report,
)

REPO = HERE.parent
DEFAULT_JSON = REPO / "bench-results" / "bench_stacks.json"

BACKENDS = ("numpy", "torch", "jax", "cupy", "torch-cuda", "strict", "dask")
GPU_BACKENDS = ("cupy", "torch-cuda")
#: Dask's X: this many blocks of rows.  Dask stacks train in full batch only.
DASK_BLOCKS = 4

#: Epochs per fit when ``--epochs`` is not given.
DEFAULT_EPOCHS = {"S": 20, "M": 1}

#: K when ``--K`` is not given: on the CPU per problem, on a GPU for all.
DEFAULT_K_CPU = {"S": [1, 4, 16, 64], "M": [1, 4]}
DEFAULT_K_GPU = [1, 16, 256]

#: The share of every model's rows it trains on.
TRAIN_SHARE = 0.8

#: Mini-batch learning rates (Adam) are spread over this range.
ADAM_RATES = (1e-3, 1e-2)

#: A stacked fit's weights should equal its separate fit's to within this (per dtype).
EQUAL_WITHIN = {"float64": 1e-9, "float32": 1e-4}

#: A stack may hold its gathered rows in at most this share of the free memory.
MEMORY_SHARE = 0.5


class Stop(Exception):
    """The run was ended (SIGTERM or ``--time-limit-s``); ``status`` is the exit status."""

    def __init__(self, why: str, status: int) -> None:
        super().__init__(why)
        self.why, self.status = why, status


@contextmanager
def stoppable(limit_s: float | None) -> Iterator[None]:
    """Turn SIGTERM, and SIGALRM after ``limit_s`` seconds, into :class:`Stop`."""
    started = time.perf_counter()

    def on_term(signum: int, frame: object) -> None:
        raise Stop(f"ended by SIGTERM after {time.perf_counter() - started:.0f} s", 143)

    def on_alarm(signum: int, frame: object) -> None:
        raise Stop(f"stopped at --time-limit-s {limit_s:g}", 124)

    previous = signal.signal(signal.SIGTERM, on_term)
    previous_alarm = signal.signal(signal.SIGALRM, on_alarm)
    if limit_s:
        signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGALRM, previous_alarm)


# -- the backend ---------------------------------------------------------------------------


class Backend:
    """Where X lives, how to take rows of it, and how to wait for its device."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lib = {"torch": "torch-cpu", "strict": "array_api_strict"}.get(name, name)

    def missing(self) -> str | None:
        if self.name == "dask":
            try:
                import dask.array  # noqa: F401
            except ImportError as exc:
                return f"dask is not installed ({exc})"
            return None
        if self.name == "strict":
            try:
                import array_api_strict  # noqa: F401
            except ImportError as exc:
                return f"array_api_strict is not installed ({exc})"
            return None
        from _bench_impls import missing

        return missing(self.lib)

    def put(self, X: np.ndarray) -> Any:
        """X on the backend (a GPU's memory for cupy and torch-cuda; on Dask, in
        ``DASK_BLOCKS`` blocks of rows, computed by Dask's default scheduler)."""
        if self.name == "dask":
            import dask.array as da

            return da.from_array(X, chunks=(-(-X.shape[0] // DASK_BLOCKS), -1))
        if self.name == "strict":
            import array_api_strict

            return array_api_strict.asarray(X)
        if self.name == "torch-cuda":
            import torch

            return torch.as_tensor(X, device="cuda")
        return to_lib(X, self.lib)

    def indices(self, X: Any, rows: np.ndarray) -> Any:
        """``rows`` as an index array on X's device (on the host for Dask)."""
        import array_api_compat as aac

        if self.name == "dask":
            return rows
        xp = aac.array_namespace(X)
        return xp.asarray(rows, device=aac.device(X))

    def take(self, X: Any, index: Any) -> Any:
        import array_api_compat as aac

        if self.name == "dask":
            return X[index]  # a lazy selection, in the blocks the rows fall in
        return aac.array_namespace(X).take(X, index, axis=0)

    def synchronize(self, last: Any = None) -> None:
        """Wait for the device: CUDA's queue, or JAX's last result."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()
        elif self.name == "torch-cuda":
            import torch

            torch.cuda.synchronize()
        elif self.name == "jax" and last is not None:
            import jax

            jax.block_until_ready(last)

    def free_bytes(self) -> int | None:
        """The memory free for a stack's gathered rows: the GPU's, or the host's."""
        try:
            if self.name == "cupy":
                import cupy

                return int(cupy.cuda.runtime.memGetInfo()[0])
            if self.name == "torch-cuda":
                import torch

                return int(torch.cuda.mem_get_info()[0])
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except Exception:
            return None
        return None


def to_host(a: Any) -> np.ndarray:
    from xpnet._host import to_numpy

    return np.asarray(to_numpy(a), dtype=np.float64)


# -- one cell: a problem, a batch size and K -----------------------------------------------


def estimators(problem: Problem, batch: int | None, K: int, epochs: int, engine: str) -> list:
    """K unfitted estimators differing in learning rate and random_state."""
    import xpnet

    if batch is None:
        solver, rates = "sgd", problem.learning_rate * np.geomspace(0.2, 1.0, K)
    else:
        solver, rates = "adam", np.geomspace(*ADAM_RATES, K)
    return [
        xpnet.MLPRegressor(
            hidden_layer_sizes=problem.hidden,
            activation="sigmoid",
            output_activation="identity",
            loss="mse",
            solver=solver,
            learning_rate=float(rate),
            batch_size=batch,
            max_iter=epochs,
            n_iter_no_change=np.inf,
            random_state=k,
            engine=engine,
        )
        for k, rate in enumerate(rates)
    ]


def draw_rows(problem: Problem, K: int) -> list[np.ndarray]:
    """Each model's training rows: a random 80% of the N rows, sorted (a fixed seed)."""
    rng = np.random.default_rng([7, ord(problem.name), K])
    n = int(TRAIN_SHARE * problem.N)
    return [np.sort(rng.choice(problem.N, n, replace=False)) for _ in range(K)]


def timed_subset(K: int, m: int) -> list[int]:
    """The m of K separate fits that are timed, spread over the K learning rates."""
    if m >= K:
        return list(range(K))
    return sorted({int(i) for i in np.linspace(0, K - 1, m).round()})


def gathered_bytes(K: int, n_rows: int, problem: Problem, batch: int | None, epochs: int,
                   itemsize: int) -> int:  # fmt: skip
    """About what a stack holds of gathered rows at once: every model's rows (and
    targets) once for full batches, once per epoch of a read-back block for mini-batches."""
    from xpnet.training.loop import READBACK_EVERY

    width = problem.layers[0] + problem.layers[-1]
    if batch is None:
        return K * n_rows * width * itemsize
    padded = math.ceil(n_rows / batch) * batch
    return min(epochs, READBACK_EVERY) * K * padded * width * itemsize


def max_difference(separate: list, stacked: list) -> float:
    """The largest |Δ| between the fitted parameters of pairs of estimators."""
    worst = 0.0
    for a, b in zip(separate, stacked, strict=True):
        for p, q in zip([*a.weights_, *a.biases_], [*b.weights_, *b.biases_], strict=True):
            worst = max(worst, float(np.max(np.abs(to_host(p) - to_host(q)))))
    return worst


def time_cell(
    backend: Backend,
    X: Any,
    Y: np.ndarray,
    problem: Problem,
    batch: int | None,
    K: int,
    *,
    epochs: int,
    rounds: int,
    max_separate: int,
    engine: str,
    dtype: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Time K separate fits and one stack of K in ``rounds`` paired rounds."""
    from xpnet.estimators._stack import fit_stack

    rows = draw_rows(problem, K)
    subset = timed_subset(K, max_separate)
    index = {k: backend.indices(X, rows[k]) for k in subset}
    rates = [est.learning_rate for est in estimators(problem, batch, K, 1, engine)]
    sep_s: list[float] = []
    stk_s: list[float] = []
    first: dict[str, list] = {}

    def run_separate() -> list:
        ests = estimators(problem, batch, K, epochs, engine)
        mine = [ests[k] for k in subset]
        gc.collect()
        time.sleep(bench.SETTLE_S)
        start = time.perf_counter()
        for k, est in zip(subset, mine, strict=True):
            est.fit(backend.take(X, index[k]), Y[rows[k]])
        backend.synchronize(mine[-1].weights_)
        sep_s.append(time.perf_counter() - start)
        return mine

    def run_stacked() -> list:
        ests = estimators(problem, batch, K, epochs, engine)
        gc.collect()
        time.sleep(bench.SETTLE_S)
        start = time.perf_counter()
        fitted = fit_stack(ests, X, Y, rows)
        last = next((e.weights_ for e in fitted if not isinstance(e, Exception)), None)
        backend.synchronize(last)
        stk_s.append(time.perf_counter() - start)
        return fitted

    started = time.perf_counter()
    for r in range(rounds):
        order = (("separate", run_separate), ("stacked", run_stacked))
        for name, run in order if r % 2 == 0 else order[::-1]:
            fitted = run()
            if r == 0:
                first[name] = fitted
            del fitted
        log(
            f"    round {r + 1}/{rounds}: separate {sep_s[-1]:.2f} s ({len(subset)} fits), "
            f"stacked {stk_s[-1]:.2f} s ({time.perf_counter() - started:.0f} s so far)"
        )

    stacked = first["stacked"]
    errors = [f"{k}: {e}" for k, e in enumerate(stacked) if isinstance(e, Exception)]
    ok = [(s, stacked[k]) for s, k in zip(first["separate"], subset, strict=True)
          if not isinstance(stacked[k], Exception)]  # fmt: skip
    diff = max_difference(*zip(*ok, strict=True)) if ok else None
    n_iter = sorted({int(e.n_iter_) for e in stacked if not isinstance(e, Exception)})
    del first, stacked, ok
    gc.collect()

    sep_us = [s / (len(subset) * epochs) * 1e6 for s in sep_s]
    stk_us = [s / (K * epochs) * 1e6 for s in stk_s]
    ratios = [a / b for a, b in zip(sep_us, stk_us, strict=True)]
    return {
        "problem": problem.name,
        "batch": "full" if batch is None else batch,
        "solver": "sgd" if batch is None else "adam",
        "K": K,
        "epochs": epochs,
        "rounds": rounds,
        "rows_per_model": len(rows[0]),
        "learning_rates": [min(rates), max(rates)],
        "separate_timed": len(subset),
        "separate_s": sep_s,
        "stacked_s": stk_s,
        "separate_us_per_model_epoch": sep_us,
        "stacked_us_per_model_epoch": stk_us,
        "separate_us": statistics.median(sep_us),
        "separate_us_range": [min(sep_us), max(sep_us)],
        "stacked_us": statistics.median(stk_us),
        "stacked_us_range": [min(stk_us), max(stk_us)],
        "ratios": ratios,
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "max_abs_diff": diff,
        "equal": diff is not None and diff < EQUAL_WITHIN[dtype] and not errors,
        "n_iter": n_iter,
        "stack_errors": errors,
    }


def warm_up(backend: Backend, X: Any, Y: np.ndarray, problem: Problem, batch: int | None,
            engine: str) -> None:  # fmt: skip
    """One separate fit and a stack of two, one epoch, untimed: on as many rows as a model
    trains on for full batches (the arrays of the timed fits' shapes), and on four
    mini-batches and the last one's remainder otherwise."""
    from xpnet.estimators._stack import fit_stack

    n_rows = int(TRAIN_SHARE * problem.N)
    n = n_rows if batch is None else min(n_rows, 4 * batch + n_rows % batch)
    rows = [np.arange(n), np.arange(n)[::-1].copy()]
    ests = estimators(problem, batch, 2, 1, engine)
    ests[0].fit(backend.take(X, backend.indices(X, rows[0])), Y[rows[0]])
    fit_stack(estimators(problem, batch, 2, 1, engine), X, Y, rows)
    backend.synchronize()


def run_cells(args: argparse.Namespace, backend: Backend, results: list, skipped: list,
              log: Callable[[str], None]) -> None:  # fmt: skip
    """Every (problem, batch, K) asked for, each added to ``results`` once done."""
    for name in args.problems:
        problem = PROBLEMS[name]
        epochs = args.epochs or DEFAULT_EPOCHS[name]
        X_host, Y, source = make_data(problem, args.dtype)
        X = backend.put(X_host)
        backend.synchronize()
        itemsize = X_host.itemsize
        for batch in args.batches:
            Ks = args.K or (DEFAULT_K_GPU if backend.name in GPU_BACKENDS else DEFAULT_K_CPU[name])
            label = "full" if batch is None else batch
            log(f"{name} batch {label}: warming up")
            warm_up(backend, X, Y, problem, batch, args.engine)
            previous: dict[str, Any] | None = None
            for K in Ks:
                cell = {"problem": name, "batch": label, "K": K, "epochs": epochs}
                need = gathered_bytes(K, int(TRAIN_SHARE * problem.N), problem, batch, epochs,
                                      itemsize)  # fmt: skip
                free = backend.free_bytes()
                if free is not None and need > MEMORY_SHARE * free:
                    why = (f"the stack would gather {need / 1e9:.1f} GB of rows, over "
                           f"{MEMORY_SHARE:.0%} of the {free / 1e9:.1f} GB free")  # fmt: skip
                    skipped.append({**cell, "reason": why})
                    log(f"  K {K}: skipped: {why}")
                    continue
                if previous is not None and args.cell_budget_s:
                    m = min(K, args.max_separate)
                    guess = args.rounds * epochs * (
                        m * previous["separate_us"] + K * previous["stacked_us"]
                    ) * 1e-6  # fmt: skip
                    if guess > args.cell_budget_s:
                        why = (f"estimated {guess:.0f} s (from K {previous['K']}), over "
                               f"--cell-budget-s {args.cell_budget_s:g}")  # fmt: skip
                        skipped.append({**cell, "reason": why})
                        log(f"  K {K}: skipped: {why}")
                        continue
                log(f"  K {K}: {epochs} epochs per fit, {args.rounds} rounds")
                row = time_cell(
                    backend, X, Y, problem, batch, K, epochs=epochs, rounds=args.rounds,
                    max_separate=args.max_separate, engine=args.engine, dtype=args.dtype,
                    log=log,
                )  # fmt: skip
                row.update(N=problem.N, layers=list(problem.layers), data=source)
                results.append(row)
                previous = row
        del X
        gc.collect()


# -- output --------------------------------------------------------------------------------


def _us(x: float) -> str:
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def render_markdown(report: dict[str, Any]) -> str:
    cfg, m = report["config"], report["machine"]
    out = [f"# xpnet stacks: K separate fits ÷ one stacked fit — backend {cfg['backend']}", ""]
    out.append(
        f"{report['created']}; {cfg['dtype']}; engine {cfg['engine']}; {cfg['rounds']} paired "
        f"rounds; medians (min–max) over the rounds; each model trains on "
        f"{TRAIN_SHARE:.0%} of the rows."
    )
    if report.get("interrupted"):
        out.append(f"**Incomplete**: {report['interrupted']}; the rows below are those done.")
    out.append("")
    for name in cfg["problems"]:
        p = PROBLEMS[name]
        out.append(f"- **{name}**: {p.describe()}; {p.data}")
    out.append(
        '- full: `solver="sgd"`, one step per epoch, learning rates the problem\'s ÷ 5 up '
        f'to it; 64 (or another size): `solver="adam"`, learning rates {ADAM_RATES[0]:g} '
        f"to {ADAM_RATES[1]:g}; `random_state` k."
    )
    out += [
        "",
        "| problem | batch | K | epochs | separate µs / model-epoch | stacked µs / model-epoch "
        "| separate ÷ stacked | max abs Δ parameters |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        timed = "" if r["separate_timed"] == r["K"] else f" ({r['separate_timed']} timed)"
        lo, hi = r["ratio_range"]
        diff = "—" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        if not r["equal"]:
            diff += " **not equal**"
        out.append(
            f"| {r['problem']} | {r['batch']} | {r['K']} | {r['epochs']} | "
            f"{_us(r['separate_us'])} ({_us(r['separate_us_range'][0])}–"
            f"{_us(r['separate_us_range'][1])}){timed} | "
            f"{_us(r['stacked_us'])} ({_us(r['stacked_us_range'][0])}–"
            f"{_us(r['stacked_us_range'][1])}) | "
            f"**{r['ratio']:.2f}** ({lo:.2f}–{hi:.2f}) | {diff} |"
        )
    for s in report["skipped"]:
        out.append(f"| {s['problem']} | {s['batch']} | {s['K']} | {s['epochs']} | "
                   f"skipped: {s['reason']} | | | |")  # fmt: skip
    out += [
        "",
        "separate ÷ stacked: the K fits' time over the stack's in the same round (above 1 "
        "the stack is faster), the median over the rounds and the least and greatest. Both "
        "times include each fit's fixed cost (validation, initial weights, read-backs), "
        "which separate fits pay K times. The separate fits' times include taking their "
        "rows of X. Max abs Δ: the first round's stacked fits against its separate fits.",
        "",
        "Machine:",
        f"- CPU: {m['cpu']}, {m['cores']} cores usable ({m['logical_cpus']} logical); "
        f"{m['platform']}; Python {m['python']}",
    ]
    gpu = m.get("torch", {}).get("device") or m.get("gpu", "")
    if gpu and not gpu.startswith("unavailable"):
        out.append(f"- GPU: {gpu}")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    if "xpnet_source" in m:
        out.append(f"- xpnet source: {m['xpnet_source']}")
    if isinstance(m.get("threadpools"), list):
        for p in m["threadpools"]:
            name = f"{p['internal_api']} {p['version'] or ''}".strip()
            out.append(f"- thread pool: {name} ({p['file']}), {p['num_threads']} threads")
    if "torch" in m:
        out.append(f"- torch: {m['torch']['threads']} threads")
    return "\n".join(out) + "\n"


# -- main ----------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time K separate xpnet fits against one stacked fit of the K.",
    )
    parser.add_argument("--backend", default="numpy", choices=BACKENDS,
                        help="where X lives (default numpy)")  # fmt: skip
    parser.add_argument("--problems", default="S,M", help="comma-separated, from S,M")
    parser.add_argument(
        "--K", default=None,
        help="comma-separated stack sizes (default: S 1,4,16,64 and M 1,4 on the CPU; "
        "1,16,256 on cupy and torch-cuda)",
    )  # fmt: skip
    parser.add_argument(
        "--batch", default="full,64",
        help="comma-separated: full and/or mini-batch sizes (default full,64)",
    )  # fmt: skip
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fit (default: S 20, M 1)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--engine", default="auto", choices=("auto", "eager", "jit"),
                        help="every estimator's engine= (default auto; jit: CuPy's fused "
                             "kernels, stacks and separate fits alike)")  # fmt: skip
    parser.add_argument(
        "--max-separate", type=int, default=64,
        help="time at most this many of the K separate fits, spread over the learning "
        "rates (default 64)",
    )  # fmt: skip
    parser.add_argument(
        "--cell-budget-s", type=float, default=120.0,
        help="skip a K whose rounds would take longer, extrapolated from the previous K "
        "(default 120; 0: never skip)",
    )  # fmt: skip
    parser.add_argument("--time-limit-s", type=float, default=None,
                        help="stop after this many seconds, writing the rows done")  # fmt: skip
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where to write the results (default {DEFAULT_JSON})")  # fmt: skip
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    args.problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    for p in args.problems:
        if p not in PROBLEMS:
            parser.error(f"unknown problem {p!r}; choose from {sorted(PROBLEMS)}")
    try:
        args.K = None if args.K is None else _ints(args.K)
        args.batches = [None if b.strip() == "full" else int(b)
                        for b in args.batch.split(",") if b.strip()]  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    if args.K is not None and (not args.K or min(args.K) < 1):
        parser.error("--K needs sizes of at least 1")
    if any(b is not None and b < 1 for b in args.batches):
        parser.error("--batch sizes must be at least 1")
    if args.backend == "dask" and any(b is not None for b in args.batches):
        parser.error("Dask stacks train in full batch only: use --batch full")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.rounds < 1 or args.max_separate < 1:
        parser.error("--rounds and --max-separate must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import xpnet
    except ImportError as exc:
        print(f"bench_stacks.py: xpnet is not importable ({exc}); put the repository on "
              f"the path (PYTHONPATH={REPO})", file=sys.stderr)  # fmt: skip
        return 2
    backend = Backend(args.backend)
    reason = backend.missing()
    if reason is not None:
        print(f"bench_stacks.py: backend {args.backend} cannot run here: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    setup_threads()
    warnings.simplefilter("ignore", xpnet.ConvergenceWarning)  # fixed epochs by design

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    interrupted, status = None, 0
    started = time.perf_counter()
    try:
        with stoppable(args.time_limit_s):
            run_cells(args, backend, results, skipped, log)
    except Stop as stop:
        interrupted, status = stop.why, stop.status
        log(f"{interrupted}: writing the rows done so far")
    except KeyboardInterrupt:
        interrupted, status = "interrupted (Ctrl-C)", 130
        log(f"{interrupted}: writing the rows done so far")

    machine = bench.machine_info(args.backend)
    for name in ("jax", "array_api_strict"):
        mod = sys.modules.get(name)
        if mod is not None:
            machine["versions"][name] = getattr(mod, "__version__", "?")
    report = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
        "config": {
            "backend": args.backend,
            "problems": args.problems,
            "K": args.K or "default",
            "batch": ["full" if b is None else b for b in args.batches],
            "dtype": args.dtype,
            "epochs": args.epochs or {p: DEFAULT_EPOCHS[p] for p in args.problems},
            "rounds": args.rounds,
            "engine": args.engine,
            "max_separate": args.max_separate,
            "cell_budget_s": args.cell_budget_s,
            "time_limit_s": args.time_limit_s,
            "train_share": TRAIN_SHARE,
            "equal_within": EQUAL_WITHIN[args.dtype],
        },
        "machine": machine,
        "results": results,
        "skipped": skipped,
        "elapsed_s": time.perf_counter() - started,
        "interrupted": interrupted,
    }
    markdown = render_markdown(report)
    print(markdown)
    log(write_report(report, markdown, args.json, args.markdown))
    if status == 0 and not all(r["equal"] for r in results):
        log("some stacked fits differ from their separate fits (see max abs Δ)")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
