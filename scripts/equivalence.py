"""Prove that a refactoring of xpnet changes no bit of any fit: run a matrix of fits, compare.

Run the same matrix against the code before and after the change, then compare the two
result files exactly (dtype, shape and every byte of every array)::

    cd /old/checkout && PYTHONPATH=$PWD python /path/to/scripts/equivalence.py run old.npz
    cd /new/checkout && PYTHONPATH=$PWD python scripts/equivalence.py run new.npz
    python scripts/equivalence.py compare old.npz new.npz   # exit 0 only if all EQUAL

``run`` prints the ``xpnet`` it imported (``--expect-xpnet DIR`` makes a different one an
error), each case's name and seconds, and every case skipped because its backend is not
installed; ``-k TEXT`` runs only the cases whose name contains TEXT.  ``compare`` prints
one line per case, EQUAL, DIFFERENT (with the largest absolute difference) or MISSING
(skipped, failed, or absent in one file), then ``N equal, M different, K missing``.

The matrix (about a hundred fits of a few hundred samples, 20-70 epochs, so that every
fit reads back several blocks of 16 epochs) covers:

- backends: NumPy float64 and float32; NumPy with chunks of 64 samples run one after
  another (inside ``threadpoolctl.threadpool_limits(1)``) and spread over two threads;
  array-api-strict; PyTorch (CPU) eager and compiled (``engine="jit"``); JAX eager and
  compiled; Dask arrays in blocks of 150 samples, full batch and mini-batches (Dask's
  block graphs with ``engine="auto"``, and ``engine="eager"``); CuPy's fused kernels,
  compiled for the CPU by ``tests/host_kernels.py``;
- both estimators; the losses mse and cross_entropy; sigmoid, tanh and relu hidden and
  output layers; multi-output regression, binary, multiclass and multi-label targets;
- gradient descent with no momentum, with momentum and with Nesterov's momentum, Adam;
  the L2 penalty; the constant, invscaling and adaptive schedules;
- sample weights; mini-batches with and without shuffling; early stopping; a second
  ``fit`` with ``warm_start``; several ``partial_fit`` calls; a fit interrupted by its
  callback after the second read-back, then ``fit(resume=True)``; ``save`` and
  ``xpnet.load``, then ``predict`` and ``partial_fit`` on the loaded model.

For every case it keeps ``weights_``, ``biases_``, ``loss_curve_``, ``n_iter_``, ``t_``,
the validation record, ``predict`` (and ``predict_proba``) and ``score`` on the training
samples, ``gradients(X, y)``, and the arrays and metadata of the model file ``save``
writes (the optimizer's moments and step count, the schedule's and the mini-batch
generator's state).

Only the public API is used, with one exception: :func:`_fused_on_host`, the adapter that
routes fits through the fused kernels on NumPy arrays.  It knows where xpnet's internals
live, and raises ``NotImplementedError`` for a layout it does not know.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Every fit's defaults; a case's own parameters override them.
#: Settings that both versions share whatever their own defaults: the seed's activation,
#: full batch unless a case says otherwise, and every epoch run (a count too large to
#: stall, which older versions, refusing ``inf``, also take).
DEFAULTS: dict[str, Any] = dict(
    hidden_layer_sizes=(8,), max_iter=40, random_state=0, activation="sigmoid",
    batch_size=None, n_iter_no_change=10**9,
)  # fmt: skip

#: The optimizers, by the names the cases use.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam"),
}

#: Samples in a case's data (the threaded backends take more, see BACKENDS).
N_SAMPLES = 400


# -- the data ---------------------------------------------------------------------------


def make_data(n: int) -> dict[str, np.ndarray]:
    """The first ``n`` of 600 samples of one small problem, and targets of every kind."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    w = rng.normal(size=6)
    z = X @ w
    y = np.tanh(z) + 0.1 * rng.normal(size=600)
    tags = np.stack([X[:, 0] > 0, X[:, 2] > 0.3, X[:, 0] + X[:, 3] > 0], axis=1)
    data = {
        "X": X,
        "y": y,  # regression, in about [-1, 1]
        "y01": 1.0 / (1.0 + np.exp(-2.0 * z)),  # regression in (0, 1): cross-entropy
        "Y2": np.stack([y, np.sin(X[:, 1])], axis=1),  # two outputs
        "labels": (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5),  # classes 0, 1, 2
        "binary": (z > 0).astype(np.int64),
        "multilabel": tags.astype(np.int64),
        "sample_weight": rng.uniform(0.5, 2.0, size=600),
    }
    return {name: a[:n] for name, a in data.items()}


