"""Loading: a fitted estimator built from a model file (``xpnet.estimators._format``)."""

from __future__ import annotations

import math
import os
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the file holds NumPy arrays

from ..core.optimizers import OptimizerState
from ..training.loop import StoppingState
from ..training.schedules import ScheduleState
from ._classifier import MLPClassifier
from ._devices import as_device
from ._format import (
    ModelFile,
    _bad,
    _float_or_none,
    _floats_or_none,
    _generator,
    _json_int,
    _json_number,
    _short,
)
from ._regressor import MLPRegressor
from ._validation import check_hyperparameters

#: The classes a file may name, by name: nothing else is ever constructed from a file.
ESTIMATORS: dict[str, type] = {"MLPRegressor": MLPRegressor, "MLPClassifier": MLPClassifier}

Array = Any


def load(path: str | os.PathLike, *, xp: Any = None, device: Any = None) -> Any:
    """Read an estimator written by ``save``, with its parameters in ``xp`` on ``device``.

    A model trained on one backend loads onto any other: trained on CuPy, served on
    NumPy, and back.

    Parameters
    ----------
    path : str or os.PathLike
    xp : array namespace or module, optional
        Where the parameters go: ``numpy`` (the default), ``cupy``, ``torch``,
        ``jax.numpy``, ``array_api_strict``, or an ``array_api_compat`` namespace.
    device : str or a device of ``xp``, optional
        A device of ``xp`` (``cupy.cuda.Device(1)``, ``jax.devices("gpu")[0]``, ...) or
        its name, read the same way for every library and as the ``xpnet`` command's
        ``--device``: ``"cpu"``, ``"cuda:1"`` (``"gpu:1"``), ``"gpu"`` for JAX,
        ``"device1"`` for array-api-strict.  None is the namespace's default device.

    Returns
    -------
    MLPRegressor or MLPClassifier
        Fitted, with ``weights_``/``biases_`` in the saved dtype; numeric ``classes_``
        on ``device`` as well, string ``classes_`` as a NumPy array.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not an xpnet model, is damaged, describes an inconsistent network,
        or is not a regular file (a FIFO or a device is refused, never waited on); or if
        ``device`` names no usable device of ``xp``.  The message names the file and the
        problem.
    """
    return load_with_metadata(path, xp=xp, device=device)[0]


def load_with_metadata(
    path: str | os.PathLike, *, xp: Any = None, device: Any = None
) -> tuple[Any, dict[str, Any]]:
    """As :func:`load`, and the file's metadata (with the ``extra`` given to ``save``)."""
    with ModelFile(path) as f:
        meta = f.metadata()
        est, multilabel = _estimator(meta, path)  # before the arrays: it is cheaper
        arrays = f.arrays(meta)
    _fitted(est, meta, arrays, path, multilabel=multilabel)
    xp = _namespace(xp)
    device = as_device(xp, device)  # "cuda:1", "cpu": read as the command's --device
    dtype = getattr(xp, meta["dtype"])
    L = len(meta["layer_sizes"]) - 1
    est.weights_ = [xp.asarray(arrays[f"W_{l}"], dtype=dtype, device=device) for l in range(L)]
    est.biases_ = [xp.asarray(arrays[f"b_{l}"], dtype=dtype, device=device) for l in range(L)]
    if "optimizer" in meta:
        moments = tuple(
            [
                xp.asarray(arrays[f"moment_{k}_{i}"], dtype=dtype, device=device)
                for i in range(2 * L)
            ]
            for k in range(meta["optimizer"]["n_moments"])
        )
        est._optimizer_state = OptimizerState(meta["optimizer"]["t"], moments)
    if "rng" in meta:
        est._rng = _generator(meta["rng"], path)
    if "schedule" in meta:
        s = meta["schedule"]
        best = -math.inf if s["best"] is None else s["best"]
        est._schedule_state = ScheduleState(s["mu"], s["t"], s["no_change"], best)
    if isinstance(est, MLPClassifier):
        classes = arrays["classes"]
        if meta["classes_kind"] == "number":
            label_dtype = xp.bool if classes.dtype == np.bool_ else getattr(xp, classes.dtype.name)
            classes = xp.asarray(classes, dtype=label_dtype, device=device)
        est.classes_ = classes
    return est, meta


# -- building -----------------------------------------------------------------------------


