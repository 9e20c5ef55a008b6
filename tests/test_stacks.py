"""Stacks: K networks trained as one computation, each equal to its own fit."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import xpnet
from xpnet._host import to_numpy
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.backprop import loss_and_gradients
from xpnet.core.losses import OBJECTIVES
from xpnet.estimators._stack import fit_stack, stack_key, stack_sizes

PAIRS = [("mse", "identity"), ("cross_entropy", "softmax"), ("poisson", "exp")]


def _data(n=90, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y_reg = X @ rng.normal(size=(n_in,)) + 0.1 * rng.normal(size=n)
    y_clf = np.argmax(X[:, :n_out] + 0.3 * rng.normal(size=(n, n_out)), axis=1)
    return X, y_reg, y_clf


def _no_stack_for(backend, *, full_batch=False):
    """Skip Dask where its stacks do not go: they train in full batch, each step a task
    per block of X for the whole stack, and the core runs on the blocks' own arrays."""
    if backend.name == "dask" and not full_batch:
        pytest.skip("Dask stacks train in full batch; mini-batch fits on Dask run one by one")


@pytest.mark.parametrize(("loss", "out"), PAIRS)
def test_a_stacks_gradients_are_each_networks_own(backend, loss, out):
    """E_total and its gradients of a stack of 3, with per-network weights, penalties and
    Σ sᵢ, equal those of each network alone on its own samples."""
    if backend.name == "dask":
        pytest.skip("the core runs on Dask's blocks, not on Dask arrays: see the fits below")
    xp, K, N, sizes = backend.xp, 3, 40, [4, 6, 3]
    rng = np.random.default_rng(1)
    W = [rng.normal(size=(K, b, a)) * 0.5 for a, b in itertools.pairwise(sizes)]
    b = [rng.normal(size=(K, b_)) * 0.1 for b_ in sizes[1:]]
    X = rng.normal(size=(N, sizes[0]))
    Y = rng.uniform(size=(sizes[-1], N))
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], N)].T
    s = rng.uniform(size=(K, N)) * (rng.uniform(size=(K, N)) > 0.3)  # zeros: other folds
    S, alpha = s.sum(axis=1), np.array([0.0, 0.1, 1.0])
    f = [ACTIVATIONS["tanh"], ACTIVATIONS[out]]
    as_ = backend.asarray
    E, gW, gb = loss_and_gradients(
        [as_(w) for w in W], [as_(c) for c in b], as_(X).T, as_(Y), f=f,
        objective=OBJECTIVES[(loss, out)], xp=xp, s=as_(s), S=as_(S), alpha=as_(alpha),
    )  # fmt: skip
    for k in range(K):
        E_k, gW_k, gb_k = loss_and_gradients(
            [as_(w[k]) for w in W], [as_(c[k]) for c in b], as_(X).T, as_(Y), f=f,
            objective=OBJECTIVES[(loss, out)], xp=xp, s=as_(s[k]), S=float(S[k]),
            alpha=float(alpha[k]),
        )  # fmt: skip
        np.testing.assert_allclose(to_numpy(E)[k], to_numpy(E_k), rtol=1e-12)
        for g, g_k in zip([*gW, *gb], [*gW_k, *gb_k], strict=True):
            np.testing.assert_allclose(to_numpy(g)[k], to_numpy(g_k), rtol=1e-12, atol=1e-15)


def _separate_and_stacked(make, X, y, rows, backend, sample_weight=None):
    """The K fits one by one, and as one stack, on ``backend``.  On JAX the separate fits
    run on NumPy: JAX's own run one operation at a time (seconds each) and equal NumPy's
    (``test_estimators.py``), so the compiled stack is checked against NumPy's fits."""
    separate = []
    X_dev = backend.asarray(X)
    alone = _separately(backend)
    for k, r in enumerate(rows):
        w = None if sample_weight is None else sample_weight[r]
        separate.append(make(k).fit(alone.asarray(X[r]), y[r], sample_weight=w))
    stacked = fit_stack([make(k) for k in range(len(rows))], X_dev, y, rows, sample_weight)
    return separate, stacked


