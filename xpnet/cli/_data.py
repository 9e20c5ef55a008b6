"""Data for the ``xpnet`` command: scikit-learn's bundled data sets, CSV and ``.npz`` files.

Host-side only (NumPy): the command moves the arrays to the chosen backend afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np  # host-side: files and data sets are read into NumPy arrays

#: scikit-learn's bundled data sets, by the name ``--data`` takes.
DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
#: Integer targets with at most this many distinct values are taken for class labels.
MAX_INFERRED_CLASSES = 20
#: Classification warns above this many classes, or below this many training samples
#: per class on average.
MANY_CLASSES = 100
FEW_PER_CLASS = 5


class DataError(ValueError):
    """A data set that cannot be read or used; its message names the source."""


@dataclass
class Data:
    """Samples as rows, on the host.

    Attributes
    ----------
    X : float64 array of shape (N, n_features)
    y : array of shape (N,), or None when the source has no target
        Numbers (float64, or int64 when all are integers) or strings.
    features : list of str
        The feature names (column names of a CSV file).
    target : str
        The name of the target column or array.
    source : str
        What ``--data`` named.
    """

    X: np.ndarray
    y: np.ndarray | None
    features: list[str]
    target: str
    source: str


def require(module: str) -> None:
    """Import ``module`` (an optional dependency of the command) or explain how to get it."""
    try:
        __import__(module)
    except ImportError:
        package = {"sklearn": "scikit-learn"}.get(module, module)
        raise DataError(
            f'{package} is needed here but is not installed: pip install "xpnet[examples]"'
        ) from None


def load_data(
    source: str,
    *,
    target: str | None = None,
    features: list[str] | None = None,
    need_target: bool = True,
) -> Data:
    """Read ``source``: a bundled data set's name, or a ``.csv`` or ``.npz`` file.

    Parameters
    ----------
    source : str
        One of ``DATASETS``; a CSV file with a header row (read by pandas; a file whose
        first row reads as data is refused); or an ``.npz`` file holding the features
        as ``X`` (N, n_features) and the target as a 1-D array.
    target : str, optional
        The target column (CSV) or array (``.npz``); by default ``target``, else ``y``,
        else the last CSV column.  A CSV file must have the column it names, unless
        neither ``need_target`` nor the default ``features`` needs it.
    features : list of str, optional
        The CSV columns to use as features, in this order (a model's own); by default
        every column but the target.
    need_target : bool
        Whether a missing target is an error (prediction does without one).
    """
    if source in DATASETS:
        require("sklearn")
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{source}")()
        # feature_names is a list for some data sets and a NumPy array for others.
        names = [str(n) for n in getattr(bunch, "feature_names", ())]
        if len(names) != bunch.data.shape[1]:
            names = [f"x{j}" for j in range(bunch.data.shape[1])]
        y = np.asarray(bunch.target)
        return Data(np.asarray(bunch.data, dtype=np.float64), y, names, "target", source)
    suffix = os.path.splitext(source)[1].lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(
            f"--data {source!r} is neither a bundled data set {DATASETS} nor a .csv or .npz file"
        )
    if not os.path.isfile(source):
        raise DataError(f"--data {source!r}: no such file")
    read = _read_csv if suffix == ".csv" else _read_npz
    data = read(source, target=target, features=features, need_target=need_target)
    if data.y is not None and data.y.shape[0] != data.X.shape[0]:
        raise DataError(f"{source!r}: {data.X.shape[0]} samples but {data.y.shape[0]} targets")
    if data.X.shape[0] == 0:
        raise DataError(f"{source!r} holds no samples")
    return data


def data_identity(source: str) -> dict[str, Any] | None:
    """What identifies a data file: its absolute path, size in bytes and SHA-256.

    None for a bundled data set, which its name identifies.  A model records it at
    training, so that its held-out split is rebuilt only from the very same data: the
    split is drawn by row, and from a file edited since, "held-out" rows would include
    training rows.
    """
    if source in DATASETS:
        return None
    path = os.path.abspath(source)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": path, "size": os.path.getsize(path), "sha256": digest.hexdigest()}


def check_same_data(recorded: Any, trained_on: str, source: str, *, purpose: str) -> None:
    """Raise :class:`DataError` unless ``source`` holds the data the run was trained on.

    ``recorded`` is :func:`data_identity` of ``trained_on`` as training recorded it
    (None for a bundled data set, or in files written before it was recorded: those
    are taken on trust).  ``purpose`` says what needs the same data, for the message.
    """
    if recorded is None:
        if trained_on in DATASETS and source != trained_on:
            raise DataError(f"{purpose} needs the data trained on, {trained_on!r}, not {source!r}")
        return
    if not isinstance(recorded, dict) or not {"path", "size", "sha256"} <= recorded.keys():
        raise DataError(f"the record of the data trained on is damaged: {recorded!r}")
    if source in DATASETS:
        trained_on = recorded["path"]
        raise DataError(f"{purpose} needs the data trained on, {trained_on!r}, not {source!r}")
    if not os.path.isfile(source):
        raise DataError(
            f"{purpose} needs the data trained on, {recorded['path']!r}, which is no longer "
            "there; name the data with --data"
        )
    now = data_identity(source)
    if (now["size"], now["sha256"]) != (recorded["size"], recorded["sha256"]):
        changed = "its size" if now["size"] != recorded["size"] else "its contents"
        raise DataError(
            f"{purpose} needs the data trained on, but {source!r} is not it: {changed} "
            f"differ from {recorded['path']!r} as trained on ({recorded['size']} bytes, "
            f"SHA-256 {recorded['sha256'][:12]}...); the file has changed since"
        )


def _read_csv(
    path: str, *, target: str | None, features: list[str] | None, need_target: bool
) -> Data:
    require("pandas")
    import pandas as pd

    header = _header(path)
    try:
        with warnings.catch_warnings():
            # pandas reads a large file in pieces and warns when a column's pieces got
            # different types (a word among numbers): every column is checked below.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            # A first row longer than the header: pandas would drop its extra fields.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # na_filter=False: an empty field or "NA" stays text, to be named as not a
            # number; index_col=False: a row with an extra field is an error, never an index.
            frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True,
                                index_col=False, na_filter=False)  # fmt: skip
    except pd.errors.ParserWarning:
        raise _bad_row(path, header) or DataError(
            f"{path!r}: rows longer than the header"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' ParserError is one
        problem = " ".join(str(exc).split())
        # A row longer than the header, in the words used for a shorter one.
        long_row = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", problem)
        if long_row:
            n, line, saw = long_row.groups()
            raise DataError(f"{path!r} line {line}: {saw} fields, the header has {n}") from None
        raise DataError(f"cannot read {path!r}: {problem}") from None
    if frame.shape[0] == 0:
        raise DataError(f"{path!r} needs a header row and at least one row of data")
    _check_row_lengths(path, header, frame)
    if _reads_as_data(header, frame, pd):
        raise DataError(
            f"{path!r} has no header row: its first line ({_some(header, 'fields')}) reads "
            "as data like the lines below it, not as column names; add a first line that "
            "names the columns"
        )
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DataError(f"{path!r} has more than one column named {_some(twice, 'names')}")
    if target is None:
        target = next((t for t in ("target", "y") if t in header), header[-1])
    if target not in header and (need_target or features is None):
        raise DataError(
            f"no column {target!r} in {path!r}; its columns are {_some(header, 'in all')}"
        )
    if features is None:
        features = [h for h in header if h != target]
    missing = [f for f in features if f not in header]
    if missing:
        raise DataError(
            f"{path!r} has {len(features) - len(missing)} of the model's {len(features)} "
            f"features: no column {_some(missing, 'missing')}; "
            f"its columns are {_some(header, 'in all')}"
        )
    if not features:
        raise DataError(f"{path!r} has no feature columns besides the target {target!r}")
    X = np.empty((frame.shape[0], len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        X[:, j] = _numbers(frame.iloc[:, header.index(name)], path, name, pd)
    y = None
    if target in header:
        column = frame.iloc[:, header.index(target)]
        if column.dtype.kind in "iuf":
            y = _as_target(column.to_numpy())
        else:  # text as written (booleans too), then numbers where every value is one
            y = _as_target(column.astype(str).str.strip().to_numpy(dtype=str))
    return Data(X, y, list(features), target, path)


def _header(path: str) -> list[str]:
    """The first row of a CSV file: its column names, if it has them."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = next((row for row in csv.reader(fh) if row), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path!r}: {exc}") from None
    if first is None:
        raise DataError(f"{path!r} needs a header row and at least one row of data")
    return [h.strip() for h in first]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _reads_as_data(header: list[str], frame: Any, pd: Any) -> bool:
    """Whether the first row of a CSV file is a sample rather than the columns' names.

    It is when it looks like the rows below it in every column: a number where the
    column holds numbers, one of the column's values where it holds text (a class
    label).  A name rarely passes both, except numbers that count the columns (0, 1,
    2, ..., as pandas writes a table without names), which are taken for names.
    """
    if header in ([str(k) for k in range(len(header))], [str(k + 1) for k in range(len(header))]):
        return False
    for k, field in enumerate(header):
        column = frame.iloc[:, k]
        if column.dtype.kind in "iuf":  # booleans are compared as text, as labels are
            if not _is_number(field):
                return False
        elif not (column.astype(str).str.strip() == field).any() and not (
            _is_number(field) and pd.to_numeric(column, errors="coerce").notna().any()
        ):
            return False
    return True


