"""What ``scripts/bench.py`` measures: the problems, the floor, xpnet and its peers.

Every implementation trains the same network — sigmoid hidden layers, an identity output
and the squared-error loss E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖² — by full-batch gradient
descent, one step per epoch.  Each is an :class:`Impl`: ``prepare`` moves the host data
to the implementation's library and device (untimed, not counted as memory the training
adds), ``build`` returns ``run(k)``, which trains k epochs and returns only when the
device is idle again.

The floor is the part of a step no implementation can avoid: per layer, the matrix
products W·A (forward), Wᵀ·Δ (backward, not needed for the first layer) and Δ·Aᵀ (the
gradient), written into preallocated outputs, with xpnet's layout (samples are columns,
A⁽⁰⁾ = Xᵀ a transposed view of the C-contiguous X).

This module is a helper of ``bench.py``, not part of the xpnet package.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ``run(k)``: train k epochs, then wait for the device.
Runner = Callable[[int], None]


# -- problems and data -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: N samples through layers n_0 → n_1 → ... → n_L."""

    name: str
    N: int
    layers: tuple[int, ...]
    learning_rate: float  # small enough that no implementation diverges in many epochs
    min_epochs: int  # epochs per timing at least (amortises the estimators' validation)
    rounds: int  # default number of interleaved rounds
    data: str  # where the data comes from

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.layers[1:-1]

    def describe(self) -> str:
        return f"N {self.N}, {'→'.join(map(str, self.layers))}"


PROBLEMS = {
    "S": Problem(
        "S",
        1797,
        (64, 64, 10),
        learning_rate=0.05,
        min_epochs=1,
        rounds=15,
        data="scikit-learn's digits: X/16, one-hot targets (random data of that shape "
        "with a fixed seed without scikit-learn)",
    ),
    "M": Problem(
        "M",
        60000,
        (784, 256, 10),
        learning_rate=0.005,
        min_epochs=2,
        rounds=5,
        data="random, seed 0: X uniform in [0, 1), one-hot targets of random labels",
    ),
}


