"""xpnet's estimators built with no arguments against scikit-learn's, on its bundled data sets.

Each data set is split as the README's examples split digits (a quarter held out,
stratified for the classifiers, ``random_state=0``); both estimators sit behind a
``StandardScaler`` (and diabetes's target is scaled too, by ``TransformedTargetRegressor``),
with ``random_state=0`` and nothing else set, or only ``solver=`` with ``--solver``.  The
score is on the held-out quarter: accuracy, or R² for diabetes.  Fit times are medians
over ``--rounds`` rounds in which the two fits alternate, and the ratio is the median over
the rounds of xpnet's time over scikit-learn's in the same round.

Usage::

    python scripts/bench_defaults.py                  # the defaults
    python scripts/bench_defaults.py --solver lbfgs   # both with solver="lbfgs"
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from sklearn import datasets
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xpnet

#: The data sets: (loader, classification?).
DATASETS = {
    "digits": (datasets.load_digits, True),
    "breast_cancer": (datasets.load_breast_cancer, True),
    "wine": (datasets.load_wine, True),
    "iris": (datasets.load_iris, True),
    "diabetes": (datasets.load_diabetes, False),
}


def model(library: str, classify: bool, params: dict) -> object:
    """A pipeline around one library's estimator, built with ``params`` only."""
    if library == "xpnet":
        cls = xpnet.MLPClassifier if classify else xpnet.MLPRegressor
    else:
        cls = MLPClassifier if classify else MLPRegressor
    pipe = make_pipeline(StandardScaler(), cls(random_state=0, **params))
    return pipe if classify else TransformedTargetRegressor(pipe, transformer=StandardScaler())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--solver", help="set solver= on both (default: each library's default)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    params = {} if args.solver is None else {"solver": args.solver}
    warnings.simplefilter("ignore")  # both libraries warn when max_iter ends a fit

    header = f"fit time, xpnet ÷ scikit-learn (median, range over {args.rounds} rounds)"
    print(f"| data set | scikit-learn | xpnet | {header} | scikit-learn's fit | xpnet's fit |")
    print("|---|---|---|---|---|---|")
    for name, (load, classify) in DATASETS.items():
        X, y = load(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, random_state=0, stratify=y if classify else None
        )
        times: dict[str, list[float]] = {"sklearn": [], "xpnet": []}
        scores: dict[str, float] = {}
        for k in range(args.rounds):
            order = ["sklearn", "xpnet"] if k % 2 == 0 else ["xpnet", "sklearn"]
            for library in order:
                est = model(library, classify, params)
                start = time.perf_counter()
                est.fit(X_train, y_train)
                times[library].append(time.perf_counter() - start)
                scores[library] = est.score(X_test, y_test)
        ratios = [a / b for a, b in zip(times["xpnet"], times["sklearn"], strict=True)]
        what = "accuracy" if classify else "R²"
        print(
            f"| {name} ({what}) | {scores['sklearn']:.4f} | {scores['xpnet']:.4f} "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) "
            f"| {statistics.median(times['sklearn']) * 1e3:.0f} ms "
            f"| {statistics.median(times['xpnet']) * 1e3:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
