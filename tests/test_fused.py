"""The fused kernels (``xpnet.engines.fused``) equal the generic primitives they stand in for.

Three levels, as far as each machine allows:

- on any machine with a C++ compiler, each kernel's body runs on the CPU
  (``host_kernels``) and equals the generic primitive; and whole fits through the fused
  engine (``Fused``, told to take NumPy arrays and run the host's kernels) equal generic
  fits, for every activation, loss and optimizer;
- where CuPy and NVRTC are installed, each kernel compiles for CUDA as CuPy writes it;
- on a GPU (the ``cupy`` backend), the kernels themselves run, against the generic path
  on CuPy.
"""

from __future__ import annotations

import importlib.util

import array_api_compat as aac
import numpy as np
import pytest
from conftest import _make_backend, target_for
from conftest import assert_equal_fits as _assert_equal_fits
from conftest import engine_data as _data
from host_kernels import COMPILER, calls, cuda_source_compiles, host_kernel

import xpnet
from xpnet.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from xpnet.core.losses import OBJECTIVES
from xpnet.core.optimizers import advance, make_optimizer
from xpnet.core.step import Samples, Step
from xpnet.engines import choose, choose_stack
from xpnet.engines.eager import Eager
from xpnet.engines.fused import KERNELS, Fused, FusedKernel, fused
from xpnet.estimators._stack import fit_stack, stack_key

needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (g++ or c++)")
OPTIMIZERS = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam"),
}
RTOL = {np.float32: 2e-6, np.float64: 1e-13}
# The seed's method: full-batch gradient descent with sigmoid hidden units (the defaults
# are scikit-learn's Adam on ReLUs).  A test's own settings win.
SEED = dict(solver="sgd", activation="sigmoid")


def _step(xp, f="tanh", output=("mse", "sigmoid"), optimizer="adam"):
    settings = {k: v for k, v in OPTIMIZERS[optimizer].items() if k != "solver"}
    settings = {"momentum_" if k == "momentum" else k: v for k, v in settings.items()}
    rule = make_optimizer(OPTIMIZERS[optimizer]["solver"], **settings)
    fs = (ACTIVATIONS[f], ACTIVATIONS[output[1]])
    return Step(fs, OBJECTIVES[output], rule, 0.0, xp)


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# -- each kernel on the CPU, against its generic primitive -----------------------------


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", HIDDEN_ACTIVATIONS)
def test_activation_kernels_equal_the_generic_primitives(name, dtype):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(0)
    Z = rng.normal(scale=4.0, size=(5, 40)).astype(dtype)
    Z[0, :4] = [-1000.0, 1000.0, np.nan, -0.0]  # saturation, and NaN carried (divergence)
    b = _readonly(rng.normal(size=5).astype(dtype))
    generic, kernels = ACTIVATIONS[name], fused(_step(xp, f=name), host_kernel).f[0]

    with np.errstate(over="ignore", invalid="ignore"):  # e^{1000} = inf, as intended
        A_generic = generic.f(Z + b[:, None], xp=xp)
    Z_fused = Z.copy()
    A_fused = kernels.of_sum(Z_fused, b, xp=xp)
    assert A_fused.dtype == dtype and A_fused.shape == Z.shape
    np.testing.assert_allclose(A_fused, A_generic, rtol=RTOL[dtype], atol=0)
    assert np.isnan(A_fused[0, 2])
    assert A_fused is Z_fused, "f(Z + b) is written over Z, which the caller hands over"

    A = _readonly(A_generic[:, 4:])  # the backward pass reads A, and may not write it
    D = rng.normal(size=A.shape).astype(dtype)
    want = generic.times_f_prime(D.copy(), A.copy(), xp=xp)
    got = kernels.times_f_prime(D.copy(), A, xp=xp)
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", ["sigmoid", "tanh", "relu"])
def test_output_delta_kernels_equal_the_generic_delta(output, dtype):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(1)
    A_L = _readonly(ACTIVATIONS[output].f(rng.normal(size=(3, 30)).astype(dtype), xp=xp))
    Y = _readonly(rng.normal(size=(3, 30)).astype(dtype))
    objective = fused(_step(xp, output=("mse", output)), host_kernel).objective
    assert objective.output_delta != OBJECTIVES[("mse", output)].output_delta
    want = OBJECTIVES[("mse", output)].output_delta(Y, A_L.copy(), xp=xp)
    np.testing.assert_allclose(objective.output_delta(Y, A_L, xp=xp), want, rtol=RTOL[dtype])