def _separately(backend):
    """The backend the separate fits that a stack on ``backend`` is checked against run on."""
    from conftest import _make_backend

    return _make_backend("numpy") if backend.name == "jax" else backend


def _host(a):
    """An array on the host, from any backend's device (array-api-strict's second too)."""
    if type(a).__module__.startswith("array_api_strict"):
        import array_api_strict

        a = a.to_device(array_api_strict.Device("CPU_DEVICE"))
    return to_numpy(a)


def _assert_same_fit(a, b, *, rtol=1e-11):
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    assert a._optimizer_state.t == b._optimizer_state.t
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    for p, q in zip([*a.weights_, *a.biases_], [*b.weights_, *b.biases_], strict=True):
        np.testing.assert_allclose(_host(p), _host(q), rtol=rtol, atol=1e-13)
    for m, n in zip(a._optimizer_state.moments, b._optimizer_state.moments, strict=True):
        for p, q in zip(m, n, strict=True):
            np.testing.assert_allclose(_host(p), _host(q), rtol=rtol, atol=1e-13)


@pytest.mark.parametrize(
    "settings",
    [
        dict(solver="sgd", batch_size=None, momentum=0.0),
        dict(solver="sgd", batch_size=None, momentum=0.9, learning_rate_schedule="adaptive"),
        dict(solver="sgd", batch_size=16, momentum=0.9, learning_rate_schedule="invscaling"),
        dict(solver="adam", batch_size=16),
        dict(solver="sgd", batch_size=16, shuffle=False, learning_rate_schedule="adaptive"),
    ],
    ids=["full-batch", "full-batch-momentum-adaptive", "momentum-invscaling", "adam",
         "adaptive-unshuffled"],
)  # fmt: skip
def test_stacked_fits_equal_separate_fits(backend, settings):
    """Each network of a stack, on its own fold, with its own learning rate, penalty and
    seed (and so its own initial weights and batch order), ends as its own fit: weights,
    moments, loss curve, epoch and step counts.  The folds have different sizes, so the
    networks' last batches and their numbers of batches differ.  On Dask (full batch),
    each network weighs all of X's blocks and its separate fit sums over its fold's
    blocks: equal to within that rounding."""
    _no_stack_for(backend, full_batch=settings["batch_size"] is None)
    X, _, y = _data()
    rng = np.random.default_rng(3)
    rows = [np.sort(rng.choice(len(X), size=n, replace=False)) for n in (70, 71, 57, 90)]
    lrs, alphas = [0.05, 0.02, 0.1, 0.01], [0.0, 1e-3, 1e-2, 0.1]

    def make(k):
        return xpnet.MLPClassifier(
            hidden_layer_sizes=(7,), max_iter=20, random_state=k, learning_rate=lrs[k],
            alpha=alphas[k], **settings,
        )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        separate, stacked = _separate_and_stacked(make, X, y, rows, backend)
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)
        np.testing.assert_array_equal(_host(a.classes_), _host(b.classes_))