def to_numpy(x: Any) -> np.ndarray:
    """A host copy of an array of any backend here (or of a Python number or list)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    library = type(x).__module__.split(".")[0]
    if library == "dask":
        return to_numpy(x.compute())
    if library == "torch":
        return x.detach().cpu().numpy()
    return np.asarray(x)  # JAX, array-api-strict (on its CPU device), numbers, lists


# -- the backends -----------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Where a case's fits run: an array library, a dtype, and what goes with them."""

    name: str
    #: The module that must be importable: numpy, array_api_strict, torch, jax, dask.
    library: str
    dtype: str = "float64"
    #: Estimator parameters of every fit on this backend (engine, chunk_size).
    params: dict[str, Any] = field(default_factory=dict)
    #: Samples per case.
    n: int = N_SAMPLES
    #: What the fits run inside: a thread limit, or the fused kernels.
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    #: Whether to count the worker threads a fit starts (the threaded NumPy backends).
    watch_threads: bool = False

    def asarray(self, a: np.ndarray) -> Any:
        """A host array as this backend's array; floating ones in its dtype."""
        if a.dtype.kind == "f":
            a = a.astype(self.dtype)
        if self.library == "numpy":
            return a
        if self.library == "array_api_strict":
            import array_api_strict

            return array_api_strict.asarray(a)
        if self.library == "torch":
            import torch

            return torch.asarray(a)
        if self.library == "jax":
            return _jax().numpy.asarray(a)
        if self.library == "dask":
            import dask.array

            return dask.array.from_array(a, chunks=150)
        raise ValueError(self.library)

    def load_namespace(self) -> Any:
        """The ``xp`` that ``xpnet.load`` puts a saved model's parameters in."""
        if self.library in ("numpy", "dask"):
            return None  # NumPy (Dask's blocks are NumPy arrays)
        if self.library == "jax":
            return _jax().numpy
        return importlib.import_module(self.library)


def _jax() -> Any:
    """JAX, with float64 enabled and float32 products in full precision (as the tests)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    return jax


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS held to one thread: xpnet then runs a batch's chunks one after another."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _blas_threads() -> int:
    """How many threads NumPy's BLAS uses, as threadpoolctl tells (0: not installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 0
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


# -- the one use of xpnet's internals ---------------------------------------------------


def _xpnet() -> Any:
    """xpnet, imported when first needed: ``compare`` runs without it."""
    return importlib.import_module("xpnet")


def _tests_folder() -> Path:
    """The tests next to the xpnet package imported (the old checkout's, or the new)."""
    return Path(_xpnet().__file__).resolve().parent.parent / "tests"


def _import_host_kernels() -> Any:
    """``tests/host_kernels.py``: the fused kernels' C++ bodies compiled for the CPU."""
    folder = str(_tests_folder())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("host_kernels")


