"""The compiled engines: the same functions, run as one program per block, equal the eager path.

Which engine a fit runs on is :func:`xpnet.engines.choose`'s decision alone, so the
choice is tested by calling it with a fit's settings; that the fits agree is tested
through the estimators.  The CUDA-graph engine, which ``choose`` gives only on CUDA, is
built directly and driven through the training loop (``run_epochs``), as the
estimators drive it.
"""

from __future__ import annotations

import gc
import itertools
import shutil
import weakref
from typing import Any, NamedTuple

import numpy as np
import pytest
from conftest import assert_equal_fits as _assert_equal_fits
from conftest import engine_data as _data
from conftest import import_jax, target_for

import xpnet
import xpnet.engines.jax
import xpnet.engines.torch
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.init import glorot_uniform
from xpnet.core.losses import OBJECTIVES
from xpnet.core.optimizers import make_optimizer
from xpnet.core.scores import accuracy, r2_score
from xpnet.core.step import Samples, Step
from xpnet.engines import choose
from xpnet.engines.eager import Eager
from xpnet.engines.jax import Jax
from xpnet.engines.torch import TorchGraphBlocks, TorchSteps
from xpnet.training.loop import EarlyStopping, History, Interrupted, run_epochs
from xpnet.training.schedules import Schedule

# The seed's method, which these tests compile: full-batch gradient descent with sigmoid
# hidden units (the defaults are scikit-learn's Adam on ReLUs).  A test's settings win.
SEED = dict(solver="sgd", activation="sigmoid")


@pytest.fixture(scope="module")
def jnp():
    import_jax()  # float64 on, full-precision matrix products
    import jax.numpy as jnp

    return jnp


def _fit_both(jnp, cls, X, y, **params):
    """The same fit run eagerly and compiled, on JAX arrays."""
    fits = []
    for engine in ("eager", "jit"):
        est = cls(hidden_layer_sizes=(6,), random_state=0, engine=engine, **{**SEED, **params})
        fits.append(est.fit(jnp.asarray(X), jnp.asarray(y)))
    return fits


# Every (loss, output activation) pair, with and without early stopping, with an epoch
# count that is not a multiple of the block (16): 21 = a block of 16 and one of 5.
@pytest.mark.parametrize(
    ("objective", "early_stopping"),
    [(o, False) for o in sorted(OBJECTIVES)]
    + [(("cross_entropy", "softmax"), True), (("mse", "identity"), True)],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else ("es" if v else "no-es"),
)
def test_compiled_equals_eager_for_every_objective(jnp, objective, early_stopping):
    loss, output = objective
    X, y, labels = _data()
    if output == "softmax":
        cls, target, params = xpnet.MLPClassifier, labels, {}
    else:
        cls, target = xpnet.MLPRegressor, target_for(loss, y)
        params = {"output_activation": output}
    eager, jit = _fit_both(
        jnp, cls, X, target, loss=loss, activation="tanh", max_iter=21,
        early_stopping=early_stopping, n_iter_no_change=3, **params,
    )  # fmt: skip
    _assert_equal_fits(eager, jit)


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam", alpha=0.1),
        dict(momentum=0.9, nesterovs_momentum=True, learning_rate_schedule="invscaling"),
        dict(momentum=0.5, learning_rate_schedule="adaptive", tol=1e-2, n_iter_no_change=2),
        dict(activation="relu", solver="adam", weighted=True),
    ],
    ids=["adam-alpha", "nesterov-invscaling", "momentum-adaptive", "relu-adam-weights"],
)
def test_compiled_equals_eager_with_optimizers_schedules_and_weights(jnp, params):
    params = dict(params)
    X, y, _ = _data()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X))
    fits = []
    for engine in ("eager", "jit"):
        est = xpnet.MLPRegressor(hidden_layer_sizes=(6,), random_state=0, max_iter=21,
                                 engine=engine, **SEED | {k: v for k, v in params.items()
                                                          if k != "weighted"})  # fmt: skip
        s = jnp.asarray(weights) if params.get("weighted") else None
        fits.append(est.fit(jnp.asarray(X), jnp.asarray(y), sample_weight=s))
    _assert_equal_fits(*fits)
    assert fits[1]._optimizer_state.t == fits[0]._optimizer_state.t
    jit_sched, eager_sched = fits[1]._schedule_state, fits[0]._schedule_state
    assert jit_sched._replace(best=0.0) == eager_sched._replace(best=0.0)
    assert jit_sched.best == pytest.approx(eager_sched.best, rel=1e-12)


def test_compiled_multilabel_with_early_stopping(jnp):
    X, *_ = _data()
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] + X[:, 3] > 0], axis=1).astype(int)
    eager, jit = _fit_both(jnp, xpnet.MLPClassifier, X, Y, solver="adam", max_iter=21,
                           early_stopping=True, n_iter_no_change=4)  # fmt: skip
    _assert_equal_fits(eager, jit)