@pytest.mark.parametrize(
    "constants",
    [
        dict(solver="sgd", momentum=[0.5, 0.9, 0.99], batch_size=16),
        dict(solver="sgd", momentum=[0.3, 0.6, 0.9], nesterovs_momentum=False),
        dict(
            solver="adam",
            beta_1=[0.8, 0.9, 0.95],
            beta_2=[0.99, 0.999, 0.9],
            epsilon=[1e-8, 1e-6, 1e-4],
            batch_size=16,
        ),
    ],
    ids=["nesterov", "momentum-full-batch", "adam"],
)
def test_each_network_has_its_own_update_constants(constants):
    """Momentum and Adam's β₁, β₂ and ε may differ between the networks of a stack:
    each network steps with its own (Adam's bias correction with its own β's)."""
    X, _, y = _data()
    rows = [np.arange(len(X))] * 3
    fixed = {k: v for k, v in constants.items() if not isinstance(v, list)}

    def make(k):
        own = {key: v[k] for key, v in constants.items() if isinstance(v, list)}
        return xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=k,
                                   learning_rate=0.01, **fixed, **own)  # fmt: skip

    assert len({stack_key(make(k), X) for k in range(3)}) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        stacked = fit_stack([make(k) for k in range(3)], X, y, rows)
        separate = [make(k).fit(X, y) for k in range(3)]
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_a_stacked_rule_updates_each_network_as_its_own_rule_in_float32(name):
    """A stack's rule holds each network's constants as float32 arrays: 1 − β₁ is each
    network's own, worked out in double and rounded once (1 − (0.9 rounded) would be
    another float32), so each network's updates are its own rule's, bit for bit."""
    from xpnet.core.optimizers import make_optimizer, stacked

    if name == "adam":
        constants = [(0.9, 0.999, 1e-8), (0.8, 0.99, 1e-6), (0.95, 0.9, 1e-4)]
        rules = [make_optimizer("adam", beta_1=b1, beta_2=b2, epsilon=e) for b1, b2, e in constants]
    else:
        rules = [make_optimizer("sgd", momentum_=m) for m in (0.9, 0.7, 0.3)]
    rng = np.random.default_rng(0)
    G = [rng.normal(size=(3, 4, 2)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)]
    rule = stacked(rules, xp=np, device="cpu", dtype=np.float32)
    mu = np.asarray([0.01, 0.02, 0.03], dtype=np.float32)
    state = rule.init(G, xp=np)
    for _ in range(2):  # the second step has moments to carry
        U, state = rule.update(G, state, mu=mu, xp=np)
    for k, own in enumerate(rules):
        G_k = [g[k] for g in G]
        state_k = own.init(G_k, xp=np)
        for _ in range(2):
            U_k, state_k = own.update(G_k, state_k, mu=float(mu[k]), xp=np)
        for u, u_k in zip(U, U_k, strict=True):
            assert u.dtype == u_k.dtype == np.float32
            np.testing.assert_array_equal(u[k], u_k)


@pytest.mark.parametrize("gathered", [True, False], ids=["folds-gathered", "all-of-X-weighed"])
def test_a_full_batch_stack_gathers_its_folds_or_weighs_all_of_x(gathered, monkeypatch):
    """Folds are gathered while the copies are small; past GATHERED_BYTES each network
    weighs all of X instead (0 off its fold).  Either way, each equals its own fit."""
    import xpnet.training.stacks as stacks

    monkeypatch.setattr(stacks, "GATHERED_BYTES", 1 << 30 if gathered else 0)
    X, y, _ = _data()
    rows = [np.flatnonzero(np.arange(len(X)) % 3 != k) for k in range(3)]

    def make(k):
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, solver="sgd",
                                  learning_rate=0.02, random_state=k, batch_size=None)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        stacked = fit_stack([make(k) for k in range(3)], X, y, rows)
        separate = [make(k).fit(X[r], y[r]) for k, r in enumerate(rows)]
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)


def test_sample_weights_go_with_each_networks_rows():
    X, y, _ = _data()
    rng = np.random.default_rng(4)
    w = rng.uniform(size=len(X)) * (rng.uniform(size=len(X)) > 0.2)
    rows = [np.arange(0, 80), np.arange(10, 90), np.arange(0, 90, 2)]
    from conftest import _make_backend

    def make(k):
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=30, random_state=k,
                                  batch_size=20, learning_rate=0.01)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        separate, stacked = _separate_and_stacked(make, X, y, rows, _make_backend("numpy"), w)
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)


def test_a_diverging_network_leaves_the_others_bit_for_bit():
    """A network whose loss explodes comes back as its fit's ValueError, is set aside at
    the read-back, and the others are exactly (every bit) what they are in the same
    stack with that network training well."""
    X, y, _ = _data()
    rows = [np.arange(len(X))] * 3

    def make(lr):
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=48, random_state=0,
                                  solver="sgd", learning_rate=lr)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        diverging = fit_stack([make(0.01), make(50.0), make(0.03)], X, y, rows)
        training = fit_stack([make(0.01), make(0.02), make(0.03)], X, y, rows)
        with pytest.raises(ValueError, match="diverged") as alone:
            make(50.0).fit(X, y)
    assert isinstance(diverging[1], ValueError) and str(diverging[1]) == str(alone.value)
    for k in (0, 2):
        a, b = diverging[k], training[k]
        for p, q in zip([*a.weights_, *a.biases_], [*b.weights_, *b.biases_], strict=True):
            np.testing.assert_array_equal(p, q)
        assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == 48