@contextlib.contextmanager
def _fused_on_host() -> Iterator[None]:
    """ADAPTER -- the only place this script reaches into xpnet's internals.

    Within it, ``engine="jit"`` on NumPy arrays runs as it does on CuPy: epoch by epoch
    through the fused kernels of xpnet's fused-kernel module, with the kernels compiled
    for the CPU by ``tests/host_kernels.py`` (as ``tests/test_fused.py``'s fixture
    ``fused_on_the_host`` does).  It patches the two functions through which a fit picks
    its step and its block runner, where the estimators' module looks them up.

    It checks that the kernels did run, so that a patch of the wrong place cannot pass
    for a fused fit.  After a restructuring of the package, add a branch for the new
    layout here (and keep the old one, to run against the old code).
    """
    if _module_exists("xpnet._estimators") and _module_exists("xpnet._fused"):
        # The layout before the restructuring: xpnet/_estimators.py, xpnet/_fused.py.
        estimators = importlib.import_module("xpnet._estimators")
        fused = importlib.import_module("xpnet._fused").fused
        kernels = importlib.import_module("xpnet._fused").KERNELS
    elif _module_exists("xpnet.engines.fused"):
        # The layout after it: the Fused engine says which arrays it takes and how its
        # kernels are made; engines.choose asks it.
        module = importlib.import_module("xpnet.engines.fused")
        yield from _fused_engine_on_host(module)
        return
    else:
        raise NotImplementedError("adapt me to the new layout")

    host_kernel = _import_host_kernels().host_kernel
    real_step_for, real_block_runner = estimators.step_for, estimators.block_runner

    def step_for(engine: str, how: Any) -> Any:
        return fused(how, host_kernel) if engine == "jit" else real_step_for(engine, how)

    def block_runner(engine: str, **kw: Any) -> Any:
        return None if engine == "jit" else real_block_runner(engine, **kw)

    def calls() -> int:
        return sum(host_kernel(name, k).calls for name, k in kernels.items())

    before = calls()
    estimators.step_for, estimators.block_runner = step_for, block_runner
    try:
        yield
    finally:
        estimators.step_for, estimators.block_runner = real_step_for, real_block_runner
    if calls() == before:
        raise RuntimeError("the fused kernels never ran: _fused_on_host patches the wrong place")


def _fused_engine_on_host(module: Any) -> Iterator[None]:
    """The new layout's branch of :func:`_fused_on_host`: the ``Fused`` engine takes NumPy
    arrays, with kernels compiled for the host."""
    import array_api_compat as aac

    host_kernel = _import_host_kernels().host_kernel
    engine = module.Fused
    real = engine.__dict__["takes"], engine.__dict__["make_kernel"]

    def calls() -> int:
        return sum(host_kernel(name, k).calls for name, k in module.KERNELS.items())

    before = calls()
    engine.takes = staticmethod(aac.is_numpy_namespace)
    engine.make_kernel = staticmethod(host_kernel)
    try:
        yield
    finally:
        engine.takes, engine.make_kernel = real
    if calls() == before:
        raise RuntimeError("the fused kernels never ran: _fused_on_host patches the wrong place")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# -- what the cases run on --------------------------------------------------------------

BACKENDS = {
    b.name: b
    for b in [
        Backend("numpy64", "numpy"),
        Backend("numpy32", "numpy", "float32"),
        # 600 samples in chunks of 64: with BLAS on one thread, one chunk after another;
        # without the limit, the chunks spread over the cores (two here).
        Backend("numpy64-serial", "numpy", params=dict(chunk_size=64), n=600,
                context=_one_blas_thread, watch_threads=True),
        Backend("numpy64-threads", "numpy", params=dict(chunk_size=64), n=600,
                watch_threads=True),
        Backend("numpy32-serial", "numpy", "float32", params=dict(chunk_size=64), n=600,
                context=_one_blas_thread, watch_threads=True),
        Backend("numpy32-threads", "numpy", "float32", params=dict(chunk_size=64), n=600,
                watch_threads=True),
        Backend("fused64", "numpy", params=dict(engine="jit"), context=_fused_on_host),
        Backend("strict64", "array_api_strict"),
        Backend("torch64", "torch", params=dict(engine="eager")),
        Backend("torch32", "torch", "float32", params=dict(engine="eager")),
        Backend("torch64-jit", "torch", params=dict(engine="jit")),
        Backend("jax64", "jax", params=dict(engine="eager")),
        Backend("jax32", "jax", "float32", params=dict(engine="eager")),
        Backend("jax64-jit", "jax", params=dict(engine="jit")),
        Backend("dask64", "dask", params=dict(engine="auto")),
        Backend("dask64-eager", "dask", params=dict(engine="eager")),
    ]
}  # fmt: skip


def unavailable(backend: Backend) -> str | None:
    """Why ``backend`` cannot run here, or None."""
    if importlib.util.find_spec(backend.library) is None:
        return f"{backend.library} is not installed"
    if backend.context is _fused_on_host:
        if shutil.which("g++") is None and shutil.which("c++") is None:
            return "no C++ compiler (g++ or c++) for the fused kernels"
        if not (_tests_folder() / "host_kernels.py").exists():
            return f"no host_kernels.py in {_tests_folder()}"
    if backend.watch_threads:
        threads = _blas_threads()
        if threads == 0:
            return "threadpoolctl is not installed"
        if backend.name.endswith("-threads") and threads < 2:
            return "NumPy's BLAS has one thread here: the chunks cannot spread over threads"
    return None