@pytest.mark.parametrize("library", ["jax", "torch"])
def test_a_diverging_compiled_fit_fails_at_the_same_epoch(library, request):
    # JAX's compiled blocks and PyTorch's compiled steps (fixtures below); the CUDA-graph
    # blocks in test_a_diverging_cuda_graph_fit_fails_at_the_same_epoch.
    if library == "jax":
        to_array = request.getfixturevalue("jnp").asarray
    else:
        to_array = request.getfixturevalue("torch").from_numpy
    X, y, _ = _data()
    messages = []
    for engine in ("eager", "jit"):
        est = xpnet.MLPRegressor(learning_rate=1e30, max_iter=50, engine=engine, **SEED)
        with pytest.raises(ValueError, match="diverged") as info:
            est.fit(to_array(X * 1e3), to_array(y * 1e3))
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_compiled_resume_equals_an_uninterrupted_fit(jnp, tmp_path):
    X, y, _ = _data()
    params = SEED | dict(hidden_layer_sizes=(6,), solver="adam", random_state=0, engine="jit")
    whole = xpnet.MLPRegressor(max_iter=64, **params).fit(jnp.asarray(X), jnp.asarray(y))
    part = xpnet.MLPRegressor(max_iter=32, **params).fit(jnp.asarray(X), jnp.asarray(y))
    part.save(tmp_path / "m.npz")
    resumed = xpnet.load(tmp_path / "m.npz", xp=jnp).set_params(max_iter=64)
    resumed.fit(jnp.asarray(X), jnp.asarray(y), resume=True)
    for got, want in zip(resumed.weights_, whole.weights_, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _choice(engine, X, **settings):
    """The engine :func:`xpnet.engines.choose` gives a regressor's fit on X (one hidden
    layer of 3 sigmoid units, the squared error, gradient descent) with ``settings``."""
    return choose(
        engine, X, f=[ACTIVATIONS["sigmoid"], ACTIVATIONS["identity"]],
        objective=OBJECTIVES[("mse", "identity")], optimizer=make_optimizer("sgd"),
        widest=X.shape[1], **settings,
    )  # fmt: skip


def test_auto_compiles_long_full_batch_jax_fits_only(jnp, monkeypatch):
    monkeypatch.setattr(xpnet.engines.jax, "MIN_EPOCHS_TO_COMPILE", 20)  # the rule, not the value
    X, y, _ = _data(N=40)
    X_j, y_j = jnp.asarray(X), jnp.asarray(y)
    for engine, settings, want in [
        ("auto", dict(n_epochs=20), Jax),
        ("auto", dict(n_epochs=19), Eager),  # compiling would cost more than it saves
        ("auto", dict(n_epochs=20, batch_size=8), Eager),  # mini-batches
        ("auto", dict(n_epochs=20, batch_size=40), Jax),  # a batch of every sample: full
        ("eager", dict(n_epochs=20), Eager),
        ("jit", dict(n_epochs=1), Jax),  # asked for: compiled however short
    ]:
        assert type(_choice(engine, X_j, **settings)) is want, (engine, settings)
    assert type(_choice("auto", X, n_epochs=20)) is Eager  # NumPy: eager
    # The fit "auto" compiles is the eager fit.
    auto, eager = (
        xpnet.MLPRegressor(
            hidden_layer_sizes=(3,), max_iter=20, random_state=0, engine=engine, **SEED
        ).fit(X_j, y_j)
        for engine in ("auto", "eager")
    )
    _assert_equal_fits(eager, auto)


@pytest.mark.parametrize(
    ("params", "data", "match"),
    [
        (dict(engine="jit"), "numpy", "engine='jit' compiles full-batch training on JAX "
         "or PyTorch arrays and fuses kernels on CuPy, not numpy arrays"),
        (dict(engine="jit", batch_size=8), "jax", "not mini-batches"),
        (dict(engine="fast"), "numpy", r"engine must be one of \('auto', 'eager', 'jit'\), "
         "got 'fast'"),
    ],
)  # fmt: skip
def test_bad_engines_are_named(jnp, params, data, match):
    X, y, _ = _data(N=20)
    if data == "jax":
        X, y = jnp.asarray(X), jnp.asarray(y)
    with pytest.raises(ValueError, match=match):
        xpnet.MLPRegressor(max_iter=3, **SEED | params).fit(X, y)


def test_the_caller_s_arrays_are_not_donated_or_written(jnp):
    X, y, _ = _data()
    X_j, y_j = jnp.asarray(X), jnp.asarray(y)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, engine="jit", **SEED)
    est.fit(X_j, y_j)
    W = [jnp.asarray(W_l) for W_l in est.weights_]
    est.set_params(warm_start=True).fit(X_j, y_j)  # starts from W, a caller-held array now
    for W_l, W_kept in itertools.zip_longest(W, est.weights_):
        assert not W_l.is_deleted() and W_l is not W_kept
    np.testing.assert_array_equal(np.asarray(X_j), X)


# -- PyTorch: a step compiled by torch.compile ----------------------------------------