def test_each_network_stops_by_its_own_rule():
    """A network whose loss stalls (a large tol) stops at its read-back and keeps its
    parameters; the others go on to max_iter; each equals its own fit."""
    X, y, _ = _data()
    rows = [np.arange(len(X))] * 3

    def make(k):
        tol = [1e-4, 10.0, 1e-4][k]
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=64, random_state=k,
                                  batch_size=30, tol=tol, n_iter_no_change=3)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        stacked = fit_stack([make(k) for k in range(3)], X, y, rows)
        separate = [make(k).fit(X, y) for k in range(3)]
    assert stacked[1].n_iter_ == 16 and stacked[0].n_iter_ == 64
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)


@pytest.mark.parametrize(
    ("library", "Estimator", "settings"),
    [
        ("numpy", xpnet.MLPClassifier, dict(batch_size=None, solver="sgd", learning_rate=0.1)),
        ("numpy", xpnet.MLPClassifier, dict(batch_size=16)),
        ("numpy", xpnet.MLPRegressor,
         dict(batch_size=20, validation_fraction=0.2, learning_rate=0.01)),
        ("jax", xpnet.MLPClassifier,  # compiled steps and validation passes
         dict(batch_size=None, solver="sgd", learning_rate=0.3, max_iter=32)),
    ],
    ids=["classifier-full-batch", "classifier-mini-batch", "regressor", "jax-classifier"],
)  # fmt: skip
def test_early_stopping_in_a_stack_is_each_networks_own(library, Estimator, settings):
    """With early stopping each network holds out its own samples (stratified for a
    classifier), scores them after every epoch, keeps its best epoch and stops by its
    own count: it ends as its own fit, record, best score and resumable state included.
    On JAX, the stack's steps and validation passes are compiled."""
    from conftest import _make_backend

    backend = _make_backend(library)
    X, y_reg, y_clf = _data(n=120)
    y = y_clf if Estimator is xpnet.MLPClassifier else y_reg
    rng = np.random.default_rng(5)
    rows = [np.sort(rng.choice(len(X), size=n, replace=False)) for n in (100, 96, 120)]

    def make(k):
        return Estimator(
            hidden_layer_sizes=(6,), random_state=k, early_stopping=True,
            n_iter_no_change=[2, 5, 8][k], tol=[1e-3, 1e-4, 0.0][k],
            **{"max_iter": 80, **settings},
        )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        stacked = fit_stack([make(k) for k in range(3)], backend.asarray(X), y, rows)
        alone = _separately(backend)
        separate = [make(k).fit(alone.asarray(X[r]), y[r]) for k, r in enumerate(rows)]
    assert len({est.n_iter_ for est in separate}) > 1  # they stop at different epochs
    for a, b in zip(separate, stacked, strict=True):
        _assert_same_fit(a, b)
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-11)
        np.testing.assert_allclose(a.validation_loss_curve_, b.validation_loss_curve_, rtol=1e-11)
        assert type(b.weights_[0]) is type(backend.asarray(X))
        assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-12)
        s_a, s_b = a._stopping_state, b._stopping_state
        assert (s_a.split_rng, s_a.n_samples, s_a.validation_fraction, s_a.no_change) == (
            s_b.split_rng,
            s_b.n_samples,
            s_b.validation_fraction,
            s_b.no_change,
        )
        for p, q in zip([*s_a.W, *s_a.b], [*s_b.W, *s_b.b], strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-13)


def test_a_fold_without_a_class_is_fitted_alone():
    """A fold that lacks a class has another output layer: the stack leaves it out (None)
    and the search fits it alone, as its own fit."""
    from xpnet.model_selection import cross_validate

    X, _, y = _data()
    missing = np.flatnonzero(y != 2)  # this fold has no sample of class 2
    rows = [np.arange(len(X)), missing]

    def make(k):
        return xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=16, random_state=k)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
        stacked = fit_stack([make(1), make(1)], X, y, rows)
        folds = [(r, np.arange(len(X))) for r in rows]
        searched = cross_validate(make(1), X, y, cv=folds, return_estimator=True)["estimator"]
        alone = make(1).fit(X[missing], y[missing])
    assert stacked[1] is None and stacked[0] is not None
    np.testing.assert_array_equal(searched[1].classes_, [0, 1])
    _assert_same_fit(searched[1], alone)
    _assert_same_fit(searched[0], stacked[0])


