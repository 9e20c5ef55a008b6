"""scikit-learn's searches and cross-validation, with the fits trained as stacks.

:class:`GridSearchCV`, :class:`RandomizedSearchCV` and :func:`cross_validate` take
scikit-learn's parameters and give its results (``cv_results_``, ``best_params_``...).
What differs is how the fits run: the candidates × folds whose networks have the same
shape (``xpnet.estimators._stack.stack_key``) are trained together as stacks, each
network exactly as its own ``fit`` would train it, and the others one by one.  The
scores are then taken by scikit-learn's scorers on each fitted estimator, as
scikit-learn's own search takes them.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np  # host-side: folds, results
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import indexable

from ..estimators._stack import fit_stack, host_targets, most_per_stack, stack_key, stack_sizes
from ..estimators._validation import check_X

#: How one fit of a search ended: the fitted estimator (or the error), and its time.
Fitted = tuple[Any, float]


def fit_all(
    estimators: Sequence[Any],
    X: Any,
    y: Any,
    folds: Sequence[np.ndarray],
    *,
    sample_weight: Any = None,
    n_jobs: int | None = None,
    verbose: int = 0,
    max_stack: int | None = None,
) -> list[Fitted]:
    """Fit ``estimators[i]`` on the rows ``folds[i]`` of (X, y): as stacks where they can
    share one, one by one otherwise; ``n_jobs`` stacks (or fits) at a time.

    Returns each estimator fitted (or the ValueError its training raised) and its fit
    time: a stack's time shared equally among its networks.
    """
    y_host = host_targets(y)
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, est in enumerate(estimators):
        key = stack_key(est, X)
        groups[key if key is not None else ("alone", i)].append(i)
    X_sizes = None  # X as an array, only to size the stacks
    jobs: list[list[int]] = []
    workers = _workers(n_jobs)
    for key, members in groups.items():
        if key[0] == "alone" or len(members) == 1:
            jobs += [[i] for i in members]
            continue
        first = estimators[members[0]]
        if X_sizes is None:
            X_sizes, _, _ = check_X(X, estimator=type(first).__name__)
        n_train = min(len(folds[i]) for i in members)
        most = most_per_stack(first, X_sizes, y_host, n_train)
        most = most if max_stack is None else min(most, max_stack)
        # With several workers, at least one stack each: every core gets a share.
        most = min(most, -(-len(members) // min(workers, len(members))))
        start = 0
        for size in stack_sizes(len(members), most):
            jobs.append(members[start : start + size])
            start += size
    if verbose:
        stacks = sum(len(job) > 1 for job in jobs)
        print(f"Training {len(estimators)} networks as {stacks} stacks and "
              f"{len(jobs) - stacks} single fits.")  # fmt: skip

    def run(job: list[int]) -> list[tuple[int, Fitted]]:
        return _run_job(job, estimators, X, y_host, folds, sample_weight, verbose)

    if workers == 1 or len(jobs) == 1:
        done = [run(job) for job in jobs]
    else:
        from joblib import Parallel, delayed  # scikit-learn's own dependency

        done = Parallel(n_jobs=n_jobs)(delayed(run)(job) for job in jobs)
    results: list[Fitted | None] = [None] * len(estimators)
    for part in done:
        for i, fitted in part:
            results[i] = fitted
    return results  # type: ignore[return-value]


def _workers(n_jobs: int | None) -> int:
    """The number of workers ``n_jobs`` means, as joblib counts them."""
    if n_jobs is None or n_jobs == 1:
        return 1
    from joblib import effective_n_jobs

    return effective_n_jobs(n_jobs)


def _run_job(job, estimators, X, y, folds, sample_weight, verbose) -> list[tuple[int, Fitted]]:
    """One stack (or one fit): each estimator fitted, with its share of the time."""
    start = time.perf_counter()
    if len(job) == 1:
        (i,) = job
        fitted = _fit_one(estimators[i], X, y, folds[i], sample_weight)
        return [(i, (fitted, time.perf_counter() - start))]
    report = None
    if verbose:

        def report(epochs: int, training: int, stopped: int, failed: int) -> None:
            print(f"[stack of {len(job)}] epoch {epochs}: {training} training, "
                  f"{stopped} stopped, {failed} diverged")  # fmt: skip

    fitted = fit_stack(
        [estimators[i] for i in job], X, y, [folds[i] for i in job], sample_weight, report=report
    )
    each = (time.perf_counter() - start) / len(job)
    done = []
    for i, est in zip(job, fitted, strict=True):
        if est is None:  # the stack could not take it (a fold without a class): alone
            done += _run_job([i], estimators, X, y, folds, sample_weight, 0)
        else:
            done.append((i, (est, each)))
    return done


def _fit_one(est: Any, X: Any, y: np.ndarray, rows: np.ndarray, sample_weight: Any) -> Any:
    """``est`` fitted alone on its rows, or the exception its fit raised."""
    weights = None if sample_weight is None else _safe_indexing(sample_weight, rows)
    try:
        return est.fit(_safe_indexing(X, rows), _safe_indexing(y, rows), sample_weight=weights)
    except Exception as error:  # scikit-learn's searches record any failure
        return error


def _scorers(estimator: Any, scoring: Any) -> Callable | dict[str, Callable]:
    """scikit-learn's scorer for ``scoring``, or for several metrics (a list, tuple, set or
    dict), a dict of them by name."""
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return check_scoring(estimator, scoring=scoring)
    if isinstance(scoring, dict):
        return {name: check_scoring(estimator, scoring=s) for name, s in scoring.items()}
    if isinstance(scoring, (list, tuple, set)) and scoring:
        return {name: check_scoring(estimator, scoring=name) for name in scoring}
    raise ValueError(
        f"scoring must be None, a string, a callable, or a non-empty list, tuple, set or dict "
        f"of them, got {scoring!r}."
    )


def _score(scorer: Any, est: Any, X: Any, y: Any, error_score: Any) -> Any:
    """The score of ``est`` on (X, y), or a dict of them by metric; ``error_score`` where
    the fit failed."""
    if isinstance(scorer, dict):
        return {name: _score(s, est, X, y, error_score) for name, s in scorer.items()}
    return error_score if isinstance(est, Exception) else scorer(est, X, y)


def _evaluate(search: Any, X: Any, y: Any, groups: Any, sample_weight: Any,
              candidates: list[dict]) -> tuple[list[dict], int]:  # fmt: skip
    """Every candidate on every split: the rows of ``cv_results_``, split by split."""
    X, y, groups = indexable(X, y, groups)
    cv = check_cv(search.cv, y, classifier=is_classifier(search.estimator))
    splits = list(cv.split(X, y, groups))
    n_splits = len(splits)
    if search.verbose > 0:
        print(f"Fitting {n_splits} folds for each of {len(candidates)} candidates, "
              f"totalling {n_splits * len(candidates)} fits")  # fmt: skip
    splits = [(np.asarray(train), np.asarray(test)) for train, test in splits]
    estimators, folds = [], []
    for params in candidates:
        for train, _ in splits:
            estimators.append(clone(search.estimator).set_params(**clone(params, safe=False)))
            folds.append(train)  # one array per split, shared by its candidates
    fitted = fit_all(
        estimators, X, y, folds, sample_weight=sample_weight, n_jobs=search.n_jobs,
        verbose=search.verbose, max_stack=getattr(search, "max_stack", None),
    )  # fmt: skip
    _raise_or_warn(fitted, search.error_score)
    scorer = search.scorer_
    # Each split's rows, taken once for all its candidates.
    parts = [("test", 1)] + ([("train", 0)] if search.return_train_score else [])
    rows = {(part, s): (_safe_indexing(X, split[i]), _safe_indexing(y, split[i]))
            for s, split in enumerate(splits) for part, i in parts}  # fmt: skip
    out = []
    for n, (est, fit_time) in enumerate(fitted):
        start = time.perf_counter()
        row = {"test": _score(scorer, est, *rows["test", n % n_splits], search.error_score)}
        score_time = time.perf_counter() - start
        if search.return_train_score:
            row["train"] = _score(scorer, est, *rows["train", n % n_splits], search.error_score)
        row.update(fit_time=fit_time, score_time=score_time, estimator=est)
        out.append(row)
    return out, n_splits


def _raise_or_warn(fitted: list[Fitted], error_score: Any) -> None:
    """scikit-learn's handling of failed fits: raise the first with ``error_score="raise"``,
    else warn once how many failed and why."""
    errors = [est for est, _ in fitted if isinstance(est, Exception)]
    if not errors:
        return
    if error_score == "raise":
        raise errors[0]
    if len(errors) == len(fitted):
        raise ValueError(
            f"All the {len(fitted)} fits failed. The first failed with: "
            f"{type(errors[0]).__name__}: {errors[0]}"
        )
    reasons = defaultdict(int)
    for error in errors:
        reasons[f"{type(error).__name__}: {error}"] += 1
    listed = "\n".join(f"{n} fits failed with {reason}" for reason, n in reasons.items())
    warnings.warn(
        f"\n{len(errors)} fits failed out of a total of {len(fitted)}.\nThe score on these "
        f"train-test partitions for these parameters will be set to {error_score}.\n{listed}",
        FitFailedWarning,
        stacklevel=4,
    )


def _masked_params(candidates: list[dict]) -> dict[str, np.ma.MaskedArray]:
    """``param_<name>``: each parameter's values, masked where a candidate lacks it (an
    object array unless the values make a 1-D array of numbers, as scikit-learn's)."""
    values: dict[str, dict[int, Any]] = defaultdict(dict)
    for i, params in enumerate(candidates):
        for name, value in params.items():
            values[name][i] = value
    columns = {}
    for name, by_index in values.items():
        try:
            inferred = np.array(list(by_index.values()))
            dtype = inferred.dtype if inferred.dtype.kind != "U" and inferred.ndim == 1 else object
        except ValueError:
            dtype = np.dtype(object)
        column = np.ma.MaskedArray(np.empty(len(candidates), dtype=dtype), mask=True)
        for i, value in by_index.items():
            column[i] = value
        columns[f"param_{name}"] = column
    return columns