@pytest.fixture
def torch(monkeypatch):
    """PyTorch, its compiler tracing the whole step (TorchDynamo) and handing the graph to
    "aot_eager": the same graph capture and autograd-free tracing as Inductor, without
    generating C++ (tens of seconds per program here); Inductor is timed in
    scripts/bench.py --backend torch."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "aot_eager")
    return torch


def _fit_torch(torch, cls, X, y, s=None, **params):
    fits = []
    for engine in ("eager", "jit"):
        est = cls(hidden_layer_sizes=(6,), random_state=0, engine=engine, **{**SEED, **params})
        weights = None if s is None else torch.from_numpy(s)
        fits.append(est.fit(torch.from_numpy(X), torch.from_numpy(y), sample_weight=weights))
    return fits


@pytest.mark.parametrize(
    ("objective", "params"),
    [
        (("cross_entropy", "softmax"), dict(solver="adam", early_stopping=True)),
        (("mse", "identity"), dict(momentum=0.9, learning_rate_schedule="invscaling")),
        (("cross_entropy", "sigmoid"), dict(alpha=0.1, activation="relu")),
        (("mse", "tanh"), dict(weighted=True)),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else "",
)
def test_torch_compiled_steps_equal_eager(torch, objective, params):
    _assert_torch_engines_agree(torch, objective, params, max_iter=21, n_iter_no_change=3)


def _assert_torch_engines_agree(torch, objective, params, **fit_params):
    """A fit eager and with engine="jit" on PyTorch, for an objective, agree."""
    params = dict(params)
    loss, output = objective
    X, y, labels = _data()
    weighted = params.pop("weighted", False)
    s = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X)) if weighted else None
    if output == "softmax":
        cls, target = xpnet.MLPClassifier, labels
    else:
        cls, target = xpnet.MLPRegressor, target_for(loss, y)
        params["output_activation"] = output
    eager, jit = _fit_torch(torch, cls, X, target, s, loss=loss, **fit_params, **params)
    _assert_equal_fits(eager, jit)
    assert jit._optimizer_state.t == eager._optimizer_state.t


def test_torch_compiles_one_program_for_every_step_size_and_weight_sum(torch):
    # μ changes every epoch under invscaling, and Σ sᵢ with the weights: both are inputs,
    # not constants compiled in.
    import torch._dynamo

    X, y, _ = _data()
    torch._dynamo.reset()
    xpnet.engines.torch._torch_program.cache_clear()
    counts = torch._dynamo.utils.counters
    counts.clear()
    est = xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=40, engine="jit",
                             learning_rate_schedule="invscaling", **SEED)  # fmt: skip
    est.fit(torch.from_numpy(X), torch.from_numpy(y))
    assert counts["stats"]["unique_graphs"] == 1, dict(counts["stats"])
    for low in (0.5, 1.5):  # weights (a program of their own), summing to another S each
        weights = np.random.default_rng(0).uniform(low, 2.0, size=len(X))
        est.fit(torch.from_numpy(X), torch.from_numpy(y), sample_weight=torch.from_numpy(weights))
    assert counts["stats"]["unique_graphs"] == 2, dict(counts["stats"])


def test_torch_fits_of_many_shapes_in_one_process_all_compile(torch, monkeypatch):
    # TorchDynamo keeps at most 8 programs per code object and, with fullgraph=True,
    # fails on the ninth: each settings and shapes must get a program of their own.
    # (Dynamo's limit is the same whatever compiles the graph: "eager" is the quickest.)
    import torch._dynamo

    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "eager")
    torch._dynamo.reset()
    X, y, _ = _data(N=40)
    for N in range(20, 29):  # nine shapes
        est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, engine="jit", **SEED)
        est.fit(torch.from_numpy(X[:N]), torch.from_numpy(y[:N]))
        assert est.n_iter_ == 2


def test_torch_is_compiled_only_when_asked(torch):
    X, y, _ = _data(N=40)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    # "auto" runs eagerly: PyTorch's compiler costs more than most fits save.
    assert type(_choice("auto", X_t, n_epochs=300)) is Eager
    assert type(_choice("eager", X_t, n_epochs=300)) is Eager
    assert type(_choice("jit", X_t, n_epochs=300)) is TorchSteps  # on the CPU: no graphs
    auto, eager = (
        xpnet.MLPRegressor(
            hidden_layer_sizes=(3,), max_iter=300, random_state=0, engine=engine, **SEED
        ).fit(X_t, y_t)
        for engine in ("auto", "eager")
    )
    _assert_equal_fits(eager, auto, rtol=0)  # the same engine: the same bits


@pytest.mark.parametrize(
    "settings",
    [
        dict(solver="sgd", momentum=[0.5, 0.9, 0.7], learning_rate_schedule="invscaling"),
        dict(solver="adam", beta_1=[0.8, 0.9, 0.95], epsilon=[1e-8, 1e-6, 1e-4]),
        dict(solver="sgd", early_stopping=True, n_iter_no_change=2),
    ],
    ids=["momentum-invscaling", "adam", "early-stopping"],
)
def test_torch_compiled_stacks_equal_separate_compiled_fits(torch, settings):
    """``engine="jit"`` on PyTorch trains a full-batch stack a compiled program per step,
    each network's step size, penalty and update constants its inputs: each network ends
    as its own compiled fit on its fold.  One program serves the whole stack's fit."""
    import torch._dynamo

    from xpnet.estimators._stack import fit_stack, stack_key

    X, _, labels = _data()
    rng = np.random.default_rng(3)
    rows = [np.sort(rng.choice(len(X), size=n, replace=False)) for n in (100, 90, 120)]

    def make(k):
        own = {key: v[k] for key, v in settings.items() if isinstance(v, list)}
        fixed = {key: v for key, v in settings.items() if not isinstance(v, list)}
        return xpnet.MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", engine="jit",
                                   random_state=k, learning_rate=[0.05, 0.1, 0.2][k],
                                   alpha=[0.0, 1e-3, 1e-2][k], batch_size=None, max_iter=12,
                                   **fixed, **own)  # fmt: skip

    X_t = torch.from_numpy(X)
    assert stack_key(make(0), X_t) is not None
    assert stack_key(make(0).set_params(batch_size=16), X_t) is None  # its fit refuses it
    xpnet.engines.torch._torch_stack_program.cache_clear()
    torch._dynamo.reset()
    counts = torch._dynamo.utils.counters
    counts.clear()
    stacked = fit_stack([make(k) for k in range(3)], X_t, labels, rows)
    if not settings.get("early_stopping"):  # (a network that stops shrinks the stack)
        assert counts["stats"]["unique_graphs"] == 1, dict(counts["stats"])
    for k, r in enumerate(rows):
        alone = make(k).fit(torch.from_numpy(X[r]), labels[r])
        assert stacked[k].t_ == alone.t_
        _assert_equal_fits(alone, stacked[k], rtol=1e-11)