@pytest.mark.parametrize(
    "objective",
    [
        ("mse", "identity"),
        ("cross_entropy", "softmax"),
        ("cross_entropy", "sigmoid"),
        ("poisson", "exp"),
    ],
)
def test_deltas_of_one_operation_keep_their_generic_form(objective):
    # A⁽ᴸ⁾ − Y is one pass already: nothing to fuse.  (exp, an output only, has no kernel:
    # its f(Z + b) and f' stay generic too.)
    import array_api_compat.numpy as xp

    how = fused(_step(xp, output=objective), host_kernel)
    assert how.objective == OBJECTIVES[objective]
    if objective[1] == "exp":
        assert how.f[1] == ACTIVATIONS["exp"]


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_update_kernels_equal_the_generic_update(optimizer, dtype):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(2)
    generic = _step(xp, optimizer=optimizer).optimizer
    rule = fused(_step(xp, optimizer=optimizer), host_kernel).optimizer
    P = [_readonly(rng.normal(size=s).astype(dtype)) for s in [(4, 3), (2, 4), (4,), (2,)]]
    state = generic.init(P, xp=xp)
    # A few steps from non-zero moments, with each step's own step size (Adam's bias
    # correction folded in): parameters, moments and the step count must agree.
    fused_P, fused_state, want_P, want_state = P, state, P, state
    for t in range(1, 4):
        G = [_readonly(rng.normal(size=p.shape).astype(dtype)) for p in P]
        mu = generic.step_size(0.01 * t, t)
        want_P, want_state = advance(generic, want_P, G, want_state, mu=mu, xp=xp)
        fused_P, fused_state = advance(rule, fused_P, G, fused_state, mu=mu, xp=xp)
    assert fused_state.t == want_state.t == 3
    for got, want in zip(fused_P, want_P, strict=True):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)
    for got_m, want_m in zip(fused_state.moments, want_state.moments, strict=True):
        for got, want in zip(got_m, want_m, strict=True):
            np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)


def test_softmax_keeps_its_generic_form():
    import array_api_compat.numpy as xp

    f = fused(_step(xp, output=("cross_entropy", "softmax")), host_kernel).f[1]
    assert f == ACTIVATIONS["softmax"]


# -- whole fits through the fused path, on the CPU --------------------------------------


def _on_the_host(monkeypatch):
    """The fused engine redirected to NumPy arrays and kernels compiled for the host: what
    it takes, and how it makes its kernels, are its two class attributes."""
    monkeypatch.setattr(Fused, "takes", staticmethod(aac.is_numpy_namespace))
    monkeypatch.setattr(Fused, "make_kernel", staticmethod(host_kernel))


@pytest.fixture
def fused_on_the_host(monkeypatch):
    """``engine="jit"`` on NumPy arrays as it runs on CuPy: epoch by epoch through the
    fused kernels, here run on the CPU.  Returns the kernels' call counts, and checks at
    the end that some ran: that the fits took the fused engine."""
    if COMPILER is None:
        pytest.skip("no C++ compiler (g++ or c++)")
    _on_the_host(monkeypatch)
    before = calls()
    yield calls
    assert calls() != before, "no fused kernel ran: the fits did not take the fused engine"


