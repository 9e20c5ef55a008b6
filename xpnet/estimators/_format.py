"""The model file: one ``.npz`` file of parameters and JSON metadata, written and checked.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding

- ``metadata``: UTF-8 JSON as a uint8 array: the format marker and version, the
  estimator's class and hyperparameters, layer sizes, dtype and training record;
- ``W_0`` .. ``W_{L-1}`` and ``b_0`` .. ``b_{L-1}``: the parameters, as host arrays of
  the training dtype (float32 or float64);
- ``classes`` (classifier only): the labels, numbers or a unicode array;
- ``moment_{k}_{i}`` (format version 2): the optimizer's state, moment k (Adam's M and
  V, or momentum's V) of parameter i, the parameters counted as ``[*W, *b]``; its step
  count, the learning-rate schedule's state, ``t_`` and the state of the generator that
  orders mini-batches are in the metadata, so that ``partial_fit`` or
  ``fit(resume=True)`` after :func:`load` carries on exactly where training stopped;
- ``latest_W_{l}``, ``latest_b_{l}`` (format version 3, only in files of a fit with
  early stopping): the parameters after the last step, from which a resumed fit goes
  on (``W_{l}``, ``b_{l}`` are the best epoch's); the validation split's generator
  state and the stopping rule's count are in the metadata.

Nothing is pickled and it is read with ``allow_pickle=False``: loading a file runs no
code from it.  The class comes from a fixed allow-list and every shape, dtype and name
is checked before an estimator is built, so a damaged, tampered or foreign file gives a
``ValueError`` that names the file and the problem.  This module knows the format only;
``xpnet.estimators._loading`` builds estimators from what it reads.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import secrets
import zipfile
import zlib
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the file holds NumPy arrays

from .._host import to_numpy
from .._version import __version__

#: The marker that tells an xpnet model file from any other ``.npz``.
FORMAT = "xpnet-model"
#: Bumped when a file written now could not be read by the code that reads the previous
#: version.  Version 2 added the optimizer's and the schedule's state; version 1 files
#: still load, with a fresh state (as after ``fit``).  Version 3 added early stopping's
#: state; a file without one is written as version 2, which older xpnet reads.
FORMAT_VERSION = 3
#: The only classes a file can name: nothing else is ever constructed from a file.
ESTIMATORS = ("MLPClassifier", "MLPRegressor")
DTYPES = ("float32", "float64")

Array = Any


def save(est: Any, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
    """Write a fitted estimator to ``path`` as one ``.npz`` file, atomically.

    Parameters
    ----------
    est : MLPRegressor or MLPClassifier, fitted
    path : str or os.PathLike
        Written exactly as given.  The data go to a temporary file in the same folder,
        which is renamed over ``path`` only once complete: an interrupted save leaves
        any earlier file at ``path`` as it was.
    extra : dict, optional
        More JSON-serialisable metadata, returned by :func:`load_with_metadata` (the
        ``xpnet`` command keeps its data set and split there).
    """
    name = type(est).__name__
    if name not in ESTIMATORS:
        raise TypeError(f"Only {sorted(ESTIMATORS)} can be saved, got {name}.")
    est._check_fitted()
    W = [_host(W_l) for W_l in est.weights_]
    b = [_host(b_l) for b_l in est.biases_]
    dtype = W[0].dtype
    if dtype.name not in DTYPES:
        raise ValueError(f"Parameters must be float32 or float64 to be saved, got {dtype}.")
    layer_sizes = [int(W[0].shape[1])] + [int(W_l.shape[0]) for W_l in W]
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": _version(),
        "estimator": name,
        "params": {k: _json_param(k, v) for k, v in est.get_params().items()},
        "layer_sizes": layer_sizes,
        "dtype": dtype.name,
        "out_activation": est.out_activation_,
        "n_outputs": int(est.n_outputs_),
        "y_ndim": int(getattr(est, "_y_ndim", 1)),
        "n_iter": int(est.n_iter_),
        "loss_curve": [float(v) for v in est.loss_curve_],
        "best_loss": _float_or_none(getattr(est, "best_loss_", None)),
        "validation_scores": _floats_or_none(getattr(est, "validation_scores_", None)),
        "validation_loss_curve": _floats_or_none(getattr(est, "validation_loss_curve_", None)),
        "best_validation_score": _float_or_none(getattr(est, "best_validation_score_", None)),
        "t": int(getattr(est, "t_", 0)),
        "stopped": bool(getattr(est, "_stopped", False)),
        "extra": extra or {},
    }
    arrays: dict[str, np.ndarray] = {}
    state = getattr(est, "_optimizer_state", None)
    if state is not None and len(state.moments) != _n_moments(est):
        state = None  # set_params changed the rule: partial_fit would start it afresh too
    if state is not None:
        meta["optimizer"] = {"t": int(state.t), "n_moments": len(state.moments)}
        for k, moment in enumerate(state.moments):
            for i, m in enumerate(moment):
                arrays[f"moment_{k}_{i}"] = np.asarray(_host(m), dtype=dtype)
    rng = getattr(est, "_rng", None)
    if isinstance(rng, np.random.Generator) and isinstance(rng.bit_generator, np.random.PCG64):
        meta["rng"] = rng.bit_generator.state  # the mini-batch order, for resuming exactly
    schedule = getattr(est, "_schedule_state", None)
    if schedule is not None:
        meta["schedule"] = {
            "mu": float(schedule.mu),
            "t": int(schedule.t),
            "no_change": int(schedule.no_change),
            "best": None if math.isinf(schedule.best) else float(schedule.best),
        }
    stopping = getattr(est, "_stopping_state", None)
    if stopping is not None and stopping.split_rng.get("bit_generator") == "PCG64":
        meta["format_version"] = 3
        meta["early_stopping_state"] = {
            "split_rng": stopping.split_rng,
            "n_samples": int(stopping.n_samples),
            "validation_fraction": float(stopping.validation_fraction),
            "no_change": int(stopping.no_change),
            "best": _float_or_none(None if math.isinf(stopping.best) else stopping.best),
        }
        for l in range(len(W)):
            arrays[f"latest_W_{l}"] = np.asarray(_host(stopping.W[l]), dtype=dtype)
            arrays[f"latest_b_{l}"] = np.asarray(_host(stopping.b[l]), dtype=dtype)
    else:
        meta["format_version"] = 2
    if name == "MLPClassifier":
        classes = _host(est.classes_)
        if classes.dtype.kind == "O":  # labels from pandas or lists of str: keep them as text
            if not all(isinstance(c, str) for c in classes.tolist()):
                kinds = sorted({type(c).__name__ for c in classes.tolist()})
                raise ValueError(f"Only number or string class labels can be saved, got {kinds}.")
            classes = classes.astype(str)
        meta["classes_kind"] = "text" if classes.dtype.kind in "US" else "number"
        meta["multilabel"] = bool(est._multilabel)
        arrays["classes"] = classes.astype(str) if classes.dtype.kind == "S" else classes
    text = json.dumps(meta, ensure_ascii=False)
    arrays["metadata"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    for l in range(len(W)):
        arrays[f"W_{l}"] = np.asarray(W[l], dtype=dtype)
        arrays[f"b_{l}"] = np.asarray(b[l], dtype=dtype)
    _write_atomic(path, arrays)


def _write_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` to a temporary file beside ``path``, then rename it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open applies the umask to 0o666, so the file gets the permissions of any other.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows alike
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _n_moments(est: Any) -> int | None:
    """The number of moments the estimator's update rule keeps (None: not a valid rule)."""
    try:
        return est._optimizer().n_moments
    except (TypeError, ValueError):
        return None


