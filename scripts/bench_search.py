"""xpnet's GridSearchCV (fits as stacks) against scikit-learn's over the same estimator.

A grid of 16 candidates (4 learning rates × 4 penalties), 5 folds, on the digits
standardized: 80 fits of a 64→32→10 classifier, full batch (gradient descent) and in
mini-batches of 64 (Adam).  Each round times scikit-learn's ``GridSearchCV(n_jobs=-1)``
and xpnet's with ``n_jobs=1`` and ``n_jobs=-1``, in an order that alternates between
rounds, after the worker processes have started (neither pays for that), and checks
that every candidate's ``mean_test_score`` agrees within 1e-9 and that the best
candidate is the same.  Prints a Markdown table of scikit-learn's time ÷ xpnet's (above 1:
xpnet is faster), median and range over the rounds; ``--json`` keeps the rows.

    python scripts/bench_search.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn import model_selection as sk
from sklearn.datasets import load_digits

import xpnet
from xpnet.model_selection import GridSearchCV

GRID = {"learning_rate": [0.001, 0.003, 0.01, 0.03], "alpha": [0.0, 1e-4, 1e-3, 1e-2]}
SETTINGS = {
    "full batch": dict(solver="sgd", batch_size=None, max_iter=100),
    "mini-batch 64": dict(solver="adam", batch_size=64, max_iter=40),
}


def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9), y


def timed(search, X, y) -> tuple[float, object]:
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
    X, y = digits()
    Parallel(n_jobs=-1)(delayed(abs)(i) for i in range(8))  # the workers, started once
    rows = []
    for name, settings in SETTINGS.items():
        est = xpnet.MLPClassifier(hidden_layer_sizes=(32,), random_state=0, **settings)
        runs = {
            "scikit-learn n_jobs=-1": lambda est=est: sk.GridSearchCV(est, GRID, cv=5, n_jobs=-1),
            "xpnet n_jobs=1": lambda est=est: GridSearchCV(est, GRID, cv=5),
            "xpnet n_jobs=-1": lambda est=est: GridSearchCV(est, GRID, cv=5, n_jobs=-1),
        }
        times = {key: [] for key in runs}
        worst = 0.0
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            fitted = {}
            for key in order:
                seconds, fitted[key] = timed(runs[key](), X, y)
                times[key].append(seconds)
            theirs = fitted["scikit-learn n_jobs=-1"]
            for key in ("xpnet n_jobs=1", "xpnet n_jobs=-1"):
                ours = fitted[key]
                diff = np.max(np.abs(ours.cv_results_["mean_test_score"]
                                     - theirs.cv_results_["mean_test_score"]))  # fmt: skip
                worst = max(worst, float(diff))
                if diff > 1e-9 or ours.best_params_ != theirs.best_params_:
                    raise SystemExit(f"{name}, {key}: results differ from scikit-learn's by {diff}")
        base = times["scikit-learn n_jobs=-1"]
        for key in ("xpnet n_jobs=1", "xpnet n_jobs=-1"):
            ratios = [a / b for a, b in zip(base, times[key], strict=True)]
            rows.append({
                "grid": name, "xpnet": key, "scikit-learn s": statistics.median(base),
                "xpnet s": statistics.median(times[key]),
                "ratio median": statistics.median(ratios), "ratio min": min(ratios),
                "ratio max": max(ratios), "max |Δ mean_test_score|": worst,
            })  # fmt: skip
    print("| grid (16 candidates × 5 folds) | xpnet | scikit-learn (s) | xpnet (s) | "
          "scikit-learn ÷ xpnet, median (range) | max Δ mean_test_score |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['grid']} | {row['xpnet']} | {row['scikit-learn s']:.2f} | "
              f"{row['xpnet s']:.2f} | {row['ratio median']:.2f} ({row['ratio min']:.2f}–"
              f"{row['ratio max']:.2f}) | {row['max |Δ mean_test_score|']:.1e} |")  # fmt: skip
    if args.json is not None:
        machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "numpy": np.__version__, "xpnet": xpnet.__version__}  # fmt: skip
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