def make_data(problem: Problem, dtype: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The problem's X (N, n_0) and Y (N, n_L) as C-contiguous host arrays of ``dtype``.

    Returns X, Y and a short note on where they came from.
    """
    N, n_in, n_out = problem.N, problem.layers[0], problem.layers[-1]
    rng = np.random.default_rng(0)
    if problem.name == "S":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            pass
        else:
            digits = load_digits()
            X = np.ascontiguousarray(digits.data / 16.0, dtype=dtype)
            Y = np.eye(n_out, dtype=dtype)[digits.target]
            return X, Y, "digits"
    X = rng.random((N, n_in), dtype=np.float64 if dtype == "float64" else np.float32)
    Y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, size=N)]
    return X, Y, "random"


def n_cores() -> int:
    """The processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- libraries and devices ----------------------------------------------------------------

#: The places arrays live: NumPy, PyTorch on the CPU or an NVIDIA GPU, CuPy, and JAX on
#: its default device.
LIBS = ("numpy", "torch-cpu", "torch-cuda", "cupy", "jax")


def _jax() -> Any:
    """``jax``, set up as xpnet's tests set it up: float64 arrays allowed, and matrix
    products in full precision (on GPUs, JAX takes float32 products through TF32
    by default)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    return jax


def missing(lib: str) -> str | None:
    """Why ``lib`` cannot be used here, or None when it can."""
    if lib == "numpy":
        return None
    module = "torch" if lib.startswith("torch") else lib
    try:
        mod = _jax() if lib == "jax" else importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not installed ({exc})"
    if lib == "torch-cuda" and not mod.cuda.is_available():
        return "torch has no CUDA device"
    if lib == "cupy":
        try:
            mod.cuda.runtime.getDeviceCount()
        except Exception as exc:
            return f"cupy has no CUDA device ({type(exc).__name__}: {exc})"
    return None


def to_lib(a: np.ndarray, lib: str) -> Any:
    """A host array in ``lib``, sharing memory where the library can (NumPy, torch CPU)."""
    if lib == "numpy":
        return a
    if lib == "cupy":
        import cupy

        return cupy.asarray(a)
    if lib == "jax":
        return _jax().device_put(a)
    import torch

    t = torch.from_numpy(a)
    return t.to("cuda") if lib == "torch-cuda" else t


def synchronize(lib: str) -> None:
    """Wait until the device of ``lib`` has finished the work queued so far."""
    if lib == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()
    elif lib == "torch-cuda":
        import torch

        torch.cuda.synchronize()
    # JAX has no such call: its runners wait for their own results (block_until_ready).


def _host_weights(problem: Problem, dtype: str) -> list[np.ndarray]:
    """W⁽¹⁾..W⁽ᴸ⁾ of shapes (n_l, n_{l-1}), scaled so that products stay of order 1."""
    rng = np.random.default_rng(1)
    sizes = problem.layers
    return [
        (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
        for n_in, n_out in itertools.pairwise(sizes)
    ]


# -- implementations ------------------------------------------------------------------


class Impl:
    """One way of running full-batch gradient descent epochs.

    Attributes
    ----------
    key : str
        The short name used on the command line and in the JSON (``floor``, ``xpnet``, ...).
    label : str
        The row label of the table.
    role : str
        ``floor``: the backend's matrix products, the denominator of every ratio;
        ``xpnet``: the library under test; ``peer``: another full-batch trainer;
        ``reference``: another library's floor, showing how its BLAS compares.
    lib : str
        Where its arrays live, one of :data:`LIBS`.
    compiles : bool
        Whether ``run(k)`` compiles a program for each new k (JAX's).
    compiled : bool
        Whether it runs compiled programs: its memory is not measured, as the compiler's
        own would count (each memory child compiles anew).
    """

    key: str = ""
    label: str = ""
    role: str = "peer"
    lib: str = "numpy"
    compiles: bool = False
    compiled: bool = False

    def missing(self) -> str | None:
        """Why this implementation cannot run here, or None."""
        return missing(self.lib)

    def prepare(self, X: np.ndarray, Y: np.ndarray) -> tuple[Any, Any]:
        """The data in this implementation's library and device (not timed, not counted)."""
        return to_lib(X, self.lib), to_lib(Y, self.lib)

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        """Allocate what the training needs and return ``run(k)``."""
        raise NotImplementedError

    def memory_method(self) -> str:
        """How the memory child measures this implementation: ``traced``, ``rss`` or
        ``device`` (see ``measure_memory``)."""
        if self.lib in ("cupy", "torch-cuda"):
            return "device"
        return "traced" if self.lib == "numpy" else "rss"


class Floor(Impl):
    """Exactly the step's matrix products, into preallocated outputs, in xpnet's layout."""

    def __init__(self, lib: str, *, role: str = "floor") -> None:
        self.lib, self.role = lib, role
        self.key = "floor" if role == "floor" else f"floor-{lib.split('-')[0]}"
        self.label = f"floor [{lib}]"

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        X, _ = data
        N = X.shape[0]
        if self.lib == "numpy":
            matmul, empty = np.matmul, lambda shape: np.empty(shape, dtype=dtype)
        elif self.lib == "cupy":
            import cupy

            matmul, empty = cupy.matmul, lambda shape: cupy.empty(shape, dtype=dtype)
        else:
            import torch

            device = "cuda" if self.lib == "torch-cuda" else "cpu"
            tdtype = getattr(torch, dtype)

            def empty(shape: tuple[int, ...]) -> Any:
                return torch.empty(shape, dtype=tdtype, device=device)

            matmul = torch.matmul

        W = [to_lib(w, self.lib) for w in _host_weights(problem, dtype)]
        L = len(W)
        # A[0] = Xᵀ, a view; A[l] (n_l, N) and Δ⁽ˡ⁾ (n_l, N) C-contiguous, as xpnet's core
        # produces them; the gradients are shaped like W.
        A = [X.T] + [empty((w.shape[0], N)) for w in W]
        D = [None] + [empty((w.shape[0], N)) for w in W]
        G = [empty(tuple(w.shape)) for w in W]
        rng = np.random.default_rng(2)
        D[L][...] = to_lib(rng.random((W[-1].shape[0], N)).astype(dtype), self.lib)

        def run(k: int) -> None:
            for _ in range(k):
                for l in range(1, L + 1):
                    matmul(W[l - 1], A[l - 1], out=A[l])  # Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾
                for l in range(L, 0, -1):
                    matmul(D[l], A[l - 1].T, out=G[l - 1])  # Δ⁽ˡ⁾ (A⁽ˡ⁻¹⁾)ᵀ
                    if l > 1:
                        matmul(W[l - 1].T, D[l], out=D[l - 1])  # (W⁽ˡ⁾)ᵀ Δ⁽ˡ⁾
            synchronize(self.lib)

        return run


class JaxFloor(Impl):
    """JAX's floor: the step's matrix products, compiled.

    JAX has no ``out=``; XLA plans the outputs' memory itself.  As the other floors take
    one step at a time, the floor is one compiled step of products per epoch, called k
    times (JAX queues the calls without waiting for them).  With ``loop=True`` (a
    reference row), the k epochs are one compiled ``jax.lax.fori_loop`` instead (k
    traced, so one compilation serves every k): products and nothing else, not even a
    call per epoch.  Every product is an output, so that XLA drops none; in the loop, so
    that it cannot hoist them out as invariant either, each epoch moves W by a traced
    multiple of its gradient (an elementwise pass the size of W, small beside the
    products).  Each epoch's
    products are in xpnet's layout: W·A forward, Δ·Aᵀ and Wᵀ·Δ backward.
    """

    compiled = True

    def __init__(self, *, loop: bool = False) -> None:
        self.lib, self.loop = "jax", loop
        self.role, self.key = ("reference", "floor-loop") if loop else ("floor", "floor")
        self.label = "floor [jax, one loop]" if loop else "floor [jax, jit]"

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        jax = _jax()
        import jax.numpy as jnp

        X, _ = data
        N = X.shape[0]
        W = [jax.device_put(w) for w in _host_weights(problem, dtype)]
        L = len(W)
        rng = np.random.default_rng(2)
        D_L = jax.device_put(rng.random((W[-1].shape[0], N)).astype(dtype))

        def products(W, A0, D_L):
            A = [A0]
            for l in range(L):
                A.append(W[l] @ A[-1])  # Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾
            D, G = D_L, [None] * L
            for l in range(L, 0, -1):
                G[l - 1] = D @ A[l - 1].T  # Δ⁽ˡ⁾ (A⁽ˡ⁻¹⁾)ᵀ
                if l > 1:
                    D = W[l - 1].T @ D  # (W⁽ˡ⁾)ᵀ Δ⁽ˡ⁾
            return G, A[-1]  # every product is an output: XLA drops none

        if not self.loop:
            step = jax.jit(lambda W, X, D_L: products(W, X.T, D_L))

            def run(k: int) -> None:
                for _ in range(k):
                    out = step(W, X, D_L)
                jax.block_until_ready(out)

            return run

        eps = jnp.asarray(1e-12, dtype=dtype)

        @jax.jit
        def epochs(W, X, D_L, eps, k):
            def one(_, carry):
                W, _, A_L = carry
                G, A_L = products(W, X.T, D_L)
                return [w - eps * g for w, g in zip(W, G, strict=True)], G, A_L

            start = (W, [jnp.zeros_like(w) for w in W], jnp.zeros((W[-1].shape[0], N), dtype))
            return jax.lax.fori_loop(0, k, one, start)

        def run(k: int) -> None:
            jax.block_until_ready(epochs(W, X, D_L, eps, k))

        return run


class JaxByHand(Impl):
    """The same equations written with ``jax.numpy``, k epochs as one compiled loop."""

    key, role, lib, label = "jax-hand", "peer", "jax", "jax by hand [jit]"
    compiled = True

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        jax = _jax()
        import jax.numpy as jnp

        X, Y = data
        N, mu = X.shape[0], problem.learning_rate
        W0 = [jax.device_put(w) for w in _host_weights(problem, dtype)]
        b0 = [jnp.zeros(w.shape[0], dtype=dtype) for w in W0]
        L = len(W0)

        @jax.jit
        def epochs(W, b, X, Y, k):
            def one(_, carry):
                W, b, _ = carry
                A = [X.T]
                for l in range(L):
                    Z = W[l] @ A[-1] + b[l][:, None]
                    A.append(jax.nn.sigmoid(Z) if l < L - 1 else Z)
                D = A[-1] - Y.T  # Δ⁽ᴸ⁾ of the identity output and squared error
                E = jnp.sum(D * D) / (2 * N)  # E_total, as xpnet records it
                W, b = list(W), list(b)
                for l in range(L - 1, -1, -1):
                    grad_W, grad_b = D @ A[l].T, jnp.sum(D, axis=1)
                    if l > 0:
                        D = (W[l].T @ D) * A[l] * (1 - A[l])
                    W[l] = W[l] - (mu / N) * grad_W
                    b[l] = b[l] - (mu / N) * grad_b
                return W, b, E

            return jax.lax.fori_loop(0, k, one, (W, b, jnp.zeros((), dtype)))

        def run(k: int) -> None:
            jax.block_until_ready(epochs(W0, b0, X, Y, k))

        return run


class Xpnet(Impl):
    """``xpnet.MLPRegressor(...).fit(X, Y)`` with ``max_iter=k``: k full-batch epochs.

    The time includes what ``fit`` does once per call — validating X (one reduction over
    it), drawing the initial weights, reading the losses back — so it is divided over k
    epochs; ``bench.py`` picks k so that a call takes a few tenths of a second.
    """

    def __init__(
        self, lib: str, *, role: str = "xpnet", engine: str = "auto", key: str | None = None
    ) -> None:
        self.lib, self.role, self.engine = lib, role, engine
        # On JAX, blocks of 16 epochs and the remainder: a shape, and a compilation, per
        # k % 16.  (PyTorch compiles its step once, in the first, untimed run.)
        self.compiles = lib == "jax" and engine != "eager"
        self.compiled = self.compiles or engine == "jit"
        # As a peer, xpnet on another library of the same device (PyTorch CUDA beside
        # CuPy): what the same code gains or loses from that library's kernels; or on
        # the same library with another engine (JAX eager beside JAX compiled).
        if key is not None:
            self.key = key
        elif role == "xpnet":
            self.key = "xpnet"
        else:
            self.key = f"xpnet-{engine}" if engine != "auto" else f"xpnet-{lib.split('-')[0]}"
        self.label = f"xpnet [{lib}{'' if engine == 'auto' else ', ' + engine}]"

    def missing(self) -> str | None:
        try:
            importlib.import_module("xpnet")
        except ImportError as exc:
            return f"xpnet is not importable ({exc})"
        return super().missing()

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        import xpnet

        X, Y = data

        def run(k: int) -> None:
            est = xpnet.MLPRegressor(
                hidden_layer_sizes=problem.hidden,
                solver="sgd",  # the seed's full-batch descent: k epochs, whatever the loss
                n_iter_no_change=float("inf"),
                activation="sigmoid",
                output_activation="identity",
                loss="mse",
                learning_rate=problem.learning_rate,
                max_iter=k,
                batch_size=None,
                warm_start=False,
                random_state=0,
                engine=self.engine,
            )
            with warnings.catch_warnings():  # k epochs by design: no ConvergenceWarning
                warnings.simplefilter("ignore", xpnet.ConvergenceWarning)
                est.fit(X, Y)
            synchronize(self.lib)
            if self.lib == "jax":
                _jax().block_until_ready(est.weights_)

        return run


class Sklearn(Impl):
    """scikit-learn's ``MLPRegressor(solver="sgd", batch_size=N, momentum=0, alpha=0)``.

    ``tol=0``, ``n_iter_no_change=k + 1`` and ``shuffle=False`` make ``fit(max_iter=k)``
    run exactly k full-batch epochs; its ConvergenceWarning is silenced.  Like xpnet's,
    the time includes one validation of X per call.
    """

    key, label, role, lib = "sklearn", "scikit-learn", "peer", "numpy"

    def missing(self) -> str | None:
        try:
            importlib.import_module("sklearn.neural_network")
        except ImportError as exc:
            return f"scikit-learn is not installed ({exc})"
        return None

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        X, Y = data

        def run(k: int) -> None:
            est = MLPRegressor(
                hidden_layer_sizes=problem.hidden,
                activation="logistic",
                solver="sgd",
                batch_size=X.shape[0],
                learning_rate="constant",
                learning_rate_init=problem.learning_rate,
                momentum=0.0,
                nesterovs_momentum=False,
                alpha=0.0,
                max_iter=k,
                shuffle=False,
                tol=0.0,
                n_iter_no_change=k + 1,
                early_stopping=False,
                random_state=0,
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("always", UserWarning)
                est.fit(X, Y)
            # scikit-learn catches a Ctrl-C inside its epochs and only warns about it: the
            # interrupt goes on from here, or the benchmark would carry on as if none came.
            if any("interrupted by user" in str(w.message) for w in caught):
                raise KeyboardInterrupt

        return run


class NumpyByHand(Impl):
    """The same equations in NumPy as a person tuning them by hand would write them.

    Whole batch, samples as columns (xpnet's layout), every array allocated once and
    written in place through ``out=``, the bias gradients as products with a ones vector
    (a BLAS call instead of a reduction).  It uses what the Array API does not offer
    (``out=``, ``vdot``), so it shows the least a NumPy step can cost on this machine
    beyond the floor: the yardstick for xpnet's own overhead on NumPy.  With
    ``--backend torch`` its ratio is to PyTorch's floor, so it also holds the difference
    between the two BLAS libraries (the reference floor row shows that difference).
    """

    key, label, role, lib = "numpy-hand", "numpy by hand", "peer", "numpy"

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        X, Y = data
        W = _host_weights(problem, dtype)
        b = [np.zeros(w.shape[0], dtype=dtype) for w in W]
        step = numpy_step(W, b, X, Y, mu=problem.learning_rate)

        def run(k: int) -> None:
            for _ in range(k):
                step()

        return run


def numpy_step(
    W: list[np.ndarray], b: list[np.ndarray], X: np.ndarray, Y: np.ndarray, *, mu: float
) -> Callable[[], Any]:
    """``step()``: one full-batch step on ``W`` and ``b`` in place; returns E_total at the
    parameters it started from (a NumPy scalar).

    Sigmoid hidden layers, identity output, squared error; ``X`` (N, n_0) and ``Y``
    (N, n_L) as the bench holds them.  Buffers for every layer are allocated here, once.
    """
    N, L, dtype = X.shape[0], len(W), X.dtype
    A = [X.T] + [np.empty((w.shape[0], N), dtype=dtype) for w in W]
    D = [None] + [np.empty((w.shape[0], N), dtype=dtype) for w in W]
    grad_W = [np.empty_like(w) for w in W]
    grad_b = [np.empty_like(c) for c in b]
    ones = np.ones(N, dtype=dtype)
    Y_cols = Y.T

    def step() -> Any:
        for l in range(L):
            Z = A[l + 1]
            np.matmul(W[l], A[l], out=Z)
            Z += b[l][:, None]
            if l < L - 1:  # a = 1 / (1 + e^{-z}), in place
                np.negative(Z, out=Z)
                np.exp(Z, out=Z)
                Z += 1.0
                np.divide(1.0, Z, out=Z)
        np.subtract(A[L], Y_cols, out=D[L])  # Δ⁽ᴸ⁾ = O − Y
        E = np.vdot(D[L], D[L]) / (2 * N)
        for l in range(L, 0, -1):
            np.matmul(D[l], A[l - 1].T, out=grad_W[l - 1])
            np.matmul(D[l], ones, out=grad_b[l - 1])
            if l > 1:  # Δ⁽ˡ⁻¹⁾ = (W⁽ˡ⁾ᵀ Δ⁽ˡ⁾) ⊙ a (1 − a); A⁽ˡ⁻¹⁾ is not needed after this
                np.matmul(W[l - 1].T, D[l], out=D[l - 1])
                D[l - 1] *= A[l - 1]
                np.subtract(1.0, A[l - 1], out=A[l - 1])
                D[l - 1] *= A[l - 1]
        for l in range(L):
            grad_W[l] *= mu / N
            W[l] -= grad_W[l]
            grad_b[l] *= mu / N
            b[l] -= grad_b[l]
        return E

    return step


def _torch_params(problem: Problem, dtype: str, device: str) -> list[Any]:
    """[W⁽¹⁾, b⁽¹⁾, ..., W⁽ᴸ⁾, b⁽ᴸ⁾] as torch tensors, W⁽ˡ⁾ of shape (n_l, n_{l-1})."""
    import torch

    params = []
    for w in _host_weights(problem, dtype):
        params.append(torch.from_numpy(w).to(device))
        params.append(torch.zeros(w.shape[0], dtype=getattr(torch, dtype), device=device))
    return params


class TorchByHand(Impl):
    """The same equations written with torch tensors, samples as rows, under no_grad."""

    key, role = "torch-hand", "peer"

    def __init__(self, lib: str) -> None:
        self.lib = lib
        self.label = f"torch by hand [{lib.split('-')[1]}]"

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        import torch

        X, Y = data
        N, mu = X.shape[0], problem.learning_rate
        params = _torch_params(problem, dtype, X.device.type)
        W, b = params[0::2], params[1::2]
        L = len(W)

        @torch.no_grad()
        def step() -> Any:
            A = [X]
            for l in range(L):
                Z = torch.addmm(b[l], A[-1], W[l].T)  # (N, n_l) = A W⁽ˡ⁾ᵀ + b⁽ˡ⁾
                A.append(Z.sigmoid_() if l < L - 1 else Z)
            D = A[-1] - Y  # Δ⁽ᴸ⁾ of the identity output and squared error
            E = torch.sum(D * D) / (2 * N)
            for l in range(L - 1, -1, -1):
                grad_W = torch.mm(D.T, A[l])
                grad_b = torch.sum(D, dim=0)
                if l > 0:
                    D = torch.mm(D, W[l]).mul_(A[l] * (1 - A[l]))
                W[l].sub_(grad_W, alpha=mu / N)
                b[l].sub_(grad_b, alpha=mu / N)
            return E

        def run(k: int) -> None:
            for _ in range(k):
                step()
            synchronize(self.lib)

        return run


class TorchAutograd(Impl):
    """``torch.nn.functional.linear`` layers, ``loss.backward()`` and a hand-written update."""

    key, role = "torch-autograd", "peer"

    def __init__(self, lib: str) -> None:
        self.lib = lib
        self.label = f"torch autograd [{lib.split('-')[1]}]"

    def build(self, data: tuple[Any, Any], problem: Problem, dtype: str) -> Runner:
        import torch
        from torch.nn.functional import linear

        X, Y = data
        N, mu = X.shape[0], problem.learning_rate
        params = [p.requires_grad_() for p in _torch_params(problem, dtype, X.device.type)]
        L = len(params) // 2

        def step() -> Any:
            H = X
            for l in range(L):
                H = linear(H, params[2 * l], params[2 * l + 1])
                if l < L - 1:
                    H = torch.sigmoid(H)
            R = H - Y
            E = torch.sum(R * R) / (2 * N)
            E.backward()
            with torch.no_grad():
                for p in params:
                    p.sub_(p.grad, alpha=mu)
                    p.grad = None
            return E.detach()

        def run(k: int) -> None:
            with torch.enable_grad():
                for _ in range(k):
                    step()
            synchronize(self.lib)

        return run


def implementations(backend: str) -> list[Impl]:
    """The floor, xpnet and the peers for xpnet on ``backend`` (numpy, torch, cupy or jax)."""
    if backend == "numpy":
        return [
            Floor("numpy"),
            Xpnet("numpy"),
            NumpyByHand(),
            Sklearn(),
            TorchByHand("torch-cpu"),
            TorchAutograd("torch-cpu"),
            Floor("torch-cpu", role="reference"),
        ]
    if backend == "torch":
        return [
            Floor("torch-cpu"),
            Xpnet("torch-cpu"),
            Xpnet("torch-cpu", role="peer", engine="jit"),  # torch.compile: when asked
            NumpyByHand(),
            Sklearn(),
            TorchByHand("torch-cpu"),
            TorchAutograd("torch-cpu"),
            Floor("numpy", role="reference"),
        ]
    if backend == "cupy":
        return [
            Floor("cupy"),
            Xpnet("cupy"),
            Xpnet("cupy", role="peer", engine="jit"),  # the fused kernels
            Xpnet("torch-cuda", role="peer"),
            # torch.compile's step, blocks of 16 captured as CUDA graphs
            Xpnet("torch-cuda", role="peer", engine="jit", key="xpnet-torch-jit"),
            TorchByHand("torch-cuda"),
            TorchAutograd("torch-cuda"),
            Floor("torch-cuda", role="reference"),
        ]
    if backend == "jax":
        # xpnet compiled (``engine="jit"``: every fit, however short, takes its epochs
        # as compiled blocks; ``auto`` would leave the bench's short fits eager) and
        # eager, against JAX's own compiled floor.
        return [
            JaxFloor(),
            Xpnet("jax", engine="jit"),
            Xpnet("jax", role="peer", engine="eager"),
            JaxByHand(),
            JaxFloor(loop=True),
            Floor("numpy", role="reference"),
        ]
    raise ValueError(f"unknown backend {backend!r}; choose numpy, torch, cupy or jax")


def setup_threads() -> int:
    """Let PyTorch use every core this process may run on (when it is installed)."""
    cores = n_cores()
    try:
        import torch
    except ImportError:
        return cores
    torch.set_num_threads(cores)
    return cores


# -- memory ----------------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark VmHWM to the current VmRSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class _CupyPeak:
    """Peak bytes taken from CuPy's memory pool while the hook is installed."""

    def __init__(self) -> None:
        from cupy.cuda import memory_hook

        outer = self

        class Hook(memory_hook.MemoryHook):
            name = "bench_peak"

            def malloc_postprocess(self, **kw: Any) -> None:
                outer.used += kw["mem_size"]
                outer.peak = max(outer.peak, outer.used)

            def free_postprocess(self, **kw: Any) -> None:
                outer.used -= kw["mem_size"]

        self.used = self.peak = 0
        self.hook = Hook()


def measure_memory(impl: Impl, problem: Problem, dtype: str, epochs: int = 2) -> dict[str, Any]:
    """Peak memory that building and training ``epochs`` epochs adds on top of the data.

    Run this in a fresh process (``bench.py --memory-child``), started with glibc's
    ``MALLOC_MMAP_THRESHOLD_`` fixed so that freed arrays go back to the system.  After the
    data exist and a warm-up on a small slice has done the lazy imports and thread pools:

    * ``rss``: the resident high-water mark (VmHWM, reset through /proc/self/clear_refs)
      minus the resident size before training; sees every allocation, also the library's
      own (PyTorch's) and the interpreter's, at page granularity;
    * ``traced``: tracemalloc's peak, which sees NumPy's array buffers exactly (NumPy
      reports them to tracemalloc) but not PyTorch's — measured on a second, separate run;
    * ``device``: on a GPU, the peak taken from CuPy's pool (a memory hook) or PyTorch's
      caching allocator (``max_memory_allocated``).

    Returns a dict of those (None where not applicable), ``data_bytes`` (X and Y),
    ``method`` (the one to read) and ``added_over_data``.
    """
    import tracemalloc

    if impl.lib.startswith("torch"):  # the others need not pay for importing PyTorch
        setup_threads()
    X, Y, _ = make_data(problem, dtype)
    data = impl.prepare(X, Y)
    small = min(problem.N, 256)
    impl.build(impl.prepare(X[:small], Y[:small]), problem, dtype)(1)  # warm-up
    gc.collect()
    out: dict[str, Any] = {
        "impl": impl.key,
        "problem": problem.name,
        "dtype": dtype,
        "epochs": epochs,
        "data_bytes": int(X.nbytes + Y.nbytes),
        "method": impl.memory_method(),
        "rss_added_bytes": None,
        "traced_added_bytes": None,
        "device_added_bytes": None,
    }

    if impl.lib == "torch-cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        impl.build(data, problem, dtype)(epochs)
        out["device_added_bytes"] = int(torch.cuda.max_memory_allocated() - base)
    elif impl.lib == "cupy":
        peak = _CupyPeak()
        with peak.hook:
            impl.build(data, problem, dtype)(epochs)
        out["device_added_bytes"] = int(peak.peak)
    else:
        rss_reset = _reset_peak_rss()
        base = _status_bytes("VmRSS")
        impl.build(data, problem, dtype)(epochs)
        hwm = _status_bytes("VmHWM")
        if rss_reset and base is not None and hwm is not None:
            out["rss_added_bytes"] = max(0, hwm - base)
        gc.collect()
        if impl.lib == "numpy":
            tracemalloc.start()
            start = tracemalloc.get_traced_memory()[0]
            impl.build(data, problem, dtype)(epochs)
            out["traced_added_bytes"] = int(tracemalloc.get_traced_memory()[1] - start)
            tracemalloc.stop()

    added = out[f"{out['method']}_added_bytes"]
    out["added_over_data"] = None if added is None else added / out["data_bytes"]
    return out


def write_report(report: dict[str, Any], markdown: str, json_path: Path,
                 markdown_path: Path | None) -> str:  # fmt: skip
    """A benchmark's report as JSON, and its table as Markdown where asked, their folders
    made; returns the line that says where they went."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    if markdown_path is None:
        return f"wrote {json_path}"
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(markdown)
    return f"wrote {json_path} and {markdown_path}"
