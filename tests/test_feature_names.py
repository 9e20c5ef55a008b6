"""``feature_names_in_``: recorded from DataFrame columns in fit, checked everywhere after.

A bare stand-in estimator keeps these tests independent of xpnet's estimators.  The
messages are compared whole, since scikit-learn's estimator checks match on them, and
scikit-learn's own ``_check_feature_names`` serves as an independent oracle.
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest

from xpnet.estimators._feature_names import check_feature_names, feature_names


class FakeMLP:
    """An estimator as far as feature names go: an object with a class name."""


class Frame:
    """A DataFrame-like that is not pandas: ``columns`` is a list, as in polars."""

    def __init__(self, columns: list) -> None:
        self.columns = columns


def _frame(columns: list):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(np.zeros((2, len(columns))), columns=columns)


def _fitted(columns: list) -> FakeMLP:
    est = FakeMLP()
    check_feature_names(est, Frame(columns), reset=True)
    return est


MISMATCH = "The feature names should match those that were passed during fit.\n"


# -- reading names ------------------------------------------------------------------------


def test_dataframe_names_are_recorded_as_an_object_array_of_str():
    est = FakeMLP()
    check_feature_names(est, _frame(["col_0", "col_1", "col_2"]), reset=True)
    names = est.feature_names_in_
    assert isinstance(names, np.ndarray)
    assert names.dtype == object
    assert names.tolist() == ["col_0", "col_1", "col_2"]
    assert all(type(name) is str for name in names)


def test_duck_typed_columns_give_names_without_pandas():
    names = feature_names(Frame(["x", "y"]))
    assert names.dtype == object
    assert names.tolist() == ["x", "y"]


def test_tuple_names_are_no_names():
    """Tuple names (pandas MultiIndex columns) are not strings."""
    assert feature_names(_frame([("a", "b"), ("c", "d")])) is None


def test_names_must_be_exactly_str():
    """As in scikit-learn, which compares type names: NumPy's ``str_`` is not ``str``."""
    assert feature_names(Frame([np.str_("a"), np.str_("b")])) is None
    with pytest.raises(TypeError, match=re.escape("['str', 'str_']")):
        feature_names(Frame(["a", np.str_("b")]))


@pytest.mark.parametrize(
    "X", [np.zeros((2, 3)), [[0.0, 1.0]], Frame([])], ids=["ndarray", "list", "no-columns"]
)
def test_input_without_names_records_no_attribute(X):
    assert feature_names(X) is None
    est = FakeMLP()
    check_feature_names(est, X, reset=True)
    assert not hasattr(est, "feature_names_in_")


def test_integer_column_names_are_no_names_without_error_or_warning():
    X = _frame([0, 1, 2])  # pandas' default RangeIndex columns
    assert feature_names(X) is None
    est = FakeMLP()
    check_feature_names(est, X, reset=True)
    assert not hasattr(est, "feature_names_in_")
    check_feature_names(est, X, reset=False)  # a warning would be an error here
    check_feature_names(est, np.zeros((2, 3)), reset=False)
    assert not hasattr(est, "feature_names_in_")


@pytest.mark.parametrize(
    ("columns", "types"),
    [(["a", 1], "['int', 'str']"), (["pizza", ("a", "b")], "['str', 'tuple']")],
    ids=["str-int", "str-tuple"],
)
def test_mixed_str_and_other_names_raise(columns, types):
    message = (
        "Feature names are only supported if all input features have string names, "
        f"but your input has {types} as feature name / column name types. "
        "If you want feature names to be stored and validated, you must convert "
        "them all to strings, by using X.columns = X.columns.astype(str) for "
        "example. Otherwise you can remove feature / column names from your input "
        "data, or convert them all to a non-string data type."
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        feature_names(_frame(columns))
    est = FakeMLP()
    with pytest.raises(TypeError, match=re.escape(message)):
        check_feature_names(est, _frame(columns), reset=True)
    assert not hasattr(est, "feature_names_in_")


# -- reset ----------------------------------------------------------------------------------


def test_reset_replaces_names():
    est = _fitted(["a", "b"])
    check_feature_names(est, Frame(["c", "d", "e"]), reset=True)
    assert est.feature_names_in_.tolist() == ["c", "d", "e"]


def test_reset_without_names_deletes_stale_names():
    est = _fitted(["a", "b"])
    check_feature_names(est, np.zeros((2, 2)), reset=True)
    assert not hasattr(est, "feature_names_in_")


# -- checking ------------------------------------------------------------------------------


def test_same_names_in_same_order_pass():
    est = _fitted(["a", "b", "c"])
    check_feature_names(est, _frame(["a", "b", "c"]), reset=False)
    assert est.feature_names_in_.tolist() == ["a", "b", "c"]


def test_checking_does_not_record_names():
    est = FakeMLP()
    with pytest.warns(UserWarning):
        check_feature_names(est, Frame(["a"]), reset=False)
    assert not hasattr(est, "feature_names_in_")


# The three cases of scikit-learn's check_dataframe_column_names_consistency, which
# builds the bad frame as pd.DataFrame(X, columns=...) from the fitted one.
NAMES = [f"col_{i}" for i in range(8)]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            NAMES[::-1],
            MISMATCH + "Feature names must be in the same order as they were in fit.\n",
        ),
        (
            [f"another_prefix_{i}" for i in range(8)],
            MISMATCH
            + "Feature names unseen at fit time:\n"
            + "".join(f"- another_prefix_{i}\n" for i in range(5))
            + "- ...\n"
            + "Feature names seen at fit time, yet now missing:\n"
            + "".join(f"- col_{i}\n" for i in range(5))
            + "- ...\n",
        ),
        (
            NAMES[:3],
            MISMATCH
            + "Feature names seen at fit time, yet now missing:\n"
            + "".join(f"- col_{i}\n" for i in range(3, 8)),
        ),
    ],
    ids=["reordered", "unseen", "missing"],
)
def test_other_names_raise_as_scikit_learn_checks(columns, expected):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 8)), columns=NAMES)
    est = FakeMLP()
    check_feature_names(est, X, reset=True)
    X_bad = pd.DataFrame(X, columns=columns)
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        check_feature_names(est, X_bad, reset=False)
    assert str(info.value) == expected