# -- the cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A fit to run: the estimator, what is done with it, on which target, with what."""

    name: str
    estimator: str  # "reg" or "clf"
    scenario: str = "fit"  # fit, warm_start, partial_fit, resume, save_load
    target: str | None = None  # a key of make_data; None: y, or the labels
    weighted: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def _reg(name: str, *, opt: str = "sgd", **kw: Any) -> Spec:
    return _spec(name, "reg", opt, kw)


def _clf(name: str, *, opt: str = "sgd", **kw: Any) -> Spec:
    return _spec(name, "clf", opt, kw)


def _spec(name: str, estimator: str, opt: str, kw: dict[str, Any]) -> Spec:
    own = {k: kw.pop(k) for k in ("scenario", "target", "weighted") if k in kw}
    return Spec(name, estimator, params={**OPTIMIZERS[opt], **kw}, **own)


ADAPTIVE = dict(learning_rate_schedule="adaptive", tol=0.05, n_iter_no_change=2)
EARLY = dict(early_stopping=True, n_iter_no_change=5, max_iter=70)
MB = dict(batch_size=50)  # mini-batches (shuffled unless shuffle=False)

#: The cases most backends run.
CORE = [
    _reg("reg-sgd-sigmoid", activation="sigmoid"),
    _reg("reg-momentum-tanh-mb-invscaling", opt="momentum", activation="tanh",
         hidden_layer_sizes=(8, 6), shuffle=False, learning_rate_schedule="invscaling",
         learning_rate=0.5, **MB),
    _reg("reg-adam-relu-weighted-alpha", opt="adam", activation="relu",
         hidden_layer_sizes=(8, 6), alpha=0.01, weighted=True),
    _clf("clf-nesterov-tanh-mb", opt="nesterov", activation="tanh", **MB),
    _clf("clf-adam-relu", opt="adam", activation="relu", hidden_layer_sizes=(8, 6)),
    _reg("reg-early-stopping-adam", opt="adam", activation="tanh", **EARLY),
    _clf("clf-early-stopping-sgd-mb", activation="sigmoid", learning_rate=0.5, batch_size=64,
         **EARLY),
    _reg("reg-warm-start-nesterov", opt="nesterov", scenario="warm_start", max_iter=30),
    _clf("clf-warm-start-adam", opt="adam", scenario="warm_start", max_iter=30),
    _reg("reg-partial-fit-adam-mb", opt="adam", scenario="partial_fit", batch_size=32),
    _clf("clf-partial-fit-nesterov", opt="nesterov", scenario="partial_fit"),
    _reg("reg-resume-adam", opt="adam", scenario="resume", max_iter=50),
    _clf("clf-resume-momentum-mb-adaptive", opt="momentum", scenario="resume", max_iter=50,
         **ADAPTIVE, **MB),
    _reg("reg-save-load-adam-mb", opt="adam", scenario="save_load", weighted=True, **MB),
    _clf("clf-save-load-nesterov", opt="nesterov", scenario="save_load"),
]  # fmt: skip

