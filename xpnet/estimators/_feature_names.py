"""Feature names: scikit-learn's ``feature_names_in_``, for DataFrame-like ``X``.

The rule is scikit-learn's (``sklearn.utils.validation._check_feature_names``):

- ``X`` has feature names when it has a ``columns`` attribute (pandas, polars, ...) and
  every column name is a ``str``.  Names that are all of other types (pandas' default
  integer columns) mean no feature names; a mix of ``str`` and other types is refused.
- ``fit`` and the first ``partial_fit`` record the names as ``feature_names_in_``, a
  NumPy object array, or delete a ``feature_names_in_`` left from an earlier fit when
  ``X`` has none.
- Every later call (``predict``, ``score``, a further ``partial_fit``, ...) compares: the
  names must be the same and in the same order, else ``ValueError``; names on one side
  only (a DataFrame for an estimator fitted on an array, or the reverse) give a
  ``UserWarning``.

Duck typing only: neither pandas nor scikit-learn is imported.  The messages are
scikit-learn's, word for word, because its estimator checks match on them.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np  # host-side: the names are a NumPy object array, as in scikit-learn

#: At most this many names are listed in a mismatch message, then "- ...".
MAX_LISTED_NAMES = 5

_PACKAGE = __name__.partition(".")[0]


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame-like ``X`` when they are all strings, else None.

    Parameters
    ----------
    X : array or DataFrame-like of shape (N, n_features)
        A DataFrame-like is any object with a ``columns`` attribute that iterates over
        the column names (a pandas ``Index``, a polars list of ``str``).

    Returns
    -------
    names : NumPy array of shape (n_features,) of dtype object, or None
        The names, each a ``str``; None when ``X`` has no ``columns`` attribute, no
        columns, or no name that is a ``str``.

    Raises
    ------
    TypeError
        When some names are strings and others are not.
    """
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    # fromiter takes each name as it is; np.asarray would unpack names that are sequences.
    names = np.fromiter(columns, dtype=object)
    if names.shape[0] == 0:
        return None
    types = sorted(t.__qualname__ for t in {type(name) for name in names})
    if types == ["str"]:
        return names
    if "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. "
            "If you want feature names to be stored and validated, you must convert "
            "them all to strings, by using X.columns = X.columns.astype(str) for "
            "example. Otherwise you can remove feature / column names from your input "
            "data, or convert them all to a non-string data type."
        )
    return None


def check_feature_names(estimator: Any, X: Any, *, reset: bool) -> None:
    """Record ``X``'s feature names on ``estimator``, or check them against the recorded.

    Parameters
    ----------
    estimator : estimator
        Its ``feature_names_in_`` is set or deleted (``reset``) or read.
    X : array or DataFrame-like of shape (N, n_features)
        The user's ``X`` as it was passed, before any conversion to an array.
    reset : bool
        True in ``fit`` and the first ``partial_fit``: set ``feature_names_in_`` to the
        names of ``X``, or delete it if ``X`` has none.  False everywhere else: check
        the names of ``X`` against ``feature_names_in_``.

    Raises
    ------
    TypeError
        When the names of ``X`` mix strings and other types.
    ValueError
        When both ``X`` and the fit had feature names and they differ: names unseen at
        fit time, names now missing (at most five of each listed), or another order.

    Warns
    -----
    UserWarning
        When only one of ``X`` and the fit had feature names.  The warning points at the
        first caller outside xpnet, however deep inside xpnet this is called from.

    Notes
    -----
    Call it before ``X`` is converted or checked for its number of features and
    finiteness: a DataFrame with other columns can hold NaN or have another width, and
    the names say more about what went wrong.
    """
    names = feature_names(X)
    if reset:
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_  # a stale name list from an earlier fit
        return

    fitted = getattr(estimator, "feature_names_in_", None)
    estimator_name = type(estimator).__name__
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {estimator_name} was fitted without feature names",
            UserWarning,
            stacklevel=_first_caller_outside_xpnet(),
        )
        return
    if names is None:
        warnings.warn(
            "X does not have valid feature names, but"
            f" {estimator_name} was fitted with feature names",
            UserWarning,
            stacklevel=_first_caller_outside_xpnet(),
        )
        return
    if list(names) == list(fitted):
        return

    message = "The feature names should match those that were passed during fit.\n"
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    if unseen:
        message += "Feature names unseen at fit time:\n" + _listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + _listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def _listed(names: list[str]) -> str:
    """One ``- name`` line for each of the first few names, then ``- ...`` if there are more."""
    lines = [f"- {name}\n" for name in names[:MAX_LISTED_NAMES]]
    if len(names) > MAX_LISTED_NAMES:
        lines.append("- ...\n")
    return "".join(lines)


def _first_caller_outside_xpnet() -> int:
    """The ``stacklevel`` at which ``warnings.warn`` names the first frame outside xpnet.

    Called from the function that warns.  The estimators reach ``check_feature_names``
    through helpers and decorators of varying depth (``predict`` → ``_output`` →
    ``_network``, ``score`` → ``predict`` → ...), so no fixed ``stacklevel`` points at
    the user's line from all of them.  (Python 3.12's ``skip_file_prefixes`` does the
    same; xpnet supports 3.10.)
    """
    level, frame = 1, sys._getframe(1)  # level 1: the function that calls warnings.warn
    while frame.f_back is not None and _in_xpnet(frame):
        level, frame = level + 1, frame.f_back
    return level


def _in_xpnet(frame: Any) -> bool:
    module = frame.f_globals.get("__name__", "")
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")
