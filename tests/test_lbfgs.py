"""``solver="lbfgs"``: the two-loop recursion, the line search, and whole fits against scipy's
L-BFGS-B and scikit-learn's ``solver="lbfgs"``, on every backend."""

from __future__ import annotations

import itertools
import math
import warnings

import array_api_compat.numpy as np_xp
import numpy as np
import pytest
from conftest import assert_close, engine_data

import xpnet
from xpnet import engines
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.backprop import loss_and_gradients
from xpnet.core.losses import OBJECTIVES
from xpnet.core.step import Samples
from xpnet.training import lbfgs
from xpnet.training.lbfgs import Point, minimize, strong_wolfe, two_loop

scipy_optimize = pytest.importorskip("scipy.optimize", reason="scipy is not installed")

# -- the two parts of the method -----------------------------------------------------------


def test_the_two_loop_direction_meets_the_secant_equation():
    # H maps the newest y to its s (H yₖ = sₖ), whatever the older pairs: the BFGS update.
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (3,)]
    pairs = []
    for _ in range(4):
        s = [rng.normal(size=shape) for shape in shapes]
        y = [s_i + 0.3 * rng.normal(size=s_i.shape) for s_i in s]  # s·y > 0
        sy = sum(float(np.sum(a * b)) for a, b in zip(s, y, strict=True))
        yy = sum(float(np.sum(a * a)) for a in y)
        assert sy > 0
        pairs.append((s, y, 1.0 / sy, np.asarray(sy / yy)))
    d = two_loop(pairs[-1][1], pairs, xp=np_xp)
    for d_i, s_i in zip(d, pairs[-1][0], strict=True):
        np.testing.assert_allclose(d_i, -s_i, rtol=1e-12, atol=1e-14)


def test_the_two_loop_direction_is_the_inverse_hessians_on_a_quadratic():
    # For E = ½ xᵀAx, n pairs whose steps are A-conjugate (as exact line searches make
    # them) give H = A⁻¹ exactly: each update keeps the secant equations of the others.
    rng = np.random.default_rng(1)
    n = 5
    Q = rng.normal(size=(n, n))
    A = Q @ Q.T + n * np.eye(n)
    pairs = []
    for s in np.linalg.eigh(A)[1].T:  # orthogonal eigenvectors: A-conjugate
        y = A @ s
        pairs.append(([s], [y], 1.0 / (s @ y), np.asarray((s @ y) / (y @ y))))
    g = rng.normal(size=n)
    (d,) = two_loop([g], pairs, xp=np_xp)
    np.testing.assert_allclose(d, -np.linalg.solve(A, g), rtol=1e-10)


def _phi(f, df):
    """φ as the line search sees it: Points without parameters."""

    def phi(alpha):
        return Point(alpha, None, f(alpha), None, df(alpha), 0.0)

    return phi


LINES = {
    # φ(α) and φ'(α), each with φ'(0) < 0, and first steps that are too short or too long.
    "quadratic": (lambda a: (a - 3.0) ** 2, lambda a: 2.0 * (a - 3.0)),
    "quartic": (lambda a: (a - 0.01) ** 4 - 2.0 * a * 1e-8, lambda a: 4.0 * (a - 0.01) ** 3 - 2e-8),
    "steep then flat": (lambda a: -math.atan(5.0 * a) + 0.01 * a * a,
                        lambda a: -5.0 / (1.0 + 25.0 * a * a) + 0.02 * a),
    "overflows far out": (lambda a: (a - 1.0) ** 2 if a < 50 else math.inf,
                          lambda a: 2.0 * (a - 1.0) if a < 50 else math.nan),
}  # fmt: skip


@pytest.mark.parametrize("first_step", [1e-4, 1.0, 1e3])
@pytest.mark.parametrize("line", list(LINES))
def test_the_line_search_meets_the_strong_wolfe_conditions(line, first_step):
    f, df = LINES[line]
    start = Point(0.0, None, f(0.0), None, df(0.0), 0.0)
    found, n = strong_wolfe(_phi(f, df), start, first_step)
    assert found is not None and 1 <= n <= lbfgs.MAX_LINE_SEARCH
    assert found.E <= start.E + lbfgs.C1 * found.alpha * start.slope
    assert abs(found.slope) <= lbfgs.C2 * abs(start.slope)