def _results(candidates: list[dict], rows: list[dict], n_splits: int,
             return_train_score: bool) -> dict[str, Any]:  # fmt: skip
    """``cv_results_`` in scikit-learn's layout."""
    n = len(candidates)
    results: dict[str, Any] = {}

    def store(key: str, values: list[float], *, splits: bool = False, rank: bool = False) -> None:
        array = np.array(values, dtype=np.float64).reshape(n, n_splits)
        if splits:
            for s in range(n_splits):
                results[f"split{s}_{key}"] = array[:, s]
        mean = np.average(array, axis=1)
        if splits and not np.isfinite(mean).all():
            warnings.warn(
                f"One or more of the {key.split('_')[0]} scores are non-finite: {mean}",
                UserWarning,
                stacklevel=4,
            )
        results[f"mean_{key}"] = mean
        results[f"std_{key}"] = np.sqrt(np.average((array - mean[:, None]) ** 2, axis=1))
        if rank:
            if np.isnan(mean).all():
                ranks = np.ones_like(mean, dtype=np.int32)
            else:
                from scipy.stats import rankdata

                filled = np.nan_to_num(mean, nan=np.nanmin(mean) - 1)
                ranks = rankdata(-filled, method="min").astype(np.int32, copy=False)
            results[f"rank_{key}"] = ranks

    store("fit_time", [r["fit_time"] for r in rows])
    store("score_time", [r["score_time"] for r in rows])
    results.update(_masked_params(candidates))
    results["params"] = candidates
    parts = ["test", "train"] if return_train_score else ["test"]
    multimetric = isinstance(rows[0]["test"], dict)
    names = list(rows[0]["test"]) if multimetric else ["score"]
    for name in names:
        for part in parts:
            values = [r[part][name] if multimetric else r[part] for r in rows]
            store(f"{part}_{name}", values, splits=True, rank=part == "test")
    return results