def _host(x: Any) -> np.ndarray:
    return to_numpy(x) if aac.is_array_api_obj(x) else np.asarray(x)


def _json_param(name: str, value: Any) -> Any:
    """A hyperparameter as JSON; a random generator (not serialisable) is saved as None."""
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return None
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value):
        return [int(v) for v in value]
    raise ValueError(f"Cannot save hyperparameter {name}={value!r}: not a number, str or None.")


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)


def _floats_or_none(v: Any) -> list[float] | None:
    return None if v is None else [float(s) for s in v]


def _version() -> str:
    return __version__


# -- reading -----------------------------------------------------------------------------


def _bad(path: Any, problem: str) -> ValueError:
    return ValueError(f"Cannot load {os.fspath(path)!r}: {problem}.")


def _read_archive(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` at ``path``, read without unpickling anything.

    NumPy's own message is never passed on for what it refuses as pickled: it advises
    ``allow_pickle=True``, which would run code from the file.
    """
    # Opened here, not by np.load, so that the file is closed whatever np.load raises.
    with open(path, "rb") as fh:
        magic = fh.read(6)
        fh.seek(0)
        if magic == b"\x93NUMPY":
            raise _bad(path, "not an xpnet model file (a single .npy array, not an .npz archive)")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # np.load would unpickle
            raise _bad(path, "not an xpnet model file (not an .npz archive)")
        try:
            archive = np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            problem = f"not an xpnet model file (not a readable .npz archive: {exc})"
            raise _bad(path, problem) from None
        with archive:
            arrays = {}
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError:  # an object array, or a damaged .npy header
                    problem = f"the array {name!r} is damaged or not plain data"
                    raise _bad(path, f"not an xpnet model file ({problem})") from None
                except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
                    raise _bad(path, f"the array {name!r} is damaged ({exc})") from None
    return arrays


def _metadata(arrays: dict[str, np.ndarray], path: Any) -> dict[str, Any]:
    """The file's JSON metadata, with the fields every model has checked."""
    raw = arrays.get("metadata")
    if raw is None:
        raise _bad(path, "not an xpnet model file (no 'metadata' in the archive)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _bad(path, f"'metadata' must be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"not an xpnet model file (no {FORMAT!r} format marker)")
    version = meta.get("format_version")
    if not _json_int(version) or version < 1:
        raise _bad(path, f"format_version must be an int >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"it has format version {version}, newer than this xpnet reads ({FORMAT_VERSION}); "
            "upgrade xpnet",
        )
    name = meta.get("estimator")
    if name not in ESTIMATORS:
        raise _bad(path, f"unknown estimator {name!r}; expected one of {sorted(ESTIMATORS)}")
    sizes = meta.get("layer_sizes")
    if not (
        isinstance(sizes, list) and len(sizes) >= 2 and all(_json_int(n) and n > 0 for n in sizes)
    ):
        raise _bad(path, f"layer_sizes must be a list of >= 2 positive ints, got {sizes!r}")
    if meta.get("dtype") not in DTYPES:
        raise _bad(path, f"dtype must be one of {DTYPES}, got {meta.get('dtype')!r}")
    if not isinstance(meta.get("params"), dict):
        raise _bad(path, f"params must be a JSON object, got {meta.get('params')!r}")
    for key in ("loss_curve", "validation_scores", "validation_loss_curve"):
        values = meta.get(key)
        if not (
            (values is None and key != "loss_curve")
            or (isinstance(values, list) and all(_json_number(v) for v in values))
        ):
            raise _bad(path, f"{key} must be a list of numbers, got {values!r}")
    for key in ("best_loss", "best_validation_score"):
        if not (meta.get(key) is None or _json_number(meta.get(key))):
            raise _bad(path, f"{key} must be a number or null, got {meta.get(key)!r}")
    if not (_json_int(meta.get("n_iter")) and meta["n_iter"] >= 0):
        raise _bad(path, f"n_iter must be an int >= 0, got {meta.get('n_iter')!r}")
    if not isinstance(meta.get("extra", {}), dict):
        raise _bad(path, f"extra must be a JSON object, got {meta.get('extra')!r}")
    if not (_json_int(meta.get("t", 0)) and meta.get("t", 0) >= 0):
        raise _bad(path, f"t must be an int >= 0, got {meta.get('t')!r}")
    if not isinstance(meta.get("stopped", False), bool):
        raise _bad(path, f"stopped must be true or false, got {meta.get('stopped')!r}")
    if not isinstance(meta.get("multilabel", False), bool):
        raise _bad(path, f"multilabel must be true or false, got {meta.get('multilabel')!r}")
    optimizer = meta.get("optimizer")
    if optimizer is not None and not (
        isinstance(optimizer, dict)
        and _json_int(optimizer.get("t"))
        and optimizer["t"] >= 0
        and optimizer.get("n_moments") in (0, 1, 2)
    ):
        raise _bad(path, f"optimizer must hold a step count t and n_moments, got {optimizer!r}")
    schedule = meta.get("schedule")
    if schedule is not None and not (
        isinstance(schedule, dict)
        and _json_number(schedule.get("mu"))
        and 0 < schedule["mu"] < math.inf
        and all(_json_int(schedule.get(k)) and schedule[k] >= 0 for k in ("t", "no_change"))
        and (schedule.get("best") is None or _json_number(schedule["best"]))
    ):
        raise _bad(path, f"schedule must hold mu, t, no_change and best, got {schedule!r}")
    return meta


def _generator(state: Any, path: Any) -> np.random.Generator:
    """A NumPy ``Generator`` (PCG64) in the saved ``state``."""
    rng = np.random.default_rng()
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError("not a PCG64 state")
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _bad(path, f"rng must be a PCG64 generator state ({exc})") from None
    return rng


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


def _json_int(v: Any) -> bool:
    """A JSON integer (json.load gives int, never a NumPy scalar)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _json_number(v: Any) -> bool:
    """A JSON number."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
