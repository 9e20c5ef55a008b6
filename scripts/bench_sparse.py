"""Memory and time of a fit on a large sparse X, against the size X would have dense.

X is a random CSR matrix of ``--rows`` × ``--features`` with ``--density`` of its entries
stored (about ``--rows`` × ``--features`` × ``--density`` values, at random places, normal
values), y a random target.  Each measurement runs in a fresh Python process, so that
one's peak does not hide another's:

- **X alone**: the process with X built and nothing else, for reference;
- **fit**: X built, then ``MLPRegressor(hidden_layer_sizes=(--hidden,), max_iter=--epochs)``
  fitted on it (full batch unless ``--batch-size``), then ``predict`` on all of X.

For each it reports the peak of the memory Python's allocators hand out while the fit
runs (``tracemalloc``, which NumPy and SciPy report their arrays to), measured from the
moment X is built; the process's peak resident memory (``getrusage``), which includes
the interpreter, the libraries and X itself; and the wall time per epoch.  Figures are
compared with the dense X (rows × features × the dtype's size) and with W⁽¹⁾.

Examples::

    python scripts/bench_sparse.py                      # 200 000 × 50 000, density 1e-4
    python scripts/bench_sparse.py --rows 20000 --features 5000 --epochs 2
    python scripts/bench_sparse.py --batch-size 4096 --json sparse.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _sparse_X(rows: int, features: int, density: float, dtype: str, seed: int = 0) -> Any:
    """A random CSR matrix: ``round(rows × features × density)`` entries drawn with
    replacement (a repeated place is stored once, its values summed)."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    nnz = round(rows * features * density)
    i = rng.integers(0, rows, nnz)
    j = rng.integers(0, features, nnz)
    values = rng.normal(size=nnz).astype(dtype)
    return sp.csr_array((values, (i, j)), shape=(rows, features))


def _measure(config: dict[str, Any]) -> dict[str, Any]:
    """One measurement, in this (fresh) process: see the module's docstring."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import xpnet

    X = _sparse_X(config["rows"], config["features"], config["density"], config["dtype"])
    y = np.random.default_rng(1).normal(size=X.shape[0]).astype(config["dtype"])
    stored = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    result: dict[str, Any] = {"nnz": int(X.nnz), "stored_bytes": int(stored)}
    if config["what"] == "fit":
        est = xpnet.MLPRegressor(
            hidden_layer_sizes=(config["hidden"],), max_iter=config["epochs"],
            batch_size=config["batch_size"], random_state=0,
        )  # fmt: skip
        tracemalloc.start()
        start = time.perf_counter()
        est.fit(X, y)
        fit_s = time.perf_counter() - start
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        start = time.perf_counter()
        est.predict(X)
        predict_s = time.perf_counter() - start
        _, predict_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result |= {
            "fit_peak_bytes": fit_peak,
            "predict_peak_bytes": predict_peak,
            "seconds_per_epoch": fit_s / config["epochs"],
            "predict_seconds": predict_s,
            "W1_bytes": int(est.weights_[0].nbytes),
            "final_loss": est.loss_curve_[-1],
        }
    result["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _run(config: dict[str, Any]) -> dict[str, Any]:
    """:func:`_measure` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"the measurement of {config['what']!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=50_000)
    p.add_argument("--density", type=float, default=1e-4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=None, help="default: full batch")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_measure(json.loads(args.child))))
        return {}

    names = ("rows", "features", "density", "hidden", "epochs", "batch_size", "dtype")
    config = {k: getattr(args, k) for k in names}
    alone = _run(config | {"what": "X alone"})
    fit = _run(config | {"what": "fit"})
    itemsize = 4 if args.dtype == "float32" else 8
    dense = args.rows * args.features * itemsize
    report = {"config": config, "dense_X_bytes": dense, "X_alone": alone, "fit": fit}
    batches = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    print(
        f"X: {args.rows:,} × {args.features:,}, {fit['nnz']:,} stored values "
        f"(density {args.density:g}), {args.dtype}; "
        f"{args.features:,}→{args.hidden}→1, {args.epochs} epochs, {batches}"
    )
    rows = [
        ("X dense would take", _mib(dense)),
        ("X as stored (CSR)", _mib(fit["stored_bytes"])),
        ("W⁽¹⁾", _mib(fit["W1_bytes"])),
        (
            "fit: peak allocated",
            f"{_mib(fit['fit_peak_bytes'])}  "
            f"({fit['fit_peak_bytes'] / dense:.2e} × dense X, "
            f"{fit['fit_peak_bytes'] / fit['W1_bytes']:.1f} × W⁽¹⁾)",
        ),
        ("predict: peak allocated", _mib(fit["predict_peak_bytes"])),
        ("process peak RSS, X alone", _mib(alone["max_rss_bytes"])),
        ("process peak RSS, fit", _mib(fit["max_rss_bytes"])),
        ("time per epoch", f"{fit['seconds_per_epoch']:.2f} s"),
        ("predict time", f"{fit['predict_seconds']:.2f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