def test_unseen_and_missing_names_are_listed_sorted():
    est = _fitted(["b", "a", "c"])
    expected = (
        MISMATCH
        + "Feature names unseen at fit time:\n- y\n- z\n"
        + "Feature names seen at fit time, yet now missing:\n- a\n"
    )
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        check_feature_names(est, Frame(["z", "b", "c", "y"]), reset=False)
    assert str(info.value) == expected


def test_exactly_five_names_are_listed_without_ellipsis():
    est = _fitted([f"f{i}" for i in range(6)])
    with pytest.raises(ValueError) as info:
        check_feature_names(est, Frame(["f0"]), reset=False)
    assert str(info.value).endswith("- f1\n- f2\n- f3\n- f4\n- f5\n")
    assert "- ..." not in str(info.value)


def test_more_than_five_missing_names_are_truncated():
    est = _fitted([f"f{i}" for i in range(9)])
    expected = (
        MISMATCH
        + "Feature names seen at fit time, yet now missing:\n"
        + "- f2\n- f3\n- f4\n- f5\n- f6\n- ...\n"
    )
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        check_feature_names(est, Frame(["f0", "f1"]), reset=False)
    assert str(info.value) == expected


def test_array_for_an_estimator_fitted_with_names_warns():
    est = _fitted(["a", "b"])
    message = "X does not have valid feature names, but FakeMLP was fitted with feature names"
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$") as record:
        check_feature_names(est, np.zeros((2, 2)), reset=False)
    assert len(record) == 1
    assert est.feature_names_in_.tolist() == ["a", "b"]


def test_names_for_an_estimator_fitted_without_names_warn():
    est = FakeMLP()
    check_feature_names(est, np.zeros((2, 2)), reset=True)
    message = "X has feature names, but FakeMLP was fitted without feature names"
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$") as record:
        check_feature_names(est, _frame(["a", "b"]), reset=False)
    assert len(record) == 1
    assert not hasattr(est, "feature_names_in_")


def test_warning_points_at_the_first_caller_outside_xpnet():
    """Through helpers of any depth inside xpnet, the warning names the user's line."""
    inside_xpnet = {"__name__": "xpnet._stand_in", "check_feature_names": check_feature_names}
    exec(
        "def _network(est, X):\n"
        "    check_feature_names(est, X, reset=False)\n"
        "def predict(est, X):\n"
        "    _network(est, X)\n",
        inside_xpnet,
    )
    est = _fitted(["a", "b"])
    with pytest.warns(UserWarning, match="X does not have valid feature names") as record:
        line = inspect.currentframe().f_lineno + 1
        inside_xpnet["predict"](est, np.zeros((2, 2)))
    assert (record[0].filename, record[0].lineno) == (__file__, line)


# -- scikit-learn as the oracle ----------------------------------------------------------


def _outcome(check, columns_fit, columns):
    """What ``check(estimator, X, reset=...)`` does on a fit and then a later call."""
    est = FakeMLP()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            check(est, columns_fit, reset=True)
            check(est, columns, reset=False)
        except (TypeError, ValueError) as exc:
            return type(exc), str(exc)
    names = getattr(est, "feature_names_in_", None)
    return (
        None if names is None else (names.dtype, names.tolist()),
        [(w.category, str(w.message)) for w in record],
    )


@pytest.mark.parametrize(
    ("columns_fit", "columns"),
    [
        (list("abc"), list("abc")),
        (list("abc"), list("cba")),
        (list("abc"), list("ab")),
        (list("abc"), list("abcd")),
        (list("abcdefgh"), list("stuvwxyz")),
        (list("abc"), None),
        (None, list("abc")),
        (None, None),
        ([0, 1, 2], [0, 1, 2]),
        ([0, 1, 2], list("abc")),
        (list("abc"), [0, 1, 2]),
        (["a", 1], list("ab")),
        (list("ab"), ["a", 1]),
    ],
)
def test_same_outcome_as_scikit_learn(columns_fit, columns):
    pd = pytest.importorskip("pandas")
    validation = pytest.importorskip("sklearn.utils.validation")
    sklearn_check = getattr(validation, "_check_feature_names", None)
    if sklearn_check is None:
        pytest.skip("this scikit-learn has no sklearn.utils.validation._check_feature_names")

    def X(columns):
        if columns is None:
            return np.zeros((2, 3))
        return pd.DataFrame(np.zeros((2, len(columns))), columns=columns)

    ours = _outcome(check_feature_names, X(columns_fit), X(columns))
    theirs = _outcome(sklearn_check, X(columns_fit), X(columns))
    assert ours == theirs
