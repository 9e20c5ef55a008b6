"""Model selection over xpnet's estimators, with many fits trained as one computation.

:class:`GridSearchCV`, :class:`RandomizedSearchCV` and :func:`cross_validate` are
scikit-learn's, for ``MLPRegressor`` and ``MLPClassifier``: same parameters, same
results, with the fits of networks of one shape trained together as stacks.  They build
on scikit-learn's splitters and scorers, which must be installed.
"""

try:
    import sklearn  # noqa: F401
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ImportError(
        "xpnet.model_selection builds on scikit-learn's splitters and scorers; install it "
        "with: pip install scikit-learn"
    ) from missing

from ._search import GridSearchCV, RandomizedSearchCV, cross_validate

__all__ = ["GridSearchCV", "RandomizedSearchCV", "cross_validate"]