def test_a_line_search_that_finds_no_decrease_says_so():
    # φ rises at once although φ'(0) claims it falls (rounding, or a wrong gradient).
    phi = _phi(lambda a: 1.0 + a, lambda a: 1.0)
    start = Point(0.0, None, 1.0, None, -1.0, 0.0)
    found, n = strong_wolfe(phi, start, 1.0)
    assert found is None and n <= lbfgs.MAX_LINE_SEARCH


class _Function:
    """An engine over a function of one vector x = W[0], for :func:`minimize` alone."""

    xp, device = np_xp, "cpu"

    def __init__(self, fun, grad):
        self.fun, self.grad, self.calls = fun, grad, 0

    def loss_and_gradients(self, W, b, data):
        self.calls += 1
        return np.asarray(self.fun(W[0])), [self.grad(W[0])], []


def test_rosenbrock_takes_as_many_evaluations_as_scipy():
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    fun = _Function(scipy_optimize.rosen, scipy_optimize.rosen_der)
    ours = minimize([x0], [], None, engine=fun, max_iter=1000, max_fun=15000, tol=1e-5)
    theirs = scipy_optimize.minimize(
        scipy_optimize.rosen, x0, jac=scipy_optimize.rosen_der, method="L-BFGS-B",
        options=dict(gtol=1e-5, maxiter=1000, maxfun=15000),
    )  # fmt: skip
    # Both converge (scipy on the gradient, xpnet on a stalled E, by a different path).
    assert ours.status in ("gtol", "ftol") and theirs.status == 0
    assert ours.losses[-1] < 1e-10
    np.testing.assert_allclose(ours.W[0], np.ones(4), atol=1e-5)
    assert fun.calls == ours.n_fun
    # Two line searches reach the same minimum by different steps: comparable work.
    assert ours.n_fun <= 1.3 * theirs.nfev + 5, (ours.n_fun, theirs.nfev)
    assert len(ours.losses) <= 1.3 * theirs.nit + 5, (len(ours.losses), theirs.nit)


def test_a_gradient_that_points_the_wrong_way_ends_the_fit():
    # −∇E points uphill: the line search finds no lower E along it, and with no pairs to
    # drop there is nothing to restart from.  (E is 0 at the start, so that the values
    # decide: no difference counts as rounding.)
    fun = _Function(lambda x: float(x @ x) - 3.0, lambda x: -2.0 * x)
    ours = minimize([np.ones(3)], [], None, engine=fun, max_iter=100, max_fun=15000, tol=1e-5)
    assert ours.status == "no_descent" and ours.losses == []
    assert ours.n_fun == fun.calls <= 1 + lbfgs.MAX_LINE_SEARCH
    np.testing.assert_array_equal(ours.W[0], np.ones(3))


# -- the same objective as scipy's L-BFGS-B ------------------------------------------------


def _network(X, Y, hidden, activation, output, loss, *, s=None, alpha=0.0, seed=0):
    """The starting parameters, the engine and the samples of a fit, and E(P), ∇E(P) on a
    flat float64 vector P for scipy."""
    sizes = [X.shape[1], *hidden, Y.shape[0]]
    rng = np.random.default_rng(seed)
    W = [rng.uniform(-0.5, 0.5, size=(m, n)) for n, m in itertools.pairwise(sizes)]
    b = [rng.uniform(-0.5, 0.5, size=m) for m in sizes[1:]]
    f = [ACTIVATIONS[activation]] * len(hidden) + [ACTIVATIONS[output]]
    objective = OBJECTIVES[(loss, output)]
    engine = engines.choose(
        "eager", X, f=f, objective=objective, alpha=alpha, widest=max(sizes), chunk_size=None
    )
    S = None if s is None else float(np.sum(s))
    shapes = [P.shape for P in W + b]
    cuts = np.cumsum([math.prod(shape) for shape in shapes])[:-1]

    def fun(P):
        parts = [p.reshape(shape) for p, shape in zip(np.split(P, cuts), shapes, strict=True)]
        E, gW, gb = loss_and_gradients(
            parts[: len(W)], parts[len(W) :], X.T, Y, f=f, objective=objective, xp=np_xp,
            s=s, S=S, alpha=alpha,
        )  # fmt: skip
        return float(E), np.concatenate([g.reshape(-1) for g in gW + gb])

    return W, b, engine, Samples(X, Y, s, s), fun, np.concatenate([P.reshape(-1) for P in W + b])


