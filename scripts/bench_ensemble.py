#!/usr/bin/env python
"""Time an ensemble over seeds against its members fitted one by one.

On scikit-learn's digits (standardized; a 64→32→10 ``MLPClassifier``, Adam in
mini-batches, a fixed number of epochs), each round times, in turn:

* **separate** — the K members fitted one after another, each ``MLPClassifier(...,
  random_state=k).fit(X, y)``;
* **stacked** — ``SeedEnsembleClassifier(estimator, n_estimators=K).fit(X, y)``: the same
  K fits as stacks, each member in its own batch order;
* **shared** — the same with ``shared_order=True``: one batch order for all members, each
  batch gathered once.

It prints each round and the ratios separate ÷ stacked, separate ÷ shared and stacked ÷
shared, paired within rounds: their medians and ranges (above 1, the second is faster).

Usage::

    python scripts/bench_ensemble.py                 # K = 16, batches of 64, 3 rounds
    python scripts/bench_ensemble.py --K 8 --epochs 40 --rounds 5 --json /tmp/e.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=16, help="members (default 16)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fit (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.K, args.batch, args.epochs, args.rounds) < 1:
        parser.error("--K, --batch, --epochs and --rounds must be at least 1")
    from sklearn.datasets import load_digits

    import xpnet

    warnings.simplefilter("ignore", xpnet.ConvergenceWarning)  # fixed epochs by design
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    base = xpnet.MLPClassifier(hidden_layer_sizes=(32,), batch_size=args.batch,
                               max_iter=args.epochs, n_iter_no_change=np.inf)  # fmt: skip

    def separate() -> None:
        for k in range(args.K):
            xpnet.MLPClassifier(**{**base.get_params(), "random_state": k}).fit(X, y)

    def ensemble(shared: bool) -> None:
        xpnet.SeedEnsembleClassifier(base, n_estimators=args.K, random_state=0,
                                     shared_order=shared).fit(X, y)  # fmt: skip

    runs = {"separate": separate, "stacked": lambda: ensemble(False),
            "shared": lambda: ensemble(True)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        names = list(runs) if r % 2 == 0 else list(reversed(runs))  # alternate the order
        for name in names:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
        print(f"round {r}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in runs))
    ratios = {}
    for a, b in (("separate", "stacked"), ("separate", "shared"), ("stacked", "shared")):
        each = [x / z for x, z in zip(times[a], times[b], strict=True)]
        ratios[f"{a}/{b}"] = each
        print(f"{a} ÷ {b}: {statistics.median(each):.2f} ({min(each):.2f}–{max(each):.2f})")
    if args.json is not None:
        report = {"args": vars(args) | {"json": str(args.json)}, "times_s": times,
                  "ratios": ratios}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
