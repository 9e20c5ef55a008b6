"""Exceptions and warnings, compatible with scikit-learn's without importing it.

scikit-learn is not a dependency of xpnet.  When it *is* in use (imported by the
caller), the classes raised here also derive from scikit-learn's own, so that
``except sklearn.exceptions.NotFittedError`` and scikit-learn's estimator checks
recognise them.  When it is not imported, nobody can be catching its classes.
"""

from __future__ import annotations

import sys
from functools import cache


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit`` (or ``partial_fit``)."""


class DataConversionWarning(UserWarning):
    """Warns that input data was converted to the form the estimator expects."""


class ConvergenceWarning(UserWarning):
    """Warns that training stopped at a limit (``max_iter``, ``max_fun``) before it converged."""


@cache
def _with_sklearn_base(cls: type, sklearn_cls: type) -> type:
    return type(cls.__name__, (cls, sklearn_cls), {"__module__": cls.__module__})


def _compatible(cls: type) -> type:
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return cls
    return _with_sklearn_base(cls, getattr(sklearn_exceptions, cls.__name__))


def not_fitted_error(estimator: object) -> NotFittedError:
    """The error for using ``estimator`` before it is fitted."""
    name = type(estimator).__name__
    return _compatible(NotFittedError)(
        f"This {name} instance is not fitted yet. Call 'fit' with appropriate "
        "arguments before using this estimator."
    )


def data_conversion_warning() -> type[DataConversionWarning]:
    """The warning class to use for a data conversion."""
    return _compatible(DataConversionWarning)


def convergence_warning() -> type[ConvergenceWarning]:
    """The warning class to use when training stops before it converged."""
    return _compatible(ConvergenceWarning)