def test_stacks_on_pytorch_take_its_compiled_steps_for_jit_in_full_batch(torch):
    from xpnet.engines import choose_stack
    from xpnet.engines.torch import TorchStackSteps

    X = torch.zeros((8, 2), dtype=torch.float64)
    how = Step((ACTIVATIONS["tanh"], ACTIVATIONS["identity"]), OBJECTIVES[("mse", "identity")],
               make_optimizer("sgd"), 0.0, None)  # fmt: skip
    settings = dict(f=how.f, objective=how.objective, optimizer=how.optimizer, widest=4, K=3)
    assert type(choose_stack("jit", X, **settings)) is TorchStackSteps
    assert type(choose_stack("jit", X, batch_size=8, **settings)) is TorchStackSteps
    assert type(choose_stack("auto", X, **settings)) is Eager
    with pytest.raises(ValueError, match="not torch arrays in mini-batches"):
        choose_stack("jit", X, batch_size=4, **settings)
    # Adam's batch_size="auto" is min(200, N): a full batch on up to 200 samples.
    from xpnet.estimators._stack import stack_key

    adam = xpnet.MLPRegressor(solver="adam", engine="jit")
    assert stack_key(adam, X) is not None
    assert stack_key(adam, torch.zeros((300, 2), dtype=torch.float64)) is None


# PyTorch's own code, inside Inductor, still calls what it deprecates.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("g++", "clang++", "c++")),
    reason="Inductor builds C++ on the CPU: no C++ compiler found",
)
def test_torch_inductor_steps_equal_eager():
    # The compiler users get by default, once (it generates and builds C++: about 10 s).
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    X, y, _ = _data()
    eager, jit = _fit_torch(torch, xpnet.MLPRegressor, X, y, solver="adam", max_iter=21)
    _assert_equal_fits(eager, jit)


# -- PyTorch on CUDA: blocks of compiled steps captured as CUDA graphs ---------------------


class _FakeGraph:
    """What a capture on the CPU gives: a replay that runs the block again."""

    def __init__(self, block):
        self.block, self.released = block, False

    def replay(self):
        self.block()

    def release(self):
        self.block, self.released = None, True  # as a reset graph holds nothing


@pytest.fixture
def graphs(torch, monkeypatch):
    """The CUDA-graph engine's calls to CUDA, done on the CPU: the warm-up runs the block,
    a "capture" records nothing, and a "replay" runs the block again, over the same
    buffers.  What a CPU cannot check is CUDA's capture itself; everything around it runs
    as on a GPU.  The step is traced by TorchDynamo and run as traced ("eager"), the
    quickest way here.  Returns the list of graphs captured."""
    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "eager")
    captured = []

    def record(block, device):
        captured.append(_FakeGraph(block))
        return captured[-1]

    monkeypatch.setattr(xpnet.engines.torch, "_warm_up", lambda block, device: block())
    monkeypatch.setattr(xpnet.engines.torch, "_record", record)
    return captured