#: Networks without a hidden layer whose E_total (with α > 0) has one minimum, so that
#: both methods must reach the same E: least squares, and logistic regressions.
CONVEX = {
    "mse-identity": ("mse", "identity"),
    "cross_entropy-softmax": ("cross_entropy", "softmax"),
    "cross_entropy-sigmoid": ("cross_entropy", "sigmoid"),
}


def _targets(loss, output, N, rng):
    if output == "softmax":
        return np.eye(3)[rng.integers(0, 3, size=N)].T
    if loss == "cross_entropy" or output == "sigmoid":
        return rng.integers(0, 2, size=(2, N)).astype(float)
    return rng.normal(size=(2, N))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", list(CONVEX))
def test_a_convex_fit_reaches_scipys_minimum(case, weighted):
    # With one minimum and both methods run to a gradient of 1e-9 (or until E stops
    # falling, at its rounding), E agrees to its rounding: |E − E*| ≈ ‖∇E‖² / 2λ_min, about
    # 1e-17 here, and the parameters to about ‖∇E‖ / λ_min.  These problems are tame
    # enough that both methods take the same steps: the same evaluations, give or take one.
    loss, output = CONVEX[case]
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    Y = _targets(loss, output, 60, rng)
    s = rng.uniform(0.2, 2.0, size=60) if weighted else None
    W, b, engine, data, fun, P0 = _network(X, Y, (), "tanh", output, loss, s=s, alpha=0.5)
    with engine.open(data) as (data, _):
        ours = minimize(W, b, data, engine=engine, max_iter=1000, max_fun=15000, tol=1e-9,
                        ftol=0.0)  # fmt: skip
    theirs = scipy_optimize.minimize(
        fun, P0, jac=True, method="L-BFGS-B", options=dict(gtol=1e-9, ftol=0.0, maxiter=1000)
    )
    assert ours.status in ("gtol", "ftol") and ours.g_max <= 1e-8
    np.testing.assert_allclose(ours.losses[-1], theirs.fun, rtol=1e-14)
    np.testing.assert_allclose(np.concatenate([P.reshape(-1) for P in ours.W + ours.b]),
                               theirs.x, rtol=1e-7, atol=1e-8)  # fmt: skip
    assert abs(ours.n_fun - theirs.nfev) <= 1, (ours.n_fun, theirs.nfev)


#: Hidden layers: (hidden activation, loss, output activation).
NETWORKS = {
    "tanh-mse-identity": ("tanh", "mse", "identity"),
    "sigmoid-mse-sigmoid": ("sigmoid", "mse", "sigmoid"),
    "relu-cross_entropy-softmax": ("relu", "cross_entropy", "softmax"),
    "tanh-cross_entropy-sigmoid": ("tanh", "cross_entropy", "sigmoid"),
}


