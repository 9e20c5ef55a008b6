"""Time an L-BFGS fit of xpnet against scikit-learn's ``solver="lbfgs"``, paired in rounds.

Both fit the network of ``scripts/bench.py``'s problems (``S``, ``M``: a sigmoid hidden
layer, an identity output, the squared error, no penalty) on the same data, for a fixed
number of L-BFGS iterations: ``tol=0`` and a ``max_iter`` per problem, so that neither
stops early (a fit that does stop early is reported as such).  Each round times one fit of
each, in alternating order, and takes their ratio, so that a spell of load on the machine
falls on both; the report gives the median over the rounds and their range, and each
library's time per evaluation of the loss (the two line searches may take different
numbers of them).

``bench.py`` times epochs against the floor of their matrix products; an L-BFGS fit has no
epochs, which is why it is timed here, whole.

Usage::

    python scripts/bench_lbfgs.py                                  # S and M, both dtypes
    python scripts/bench_lbfgs.py --problems S --dtypes float64 --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench_impls import PROBLEMS, make_data, n_cores  # noqa: E402

#: L-BFGS iterations per fit: enough that the fit dominates its setup.
ITERATIONS = {"S": 50, "M": 5}


@contextlib.contextmanager
def counting(owner: object, name: str):
    """Count the calls of ``owner.name`` (an evaluation of E and ∇E) while in the block."""
    calls = [0]
    method = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return method(*args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield calls
    finally:
        setattr(owner, name, method)


def fit_xpnet(X, Y, problem, iterations):
    """Seconds for one lbfgs fit, its iterations and its evaluations."""
    import xpnet
    from xpnet.engines.eager import Eager

    est = xpnet.MLPRegressor(
        solver="lbfgs", hidden_layer_sizes=problem.hidden, activation="sigmoid",
        max_iter=iterations, tol=0.0, random_state=0,
    )  # fmt: skip
    with counting(Eager, "loss_and_gradients") as calls:
        start = time.perf_counter()
        est.fit(X, Y)
        seconds = time.perf_counter() - start
    return seconds, est.n_iter_, calls[0]


def fit_sklearn(X, Y, problem, iterations):
    """Seconds for one lbfgs fit of scikit-learn, its iterations and its evaluations."""
    from sklearn.neural_network import MLPRegressor

    est = MLPRegressor(
        solver="lbfgs", hidden_layer_sizes=problem.hidden, activation="logistic",
        alpha=0.0, max_iter=iterations, tol=0.0, random_state=0,
    )  # fmt: skip
    with counting(est, "_loss_grad_lbfgs") as calls:
        start = time.perf_counter()
        est.fit(X, Y)
        seconds = time.perf_counter() - start
    return seconds, est.n_iter_, calls[0]


def fit_sklearn_one_thread(X, Y, problem, iterations):
    """As :func:`fit_sklearn`, with BLAS held to one thread (``threadpoolctl``): on a busy
    machine, OpenBLAS's spinning threads otherwise lose most of their time (see the
    README's "On a busy machine")."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return fit_sklearn(X, Y, problem, iterations)


FITS = {"xpnet": fit_xpnet, "sklearn": fit_sklearn, "sklearn-1-thread": fit_sklearn_one_thread}


def time_problem(problem, dtype, rounds, iterations):
    """Paired rounds of the fits: their times, ratios, iterations and evaluations."""
    X, Y, source = make_data(problem, dtype)
    fits = FITS
    for fit in fits.values():  # warm up: imports, thread pools, BLAS
        fit(X[:200], Y[:200], problem, 2)
    seconds = {name: [] for name in fits}
    per_evaluation = {name: [] for name in fits}
    counts = {}
    for r in range(rounds):
        order = list(fits) if r % 2 == 0 else list(reversed(fits))
        for name in order:
            s, n_iter, n_fun = fits[name](X, Y, problem, iterations)
            seconds[name].append(s)
            per_evaluation[name].append(s / n_fun)
            counts[name] = (n_iter, n_fun)
        times = ", ".join(f"{name} {seconds[name][-1]:.3f} s" for name in fits)
        print(f"  round {r + 1}: {times}", file=sys.stderr)

    def paired(values, name):
        """xpnet's value over ``name``'s, round by round."""
        return [a / b for a, b in zip(values["xpnet"], values[name], strict=True)]

    peers = [name for name in fits if name != "xpnet"]
    return {
        "problem": problem.name, "dtype": dtype, "N": problem.N, "layers": problem.layers,
        "data": source, "max_iter": iterations, "rounds": rounds,
        "seconds": seconds, "iterations_and_evaluations": counts,
        "median_s": {name: statistics.median(v) for name, v in seconds.items()},
        "xpnet_over": {name: statistics.median(paired(seconds, name)) for name in peers},
        "xpnet_over_range": {name: [min(paired(seconds, name)), max(paired(seconds, name))]
                             for name in peers},
        "per_evaluation_xpnet_over": {
            name: statistics.median(paired(per_evaluation, name)) for name in peers
        },
    }  # fmt: skip


def render(rows):
    peers = [name for name in FITS if name != "xpnet"]
    lines = [
        "| problem | dtype | iterations, evaluations | "
        + " | ".join(FITS)
        + " | "
        + " | ".join(f"xpnet ÷ {name} (per evaluation)" for name in peers)
        + " |",
        "|---|---|---|" + "--:|" * (len(FITS) + len(peers)),
    ]
    for r in rows:
        counts = "; ".join(
            f"{name} {n_iter}, {n_fun}"
            for name, (n_iter, n_fun) in r["iterations_and_evaluations"].items()
            if name != "sklearn-1-thread"
        )
        times = " | ".join(f"{r['median_s'][name]:.3f} s" for name in FITS)
        ratios = " | ".join(
            f"**{r['xpnet_over'][name]:.2f}×** ({r['xpnet_over_range'][name][0]:.2f}–"
            f"{r['xpnet_over_range'][name][1]:.2f}; {r['per_evaluation_xpnet_over'][name]:.2f}×)"
            for name in peers
        )
        lines.append(f"| {r['problem']} | {r['dtype']} | {counts} | {times} | {ratios} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", default="S,M")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--rounds", type=int, default=None, help="default: 7 for S, 3 for M")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"L-BFGS iterations per fit (default: {ITERATIONS})")  # fmt: skip
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)

    rows = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(failed to converge|lbfgs).*")
        for name in args.problems.split(","):
            problem = PROBLEMS[name]
            rounds = args.rounds or (7 if name == "S" else 3)
            iterations = args.iterations or ITERATIONS[name]
            for dtype in args.dtypes.split(","):
                print(f"timing {name} {dtype}", file=sys.stderr)
                rows.append(time_problem(problem, dtype, rounds, iterations))
    print(f"{n_cores()} cores; medians over the rounds, ratios paired round by round")
    print(render(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