def _numbers(column: Any, path: str, name: str, pd: Any) -> np.ndarray:
    """A CSV column as float64, or an error naming the first field that is not a number."""
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    for i in np.flatnonzero(np.isnan(values)):
        text = column.iloc[i]
        try:
            values[i] = float(text)  # "nan" is a number to Python's float, as before
        except (TypeError, ValueError):
            line = _line_number(path, i)
            raise DataError(
                f"{path!r} line {line}, column {name!r}: {text!r} is not a number"
            ) from None
    return values


def _check_row_lengths(path: str, header: list[str], frame: Any) -> None:
    """Refuse rows with fewer or more fields than the header, naming the first one.

    pandas fills a short row's missing fields with empty fields (which make a column of
    numbers one of text), so a short row leaves an empty field in the last column.  Only
    then, or when a number there is NaN, is the file read again to find the row.
    """
    last = frame.iloc[:, -1]
    if last.dtype.kind in "biuf":
        suspect = last.isna().any()
    else:
        suspect = (last.astype(str).str.len() == 0).any()
    if frame.shape[1] == len(header) and not suspect:
        return
    bad = _bad_row(path, header)
    if bad is not None:
        raise bad
    if frame.shape[1] != len(header):  # no row to blame: a header pandas read otherwise
        raise DataError(f"{path!r}: {frame.shape[1]} columns, the header names {len(header)}")