def _fit_both(cls, X, y, **params):
    """A fit eager and fused, by the seed's method unless ``params`` say otherwise."""
    return [
        cls(hidden_layer_sizes=(6, 4), random_state=0, engine=engine, **SEED | params).fit(X, y)
        for engine in ("eager", "jit")
    ]


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("objective", sorted(OBJECTIVES), ids="-".join)
def test_fused_fits_equal_generic_fits_for_every_activation_and_objective(
    fused_on_the_host, objective, activation
):
    loss, output = objective
    X, y, labels = _data()
    before = fused_on_the_host()
    if output == "softmax":
        eager, jit = _fit_both(xpnet.MLPClassifier, X, labels, activation=activation,
                               max_iter=21, early_stopping=True, n_iter_no_change=30)  # fmt: skip
    else:
        # e^z through two identity layers diverges at the default μ = 0.1.
        mu = 0.02 if loss == "poisson" else None
        eager, jit = _fit_both(xpnet.MLPRegressor, X, target_for(loss, y), loss=loss,
                               output_activation=output, activation=activation, max_iter=21,
                               learning_rate=mu)  # fmt: skip
    _assert_equal_fits(eager, jit)
    after = fused_on_the_host()
    ran = {name for name in KERNELS if after[name] > before[name]}
    assert f"{activation}_of_sum" in ran and "sgd_update" in ran
    if activation != "identity":
        assert f"{activation}_times_f_prime" in ran
    if loss == "mse" and output != "identity":
        assert f"{output}_mse_delta" in ran


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fused_fits_equal_generic_fits_for_every_optimizer(fused_on_the_host, optimizer):
    # Mini-batches, sample weights, the L2 penalty and the invscaling schedule: the
    # fused kernels are the step's, whatever runs the steps.
    X, y, _ = _data()
    s = np.random.default_rng(3).uniform(0.5, 2.0, size=len(X))
    params = dict(OPTIMIZERS[optimizer], alpha=0.01, batch_size=32, max_iter=21)
    if optimizer != "adam":
        params["learning_rate_schedule"] = "invscaling"
    fits = [
        xpnet.MLPRegressor(hidden_layer_sizes=(6,), random_state=0, engine=engine, **params)
        .fit(X, y, sample_weight=s)
        for engine in ("eager", "jit")
    ]  # fmt: skip
    _assert_equal_fits(*fits)


@pytest.mark.parametrize("dask", [False, True], ids=["numpy", "dask"])
def test_lbfgs_evaluates_through_the_fused_kernels(request, dask):
    # L-BFGS steps by itself (no update kernel), its evaluations through the fused step.
    X, y, _ = _data()
    if dask:
        X = pytest.importorskip("dask.array", reason="Dask is not installed").from_array(X, 40)
    fused_on_the_host = request.getfixturevalue("fused_on_the_host")  # once Dask is known
    before = fused_on_the_host()["tanh_of_sum"]
    # 25 iterations: L-BFGS's steps amplify rounding, which near the end of a fit grows
    # to 1e-10 (both fits converge to the same E all the same).
    with pytest.warns(xpnet.ConvergenceWarning):
        fits = [
            xpnet.MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs",
                               max_iter=25, alpha=0.1, random_state=0, engine=engine).fit(X, y)
            for engine in ("eager", "jit")
        ]  # fmt: skip
    _assert_equal_fits(*fits)
    assert fused_on_the_host()["tanh_of_sum"] > before


def test_fused_kernels_run_inside_dask_tasks(request):
    # With Dask arrays (of CuPy blocks, on a GPU cluster), the blocks' namespace is the
    # parameters': the fused kernels then run inside the tasks.  Here, NumPy blocks.
    da = pytest.importorskip("dask.array", reason="Dask is not installed")
    fused_on_the_host = request.getfixturevalue("fused_on_the_host")  # once Dask is known
    X, y, _ = _data()
    before = fused_on_the_host()["adam_update"]
    fits = [
        xpnet.MLPRegressor(hidden_layer_sizes=(6,), solver="adam", max_iter=21, random_state=0,
                           engine=engine).fit(da.from_array(X, chunks=40), y)
        for engine in ("eager", "jit")
    ]  # fmt: skip
    _assert_equal_fits(*fits)
    assert fused_on_the_host()["adam_update"] > before


