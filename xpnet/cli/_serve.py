"""``xpnet predict`` and ``xpnet evaluate``: a model saved by ``xpnet train --save`` (or a
checkpoint) loaded onto the chosen backend and served on the rows asked for."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Any

import numpy as np  # host-side: the rows to serve and the results on the host

from .._files import open_regular
from .._host import to_numpy
from ..estimators import MLPClassifier, load_with_metadata
from ..estimators._format import _write_atomic
from ._backends import device, namespace
from ._common import (
    CommandError,
    _backend,
    _check_dask_options,
    _fold_scaling,
    _metrics,
    _scheduler,
    _to_backend,
)
from ._data import check_same_data, load_data, split
from ._progress import table


def _check_serve_options(args: argparse.Namespace) -> None:
    """What ``predict`` and ``evaluate`` can check before a Dask cluster starts."""
    _check_dask_options(args)
    if not os.path.exists(args.model):
        raise CommandError(f"--model {args.model!r}: no such file")
    open_regular(args.model).close()  # a FIFO or a device: refused now, never waited on
    _backend(args.backend, args.device, "float32")  # the library and the device


def _serve(args: argparse.Namespace, *, need_target: bool):
    """The model on the chosen backend, the rows to serve it, and the training record.

    On Dask, runs inside :func:`_scheduler`, which sets the number of blocks.
    """
    xp = namespace(args.backend)
    dev = device(args.backend, xp, args.device)
    est, meta = load_with_metadata(args.model, xp=xp, device=dev)
    cli = meta.get("extra", {}).get("cli") or {}
    if "scaling" in cli:  # a checkpoint: trained on standardised features, not yet folded
        dtype = est.weights_[0].dtype
        _fold_scaling(est, **cli["scaling"], xp=xp, device=dev, dtype=dtype)
    source = args.data or cli.get("data")
    if source is None:
        raise CommandError(f"{args.model!r} does not record its data: name it with --data")
    target = args.target or cli.get("target")
    which = args.split or ("test" if args.data is None else "all")
    if which != "all":
        if "seed" not in cli:
            raise CommandError(f"{args.model!r} does not record its split: use --split all")
        # The split is drawn by row: rebuilt from other data, its "held-out" rows would
        # be any rows, training rows among them.
        part = "held-out" if which == "test" else "training"
        check_same_data(cli.get("data_identity"), cli.get("data"), source,
                        purpose=f"the {part} split of {args.model!r}")  # fmt: skip
    # A file's columns are matched to the model's features by name (CSV) or count (.npz).
    features = cli.get("features") if source.lower().endswith((".csv", ".npz")) else None
    data = load_data(source, target=target, features=features, need_target=need_target)
    if data.X.shape[1] != est.n_features_in_:
        raise CommandError(
            f"{source!r} has {data.X.shape[1]} features but the model takes {est.n_features_in_}"
        )
    rows = np.arange(data.X.shape[0])
    if which != "all":
        task = cli.get("task", "classify")
        train, test = split(
            data.y, data.X.shape[0], task=task, test_fraction=cli["test_fraction"], seed=cli["seed"]
        )
        rows = test if which == "test" else train
    dtype = est.weights_[0].dtype
    X = _to_backend(args, xp, data.X[rows], dtype=dtype, device=dev)
    y = None if data.y is None else data.y[rows]
    return est, X, y, xp, dev, dtype, data, which, cli


def _predict(args: argparse.Namespace) -> int:
    if args.output is not None and os.path.splitext(args.output)[1].lower() not in (".csv", ".npz"):
        raise CommandError(f"--output {args.output!r} must end in .csv or .npz")
    _check_serve_options(args)
    proba = classes = None
    with _scheduler(args):  # on Dask: the results come to the host before it closes
        est, X, _, _, _, _, _, _, _ = _serve(args, need_target=False)
        if args.proba and not isinstance(est, MLPClassifier):
            raise CommandError("--proba needs a classifier; this model is a regressor")
        prediction = to_numpy(est.predict(X))
        if args.proba:
            proba, classes = to_numpy(est.predict_proba(X)), to_numpy(est.classes_)
    columns = {"prediction": prediction}
    if prediction.ndim == 2:
        columns = {f"prediction_{j}": prediction[:, j] for j in range(prediction.shape[1])}
    if proba is not None:
        for k, label in enumerate(classes.tolist()):
            columns[f"proba_{label}"] = proba[:, k]
    if args.output is not None and args.output.lower().endswith(".npz"):
        arrays = {"prediction": prediction}
        if proba is not None:
            arrays |= {"proba": proba, "classes": classes}
        _write_atomic(args.output, arrays)
        return 0

    out = sys.stdout if args.output is None else open(args.output, "w", newline="")
    try:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([_csv_value(v) for v in row])
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _csv_value(v: Any) -> str:
    # NumPy scalars included: under NumPy 2 their repr is "np.float64(...)".
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def _evaluate(args: argparse.Namespace) -> int:
    _check_serve_options(args)
    with _scheduler(args):
        est, X, y, xp, dev, dtype, data, which, _ = _serve(args, need_target=True)
        task = "classify" if isinstance(est, MLPClassifier) else "regress"
        metrics = _metrics(est, X, y, task=task, xp=xp, device=dev, dtype=dtype)
    rows = [(name, f"{value:.4f}") for name, value in metrics.items()]
    rows.append(("samples", f"{X.shape[0]} ({data.source}, {which})"))
    print(table(rows))
    return 0