def _bad_row(path: str, header: list[str]) -> DataError | None:
    """The error for the first row whose number of fields is not the header's, if any."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if row and len(row) != len(header):
                return DataError(
                    f"{path!r} line {reader.line_num}: {len(row)} fields, the header has "
                    f"{len(header)}"
                )
    return None


def _line_number(path: str, row: int) -> int:
    """The line of the file where data row ``row`` (0 for the first after the header) ends.

    pandas does not say; read again up to there (only for an error message).  Blank
    lines are skipped, as pandas skips them.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        records = (r for r in reader if r)
        for _ in itertools.islice(records, row + 1):  # the header, and the rows before
            pass
        next(records, None)
        return reader.line_num


def _some(names: list[str], counted: str, *, shown: int = 5) -> str:
    """The first few of ``names``, then "..." and how many there are: a message stays a line."""
    text = ", ".join(repr(n) for n in names[:shown])
    return text if len(names) <= shown else f"{text}, ... ({len(names)} {counted})"


def _read_npz(
    path: str, *, target: str | None, features: list[str] | None, need_target: bool
) -> Data:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {path!r} as .npz without pickle: {exc}") from None
    if "X" not in arrays:
        raise DataError(f"{path!r} must hold the features as an array 'X'; it has {list(arrays)}")
    X = arrays["X"]
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise DataError(f"{path!r}: 'X' must be a 2-D array of numbers, got {X.dtype} {X.shape}")
    named = target is not None
    if target is None:
        target = next((t for t in ("y", "target") if t in arrays), "y")
    names = [f"x{j}" for j in range(X.shape[1])]
    if features is not None and len(features) != X.shape[1]:
        raise DataError(f"{path!r}: 'X' has {X.shape[1]} features, the model {len(features)}")
    y = arrays.get(target)
    if y is None and need_target:
        advice = "" if named else "; name the target with --target"
        raise DataError(
            f"no array {target!r} in {path!r}; its arrays are {_some(list(arrays), 'in all')}"
            f"{advice}"
        )
    if y is not None:
        if y.ndim != 1:
            raise DataError(f"{path!r}: the target {target!r} must be 1-D, got shape {y.shape}")
        y = _as_target(y.astype(str) if y.dtype.kind == "S" else y)
    return Data(X.astype(np.float64), y, features or names, target, path)