@pytest.mark.parametrize("case", list(NETWORKS))
def test_a_network_fit_is_as_good_as_scipys(case):
    # E has many minima: from the same start, two line searches may take the methods to
    # different ones.  At scikit-learn's settings (tol=1e-4, 200 iterations) each ends
    # within a few percent of the other's E, with as many evaluations per iteration.
    activation, loss, output = NETWORKS[case]
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 4))
    Y = _targets(loss, output, 80, rng)
    s = rng.uniform(0.2, 2.0, size=80)
    W, b, engine, data, fun, P0 = _network(X, Y, (6,), activation, output, loss, s=s, alpha=0.1)
    with engine.open(data) as (data, _):
        ours = minimize(W, b, data, engine=engine, max_iter=200, max_fun=15000, tol=1e-4)
    theirs = scipy_optimize.minimize(
        fun, P0, jac=True, method="L-BFGS-B", options=dict(gtol=1e-4, maxiter=200)
    )
    assert ours.losses[-1] <= 1.02 * theirs.fun, (ours.losses[-1], theirs.fun)
    per_iteration = ours.n_fun / len(ours.losses), theirs.nfev / theirs.nit
    assert per_iteration[0] <= 1.2 * per_iteration[1], per_iteration
    assert ours.n_fun <= 2 * theirs.nfev, (ours.n_fun, theirs.nfev)
    # Each iteration lowers E, beyond its rounding or within it (where the line search
    # judges by the slopes: with relu's kinks, the last step may rise by a few ulps).
    noise = lbfgs.ROUNDING * np.finfo(np.float64).eps
    assert all(b < a * (1 + noise) for a, b in itertools.pairwise([fun(P0)[0], *ours.losses]))


# -- the estimators ------------------------------------------------------------------------


def _fits(backend, task, *, dtype="float64", **params):
    """The same lbfgs fit on NumPy and on ``backend``: (xpnet on backend, on NumPy)."""
    X, y, labels = engine_data(N=60)
    s = np.random.default_rng(5).uniform(0.2, 2.0, size=60)
    cls = xpnet.MLPRegressor if task == "regress" else xpnet.MLPClassifier
    target = y if task == "regress" else labels
    settings = dict(solver="lbfgs", hidden_layer_sizes=(7,), activation="tanh", alpha=0.1,
                    max_iter=6, random_state=0, **params)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)  # max_iter ends both
        ours = cls(**settings).fit(
            backend.asarray(X, dtype=dtype), backend.asarray(target), sample_weight=s
        )
        reference = cls(**settings).fit(X.astype(dtype), target, sample_weight=s)
    return ours, reference


@pytest.mark.parametrize("task", ["regress", "classify"])
def test_every_backend_takes_numpys_iterations(backend, task):
    ours, reference = _fits(backend, task)
    assert ours.n_iter_ == reference.n_iter_ == 6
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-10)
    for got, want in zip(ours.weights_ + ours.biases_, reference.weights_ + reference.biases_,
                         strict=True):  # fmt: skip
        assert_close(got, want, backend, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32(backend):
    ours, reference = _fits(backend, "regress", dtype="float32")
    assert ours.weights_[0].dtype == backend.dtype("float32")
    assert reference.weights_[0].dtype == np.float32
    # The line search decides on float32 values: the paths agree to float32's rounding.
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-4)


def test_only_scalars_come_to_the_host(monkeypatch):
    # One read per evaluation, of three numbers (E, ∇E·d, max|∇E|: two at the start), and
    # one per iteration, of the new direction's slope ∇E·d: never a vector.
    from xpnet.engines.eager import Eager

    reads, evaluations = [], []
    read, evaluate = lbfgs.to_numpy, Eager.loss_and_gradients
    monkeypatch.setattr(lbfgs, "to_numpy", lambda x: reads.append(x.shape) or read(x))
    monkeypatch.setattr(Eager, "loss_and_gradients",
                        lambda *args: evaluations.append(1) or evaluate(*args))  # fmt: skip
    X, y, _ = engine_data(N=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(7,), max_iter=5,
                                 random_state=0).fit(X, y)  # fmt: skip
    assert est.n_iter_ == 5 and len(evaluations) > 5
    assert reads[0] == (2,) and reads.count((3,)) == len(evaluations) - 1
    assert reads.count((1,)) == 5 and len(reads) == len(evaluations) + 5