class _BaseSearch(MetaEstimatorMixin, BaseEstimator):
    """What :class:`GridSearchCV` and :class:`RandomizedSearchCV` share."""

    def __init__(self, estimator, *, scoring=None, n_jobs=None, refit=True, cv=None,
                 verbose=0, pre_dispatch="2*n_jobs", error_score=np.nan,
                 return_train_score=False, max_stack=None) -> None:  # fmt: skip
        self.estimator = estimator
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.cv = cv
        self.verbose = verbose
        self.pre_dispatch = pre_dispatch
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.max_stack = max_stack

    def _candidates(self) -> Iterable[dict]:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, *, groups: Any = None, **params: Any) -> _BaseSearch:
        """Fit every candidate on every split, then (``refit``) the best on all of X.

        Parameters
        ----------
        X : array of shape (N, n_features)
        y : array of shape (N,) or (N, n_outputs)
        groups : array of shape (N,), optional
            Group labels, for group splitters (``GroupKFold``...).
        **params
            ``sample_weight`` (of shape (N,)) only: each fit takes its rows' weights.
        """
        unknown = set(params) - {"sample_weight"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.fit takes sample_weight as its only fit parameter, "
                f"got {sorted(unknown)}."
            )
        if self.error_score != "raise" and not isinstance(self.error_score, numbers.Number):
            raise ValueError(
                "error_score must be the string 'raise' or a numeric value, got "
                f"{self.error_score!r}."
            )
        sample_weight = params.get("sample_weight")
        self.scorer_ = _scorers(self.estimator, self.scoring)
        self.multimetric_ = isinstance(self.scorer_, dict)
        self._check_refit()
        candidates = [dict(c) for c in self._candidates()]
        if not candidates:
            raise ValueError(f"{type(self).__name__} has no candidates to fit.")
        rows, self.n_splits_ = _evaluate(self, X, y, groups, sample_weight, candidates)
        self.cv_results_ = _results(candidates, rows, self.n_splits_, self.return_train_score)
        if self.refit is not False:
            self.best_index_ = self._best_index()
            self.best_params_ = candidates[self.best_index_]
            if not callable(self.refit):
                key = "score" if not self.multimetric_ else self.refit
                self.best_score_ = float(self.cv_results_[f"mean_test_{key}"][self.best_index_])
            best = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
            start = time.perf_counter()
            fit_params = {} if sample_weight is None else {"sample_weight": sample_weight}
            self.best_estimator_ = best.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
        return self

    def _check_refit(self) -> None:
        if self.multimetric_ and self.refit is not False and not callable(self.refit):
            names = list(self.scorer_)
            if not (isinstance(self.refit, str) and self.refit in names):
                raise ValueError(
                    "For multi-metric scoring, the parameter refit must be set to a scorer "
                    f"key or a callable to refit an estimator with the best parameter "
                    f"setting on the whole data; got refit={self.refit!r}, keys {names}."
                )

    def _best_index(self) -> int:
        if callable(self.refit):
            index = self.refit(self.cv_results_)
            if not isinstance(index, numbers.Integral) or not 0 <= index < len(
                self.cv_results_["params"]
            ):
                raise IndexError("best_index_ returned by refit is not a valid index.")
            return int(index)
        key = "score" if not self.multimetric_ else self.refit
        return int(self.cv_results_[f"rank_test_{key}"].argmin())

    # -- the best estimator's face ------------------------------------------------------

    def _fitted_best(self) -> Any:
        if not hasattr(self, "best_estimator_"):
            from .._errors import NotFittedError

            raise NotFittedError(
                f"This {type(self).__name__} was not refitted (refit=False) or is not "
                "fitted yet: it has no best_estimator_."
            )
        return self.best_estimator_

    def predict(self, X: Any) -> Any:
        """The best estimator's ``predict``."""
        return self._fitted_best().predict(X)

    def predict_proba(self, X: Any) -> Any:
        """The best estimator's ``predict_proba``."""
        return self._fitted_best().predict_proba(X)

    def predict_log_proba(self, X: Any) -> Any:
        """The best estimator's ``predict_log_proba``."""
        return self._fitted_best().predict_log_proba(X)

    def score(self, X: Any, y: Any = None) -> float:
        """The search's scorer (with multi-metric scoring, ``refit``'s) on the best estimator."""
        scorer = self.scorer_[self.refit] if self.multimetric_ else self.scorer_
        return scorer(self._fitted_best(), X, y)

    @property
    def classes_(self) -> Any:
        return self._fitted_best().classes_

    @property
    def n_features_in_(self) -> int:
        return self._fitted_best().n_features_in_