def test_a_fused_step_pickles_its_kernels_by_name(fused_on_the_host):
    # Dask sends a step to its worker processes pickled (by cloudpickle, where plain
    # pickle refuses), after this process has run its kernels: what travels must be the
    # kernels' names, never the compiled kernels with this process's handles.
    cloudpickle = pytest.importorskip("cloudpickle", reason="cloudpickle is not installed")
    import array_api_compat.numpy as xp

    step = fused(_step(xp, f="tanh", optimizer="adam"), host_kernel)
    Z, b = np.linspace(-2.0, 2.0, 12).reshape(3, 4), np.array([0.5, -0.5, 0.0])
    want = step.f[0].of_sum(Z.copy(), b, xp=xp)  # the kernel has run here
    payload = cloudpickle.dumps(step)
    assert b"HostKernel" not in payload
    restored = cloudpickle.loads(payload)
    kernel = restored.f[0].of_sum.keywords["kernel"]
    assert isinstance(kernel, FusedKernel) and kernel.name == "tanh_of_sum"
    assert kernel == step.f[0].of_sum.keywords["kernel"]
    np.testing.assert_array_equal(restored.f[0].of_sum(Z.copy(), b, xp=xp), want)
    with pytest.raises(ValueError, match="no fused kernel is named 'softmax_of_sum'"):
        FusedKernel("softmax_of_sum", host_kernel)


@pytest.mark.slow
def test_fused_fits_on_a_cluster_of_processes_equal_the_fits_here(request):
    # Dask + CuPy + engine="jit" on a distributed cluster, here with NumPy blocks and the
    # host's kernels: a worker process makes its own kernels from their names.  The
    # same fits on Dask's threads, in this process, run the kernels here first, as a
    # client that trained before would.
    da = pytest.importorskip("dask.array", reason="Dask is not installed")
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    import dask

    request.getfixturevalue("fused_on_the_host")  # once Dask is known

    X, y, _ = _data()
    X_blocks = da.from_array(X, chunks=40)
    params = dict(hidden_layer_sizes=(6,), activation="sigmoid", solver="adam", max_iter=21,
                  random_state=0)  # fmt: skip

    def fits():  # the blocks' sums as tasks (full batch), whole epochs as tasks (mini-batches)
        return [
            xpnet.MLPRegressor(engine="jit", batch_size=batch_size, **params).fit(X_blocks, y)
            for batch_size in (None, 40)
        ]

    here = fits()
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
        worker_dashboard_address=":0",
    )  # fmt: skip
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        with dask.config.set(scheduler=client):
            there = fits()
        ran = client.run(calls)  # each worker's kernel calls, by name
    for fit_here, fit_there in zip(here, there, strict=True):
        _assert_equal_fits(fit_here, fit_there)
    assert sum(counts["sigmoid_of_sum"] for counts in ran.values()) > 0
    assert sum(counts["adam_update"] for counts in ran.values()) > 0  # the mini-batches'


def test_a_diverging_fused_fit_fails_at_the_same_epoch(fused_on_the_host):
    X, y, _ = _data()
    errors = []
    for engine in ("eager", "jit"):
        est = xpnet.MLPRegressor(hidden_layer_sizes=(6,), activation="relu", solver="sgd",
                                 learning_rate=50.0, max_iter=40, random_state=0,
                                 engine=engine)  # fmt: skip
        with pytest.raises(ValueError, match="diverged") as error:
            est.fit(X, y * 1e3)
        errors.append(str(error.value))
    assert errors[0] == errors[1]


def test_fused_fits_in_float32_stay_close(fused_on_the_host):
    X, y, _ = _data()
    eager, jit = _fit_both(xpnet.MLPRegressor, X.astype(np.float32), y.astype(np.float32),
                           max_iter=21)  # fmt: skip
    assert jit.weights_[0].dtype == np.float32
    _assert_equal_fits(eager, jit, rtol=1e-5)