def test_on_dask_each_evaluation_is_a_graph_over_the_blocks():
    da = pytest.importorskip("dask.array", reason="Dask is not installed")
    X, _, labels = engine_data(N=90)
    settings = dict(solver="lbfgs", hidden_layer_sizes=(7,), activation="tanh", alpha=0.1,
                    max_iter=6, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        ours = xpnet.MLPClassifier(**settings).fit(
            da.from_array(X, chunks=(30, -1)), da.from_array(labels, chunks=30)
        )
        reference = xpnet.MLPClassifier(**settings).fit(X, labels)
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-10)
    for got, want in zip(ours.weights_, reference.weights_, strict=True):
        np.testing.assert_allclose(got.compute(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("limit", "match"),
    [(dict(max_iter=3), r"max_iter=3 iterations"), (dict(max_fun=4), r"more than max_fun=4")],
)
def test_a_limit_that_ends_the_fit_warns_as_sklearn_does(limit, match):
    from sklearn.exceptions import ConvergenceWarning

    X, y, _ = engine_data(N=60)
    est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(7,), random_state=0, **limit)
    with pytest.warns(ConvergenceWarning, match=match) as record:
        est.fit(X, y)
    assert issubclass(record[0].category, xpnet.ConvergenceWarning)
    assert record[0].filename == __file__  # the warning points at the call to fit
    # Each iteration takes at least one evaluation beyond the first: at most the limit.
    assert est.n_iter_ == len(est.loss_curve_) <= next(iter(limit.values()))


def test_a_converged_fit_stops_without_a_warning():
    X, y, _ = engine_data(N=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(), tol=1e-6).fit(X, y)
    # Least squares (no hidden layer): converged on the gradient, or on an E that falls
    # by less than FTOL, so within about FTOL of the least-squares minimum.
    assert 0 < est.n_iter_ < 50
    A = np.column_stack([X, np.ones(len(X))])
    r = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(est.loss_curve_[-1], 0.5 * np.mean(r * r), rtol=0, atol=1e-8)
    assert est.best_loss_ == min(est.loss_curve_) == est.loss_curve_[-1]


def test_a_fit_that_starts_converged_takes_no_iteration():
    X, y, _ = engine_data(N=60)
    est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(3,), tol=1e3, random_state=0)
    est.fit(X, y)
    assert est.n_iter_ == 0 and est.loss_curve_ == [] and est.best_loss_ is None