def _estimator(meta: dict[str, Any], path: Any) -> tuple[Any, bool]:
    """An estimator of the file's class with its hyperparameters, checked against the
    metadata, and whether it is a multi-label classifier."""
    cls = ESTIMATORS[meta["estimator"]]
    params = dict(meta["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = cls(**params)
        hidden, output = check_hyperparameters(est, natural_output=cls._natural_output)
        multilabel = cls is MLPClassifier and meta.get("multilabel", False)
        output = est._output_activation(output, {"_multilabel": multilabel})
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"invalid hyperparameters ({exc})") from None
    sizes = meta["layer_sizes"]
    if hidden != sizes[1:-1]:
        raise _bad(path, f"hidden_layer_sizes {hidden} do not match layer_sizes {_short(sizes)}")
    if meta.get("out_activation") != output:
        raise _bad(path, f"out_activation {_short(meta.get('out_activation'))} is not {output!r}")
    est.out_activation_ = output
    n_moments = meta["optimizer"]["n_moments"] if "optimizer" in meta else 0
    if "optimizer" in meta and n_moments != est._optimizer().n_moments:
        problem = f"the optimizer state holds {n_moments} moment(s), which solver={est.solver!r}"
        raise _bad(path, f"{problem} with momentum={est.momentum!r} does not use")
    return est, multilabel


def _fitted(
    est: Any, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: Any, *, multilabel: bool
) -> None:
    """Set the fitted attributes of ``est`` (but its arrays) from the file's contents,
    whose names, shapes and dtypes the format has checked."""
    sizes = meta["layer_sizes"]
    n_out = sizes[-1]
    if isinstance(est, MLPClassifier):
        classes = arrays["classes"]
        if multilabel and not np.array_equal(classes, np.arange(n_out)):
            raise _bad(path, f"multi-label classes must be 0 .. {n_out - 1}")
        est.n_outputs_, est._multilabel = (n_out if multilabel else 1), multilabel
    else:
        if meta.get("y_ndim") not in (1, 2) or meta.get("n_outputs") != n_out:
            raise _bad(path, f"n_outputs and y_ndim do not fit {n_out} output(s)")
        if meta["y_ndim"] == 1 and n_out != 1:
            raise _bad(path, f"y_ndim 1 needs one output, got {n_out}")
        est.n_outputs_, est._y_ndim = n_out, meta["y_ndim"]

    est.n_features_in_ = sizes[0]
    est.n_layers_ = len(sizes)
    est.n_iter_ = meta["n_iter"]
    est.loss_curve_ = [float(v) for v in meta["loss_curve"]]
    est.best_loss_ = _float_or_none(meta.get("best_loss"))
    est.validation_scores_ = _floats_or_none(meta.get("validation_scores"))
    est.validation_loss_curve_ = _floats_or_none(meta.get("validation_loss_curve"))
    est.best_validation_score_ = _float_or_none(meta.get("best_validation_score"))
    est.t_ = meta.get("t", 0)
    est._stopped = meta.get("stopped", False)
    if "early_stopping_state" in meta:
        L = len(sizes) - 1
        est._stopping_state = _stopping_state(meta["early_stopping_state"], arrays, L, path)


def _stopping_state(state: Any, arrays: dict[str, np.ndarray], L: int, path: Any) -> StoppingState:
    """Early stopping's state, for resuming: the metadata's part checked, the arrays
    (checked already) gathered."""
    if not (
        isinstance(state, dict)
        and _json_int(state.get("n_samples"))
        and state["n_samples"] >= 2
        and _json_number(state.get("validation_fraction"))
        and 0 < state["validation_fraction"] < 1
        and _json_int(state.get("no_change"))
        and state["no_change"] >= 0
        and (state.get("best") is None or _json_number(state["best"]))
    ):
        raise _bad(
            path,
            "early_stopping_state must hold split_rng, n_samples, validation_fraction, "
            f"no_change and best, got {_short(state)}",
        )
    split_rng = _generator(state.get("split_rng"), path).bit_generator.state
    best = -math.inf if state["best"] is None else float(state["best"])
    return StoppingState(
        split_rng, state["n_samples"], float(state["validation_fraction"]), state["no_change"],
        best, [arrays[f"latest_W_{l}"] for l in range(L)],
        [arrays[f"latest_b_{l}"] for l in range(L)],
    )  # fmt: skip


def _namespace(xp: Any) -> Any:
    """The Array API namespace of a library module: ``numpy``, ``torch``, ``cupy``, ..."""
    if xp is None:
        return aac.array_namespace(np.empty(0))
    asarray = getattr(xp, "asarray", None)
    if not callable(asarray):
        raise TypeError(
            "xp must be an array library module such as numpy, cupy, torch, jax.numpy or "
            f"array_api_strict, got {xp!r}."
        )
    return aac.array_namespace(asarray(0))