class GridSearchCV(_BaseSearch):
    """scikit-learn's ``GridSearchCV`` for xpnet's estimators, with the fits stacked.

    Every candidate of ``param_grid`` is fitted on every split of ``cv`` and scored by
    ``scoring``, as scikit-learn's ``GridSearchCV`` does, with the same parameters and
    the same results (``cv_results_``, ``best_params_``, ``best_score_``,
    ``best_estimator_``...).  The fits whose networks have the same shape are trained
    together as stacks (one computation for many networks: see the README), each as its
    own ``fit`` would train it; candidates that differ in layer sizes, activation,
    solver, batch size and the like form separate stacks, and fits that cannot be
    stacked (``solver="lbfgs"``, ``engine="jit"`` where a single fit refuses it,
    ``verbose``, sparse X, mini-batches or early stopping on Dask) run one by one.

    Parameters
    ----------
    estimator : MLPRegressor or MLPClassifier
    param_grid : dict or list of dicts
        Parameter names mapped to the values to try, as scikit-learn takes it.
    scoring, n_jobs, refit, cv, verbose, pre_dispatch, error_score, return_train_score
        As in scikit-learn's ``GridSearchCV``.  ``n_jobs`` runs that many stacks (or
        single fits) at a time, in processes; ``pre_dispatch`` is accepted and unused.
        A fit that diverges gets ``error_score`` (the others in its stack go on).
    max_stack : int, optional
        The most networks one stack holds; None sizes stacks to the device (the CPU's
        cache, or a quarter of a GPU's free memory) and, with ``n_jobs``, gives each
        worker a stack.

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_,
    n_splits_, refit_time_, multimetric_
        As in scikit-learn.  ``mean_fit_time`` of a stacked fit is its stack's time
        divided by the networks in it.
    """

    def __init__(self, estimator, param_grid, *, scoring=None, n_jobs=None, refit=True,
                 cv=None, verbose=0, pre_dispatch="2*n_jobs", error_score=np.nan,
                 return_train_score=False, max_stack=None) -> None:  # fmt: skip
        super().__init__(
            estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
            pre_dispatch=pre_dispatch, error_score=error_score,
            return_train_score=return_train_score, max_stack=max_stack,
        )  # fmt: skip
        self.param_grid = param_grid

    def _candidates(self) -> Iterable[dict]:
        return ParameterGrid(self.param_grid)