def test_a_stack_s_blocks_captured_as_graphs_equal_its_compiled_steps(graphs, monkeypatch):
    """On CUDA, a full-batch stack's blocks of 16 epochs are captured and replayed (here
    with the fake capture): the same bits as its compiled steps uncaptured.  A member
    stops at its stall rule and the stack shrinks: a new batch, captured anew."""
    from xpnet.engines.torch import TorchStackGraphBlocks
    from xpnet.estimators._stack import fit_stack

    torch = pytest.importorskip("torch")
    X, _, labels = _data()
    rows = [np.arange(0, 100), np.arange(20, 120), np.arange(120)]

    def make(k):
        return xpnet.MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", engine="jit",
                                   solver="sgd", momentum=[0.5, 0.9, 0.7][k], random_state=k,
                                   learning_rate=[0.05, 0.1, 0.2][k], alpha=[0.0, 1e-3, 1e-2][k],
                                   batch_size=None, max_iter=80, tol=[1e-9, 1e-9, 0.5][k],
                                   n_iter_no_change=[10, 10, 20][k])  # fmt: skip

    X_t = torch.from_numpy(X)
    steps = fit_stack([make(k) for k in range(3)], X_t, labels, rows)
    monkeypatch.setattr(xpnet.engines, "TorchStackSteps", TorchStackGraphBlocks)
    captured = fit_stack([make(k) for k in range(3)], X_t, labels, rows)
    assert 16 < steps[2].n_iter_ <= 32 < steps[0].n_iter_ == 80  # the third stops in block 2
    for got, want in zip(captured, steps, strict=True):
        _assert_equal_fits(want, got, rtol=0)
        assert got.t_ == want.t_
    # Three members for two blocks (a warm-up, a capture), then two members (another
    # warm-up, a capture, and replays of it).
    assert len(graphs) == 2 and graphs[0].released and graphs[1].released


class _Problem(NamedTuple):
    """A fit as the estimators set it up, for driving an engine through ``run_epochs``."""

    how: Step
    W: list[Any]
    b: list[Any]
    data: Samples
    validation: Samples | None
    score: Any
    schedule: Schedule
    n_iter_no_change: int


def _problem(
    torch, objective, *, activation="tanh", solver="sgd", momentum=0.0, learning_rate=None,
    alpha=0.0, learning_rate_schedule="constant", weighted=False, early_stopping=False,
    n_iter_no_change=10, scale=1.0,
):  # fmt: skip
    """``engine_data``'s problem for ``objective`` on PyTorch (CPU), set up as the
    estimators set up a fit with these parameters (and their defaults, but for tanh): a
    hidden layer of 6, and with early stopping the last 24 samples held out."""
    import array_api_compat.torch as xp

    loss, output = objective
    X, y, labels = _data()
    if output == "softmax":
        Y, score = np.eye(3)[labels].T, accuracy
    else:
        Y, score = target_for(loss, y)[None, :], r2_score
    X, Y = X * scale, Y * scale
    s = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X)) if weighted else None

    def samples(rows):
        weights = None if s is None else s[rows]
        return Samples(
            torch.from_numpy(X[rows]), torch.from_numpy(np.ascontiguousarray(Y[:, rows])),
            None if weights is None else torch.from_numpy(weights), weights,
        )  # fmt: skip

    if early_stopping:
        data, validation = samples(slice(0, 96)), samples(slice(96, None))
    else:
        data, validation = samples(slice(None)), None
    f = (ACTIVATIONS[activation], ACTIVATIONS[output])
    W, b = glorot_uniform(
        [X.shape[1], 6, Y.shape[0]], [g.name for g in f], np.random.default_rng(0)
    )
    rule = make_optimizer(solver, momentum_=momentum)
    mu = {"sgd": 0.1, "adam": 0.01}[solver] if learning_rate is None else learning_rate
    return _Problem(
        Step(f, OBJECTIVES[objective], rule, alpha, xp),
        [torch.from_numpy(W_l) for W_l in W], [torch.from_numpy(b_l) for b_l in b],
        data, validation, score, Schedule(learning_rate_schedule, mu, tol=1e-4,
                                          n_iter_no_change=n_iter_no_change),
        n_iter_no_change,
    )  # fmt: skip


def _train(engine_type, problem, n_epochs):
    """``problem`` trained for up to ``n_epochs`` epochs on a new engine of ``engine_type``
    (on the CPU), as a fit runs: the engine opened on the data, then ``run_epochs``."""
    import torch

    engine = engine_type(problem.how, device=torch.device("cpu"), widest=6)
    with engine.open(problem.data, problem.validation) as (data, validation):
        stopping = None if validation is None else EarlyStopping(
            validation, problem.score, problem.n_iter_no_change, tol=1e-4
        )  # fmt: skip
        schedule = problem.schedule
        return run_epochs(
            problem.W, problem.b, data, n_epochs=n_epochs, engine=engine,
            optimizer_state=problem.how.optimizer.init([*problem.W, *problem.b], xp=engine.xp),
            schedule=schedule, schedule_state=schedule.start(), batch_size=None, shuffle=False,
            rng=np.random.default_rng(0), early_stopping=stopping,
        )  # fmt: skip