def _as_target(y: np.ndarray) -> np.ndarray:
    """Numbers where every value is one (int64 when all are whole), else the strings."""
    if y.dtype.kind == "U":
        try:
            y = y.astype(np.float64)
        except ValueError:
            return y
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    return y


def infer_task(y: np.ndarray) -> str:
    """``"classify"`` for labels (text, or few distinct integers), else ``"regress"``."""
    if y.dtype.kind in "USbO":
        return "classify"
    if y.dtype.kind in "iu" and len(np.unique(y)) <= MAX_INFERRED_CLASSES:
        return "classify"
    return "regress"


def classification_warning(y: np.ndarray, y_train: np.ndarray) -> str | None:
    """Why classifying ``y`` from the training split's ``y_train`` will go poorly, or None.

    Too many classes (a quantity taken for labels, more often than not), or too few
    samples of each to learn it from: a class with fewer than 2 training samples, or
    none at all, is one the network can hardly ever predict right.
    """
    classes = np.unique(y)
    _, counts = np.unique(y_train, return_counts=True)
    K, per_class = len(classes), len(y_train) / len(classes)
    rare, absent = K - int(np.sum(counts >= 2)), K - len(counts)
    reasons = []
    if K > MANY_CLASSES:
        regress = " (is it a quantity? then --task regress)" if y.dtype.kind in "biuf" else ""
        reasons.append(f"the target has {K} distinct values, each a class of its own{regress}")
    if per_class < FEW_PER_CLASS:
        reasons.append(f"only {per_class:.1f} training samples per class on average")
    if rare:
        none = f", {absent} with none" if absent else ""
        reasons.append(f"{rare} of the {K} classes have fewer than 2 training samples{none}")
    if not reasons:
        return None
    return f"--task classify: {'; '.join(reasons)}: expect a poor held-out accuracy"


def split(y: np.ndarray | None, N: int, *, task: str, test_fraction: float, seed: int):
    """Indices of the training and held-out samples, as scikit-learn's ``train_test_split``.

    Stratified by class for classification (when every class has two samples or more).
    """
    require("sklearn")
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classify" and y is not None:
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 else None
    try:
        return train_test_split(
            np.arange(N), test_size=test_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        problem = f"cannot hold out --test-fraction {test_fraction} of {N} samples: {exc}"
        raise DataError(problem) from None