#: Each hidden activation with each optimizer, and the other losses, outputs and schedules.
MORE = [
    *(
        _reg(f"grid-{activation}-{opt}", opt=opt, activation=activation,
             hidden_layer_sizes=(8, 6), max_iter=32)
        for activation in ("sigmoid", "tanh", "relu")
        for opt in OPTIMIZERS
    ),
    _reg("reg-sgd-sigmoid-out", output_activation="sigmoid", target="y01", learning_rate=0.5),
    _reg("reg-momentum-tanh-out", opt="momentum", activation="tanh", output_activation="tanh"),
    _reg("reg-nesterov-relu-out", opt="nesterov", activation="relu", output_activation="relu",
         target="y01"),
    _reg("reg-adam-sigmoid-out-mb-weighted", opt="adam", output_activation="sigmoid",
         target="y01", alpha=0.01, batch_size=32, weighted=True, max_iter=20),
    _reg("reg-sgd-invscaling-mb-weighted", activation="tanh", output_activation="tanh",
         learning_rate_schedule="invscaling", learning_rate=0.5, alpha=0.01, batch_size=32,
         weighted=True, max_iter=20),
    _reg("reg-cross-entropy-tanh", loss="cross_entropy", output_activation=None,
         activation="tanh", target="y01", learning_rate=0.5),
    _reg("reg-two-outputs-adam", opt="adam", target="Y2", hidden_layer_sizes=(8, 6)),
    _reg("reg-sgd-invscaling-mb-shuffle", learning_rate_schedule="invscaling",
         learning_rate=0.5, **MB),
    _reg("reg-sgd-adaptive-mb", shuffle=False, **ADAPTIVE, **MB),
    _reg("reg-nesterov-adaptive-weighted", opt="nesterov", weighted=True, max_iter=64,
         **ADAPTIVE),
    _reg("reg-nesterov-mb300", opt="nesterov", activation="tanh", batch_size=300),
    _clf("clf-sgd-binary", target="binary", learning_rate=0.5),
    _clf("clf-mse-binary", loss="mse", target="binary", learning_rate=0.5),
    _clf("clf-multilabel-adam", opt="adam", target="multilabel", hidden_layer_sizes=(8, 6)),
    _clf("clf-sgd-adaptive-mb-weighted", weighted=True, **ADAPTIVE, **MB),
    _clf("clf-adam-early-stopping", opt="adam", activation="tanh", **EARLY),
]  # fmt: skip

SPECS = {s.name: s for s in [*CORE, *MORE]}
ALL_CORE = [s.name for s in CORE]
FULL_BATCH = ["reg-sgd-sigmoid", "reg-adam-relu-weighted-alpha", "clf-adam-relu"]
FUSED = [
    "reg-sgd-sigmoid-out", "reg-momentum-tanh-out", "reg-nesterov-relu-out",
    "reg-adam-sigmoid-out-mb-weighted", "reg-sgd-invscaling-mb-weighted",
    "clf-adam-early-stopping",
]  # fmt: skip
THREADED = [*FULL_BATCH, "reg-early-stopping-adam", "reg-nesterov-mb300"]

