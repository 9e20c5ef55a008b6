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

Nothing is pickled and nothing is unpickled: loading a file runs no code from it.  The
file is written atomically (:func:`xpnet._files.write_atomic`: a regular file only, a
symbolic link written through) and read by :class:`ModelFile`, which checks each size
before it reads or allocates anything: the members must be stored uncompressed within
the file, and each array's declared dtype and shape must be those the metadata's layer
sizes imply.  The class comes from a fixed allow-list and every name, shape and dtype is
checked before an estimator is built, so a damaged, tampered, hostile or foreign file
gives a ``ValueError`` that names the file and the problem.  This module knows the
format only; ``xpnet.estimators._loading`` builds estimators from what it reads.
"""

from __future__ import annotations

import ast
import json
import math
import numbers
import os
import reprlib
import struct
import zipfile
import zlib
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the file holds NumPy arrays

from .._files import open_regular, write_atomic
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
        any earlier file at ``path`` as it was.  A symbolic link is written through to
        its target; a directory, device, FIFO or socket is refused
        (:func:`xpnet._files.write_atomic`).
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
    """Write ``arrays`` as an ``.npz`` at ``path``, atomically and to a regular file only
    (:func:`xpnet._files.write_atomic`)."""
    write_atomic(path, lambda fh: np.savez(fh, **arrays))


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

#: The longest ``.npy`` header read (NumPy's own limit): a header is a short dict.
MAX_HEADER = 10_000
#: The deepest nesting of JSON values the metadata may have; xpnet's own go 5 deep.
MAX_DEPTH = 32
#: The bytes of a member read at a time, into the array allocated for it.
_CHUNK = 1 << 20
#: What the zip reader may raise on a damaged archive: a flipped bit can send it to a
#: bad offset, an unknown compression or version, an "encrypted" flag or a wrong CRC.
_DAMAGE = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
    IndexError, NotImplementedError, RuntimeError, struct.error, zlib.error, OverflowError,
)  # fmt: skip


class _BadFile(ValueError):
    """A model file refused, with a message that names it and says why."""


def _bad(path: Any, problem: str) -> ValueError:
    return _BadFile(f"Cannot load {os.fspath(path)!r}: {problem}.")


class ModelFile:
    """A model file opened for reading: the metadata first, then the arrays they imply.

    Nothing is read before it is checked.  The file must be a regular file
    (:func:`xpnet._files.open_regular`: a FIFO is refused, never waited on) and a zip
    archive of ``.npy`` members, each stored uncompressed as ``np.savez`` writes them,
    each once, each within the file: so no member holds more bytes than the file does,
    and a zip bomb is refused before anything is decompressed.  Each array's header
    (dtype and shape) is checked against what the metadata's layer sizes imply, and its
    size against the member's, before the array is allocated.  Whatever is wrong, the
    error is a ``ValueError`` that names the file and the problem.

    Use it as a context manager::

        with ModelFile(path) as f:
            meta = f.metadata()
            arrays = f.arrays(meta)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._fh = open_regular(path)
        try:
            self._size = os.fstat(self._fh.fileno()).st_size
            self._zip = self._open_zip()
            self._members = self._list_members()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._fh.close()

    def metadata(self) -> dict[str, Any]:
        """The file's JSON metadata, with the fields every model has checked."""
        if "metadata" not in self._members:
            raise self._bad("not an xpnet model file (no 'metadata' in the archive)")

        def text(dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
            if dtype == np.uint8 and len(shape) == 1:
                return None
            return f"'metadata' must be a 1-D uint8 array, got {dtype} {shape}"

        raw = self._read("metadata", text)
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            raise self._bad("the metadata is nested too deeply") from None
        except ValueError as exc:  # not UTF-8, not JSON, an integer of 5000 digits...
            raise self._bad(f"the metadata is not valid JSON ({exc})") from None
        if not _nested_at_most(meta, MAX_DEPTH):
            raise self._bad(f"the metadata is nested more than {MAX_DEPTH} deep")
        return _check_metadata(meta, self.path)

    def arrays(self, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        """Every array the checked ``meta`` implies, each checked before it is read."""
        sizes, n = meta["layer_sizes"], len(self._members) - 1  # arrays beside the metadata
        n_moments = meta["optimizer"]["n_moments"] if "optimizer" in meta else 0
        count = 2 * (len(sizes) - 1) * (1 + n_moments) + (meta["estimator"] == "MLPClassifier")
        if count > 2 * n + 8:  # not a few arrays missing: layer sizes from another file
            raise self._bad(f"its layer sizes {_short(sizes)} imply {count} arrays, not {n}")
        expected = _expected_arrays(meta)
        names = set(self._members) - {"metadata"}
        if names != set(expected):
            missing, unknown = sorted(set(expected) - names), sorted(names - set(expected))
            problems = [f"arrays missing: {missing}"] * bool(missing)
            problems += [f"unexpected arrays: {_short(unknown)}"] * bool(unknown)
            raise self._bad(", ".join(problems))
        need = sum(math.prod(shape) * np.dtype(dtype).itemsize
                   for dtype, shape in expected.values() if dtype in DTYPES)  # fmt: skip
        if need > self._size:
            raise self._bad(
                f"its layer sizes {_short(meta['layer_sizes'])} imply {need} bytes of "
                f"parameters, more than the whole file holds ({self._size})"
            )
        arrays = {}
        for key, (want, shape) in expected.items():

            def problem(dtype, got, key=key, want=want, shape=shape):
                if key == "classes":
                    kinds = {"number": "biuf", "text": "U"}[want]
                    if dtype.kind in kinds and got == shape:
                        return None
                    return (
                        f"classes must be a 1-D array of {shape[0]} labels ({want}), "
                        f"got {dtype} {got}"
                    )
                if dtype.name == want and got == shape:
                    return None
                return f"{key} must be {want} of shape {shape}, got {dtype} {got}"

            a = arrays[key] = self._read(key, problem)
            if key != "classes" and not np.all(np.isfinite(a)):
                raise self._bad(f"{key} holds NaN or infinity")
        return arrays

    # -- the archive ----------------------------------------------------------------------

    def _bad(self, problem: str) -> ValueError:
        return _bad(self.path, problem)

    def _open_zip(self) -> zipfile.ZipFile:
        fh = self._fh
        magic = fh.read(6)
        fh.seek(0)
        if magic == b"\x93NUMPY":
            raise self._bad("not an xpnet model file (a single .npy array, not an .npz archive)")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # np.load would unpickle
            raise self._bad("not an xpnet model file (not an .npz archive)")
        try:
            return zipfile.ZipFile(fh)
        except _DAMAGE as exc:
            problem = f"not an xpnet model file (not a readable .npz archive: {exc})"
            raise self._bad(problem) from None

    def _list_members(self) -> dict[str, zipfile.ZipInfo]:
        """The archive's members by array name, each checked to lie within the file."""
        members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                problem = f"the archive holds {_short(info.filename)}, which is not a .npy array"
                raise self._bad(f"not an xpnet model file ({problem})")
            key = info.filename[: -len(".npy")]
            if key in members:
                raise self._bad(f"the archive holds {_short(key)} twice")
            if info.flag_bits & 0x1:
                raise self._bad(f"the array {_short(key)} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise self._bad(
                    f"the array {_short(key)} is compressed (method {info.compress_type}); "
                    "xpnet writes arrays uncompressed and reads no other"
                )
            if (
                info.file_size != info.compress_size
                or info.header_offset + info.compress_size > self._size
            ):
                raise self._bad(
                    f"the archive's entry for {_short(key)} is damaged: it claims "
                    f"{info.file_size} bytes at offset {info.header_offset} of a file of "
                    f"{self._size}"
                )
            members[key] = info
        claimed = sum(info.file_size for info in members.values())
        if claimed > self._size:  # members that overlap, to be read more than once
            raise self._bad(f"its members claim {claimed} bytes, more than the file's {self._size}")
        return members

    def _read(self, key: str, problem: Any) -> np.ndarray:
        """Member ``key``'s array.  ``problem(dtype, shape)`` judges the header (None: all
        right) before the array is allocated; its size must then be the member's."""
        info = self._members[key]
        try:
            with self._zip.open(info) as fp:
                dtype, shape, fortran, start = self._header(fp, key)
                if (message := problem(dtype, shape)) is not None:
                    raise self._bad(message)
                count = math.prod(shape)
                if start + count * dtype.itemsize != info.file_size:
                    raise self._bad(
                        f"the array {key!r} has {info.file_size - start} bytes of data, "
                        f"where its shape {shape} and dtype {dtype} take {count * dtype.itemsize}"
                    )
                a = np.empty(count, dtype=dtype)
                self._fill(fp, a.view(np.uint8), key)
        except _BadFile:
            raise
        except _DAMAGE as exc:
            raise self._bad(f"the array {key!r} is damaged ({exc})") from None
        a = a.reshape(shape, order="F" if fortran else "C")
        return a if dtype.isnative else a.astype(dtype.newbyteorder("="))

    def _header(self, fp: Any, key: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
        """The dtype, shape and order that the ``.npy`` header of ``fp`` declares, and
        where its data start.

        Read here rather than by NumPy, which would turn a damaged header it cannot
        parse into a warning about files written by Python 2 and parse it again.
        """
        lead = fp.read(8)
        if len(lead) < 8 or lead[:6] != b"\x93NUMPY":
            raise self._bad(f"not an xpnet model file (the array {key!r} is not .npy data)")
        length_format = {(1, 0): "<H", (2, 0): "<I"}.get((lead[6], lead[7]))
        if length_format is None:
            raise self._bad(f"the array {key!r} has .npy version {lead[6]}.{lead[7]}, not 1.0")
        raw_length = fp.read(struct.calcsize(length_format))
        (length,) = struct.unpack(length_format, raw_length)
        if length > MAX_HEADER:
            raise self._bad(f"the array {key!r} has a header of {length} bytes")
        text = fp.read(length)
        damaged = f"not an xpnet model file (the array {key!r} is damaged or not plain data)"
        try:
            header = ast.literal_eval(text.decode("latin-1"))
            shape, fortran = header["shape"], header["fortran_order"]
            dtype = np.lib.format.descr_to_dtype(header["descr"])
        except (SyntaxError, ValueError, TypeError, KeyError, OverflowError, MemoryError,
                RecursionError):  # fmt: skip
            raise self._bad(damaged) from None
        if not (
            len(text) == length
            and isinstance(header, dict)
            and len(header) == 3
            and isinstance(shape, tuple)
            and all(type(n) is int and n >= 0 for n in shape)
            and type(fortran) is bool
            and not dtype.hasobject
            and dtype.fields is None
            and dtype.subdtype is None
        ):
            raise self._bad(damaged)
        return dtype, shape, fortran, len(lead) + len(raw_length) + length

    def _fill(self, fp: Any, buffer: np.ndarray, key: str) -> None:
        """Read the member's data into ``buffer``, a chunk at a time, to its very end
        (where the zip reader checks the CRC)."""
        view, done = memoryview(buffer), 0
        while done < len(view):
            chunk = fp.read(min(_CHUNK, len(view) - done))
            if not chunk:
                raise self._bad(f"the array {key!r} is truncated")
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        if fp.read(1):
            raise self._bad(f"the array {key!r} is longer than its header says")


def _expected_arrays(meta: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The arrays a file with the checked ``meta`` holds: name → (dtype or, for
    ``classes``, their kind), shape)."""
    sizes, dtype = meta["layer_sizes"], meta["dtype"]
    L = len(sizes) - 1
    shapes = [(sizes[l + 1], sizes[l]) for l in range(L)] + [(sizes[l + 1],) for l in range(L)]
    expected = {f"W_{l}": (dtype, shapes[l]) for l in range(L)}
    expected |= {f"b_{l}": (dtype, shapes[L + l]) for l in range(L)}
    n_moments = meta["optimizer"]["n_moments"] if "optimizer" in meta else 0
    for k in range(n_moments):
        expected |= {f"moment_{k}_{i}": (dtype, shapes[i]) for i in range(2 * L)}
    if "early_stopping_state" in meta:  # the latest parameters, beside the best ones
        expected |= {f"latest_W_{l}": (dtype, shapes[l]) for l in range(L)}
        expected |= {f"latest_b_{l}": (dtype, shapes[L + l]) for l in range(L)}
    if meta["estimator"] == "MLPClassifier":
        expected["classes"] = (meta["classes_kind"], (sizes[-1],))
    return expected


def _nested_at_most(value: Any, depth: int) -> bool:
    """Whether JSON ``value`` nests lists and objects at most ``depth`` deep (checked
    without recursion: a deep value is what would exhaust the stack)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        v, d = stack.pop()
        if d > depth:
            return False
        items = v.values() if isinstance(v, dict) else v
        stack.extend((x, d + 1) for x in items if isinstance(x, (dict, list)))
    return True


def _short(value: Any) -> str:
    """``repr(value)``, cut short: a file's values go into messages."""
    return reprlib.repr(value)


def _check_metadata(meta: Any, path: Any) -> dict[str, Any]:
    """The file's JSON metadata ``meta``, with the fields every model has checked."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"not an xpnet model file (no {FORMAT!r} format marker)")
    version = meta.get("format_version")
    if not _json_int(version) or version < 1:
        raise _bad(path, f"format_version must be an int >= 1, got {_short(version)}")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"it has format version {version}, newer than this xpnet reads ({FORMAT_VERSION}); "
            "upgrade xpnet",
        )
    name = meta.get("estimator")
    if name not in ESTIMATORS:
        raise _bad(path, f"unknown estimator {_short(name)}; expected one of {sorted(ESTIMATORS)}")
    sizes = meta.get("layer_sizes")
    if not (
        isinstance(sizes, list) and len(sizes) >= 2 and all(_json_int(n) and n > 0 for n in sizes)
    ):
        raise _bad(path, f"layer_sizes must be a list of >= 2 positive ints, got {_short(sizes)}")
    if meta.get("dtype") not in DTYPES:
        raise _bad(path, f"dtype must be one of {DTYPES}, got {_short(meta.get('dtype'))}")
    if not isinstance(meta.get("params"), dict):
        raise _bad(path, f"params must be a JSON object, got {_short(meta.get('params'))}")
    for key in ("loss_curve", "validation_scores", "validation_loss_curve"):
        values = meta.get(key)
        if not (
            (values is None and key != "loss_curve")
            or (isinstance(values, list) and all(_json_number(v) for v in values))
        ):
            raise _bad(path, f"{key} must be a list of numbers, got {_short(values)}")
    for key in ("best_loss", "best_validation_score"):
        if not (meta.get(key) is None or _json_number(meta.get(key))):
            raise _bad(path, f"{key} must be a number or null, got {_short(meta.get(key))}")
    if not (_json_int(meta.get("n_iter")) and meta["n_iter"] >= 0):
        raise _bad(path, f"n_iter must be an int >= 0, got {_short(meta.get('n_iter'))}")
    if not isinstance(meta.get("extra", {}), dict):
        raise _bad(path, f"extra must be a JSON object, got {_short(meta.get('extra'))}")
    if not (_json_int(meta.get("t", 0)) and meta.get("t", 0) >= 0):
        raise _bad(path, f"t must be an int >= 0, got {_short(meta.get('t'))}")
    if not isinstance(meta.get("stopped", False), bool):
        raise _bad(path, f"stopped must be true or false, got {_short(meta.get('stopped'))}")
    if not isinstance(meta.get("multilabel", False), bool):
        raise _bad(path, f"multilabel must be true or false, got {_short(meta.get('multilabel'))}")
    optimizer = meta.get("optimizer")
    if optimizer is not None and not (
        isinstance(optimizer, dict)
        and _json_int(optimizer.get("t"))
        and optimizer["t"] >= 0
        and optimizer.get("n_moments") in (0, 1, 2)
    ):
        got = _short(optimizer)
        raise _bad(path, f"optimizer must hold a step count t and n_moments, got {got}")
    schedule = meta.get("schedule")
    if schedule is not None and not (
        isinstance(schedule, dict)
        and _json_number(schedule.get("mu"))
        and 0 < schedule["mu"] < math.inf
        and all(_json_int(schedule.get(k)) and schedule[k] >= 0 for k in ("t", "no_change"))
        and (schedule.get("best") is None or _json_number(schedule["best"]))
    ):
        raise _bad(path, f"schedule must hold mu, t, no_change and best, got {_short(schedule)}")
    if name == "MLPClassifier" and meta.get("classes_kind") not in ("number", "text"):
        kind = _short(meta.get("classes_kind"))
        raise _bad(path, f"classes_kind must be 'number' or 'text', got {kind}")
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


def _json_int(v: Any) -> bool:
    """A JSON integer (json.load gives int, never a NumPy scalar)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _json_number(v: Any) -> bool:
    """A JSON number."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