def test_fused_fits_never_write_the_users_arrays(fused_on_the_host):
    X, y, _ = _data(N=40)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    est.weights_ = [_readonly(w) for w in est.weights_]
    est.biases_ = [_readonly(c) for c in est.biases_]
    start = [w.copy() for w in est.weights_ + est.biases_]
    est.set_params(engine="jit", warm_start=True, max_iter=5).fit(_readonly(X), _readonly(y))
    for before, after in zip(start, [*est.weights_, *est.biases_], strict=True):
        assert not np.array_equal(before, after)  # it trained, on new arrays


# -- stacks of networks through the fused kernels --------------------------------------


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fused_stacks_equal_separate_fused_fits(fused_on_the_host, optimizer):
    """``engine="jit"`` on CuPy trains a stack through the fused kernels: each network's
    step size and update constants reach the update kernel as arrays, one value per
    network, and each network ends as its own fused fit on its fold."""
    X, y, _ = _data()
    rng = np.random.default_rng(3)
    rows = [np.sort(rng.choice(len(X), size=n, replace=False)) for n in (100, 90, 120)]
    own = {"adam": "beta_1", "sgd": None}.get(optimizer, "momentum")

    def make(k):
        params = dict(
            OPTIMIZERS[optimizer], learning_rate=[0.05, 0.02, 0.01][k],
            alpha=[0.0, 1e-3, 1e-2][k], random_state=k, batch_size=32, max_iter=6,
        )  # fmt: skip
        if own is not None:
            params[own] = [0.9, 0.8, 0.5][k]
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", engine="jit",
                                  **params)  # fmt: skip

    assert stack_key(make(0), X) is not None  # the fused engine takes NumPy's arrays here
    before = fused_on_the_host()
    stacked = fit_stack([make(k) for k in range(3)], X, y, rows)
    ran = {name for name, n in fused_on_the_host().items() if n > before[name]}
    assert {"tanh_of_sum", "tanh_times_f_prime", f"{optimizer}_update"} <= ran
    for k, r in enumerate(rows):
        alone = make(k).fit(X[r], y[r])
        assert stacked[k].n_iter_ == alone.n_iter_ and stacked[k].t_ == alone.t_
        _assert_equal_fits(alone, stacked[k], rtol=1e-11)


def test_stacks_take_the_fused_engine_for_jit_alone(monkeypatch):
    X = np.zeros((4, 2))
    how = _step(np)
    settings = dict(f=how.f, objective=how.objective, optimizer=how.optimizer, widest=6, K=3)
    with pytest.raises(ValueError, match="fuses their kernels on CuPy, not numpy arrays;"):
        choose_stack("jit", X, **settings)
    assert stack_key(xpnet.MLPRegressor(engine="jit"), X) is None  # its own fit refuses it
    _on_the_host(monkeypatch)
    assert type(choose_stack("jit", X, **settings)) is Fused
    for engine in ("auto", "eager"):
        assert type(choose_stack(engine, X, **settings)) is Eager


# -- which engine takes the fused kernels ----------------------------------------------


def _choice(engine, X, **settings):
    """The engine :func:`xpnet.engines.choose` gives a fit on X with ``settings``."""
    how = _step(aac.array_namespace(X))
    return choose(engine, X, f=how.f, objective=how.objective, optimizer=how.optimizer,
                  widest=6, **settings)  # fmt: skip


def test_only_jit_on_cupy_takes_the_fused_kernels(monkeypatch):
    X = np.zeros((4, 2))
    # NumPy's arrays have no fused kernels: "jit" refuses them, the others run eagerly.
    with pytest.raises(ValueError, match="fuses kernels on CuPy, not numpy arrays"):
        _choice("jit", X)
    for engine in ("auto", "eager"):
        assert type(_choice(engine, X, n_epochs=20)) is Eager
    # Where the fused engine takes the arrays (CuPy's; here NumPy's, as the fused fits
    # below run), "jit" takes it, epoch by epoch, mini-batches too; the others do not.
    _on_the_host(monkeypatch)
    for batch_size in (None, 2):
        assert type(_choice("jit", X, batch_size=batch_size, n_epochs=20)) is Fused
    for engine in ("auto", "eager"):
        assert type(_choice(engine, X, n_epochs=20)) is Eager
    # The fused engine's step, once open, has its kernels in place of the generic
    # activation, output delta and update.
    engine = _choice("jit", X)
    generic = engine.how
    with engine.open(Samples(X, np.zeros((1, 4)))):
        jit = engine.how
    assert (
        jit.f[0].of_sum != generic.f[0].of_sum
        and jit.f[0].times_f_prime != generic.f[0].times_f_prime
    )
    assert jit.objective.output_delta != generic.objective.output_delta
    assert generic.optimizer.fused_update is None and jit.optimizer.fused_update is not None


