"""What ``train``, ``predict`` and ``evaluate`` share: the error they report, the backend and
its device, the Dask scheduler, the scaling folded into a network, and the metrics."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np  # host-side: scaling and results on the host

from .._host import to_numpy
from ._backends import dask_scheduler, device, namespace, to_backend


class CommandError(Exception):
    """An error to report as one line and exit status 2."""


def _backend(name: str, device_spec: str | None, dtype_name: str) -> tuple[Any, Any, Any]:
    xp = namespace(name)
    return xp, device(name, xp, device_spec), getattr(xp, dtype_name)


def _check_dask_options(args: argparse.Namespace) -> None:
    for option, value in (("--scheduler", args.scheduler), ("--dask-blocks", args.dask_blocks)):
        if value is not None and args.backend != "dask":
            raise CommandError(f"{option} applies to --backend dask only, not {args.backend!r}")


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace) -> Iterator[Any]:
    """On Dask, its scheduler for the run (None on other backends), closed at the end.

    Sets ``args.dask_blocks`` to the number of blocks to cut the data into.
    """
    if args.backend != "dask":
        yield None
        return
    with dask_scheduler(args.scheduler) as scheduler:
        if scheduler.note is not None:
            print(f"xpnet: warning: {scheduler.note}", file=sys.stderr)
        args.dask_blocks = args.dask_blocks or scheduler.threads
        yield scheduler


def _to_backend(args: argparse.Namespace, xp: Any, a: np.ndarray, *, dtype, device) -> Any:
    """A host array as the backend's: on Dask, in ``args.dask_blocks`` blocks of rows."""
    return to_backend(args.backend, xp, a, dtype=dtype, device=device, blocks=args.dask_blocks)


def _fold_scaling(est, mu_x, s_x, mu_y, s_y, *, xp, device, dtype) -> None:
    """Fold x ↦ (x − mu_x)/s_x into layer 1 and o ↦ s_y·o + mu_y into layer L.

    W⁽¹⁾(x − m)/s + b⁽¹⁾ = (W⁽¹⁾/s) x + (b⁽¹⁾ − (W⁽¹⁾/s) m), and for an identity output
    s_y(W⁽ᴸ⁾a + b⁽ᴸ⁾) + m_y = (s_y W⁽ᴸ⁾) a + (s_y b⁽ᴸ⁾ + m_y): the network then takes raw
    features and returns raw targets.  Done in float64 on the host, once.
    """
    mu_x, s_x = np.asarray(mu_x, dtype=np.float64), np.asarray(s_x, dtype=np.float64)
    W = [to_numpy(W_l).astype(np.float64) for W_l in est.weights_]
    b = [to_numpy(b_l).astype(np.float64) for b_l in est.biases_]
    W[0] = W[0] / s_x[None, :]
    b[0] = b[0] - W[0] @ mu_x
    if mu_y is not None:
        W[-1], b[-1] = s_y * W[-1], s_y * b[-1] + mu_y
    est.weights_ = [xp.asarray(W_l, dtype=dtype, device=device) for W_l in W]
    est.biases_ = [xp.asarray(b_l, dtype=dtype, device=device) for b_l in b]


def _metrics(est, X, y, *, task, xp, device, dtype) -> dict[str, float]:
    """Accuracy for a classifier; R², RMSE and MAE for a regressor (the first is the headline)."""
    if task == "classify":
        return {"accuracy": est.score(X, y)}
    prediction = to_numpy(est.predict(X)).astype(np.float64)
    residual = np.asarray(y, dtype=np.float64) - prediction
    return {
        "R²": est.score(X, xp.asarray(y, dtype=dtype, device=device)),
        "RMSE": float(np.sqrt(np.mean(residual**2))),
        "MAE": float(np.mean(np.abs(residual))),
    }