@pytest.mark.parametrize("cls", [xpnet.MLPRegressor, xpnet.MLPClassifier])
def test_partial_fit_is_refused_as_sklearn_refuses_it(cls):
    est = cls(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit is only available for stochastic"):
        est.partial_fit  # noqa: B018
    assert hasattr(est.set_params(solver="adam"), "partial_fit")
    assert "one epoch" in cls.partial_fit.__doc__


def test_early_stopping_is_ignored_as_sklearn_ignores_it():
    X, y, _ = engine_data(N=60)
    settings = dict(solver="lbfgs", hidden_layer_sizes=(7,), max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        plain = xpnet.MLPRegressor(**settings).fit(X, y)
        stopping = xpnet.MLPRegressor(early_stopping=True, **settings).fit(X, y)
    assert stopping.loss_curve_ == plain.loss_curve_
    assert stopping.validation_scores_ is None and stopping.best_validation_score_ is None
    np.testing.assert_array_equal(stopping.weights_[0], plain.weights_[0])


def test_warm_start_goes_on_from_the_weights():
    X, y, _ = engine_data(N=60)
    est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(7,), max_iter=5,
                             random_state=0, warm_start=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        est.fit(X, y)
        first = list(est.loss_curve_)
        W = [W_l.copy() for W_l in est.weights_]
        est.fit(X, y)
    # The second fit starts where the first ended (a fresh history of pairs, so its first
    # step differs from the step an uninterrupted fit would take).
    second = est.loss_curve_[len(first) :]
    assert est.loss_curve_[: len(first)] == first and len(second) == 5
    assert second[0] < first[-1]
    assert not np.array_equal(est.weights_[0], W[0])


def test_resume_is_refused():
    X, y, _ = engine_data(N=60)
    est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(3,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        est.fit(X, y)
    with pytest.raises(ValueError, match=r"solver='lbfgs'.*warm_start=True"):
        est.fit(X, y, resume=True)


def test_bad_max_fun_is_named():
    with pytest.raises(ValueError, match="max_fun must be an int >= 1, got 0"):
        xpnet.MLPRegressor(solver="lbfgs", max_fun=0).fit([[0.0], [1.0]], [0.0, 1.0])


def test_a_saved_lbfgs_model_loads_and_goes_on(tmp_path):
    X, _, labels = engine_data(N=60)
    est = xpnet.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(7,), max_iter=4, max_fun=99,
                              random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        est.fit(X, labels)
    est.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        assert not [name for name in archive.files if name.startswith("moment_")]
    loaded = xpnet.load(tmp_path / "m.npz")
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert loaded.loss_curve_ == est.loss_curve_ and loaded.n_iter_ == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        loaded.set_params(warm_start=True).fit(X, labels)
    assert loaded.loss_curve_[4] < est.loss_curve_[-1]
    # Another solver then starts its own state afresh, as after any fit.
    loaded.set_params(solver="adam").partial_fit(X, labels)
    assert loaded._optimizer_state.t == 1


def test_interrupt_keeps_the_last_iteration(tmp_path):
    X, y, _ = engine_data(N=60)
    seen = []

    def stop_at_the_third(losses, scores):
        seen.extend(losses)
        assert scores is None
        if len(seen) == 3:
            raise KeyboardInterrupt

    est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(7,), random_state=0)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, callback=stop_at_the_third, checkpoint=tmp_path / "c.npz")
    assert est.n_iter_ == 3 and est.loss_curve_ == seen
    assert xpnet.load(tmp_path / "c.npz").loss_curve_ == seen


def test_verbose_prints_each_iteration(capsys):
    X, y, _ = engine_data(N=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        est = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(3,), max_iter=3,
                                 verbose=True, random_state=0).fit(X, y)  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Iteration {k + 1}, loss = {E:.8f}" for k, E in enumerate(est.loss_curve_)]


# -- against scikit-learn's solver="lbfgs" -------------------------------------------------


def _sklearn_data(name):
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "diabetes":
        y = (y - y.mean()) / y.std()
    return X, y


def _start_sklearn_from(theirs, ours, X, y):
    """Make scikit-learn's fit start from xpnet's starting weights (a first fit of one
    iteration builds its layers; warm_start then goes on from the weights set)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.set_params(max_iter=1).fit(X, y)
    theirs.coefs_ = [W.T.copy() for W in ours.weights_]
    theirs.intercepts_ = [b.copy() for b in ours.biases_]


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
def test_scores_as_sklearns_lbfgs(name):
    # From the same weights (where the two networks have the same shape: not for a binary
    # classifier, which xpnet gives two softmax outputs and scikit-learn one sigmoid), on
    # the same objective; the two line searches take different steps on a non-convex E,
    # so the held-out scores agree within a few samples, not to rounding.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    X, y = _sklearn_data(name)
    regress = name == "diabetes"
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, random_state=0, stratify=None if regress else y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    # scikit-learn's alpha, and for diabetes (442 samples) one that keeps the R² positive.
    settings = dict(solver="lbfgs", hidden_layer_sizes=(32,), activation="relu",
                    alpha=10.0 if regress else 1e-4, max_iter=100, random_state=0)  # fmt: skip
    ours_cls, theirs_cls = (
        (xpnet.MLPRegressor, MLPRegressor) if regress else (xpnet.MLPClassifier, MLPClassifier)
    )
    ours = ours_cls(**settings)
    theirs = theirs_cls(**settings, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(max_iter=1).fit(X_train, y_train)  # the starting weights, drawn
        W0, b0 = ours.weights_, ours.biases_
        ours = ours_cls(**settings, warm_start=True)
        ours.weights_, ours.biases_ = W0, b0
        if name != "breast_cancer":
            _start_sklearn_from(theirs, ours, X_train, y_train)
        ours.fit(X_train, y_train)
        theirs.set_params(max_iter=100).fit(X_train, y_train)
    ours_score, theirs_score = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    margin = 0.05 if regress else 3 / len(y_test)
    assert ours_score >= theirs_score - margin, (ours_score, theirs_score)