def test_what_can_share_a_stack():
    X = np.zeros((10, 3))
    base = xpnet.MLPRegressor(hidden_layer_sizes=(4,))
    differing = (dict(learning_rate=0.1), dict(alpha=1.0, random_state=3), dict(beta_2=0.9))
    same = [stack_key(xpnet.MLPRegressor(hidden_layer_sizes=(4,), **p), X) for p in differing]
    assert same[0] == same[1] == same[2] == stack_key(base, X)
    assert stack_key(xpnet.MLPRegressor(hidden_layer_sizes=(5,)), X) != same[0]
    assert stack_key(xpnet.MLPRegressor(batch_size=7), X) != stack_key(xpnet.MLPRegressor(), X)
    dask = pytest.importorskip("dask.array")  # on Dask: full batch, without early stopping
    X_d = dask.from_array(X, chunks=5)
    assert stack_key(xpnet.MLPRegressor(solver="sgd"), X_d) is not None
    assert stack_key(xpnet.MLPRegressor(solver="adam"), X_d) is not None  # "auto": all 10
    not_on_dask = [
        dict(solver="adam", batch_size=4),
        dict(solver="sgd", batch_size=4),
        dict(solver="sgd", early_stopping=True),
        dict(solver="sgd", engine="jit"),
    ]
    for p in not_on_dask:
        assert stack_key(xpnet.MLPRegressor(**p), X_d) is None
    sgd = [stack_key(xpnet.MLPRegressor(solver="sgd", momentum=m), X) for m in (0.0, 0.5, 0.9)]
    assert sgd[0] != sgd[1] == sgd[2]  # plain descent keeps no velocities: another rule
    for p in (dict(solver="lbfgs"), dict(engine="jit"), dict(verbose=True)):
        assert stack_key(xpnet.MLPRegressor(**p), X) is None
    stopping = stack_key(xpnet.MLPRegressor(early_stopping=True), X)
    assert stopping is not None and stopping != stack_key(xpnet.MLPRegressor(), X)
    assert stack_sizes(10, 4) == [4, 3, 3] and stack_sizes(3, 8) == [3]


def test_stacks_are_sized_to_the_device():
    """On a CPU, a stack fills at most 4 MiB of cache (fewer of larger networks); on a GPU,
    a quarter of the memory its device reports free (stood in for here)."""
    from xpnet import engines

    X = np.zeros((100, 64))
    sizes = dict(n_parameters=64 * 32 + 32 + 32 * 10 + 10, n_moments=2, n_layers=2)
    small = engines.most_per_stack(X, widest=64, batch=64, **sizes)
    large = engines.most_per_stack(X, widest=64, batch=1024, **sizes)
    per_network = 8 * (sizes["n_parameters"] * 4 + 64 * 64 * 3 + 64 * 64)
    assert small == min(256, engines._cache_bytes() // per_network) and 1 <= large < small
    assert engines._cache_bytes() <= 4 << 20
    # On Dask, a task per block holds the stack's temporaries for its block alone.
    dask = pytest.importorskip("dask.array")
    X_d = dask.from_array(np.zeros((5000, 64)), chunks=(1250, 64))
    on_dask = engines.most_per_stack(X_d, widest=64, batch=5000, **sizes)
    per_block = 8 * (sizes["n_parameters"] * 4 + 64 * 1250 * 3 + 64 * 1250)
    assert on_dask == min(256, engines.DASK_TASK_BYTES // per_block) and on_dask > 16
    cupy_xp = pytest.importorskip("array_api_compat.cupy", reason="CuPy is not installed")

    class Device:  # a cupy.cuda.Device's free and total memory, in bytes
        mem_info = (8 << 30, 16 << 30)

    assert engines._free_device_memory(cupy_xp, Device()) == 8 << 30