#: Which cases each backend runs.
MATRIX: dict[str, list[str]] = {
    "numpy64": list(SPECS),
    "numpy32": [
        "reg-sgd-sigmoid", "reg-momentum-tanh-mb-invscaling", "reg-adam-relu-weighted-alpha",
        "clf-nesterov-tanh-mb", "clf-early-stopping-sgd-mb", "clf-partial-fit-nesterov",
        "reg-resume-adam", "reg-save-load-adam-mb",
    ],
    "numpy64-serial": THREADED,
    "numpy64-threads": THREADED,
    "numpy32-serial": ["reg-adam-relu-weighted-alpha"],
    "numpy32-threads": ["reg-adam-relu-weighted-alpha"],
    "fused64": FUSED,
    "strict64": [
        "reg-sgd-sigmoid", "reg-momentum-tanh-mb-invscaling", "clf-adam-relu",
        "reg-early-stopping-adam", "clf-partial-fit-nesterov", "reg-save-load-adam-mb",
    ],
    "torch64": [
        "reg-sgd-sigmoid", "reg-momentum-tanh-mb-invscaling", "reg-adam-relu-weighted-alpha",
        "clf-nesterov-tanh-mb", "clf-early-stopping-sgd-mb", "reg-warm-start-nesterov",
        "clf-resume-momentum-mb-adaptive", "reg-save-load-adam-mb",
    ],
    "torch32": ["reg-adam-relu-weighted-alpha", "clf-adam-relu"],
    "torch64-jit": FULL_BATCH,  # torch.compile takes seconds per case
    "jax64": [
        "reg-sgd-sigmoid", "reg-momentum-tanh-mb-invscaling", "reg-adam-relu-weighted-alpha",
        "clf-nesterov-tanh-mb", "reg-early-stopping-adam", "clf-partial-fit-nesterov",
        "reg-save-load-adam-mb",
    ],
    "jax32": ["reg-adam-relu-weighted-alpha", "clf-adam-relu"],
    "jax64-jit": [*FULL_BATCH, "reg-early-stopping-adam", "reg-resume-adam"],
    "dask64": [
        *FULL_BATCH, "reg-early-stopping-adam",  # a graph per step
        "reg-momentum-tanh-mb-invscaling", "clf-nesterov-tanh-mb",  # Dask's block graphs
        "reg-sgd-adaptive-mb", "clf-resume-momentum-mb-adaptive",
    ],
    "dask64-eager": ["reg-momentum-tanh-mb-invscaling", "clf-nesterov-tanh-mb"],
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    backend: Backend
    spec: Spec

    @property
    def name(self) -> str:
        return f"{self.backend.name}:{self.spec.name}"


def all_cases() -> list[Case]:
    return [Case(BACKENDS[b], SPECS[s]) for b, names in MATRIX.items() for s in names]


# -- running a case ---------------------------------------------------------------------


class _Problem:
    """A case's data on its backend, and its estimators."""

    def __init__(self, case: Case) -> None:
        self.backend, self.spec = case.backend, case.spec
        data = make_data(case.backend.n)
        default = "y" if self.spec.estimator == "reg" else "labels"
        self.host_y = data[self.spec.target or default]
        self.X = self.backend.asarray(data["X"])
        self.y = self.backend.asarray(self.host_y)
        self.s = self.backend.asarray(data["sample_weight"]) if self.spec.weighted else None

    def estimator(self, **params: Any) -> Any:
        xpnet = _xpnet()
        cls = xpnet.MLPRegressor if self.spec.estimator == "reg" else xpnet.MLPClassifier
        return cls(**{**DEFAULTS, **self.backend.params, **self.spec.params, **params})

    def record(self, est: Any, prefix: str = "", *, full: bool = True) -> dict[str, np.ndarray]:
        """What a fit left: its parameters and record; with ``full``, also what it computes
        (predictions, score, gradients) and the file ``save`` writes."""
        out: dict[str, np.ndarray] = {}
        for l, (W, b) in enumerate(zip(est.weights_, est.biases_, strict=True)):
            out[f"W{l}"], out[f"b{l}"] = to_numpy(W), to_numpy(b)
        out["loss_curve"] = np.asarray(est.loss_curve_)
        out["n_iter"] = np.asarray(est.n_iter_)
        out["t"] = np.asarray(est.t_)
        for name in ("validation_scores_", "validation_loss_curve_", "best_validation_score_",
                     "best_loss_"):  # fmt: skip
            value = getattr(est, name, None)
            if value is not None:
                out[name.rstrip("_")] = np.asarray(value)
        if full:
            out["predict"] = to_numpy(est.predict(self.X))
            if self.spec.estimator == "clf":
                out["predict_proba"] = to_numpy(est.predict_proba(self.X))
            out["score"] = np.asarray(est.score(self.X, self.y, sample_weight=self.s))
            grad_W, grad_b = est.gradients(self.X, self.y, sample_weight=self.s)
            for l, (gW, gb) in enumerate(zip(grad_W, grad_b, strict=True)):
                out[f"grad_W{l}"], out[f"grad_b{l}"] = to_numpy(gW), to_numpy(gb)
            out.update(_saved(est))
        return {prefix + k: v for k, v in out.items()}


def _saved(est: Any) -> dict[str, np.ndarray]:
    """The arrays of the model file ``est.save`` writes, and its metadata but the version."""
    with tempfile.TemporaryDirectory(prefix="xpnet-equivalence-") as folder:
        path = Path(folder) / "model.npz"
        est.save(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {f"file/{k}": f[k] for k in f.files if k != "metadata"}
            metadata = json.loads(f["metadata"].tobytes().decode("utf-8"))
    metadata.pop("xpnet_version", None)
    arrays["file/metadata"] = np.asarray(json.dumps(metadata, sort_keys=True))
    return arrays


class _ThreadWatch:
    """A fit callback that counts the threads started since it was made, at each read-back:
    the worker threads the fit's chunks run on."""

    def __init__(self) -> None:
        self.before = {t.ident for t in threading.enumerate()}
        self.most = 0

    def __call__(self, losses: list[float], scores: list[float] | None) -> None:
        new = [t for t in threading.enumerate() if t.ident not in self.before]
        self.most = max(self.most, len(new))


class _InterruptAt:
    """A fit callback that raises KeyboardInterrupt at the k-th read-back."""

    def __init__(self, k: int) -> None:
        self.k, self.calls = k, 0

    def __call__(self, losses: list[float], scores: list[float] | None) -> None:
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt


def scenario_fit(p: _Problem, notes: list[str]) -> dict[str, np.ndarray]:
    watch = _ThreadWatch() if p.backend.watch_threads else None
    est = p.estimator().fit(p.X, p.y, sample_weight=p.s, callback=watch)
    if watch is not None:
        expected = "2 or more" if p.backend.name.endswith("-threads") else "0"
        ok = watch.most >= 2 if expected != "0" else watch.most == 0
        notes.append(f"{watch.most} worker threads" + ("" if ok else f" (WARNING: {expected})"))
    return p.record(est)


def scenario_warm_start(p: _Problem, notes: list[str]) -> dict[str, np.ndarray]:
    est = p.estimator(warm_start=True).fit(p.X, p.y, sample_weight=p.s)
    first = p.record(est, "first/", full=False)
    est.set_params(max_iter=20, learning_rate=0.05)
    est.fit(p.X, p.y, sample_weight=p.s)
    return {**first, **p.record(est)}


def scenario_partial_fit(p: _Problem, notes: list[str]) -> dict[str, np.ndarray]:
    est, calls = p.estimator(), 5
    size = p.backend.n // calls
    for i in range(calls):
        rows = (slice(i * size, (i + 1) * size), ...)  # the Ellipsis: array-api-strict
        X, y, s = p.X[rows], p.y[rows], None if p.s is None else p.s[rows]
        if p.spec.estimator == "clf" and i == 0:  # the first slice need not show every class
            est.partial_fit(X, y, sample_weight=s, classes=np.unique(p.host_y))
        else:
            est.partial_fit(X, y, sample_weight=s)
    return p.record(est)


def scenario_resume(p: _Problem, notes: list[str]) -> dict[str, np.ndarray]:
    est = p.estimator()
    try:
        est.fit(p.X, p.y, sample_weight=p.s, callback=_InterruptAt(2))
    except KeyboardInterrupt:
        pass
    else:
        raise RuntimeError("the fit was not interrupted")
    interrupted = p.record(est, "interrupted/", full=False)
    notes.append(f"interrupted at epoch {est.n_iter_}")
    est.fit(p.X, p.y, sample_weight=p.s, resume=True)
    return {**interrupted, **p.record(est)}


def scenario_save_load(p: _Problem, notes: list[str]) -> dict[str, np.ndarray]:
    est = p.estimator().fit(p.X, p.y, sample_weight=p.s)
    with tempfile.TemporaryDirectory(prefix="xpnet-equivalence-") as folder:
        path = Path(folder) / "model.npz"
        est.save(path)
        loaded = _xpnet().load(path, xp=p.backend.load_namespace())
    fitted = p.record(loaded)
    loaded.partial_fit(p.X, p.y, sample_weight=p.s)  # with the optimizer state as saved
    return {**fitted, **p.record(loaded, "continued/", full=False)}


SCENARIOS = {
    "fit": scenario_fit,
    "warm_start": scenario_warm_start,
    "partial_fit": scenario_partial_fit,
    "resume": scenario_resume,
    "save_load": scenario_save_load,
}


def run_case(case: Case, notes: list[str]) -> dict[str, np.ndarray]:
    with case.backend.context():
        problem = _Problem(case)
        return SCENARIOS[case.spec.scenario](problem, notes)


# -- run mode ---------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    versions = {}
    for name in ("numpy", "torch", "jax", "dask", "array_api_strict", "array_api_compat"):
        if importlib.util.find_spec(name) is not None:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
    return {
        "xpnet_file": str(Path(_xpnet().__file__).resolve()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "blas_threads": _blas_threads(),
        "versions": versions,
    }


def run(out: Path, only: str | None, expect: str | None) -> int:
    env = _environment()
    print(f"xpnet: {env['xpnet_file']}")
    if expect is not None and not Path(env["xpnet_file"]).is_relative_to(Path(expect).resolve()):
        print(f"error: expected the xpnet under {Path(expect).resolve()}", file=sys.stderr)
        return 2
    print(f"cores {env['cpu_count']}, BLAS threads {env['blas_threads']}, {env['versions']}")
    results: dict[str, np.ndarray] = {}
    order, skipped, errors = [], {}, {}
    start = time.perf_counter()
    for case in all_cases():
        if only is not None and only not in case.name:
            continue
        order.append(case.name)
        why = unavailable(case.backend)
        if why is not None:
            skipped[case.name] = why
            print(f"SKIPPED {case.name}: {why}")
            continue
        notes: list[str] = []
        t0 = time.perf_counter()
        try:
            record = run_case(case, notes)
        except Exception as exc:
            errors[case.name] = f"{type(exc).__name__}: {exc}"
            print(f"ERROR   {case.name}:")
            traceback.print_exc()
            continue
        seconds = time.perf_counter() - t0
        results.update({f"{case.name}/{k}": v for k, v in record.items()})
        print(f"{case.name:<58} {seconds:6.2f} s  {', '.join(notes)}".rstrip(), flush=True)
    total = time.perf_counter() - start
    meta = dict(env, order=order, skipped=skipped, errors=errors, seconds=round(total, 1))
    np.savez_compressed(out, __meta__=np.asarray(json.dumps(meta)), **results)
    n_run = len(order) - len(skipped) - len(errors)
    print(f"{n_run} cases run, {len(skipped)} skipped, {len(errors)} failed, "
          f"in {total:.1f} s; results in {out}")  # fmt: skip
    return 1 if errors else 0


# -- compare mode -----------------------------------------------------------------------


def _read(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["__meta__"].item())
        cases: dict[str, dict[str, np.ndarray]] = {}
        for key in f.files:
            if key != "__meta__":
                case, _, name = key.partition("/")
                cases.setdefault(case, {})[name] = f[key]
    return meta, cases


def _difference(a: np.ndarray, b: np.ndarray) -> float | None:
    """None if ``a`` and ``b`` are the same bits (dtype, shape, bytes); else the largest
    absolute difference (inf where it has none: shapes, text, NaN against a number)."""
    if a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes():
        return None
    if a.shape != b.shape or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return float("inf")
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.max(np.where(np.isnan(d), np.inf, d))) if d.size else 0.0


def compare(path_a: Path, path_b: Path) -> int:
    meta_a, a = _read(path_a)
    meta_b, b = _read(path_b)
    for key in ("xpnet_file", "python", "machine", "cpu_count", "blas_threads", "versions"):
        if meta_a.get(key) != meta_b.get(key):
            print(f"note: {key} differs: {meta_a.get(key)} / {meta_b.get(key)}")
    names = list(dict.fromkeys([*meta_a["order"], *meta_b["order"], *a, *b]))
    equal = different = missing = 0
    for name in names:
        if name not in a or name not in b:
            missing += 1
            where = [
                f"{label}: " + (meta.get("skipped", {}).get(name)
                                or meta.get("errors", {}).get(name) or "absent")
                for label, meta, cases in (("A", meta_a, a), ("B", meta_b, b))
                if name not in cases
            ]  # fmt: skip
            print(f"MISSING    {name} ({'; '.join(where)})")
            continue
        fields_a, fields_b = set(a[name]), set(b[name])
        diffs = {k: _difference(a[name][k], b[name][k]) for k in sorted(fields_a & fields_b)}
        diffs = {k: d for k, d in diffs.items() if d is not None}
        diffs.update({k: float("inf") for k in sorted(fields_a ^ fields_b)})
        if not diffs:
            equal += 1
            print(f"EQUAL      {name}")
            continue
        different += 1
        worst = ", ".join(list(diffs)[:4]) + (", ..." if len(diffs) > 4 else "")
        print(f"DIFFERENT  {name}: max abs diff {max(diffs.values()):.3g} in "
              f"{len(diffs)} of {len(fields_a | fields_b)} fields ({worst})")  # fmt: skip
    print(f"{equal} equal, {different} different, {missing} missing")
    return 0 if different == missing == 0 else 1


# -- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the matrix of fits, save every result")
    run_parser.add_argument("out", type=Path, help="the .npz file to write")
    run_parser.add_argument("-k", dest="only", help="only the cases whose name contains this")
    run_parser.add_argument("--expect-xpnet", metavar="DIR",
                            help="fail unless the xpnet imported lies under DIR")  # fmt: skip
    compare_parser = commands.add_parser("compare", help="compare two result files exactly")
    compare_parser.add_argument("a", type=Path)
    compare_parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.out, args.only, args.expect_xpnet)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