class RandomizedSearchCV(_BaseSearch):
    """scikit-learn's ``RandomizedSearchCV`` for xpnet's estimators, with the fits stacked.

    ``n_iter`` candidates are drawn from ``param_distributions`` with ``random_state``
    exactly as scikit-learn draws them; the other parameters, the fitting and the
    results are those of :class:`GridSearchCV`.
    """

    def __init__(self, estimator, param_distributions, *, n_iter=10, scoring=None,
                 n_jobs=None, refit=True, cv=None, verbose=0, pre_dispatch="2*n_jobs",
                 random_state=None, error_score=np.nan, return_train_score=False,
                 max_stack=None) -> None:  # fmt: skip
        super().__init__(
            estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
            pre_dispatch=pre_dispatch, error_score=error_score,
            return_train_score=return_train_score, max_stack=max_stack,
        )  # fmt: skip
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state

    def _candidates(self) -> Iterable[dict]:
        return ParameterSampler(
            self.param_distributions, self.n_iter, random_state=self.random_state
        )


def cross_validate(
    estimator: Any, X: Any, y: Any = None, *, groups: Any = None, scoring: Any = None,
    cv: Any = None, n_jobs: int | None = None, verbose: int = 0, params: dict | None = None,
    return_train_score: bool = False, return_estimator: bool = False,
    error_score: Any = np.nan, max_stack: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """scikit-learn's ``cross_validate``, with the folds' fits trained as one stack.

    Returns scikit-learn's dict: ``fit_time``, ``score_time``, ``test_score`` (or
    ``test_<name>`` for each of several scorers), with ``return_train_score`` the
    ``train_`` scores, and with ``return_estimator`` the fitted estimators.  ``params``
    may hold ``sample_weight``.
    """
    search = GridSearchCV(
        estimator, {}, scoring=scoring, cv=cv, n_jobs=n_jobs, verbose=verbose, refit=False,
        error_score=error_score, return_train_score=return_train_score, max_stack=max_stack,
    )  # fmt: skip
    search.scorer_ = _scorers(estimator, scoring)
    sample_weight = (params or {}).get("sample_weight")
    rows, _ = _evaluate(search, X, y, groups, sample_weight, [{}])
    out: dict[str, Any] = {
        "fit_time": np.array([r["fit_time"] for r in rows]),
        "score_time": np.array([r["score_time"] for r in rows]),
    }
    if return_estimator:
        out["estimator"] = [r["estimator"] for r in rows]
    for part in ["test", "train"] if return_train_score else ["test"]:
        if isinstance(rows[0][part], dict):
            for name in rows[0][part]:
                out[f"{part}_{name}"] = np.array([r[part][name] for r in rows])
        else:
            out[f"{part}_score"] = np.array([r[part] for r in rows])
    return out