# -- CUDA: the kernels as CuPy compiles them, and on a GPU ----------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("cupy") is None
    or importlib.util.find_spec("nvidia.cuda_nvrtc") is None,
    reason="CuPy and NVRTC (nvidia-cuda-nvrtc-cu12) are not installed",
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_compiles_for_cuda(name, dtype):
    cuda_source_compiles(KERNELS[name], name, dtype)


@pytest.fixture
def cupy_backend():
    return _make_backend("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", HIDDEN_ACTIVATIONS)
def test_activation_kernels_on_the_gpu(cupy_backend, name, dtype):
    xp, cp = cupy_backend.xp, pytest.importorskip("cupy")
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=4.0, size=(5, 40)).astype(dtype)
    Z[0, :3] = [-1000.0, 1000.0, np.nan]
    b = rng.normal(size=5).astype(dtype)
    kernels = fused(_step(xp, f=name)).f[0]
    A = kernels.of_sum(cp.asarray(Z), cp.asarray(b), xp=xp)
    with np.errstate(over="ignore", invalid="ignore"):  # e^{1000} = inf, as intended
        want = ACTIVATIONS[name].f(Z + b[:, None], xp=np)
    np.testing.assert_allclose(cp.asnumpy(A), want, rtol=RTOL[np.dtype(dtype).type])
    # From the kernel's own A: near a = 1, 1 − a² magnifies a last-bit difference in A
    # between CUDA's tanh and NumPy's.
    D = rng.normal(size=Z.shape).astype(dtype)
    A_host = cp.asnumpy(A)
    got = kernels.times_f_prime(cp.asarray(D), A, xp=xp)
    want_D = ACTIVATIONS[name].times_f_prime(D.copy(), A_host.copy(), xp=np)
    np.testing.assert_allclose(cp.asnumpy(got), want_D, rtol=RTOL[np.dtype(dtype).type])


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("objective", sorted(OBJECTIVES), ids="-".join)
def test_fused_fits_on_the_gpu_equal_eager_fits(cupy_backend, objective, optimizer):
    loss, output = objective
    X, y, labels = _data()
    X = cupy_backend.asarray(X)
    params = dict(OPTIMIZERS[optimizer], max_iter=21, hidden_layer_sizes=(6,), random_state=0)
    fits = []
    for engine in ("eager", "jit"):
        if output == "softmax":
            est = xpnet.MLPClassifier(engine=engine, early_stopping=True, **params)
            fits.append(est.fit(X, cupy_backend.asarray(labels)))
        else:
            target = target_for(loss, y)
            est = xpnet.MLPRegressor(engine=engine, loss=loss, output_activation=output, **params)
            fits.append(est.fit(X, cupy_backend.asarray(target)))
    _assert_equal_fits(*fits)  # weights read back from the GPU by xpnet's to_numpy


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fused_stacks_on_the_gpu_equal_eager_stacks(cupy_backend, optimizer):
    X, y, _ = _data()
    rows = [np.arange(0, 100), np.arange(10, 120), np.arange(0, 120)]

    def make(k, engine):
        return xpnet.MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", engine=engine,
                                  learning_rate=[0.05, 0.02, 0.01][k], random_state=k,
                                  batch_size=32, max_iter=6, **OPTIMIZERS[optimizer])  # fmt: skip

    X = cupy_backend.asarray(X)
    eager, jit = (fit_stack([make(k, e) for k in range(3)], X, y, rows) for e in ("eager", "jit"))
    for a, b in zip(eager, jit, strict=True):
        _assert_equal_fits(a, b)