def _assert_equal_histories(eager: History, jit: History, *, rtol: float = 1e-12) -> None:
    """Two runs of ``run_epochs`` agree: epochs, losses, parameters, optimizer state,
    validation record."""
    assert len(jit.losses) == len(eager.losses) and jit.stopped == eager.stopped
    np.testing.assert_allclose(jit.losses, eager.losses, rtol=rtol)
    moments = [m for moment in eager.optimizer_state.moments for m in moment]
    jit_moments = [m for moment in jit.optimizer_state.moments for m in moment]
    assert jit.optimizer_state.t == eager.optimizer_state.t
    for got, want in zip([*jit.W, *jit.b, *jit_moments], [*eager.W, *eager.b, *moments],
                         strict=True):  # fmt: skip
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol, atol=1e-14)
    assert jit.schedule_state == eager.schedule_state
    if eager.validation_scores is None:
        assert jit.validation_scores is None
    else:
        np.testing.assert_allclose(jit.validation_scores, eager.validation_scores, rtol=rtol)
        np.testing.assert_allclose(jit.validation_losses, eager.validation_losses, rtol=rtol)


@pytest.mark.parametrize(
    ("objective", "params"),
    [(o, dict(activation="tanh")) for o in sorted(OBJECTIVES)]
    + [
        (("cross_entropy", "softmax"), dict(solver="adam", early_stopping=True)),
        (("mse", "identity"), dict(momentum=0.9, learning_rate_schedule="invscaling")),
        (("cross_entropy", "sigmoid"), dict(alpha=0.1, activation="relu", early_stopping=True)),
        (("mse", "tanh"), dict(weighted=True, solver="sgd", momentum=0.5)),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else "-".join(f"{k}" for k in v),
)
def test_cuda_graph_blocks_equal_eager(torch, graphs, objective, params):
    # 37 epochs: a block of 16 warms up, the second is captured and replayed, and the
    # last 5 run uncaptured.
    problem = _problem(torch, objective, n_iter_no_change=30, **params)
    eager = _train(Eager, problem, 37)
    jit = _train(TorchGraphBlocks, problem, 37)
    assert len(eager.losses) == 37
    _assert_equal_histories(eager, jit)
    assert len(graphs) == 1


def test_cuda_graph_early_stopping_restores_an_early_best(torch, graphs):
    # The best epoch lies blocks before the end: what the engine kept of it must not be
    # its buffers, which later replays overwrite.
    problem = _problem(torch, ("cross_entropy", "softmax"), solver="adam", learning_rate=0.5,
                       early_stopping=True, n_iter_no_change=40)  # fmt: skip
    eager = _train(Eager, problem, 60)
    jit = _train(TorchGraphBlocks, problem, 60)
    best = int(np.argmax(eager.validation_scores))
    assert best < 32, f"the best epoch ({best}) should lie before the last block"
    _assert_equal_histories(eager, jit)
    assert len(graphs) == 1


def test_a_diverging_cuda_graph_fit_fails_at_the_same_epoch(torch, graphs):
    problem = _problem(torch, ("mse", "identity"), activation="sigmoid", learning_rate=1e30,
                       scale=1e3)  # fmt: skip
    messages = []
    for engine_type in (Eager, TorchGraphBlocks):
        with pytest.raises(ValueError, match="diverged") as info:
            _train(engine_type, problem, 50)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_cuda_graph_engine_never_writes_the_callers_arrays(torch, graphs):
    problem = _problem(torch, ("mse", "identity"), activation="sigmoid")
    start = _train(Eager, problem, 5)  # trained parameters, the caller's now
    problem = problem._replace(W=start.W, b=start.b)
    before = [p.clone() for p in start.W + start.b]
    _train(TorchGraphBlocks, problem, 40)
    for want, array in zip(before, start.W + start.b, strict=True):
        assert torch.equal(want, array)
    assert len(graphs) == 1  # 16 warm up, 16 captured and replayed, 8 uncaptured


def test_a_cuda_graph_runner_is_freed_at_the_end_of_its_fit_without_the_cycle_collector(
    torch, graphs, monkeypatch
):
    # Every fit's graph, memory pool, buffers and data must go when the fit ends, not
    # wait for a collection, which may come during a later fit's capture and break it.
    engines, blocks = [], []

    class Watched(TorchGraphBlocks):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            engines.append(weakref.ref(self))

    def warm_up(block, device):  # a block holds its buffers and the data
        blocks.append(weakref.ref(block))
        block()

    monkeypatch.setattr(xpnet.engines.torch, "_warm_up", warm_up)
    problem = _problem(torch, ("cross_entropy", "softmax"), solver="adam", early_stopping=True,
                       n_iter_no_change=40)  # fmt: skip
    gc.collect()
    gc.disable()
    try:
        jit = _train(Watched, problem, 40)
        alive = [ref() for ref in engines + blocks if ref() is not None]
    finally:
        gc.enable()
    assert len(engines) == 1 and len(blocks) == 2  # the blocks of 16 and of 8
    assert not alive, f"kept alive by a reference cycle: {[type(a).__name__ for a in alive]}"
    assert len(graphs) == 1 and graphs[0].released
    _assert_equal_histories(_train(Eager, problem, 40), jit)


class _GarbageDuringCapture:
    """A ``_record`` that makes cyclic garbage as a capture does (compiling and running
    Python code allocates), enough for the cycle collector to start many times over, and
    notes every collection that starts meanwhile."""

    def __init__(self):
        self.collections, self.capturing = [], False

    def __call__(self, block, device):
        self.capturing = True
        try:
            for _ in range(20_000):
                cycle = []
                cycle.append(cycle)
            block()
        finally:
            self.capturing = False
        return _FakeGraph(block)

    def on_collection(self, phase, info):
        if phase == "start" and self.capturing:
            self.collections.append(info["generation"])


def _collections_during(record, run):
    """``run()`` with ``record.on_collection`` told of each collection."""
    gc.callbacks.append(record.on_collection)  # the collector calls the list it was given
    try:
        return run()
    finally:
        gc.callbacks.remove(record.on_collection)


def test_no_collection_runs_during_a_capture(torch, graphs, monkeypatch):
    # The garbage is enough: with the collector on, collections start during the "capture".
    probe = _GarbageDuringCapture()
    _collections_during(probe, lambda: probe(lambda: None, None))
    assert probe.collections, "the test's garbage started no collection"

    record = _GarbageDuringCapture()
    monkeypatch.setattr(xpnet.engines.torch, "_record", record)
    problem = _problem(torch, ("mse", "identity"), activation="sigmoid", solver="adam")
    assert gc.isenabled()
    _collections_during(record, lambda: _train(TorchGraphBlocks, problem, 40))
    assert record.collections == [], "the cycle collector ran during a capture"
    assert gc.isenabled(), "the collector is back on after the capture"
    # A collector the caller had turned off stays off.
    gc.disable()
    try:
        _train(TorchGraphBlocks, problem, 40)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failed_capture_turns_the_collector_back_on(torch, graphs, monkeypatch):
    def record(block, device):
        raise RuntimeError("the capture failed")

    monkeypatch.setattr(xpnet.engines.torch, "_record", record)
    problem = _problem(torch, ("mse", "identity"), activation="sigmoid")
    with pytest.raises(RuntimeError, match="the capture failed"):
        _train(TorchGraphBlocks, problem, 40)
    assert gc.isenabled()


#: PyTorch operations that make the host wait for the device: a boolean mask's
#: positions (``nonzero``), a value read back (``_local_scalar_dense``: ``item``,
#: ``bool``, ``float``).  A CUDA graph's capture fails on any of them.
_HOST_WAITS = frozenset(
    ["nonzero", "nonzero_static", "_local_scalar_dense", "masked_select", "is_nonzero",
     "equal", "unique_consecutive", "_unique", "_unique2", "unique_dim"]
)  # fmt: skip


def _refusing_host_waits(torch):
    """A dispatch mode that sees every operation PyTorch runs and fails on those that
    wait on the host, boolean-mask indexing included (it takes the mask's ``nonzero``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RefuseHostWaits(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()  # the operations' names

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            self.seen.add(name)
            masks = name in ("index", "index_put", "index_put_") and any(
                i is not None and i.dtype == torch.bool for i in args[1]
            )
            if name in _HOST_WAITS or masks:
                raise AssertionError(f"{func} waits on the host, which a capture cannot")
            return func(*args, **(kwargs or {}))

    return RefuseHostWaits()


@pytest.mark.parametrize(
    "objective", [("cross_entropy", "softmax"), ("cross_entropy", "sigmoid")], ids="-".join
)
def test_nothing_captured_waits_on_the_host(torch, graphs, monkeypatch, objective):
    # The cross-entropy loss clips its outputs away from 0 and 1, in the step and in the
    # captured validation pass.  array-api-compat before 1.14 clipped PyTorch tensors by
    # indexing with a boolean mask, which waits on the host: xpnet needs 1.14 or later.
    # The step runs uncompiled here, as the operations TorchDynamo would trace: a
    # dispatch mode turns TorchDynamo away.
    monkeypatch.setattr(torch, "compile", lambda step, **settings: step)
    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "none: run as traced")
    modes = []

    def record(block, device):
        modes.append(_refusing_host_waits(torch))
        with modes[-1]:
            block()
        return _FakeGraph(block)

    monkeypatch.setattr(xpnet.engines.torch, "_record", record)
    problem = _problem(torch, objective, solver="adam", early_stopping=True, n_iter_no_change=40)
    jit = _train(TorchGraphBlocks, problem, 40)
    assert len(modes) == 1 and {"mm", "clamp", "log"} <= modes[0].seen, modes[0].seen
    _assert_equal_histories(_train(Eager, problem, 40), jit)


def test_the_host_wait_check_sees_a_boolean_mask(torch):
    # The check above can fail: the older array-api-compat's clip, as it indexed.
    A = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    with _refusing_host_waits(torch), pytest.raises(AssertionError, match="waits on the host"):
        A[A < 0.1] = 0.1
    with _refusing_host_waits(torch), pytest.raises(AssertionError, match="waits on the host"):
        float(A.sum())


def test_jit_on_cuda_takes_graphs_and_on_the_cpu_steps(torch):
    X, _, _ = _data(N=40)
    assert type(_choice("jit", torch.from_numpy(X))) is TorchSteps
    # CUDA tensors, which a fake tensor mode makes without a GPU: choose reads only their
    # namespace and device.
    fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")
    with fake_tensor.FakeTensorMode():
        X_cuda = torch.empty(X.shape, dtype=torch.float64, device="cuda")
    assert X_cuda.device.type == "cuda"
    assert type(_choice("jit", X_cuda)) is TorchGraphBlocks
    assert type(_choice("auto", X_cuda, n_epochs=300)) is Eager


def test_an_interrupt_during_a_replay_keeps_the_last_block_read_back(torch, monkeypatch):
    # A replay writes the engine's buffers; what the fit falls back to on an interrupt
    # (the parameters of the last block read back) must not be those buffers.
    class InterruptedReplay(_FakeGraph):
        def replay(self):  # the second block, the first replayed, is interrupted after it ran
            self.block()
            raise KeyboardInterrupt

    monkeypatch.setattr(xpnet.engines.torch, "_warm_up", lambda block, device: block())
    monkeypatch.setattr(
        xpnet.engines.torch, "_record", lambda block, device: InterruptedReplay(block)
    )
    problem = _problem(torch, ("mse", "identity"), activation="sigmoid", solver="adam")
    with pytest.raises(Interrupted) as info:
        _train(TorchGraphBlocks, problem, 40)
    interrupted = info.value.history
    assert len(interrupted.losses) == 16
    _assert_equal_histories(_train(Eager, problem, 16), interrupted)


def _cuda(torch):
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device here")
    return torch.device("cuda", 0)


def _fit_on(device, torch, cls, X, y, **params):
    fits = []
    for engine in ("eager", "jit"):
        est = cls(hidden_layer_sizes=(6,), random_state=0, engine=engine, **{**SEED, **params})
        fits.append(est.fit(torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)))
    return fits


@pytest.mark.gpu
@pytest.mark.parametrize(
    "params",
    [dict(solver="adam", early_stopping=True, n_iter_no_change=30), dict(momentum=0.9)],
    ids=["adam-early-stopping", "momentum"],
)
def test_cuda_graphs_on_a_gpu_equal_eager(torch, params):
    # The real capture and replays, of the step as TorchDynamo traces it (aot_eager).
    device = _cuda(torch)
    X, _, labels = _data()
    assert type(_choice("jit", torch.from_numpy(X).to(device))) is TorchGraphBlocks
    eager, jit = _fit_on(device, torch, xpnet.MLPClassifier, X, labels, max_iter=37, **params)
    _assert_equal_fits(eager, jit)


@pytest.mark.gpu
def test_cuda_graphs_of_inductor_steps_on_a_gpu_equal_eager(torch, monkeypatch):
    # What users get: Inductor's kernels (Triton), captured.  Compiling takes seconds.
    device = _cuda(torch)
    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "inductor")
    X, y, _ = _data()
    eager, jit = _fit_on(device, torch, xpnet.MLPRegressor, X, y, solver="adam", max_iter=21)
    _assert_equal_fits(eager, jit)


@pytest.mark.gpu
def test_a_stack_s_cuda_graphs_on_a_gpu_equal_its_eager_stack(torch):
    from xpnet.estimators._stack import fit_stack

    device = _cuda(torch)
    X, _, labels = _data()
    rows = [np.arange(0, 100), np.arange(20, 120), np.arange(120)]

    def make(k, engine):
        return xpnet.MLPClassifier(hidden_layer_sizes=(6,), engine=engine, solver="sgd",
                                   momentum=0.9, random_state=k, learning_rate=[0.05, 0.1, 0.2][k],
                                   batch_size=None, max_iter=48)  # fmt: skip

    X_d = torch.from_numpy(X).to(device)
    eager, jit = (fit_stack([make(k, e) for k in range(3)], X_d, labels, rows)
                  for e in ("eager", "jit"))  # fmt: skip
    for a, b in zip(eager, jit, strict=True):
        _assert_equal_fits(a, b)


@pytest.mark.gpu
def test_a_capture_on_a_gpu_outlasts_garbage_holding_another_graph(torch, monkeypatch):
    # A graph left in a reference cycle (as each fit's graph runner once was) is
    # destroyed by the next collection, and a collection during a capture would destroy
    # it mid-capture, which breaks the capture (pytorch/pytorch#161037).  The engine
    # holds the collector off during its captures: the fit runs through, as eagerly.
    device = _cuda(torch)
    record = xpnet.engines.torch._record

    def record_beside_garbage(block, device):
        with torch.cuda.device(device):
            old = torch.cuda.CUDAGraph()
            x = torch.zeros(8, device=device)
            with torch.cuda.graph(old):
                y = x + 1
        garbage = [old, x, y]
        garbage.append(garbage)
        del garbage, old, x, y

        def block_making_garbage():  # enough for the collector to start many times over
            for _ in range(20_000):
                cycle = []
                cycle.append(cycle)
            block()

        return record(block_making_garbage, device)

    monkeypatch.setattr(xpnet.engines.torch, "_record", record_beside_garbage)
    X, y, _ = _data()
    eager, jit = _fit_on(device, torch, xpnet.MLPRegressor, X, y, solver="adam", max_iter=40)
    _assert_equal_fits(eager, jit)
