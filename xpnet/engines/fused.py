"""Fused elementwise kernels: on CuPy, a step's elementwise work in fewer passes over memory.

The Array API runs one operation at a time.  On a GPU each is a kernel launch and a
pass over memory, so the sigmoid of Z + b (an add, a negation, an exp, an add and a
division) reads and writes Z five times, and an Adam update about ten times per
parameter.  Where the work of one array element depends on that element alone, one
kernel can do it all in one pass.  CuPy compiles such kernels at run time
(``cupy.ElementwiseKernel``, through NVRTC, cached on disk), and this module holds them:

- f(Z + b): the bias added in the activation's pass (sigmoid, tanh, relu, identity);
- D ⊙ f'(Z), written from A, for the backward pass (sigmoid, tanh, relu);
- the output delta of the squared error, (A⁽ᴸ⁾ − Y) ⊙ f'(Z⁽ᴸ⁾) (sigmoid, tanh, relu);
- each optimizer's update and its application, P + U, with the new moments.

Each kernel is an optional implementation of a primitive that the core defines
(``xpnet.core.activations``, ``.losses``, ``.optimizers``), doing the same arithmetic in
the same order: :func:`fused` puts them into a :class:`~xpnet.core.step.Step` in place of
the generic ones, and nothing else changes.  The :class:`Fused` engine is the eager engine
with that step (``engine="jit"`` on CuPy arrays, mini-batches included).

The kernels are compiled without contracting a product and a sum into one fused
multiply-add (``NVRTC_OPTIONS``), as the generic path, one operation per kernel, cannot
contract either: each element is rounded as often, at the same places, and the same math
functions (``exp``, ``tanh``, ``sqrt``) are called.  Softmax (a sum over each column) and
cross-entropy's delta (one subtraction) keep their generic form; so do the division of
the summed gradients by N and the scaling by sample weights.

The kernels are written once, as CUDA C++ operation strings over an element type ``T``
(float or double) in :data:`KERNELS`; ``make_kernel`` turns a :class:`Kernel` into
something callable with ``cupy.ElementwiseKernel``'s conventions (inputs, then outputs to
write into; an output not given is allocated; broadcasting; scalars cast to ``T``).

A fused step holds its kernels by name (:class:`FusedKernel`), and each process makes
them runnable for itself: a compiled kernel belongs to the process, and the GPU context,
that compiled it, and pickling one, as Dask does to send a step to its workers, would
send its raw GPU handles along.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import array_api_compat as aac

from ..core.activations import Activation
from ..core.losses import Objective
from ..core.optimizers import Optimizer, OptimizerState
from ..core.per_model import per_model
from ..core.step import Samples, Step
from .eager import Eager

Array = Any


class Kernel(NamedTuple):
    """An elementwise kernel: ``cupy.ElementwiseKernel``'s parameter lists and body.

    Inputs are read through ``const T&`` references and outputs written through ``T&``
    references, so an output may be the array an input came from only where the body
    reads that input before it writes the output.
    """

    in_params: str
    out_params: str
    operation: str
    #: How many of the last inputs are scalars (β, μ, ...); the others are arrays.  (CuPy
    #: tells them apart by what it is given; the tests compile each kind for CUDA.)
    scalars: int = 0


#: The fused kernels by name.  z, b, a, d, y are elements of Z, b, A, Δ, Y; p, g are a
#: parameter and its gradient; q is the new parameter; v, m and v1, m1 a moment before
#: and after the step.  Scalars (β, μ, ...) come in as arguments, cast to T.
KERNELS: dict[str, Kernel] = {
    # a = f(z + b): the bias added in the activation's pass.  As in xpnet.core.activations:
    # sigmoid = 1 / (1 + e^{-x}), and relu = max(x, 0) with a NaN kept (divergence).
    "identity_of_sum": Kernel("T z, T b", "T a", "a = z + b"),
    "sigmoid_of_sum": Kernel("T z, T b", "T a", "a = 1 / (1 + exp(-(z + b)))"),
    "tanh_of_sum": Kernel("T z, T b", "T a", "a = tanh(z + b)"),
    "relu_of_sum": Kernel("T z, T b", "T a", "T x = z + b; a = (x > 0 || isnan(x)) ? x : (T)0"),
    # d ← d f'(z), with f' written from a = f(z).
    "sigmoid_times_f_prime": Kernel("T a", "T d", "d = d * a * (1 - a)"),
    "tanh_times_f_prime": Kernel("T a", "T d", "d = d * (1 - a * a)"),
    "relu_times_f_prime": Kernel("T a", "T d", "d = a > 0 ? d : (T)0"),
    # The squared error's output delta, d = (a − y) f'(z).
    "sigmoid_mse_delta": Kernel("T a, T y", "T d", "d = (a - y) * a * (1 - a)"),
    "tanh_mse_delta": Kernel("T a, T y", "T d", "d = (a - y) * (1 - a * a)"),
    "relu_mse_delta": Kernel("T a, T y", "T d", "d = a > 0 ? a - y : (T)0"),
    # The updates, applied: q = p + u, with the moments after the step.
    "sgd_update": Kernel("T p, T g, T minus_mu", "T q", "q = p + minus_mu * g", 1),
    "momentum_update": Kernel(
        "T p, T g, T v, T beta, T mu", "T q, T v1", "v1 = beta * v - mu * g; q = p + v1", 2
    ),
    "nesterov_update": Kernel(
        "T p, T g, T v, T beta, T mu",
        "T q, T v1",
        "v1 = beta * v - mu * g; q = p + (beta * v1 - mu * g)",
        2,
    ),
    "adam_update": Kernel(
        "T p, T g, T m, T v, T beta_1, T one_minus_beta_1, T beta_2, T one_minus_beta_2, "
        "T epsilon, T minus_mu",
        "T q, T m1, T v1",
        "m1 = beta_1 * m + one_minus_beta_1 * g; "
        "v1 = beta_2 * v + one_minus_beta_2 * (g * g); "
        "q = p + minus_mu * m1 / (sqrt(v1) + epsilon)",
        6,
    ),
}

#: The scalar arguments of each optimizer's update kernel, from its hyperparameters and
#: the step's step size, as the generic update takes them (1 − β₁ as the rule worked it
#: out, in double precision from the number β₁).  Their order is the kernel's.  In a
#: stack they are arrays, one value per network.
UPDATE_SCALARS: dict[str, Callable[[tuple[float, ...], float], tuple[float, ...]]] = {
    "sgd": lambda hyper, mu: (-mu,),
    "momentum": lambda hyper, mu: (hyper[0], mu),
    "nesterov": lambda hyper, mu: (hyper[0], mu),
    "adam": lambda hyper, mu: (hyper[0], hyper[3], hyper[1], hyper[4], hyper[2], -mu),
}

#: NVRTC's options for the kernels: no contraction of a * b + c into a fused
#: multiply-add, which would round once where the generic path rounds twice.
NVRTC_OPTIONS = ("--fmad=false",)

#: ``make_kernel(name, kernel) -> callable``: a kernel made runnable.
MakeKernel = Callable[[str, Kernel], Callable[..., Any]]


@functools.cache
def cupy_kernel(name: str, kernel: Kernel) -> Any:
    """``kernel`` as a ``cupy.ElementwiseKernel`` (compiled at its first call, per dtype)."""
    import cupy

    return cupy.ElementwiseKernel(
        kernel.in_params, kernel.out_params, kernel.operation, name=f"xpnet_{name}",
        options=NVRTC_OPTIONS,
    )  # fmt: skip


class FusedKernel:
    """A fused kernel by name, made runnable by ``make_kernel`` in the process that calls it.

    Pickled, it is its name and ``make_kernel`` (a module-level function, which pickles
    by reference) and nothing it has compiled: a process that unpickles it (a Dask
    worker) makes the kernel anew at its first call, from :data:`KERNELS`, with its own
    compiler and GPU.  (A ``cupy.ElementwiseKernel`` pickles with the device pointers
    of the functions it has compiled.)

    Parameters
    ----------
    name : str
        The kernel's key in :data:`KERNELS`.
    make_kernel : callable
        ``make_kernel(name, kernel) -> callable``, such as :func:`cupy_kernel`.
    """

    def __init__(self, name: str, make_kernel: MakeKernel) -> None:
        if name not in KERNELS:
            raise ValueError(f"no fused kernel is named {name!r}; choose from {sorted(KERNELS)}")
        self.name, self.make_kernel = name, make_kernel
        self._runnable: Callable[..., Any] | None = None  # this process's, made at first call

    def __call__(self, *args: Any) -> Any:
        if self._runnable is None:
            self._runnable = self.make_kernel(self.name, KERNELS[self.name])
        return self._runnable(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        return FusedKernel, (self.name, self.make_kernel)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FusedKernel):
            return NotImplemented
        return (self.name, self.make_kernel) == (other.name, other.make_kernel)

    def __hash__(self) -> int:
        return hash((self.name, self.make_kernel))

    def __repr__(self) -> str:
        return f"FusedKernel({self.name!r}, {getattr(self.make_kernel, '__name__', '?')})"


def fused(how: Step, make_kernel: MakeKernel = cupy_kernel) -> Step:
    """``how`` (a :class:`~xpnet.core.step.Step`) with fused kernels for its elementwise work.

    Each activation, the squared error's output delta and the optimizer's update that
    :data:`KERNELS` covers is replaced by its kernel; the rest stays as it was.
    ``make_kernel`` makes the kernels runnable, in each process that runs the step:
    CuPy's by default.  It must be a module-level function, for the step to pickle.
    """
    return dataclasses.replace(
        how,
        f=tuple(_activation(f, make_kernel) for f in how.f),
        objective=_objective(how.objective, make_kernel),
        # None for L-BFGS, which takes its own steps: its gradients are fused all the same.
        optimizer=None if how.optimizer is None else _optimizer(how.optimizer, make_kernel),
    )


def _kernel(name: str, make_kernel: MakeKernel) -> FusedKernel | None:
    return FusedKernel(name, make_kernel) if name in KERNELS else None


def _activation(f: Activation, make_kernel: MakeKernel) -> Activation:
    of_sum = _kernel(f"{f.name}_of_sum", make_kernel)
    times = _kernel(f"{f.name}_times_f_prime", make_kernel)
    return dataclasses.replace(
        f,
        of_sum=f.of_sum if of_sum is None else functools.partial(_of_sum, kernel=of_sum),
        times_f_prime=f.times_f_prime if times is None else functools.partial(_times, kernel=times),
    )


def _of_sum(Z: Array, b: Array, *, xp: Any, kernel: Callable[..., Array]) -> Array:
    """f(Z + b), written over Z (the fresh product W A, which the caller hands over); b is
    (n_l,), or (K, n_l) for a stack."""
    return kernel(Z, b[..., :, None], Z)


def _times(D: Array, A: Array, *, xp: Any, kernel: Callable[..., Array]) -> Array:
    """D ⊙ f'(Z), written over D (a fresh Δ, which the caller hands over)."""
    return kernel(A, D)


def _objective(objective: Objective, make_kernel: MakeKernel) -> Objective:
    delta = _kernel(f"{objective.output_activation}_mse_delta", make_kernel)
    if objective.loss != "mse" or delta is None:
        return objective
    return dataclasses.replace(objective, output_delta=functools.partial(_delta, kernel=delta))


def _delta(Y: Array, A_L: Array, *, xp: Any, kernel: Callable[..., Array]) -> Array:
    """Δ⁽ᴸ⁾ = (A⁽ᴸ⁾ − Y) ⊙ f'(Z⁽ᴸ⁾), a new array."""
    return kernel(A_L, Y)


def _optimizer(optimizer: Optimizer, make_kernel: MakeKernel) -> Optimizer:
    kernel = _kernel(f"{optimizer.name}_update", make_kernel)
    if kernel is None:
        return optimizer
    update = functools.partial(
        _update, kernel=kernel, scalars=functools.partial(
            UPDATE_SCALARS[optimizer.name], optimizer.hyperparameters
        ),
    )  # fmt: skip
    return optimizer._replace(fused_update=update)


def _update(
    P: Sequence[Array], G: Sequence[Array], state: OptimizerState, *, mu: float, xp: Any,
    kernel: Callable[..., Any], scalars: Callable[[float], tuple[float, ...]],
) -> tuple[list[Array], OptimizerState]:  # fmt: skip
    """The rule's update and P + U, one kernel per parameter; new arrays throughout (the
    parameters may be the user's, and the moments a checkpoint's).

    In a stack, μ and the rule's constants may be (K,) arrays, one value per network
    (``xpnet.core.optimizers.stacked``): the kernel takes them as arrays, broadcast
    against each parameter, where one network's are scalars.
    """
    scalars = scalars(mu)
    new_P: list[Array] = []
    new_moments: tuple[list[Array], ...] = tuple([] for _ in state.moments)
    for i, (p, g) in enumerate(zip(P, G, strict=True)):
        constants = (per_model(c, p, xp=xp) for c in scalars)
        out = kernel(p, g, *(moment[i] for moment in state.moments), *constants)
        q, *moments = out if state.moments else (out,)
        new_P.append(q)
        for kept, moment in zip(new_moments, moments, strict=True):
            kept.append(moment)
    return new_P, OptimizerState(state.t + 1, new_moments)


class Fused(Eager):
    """The eager engine, its step's elementwise work through fused kernels.

    ``takes(xp)`` says which arrays it runs on (CuPy's), and ``make_kernel`` makes the
    kernels runnable (CuPy's ``ElementwiseKernel``); the tests run it on NumPy arrays
    with kernels compiled for the host.
    """

    takes: ClassVar[Callable[[Any], bool]] = staticmethod(aac.is_cupy_namespace)
    make_kernel: ClassVar[MakeKernel] = staticmethod(cupy_kernel)

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        with super().open(data, validation) as ready:
            self.how = fused(self.how, type(self).make_kernel)
            yield ready

    def run_stack_block(self, W: list[Array], b: list[Array], state: OptimizerState,
                        epochs: Any, *, optimizer: Optimizer, **rest: Any) -> tuple:  # fmt: skip
        """The eager engine's stack epochs (``xpnet.engines.eager.Eager.run_stack_block``),
        the stack's update rule fused as well: its constants, one per network, go to the
        kernels as arrays."""
        rule = _optimizer(optimizer, type(self).make_kernel)
        return super().run_stack_block(W, b, state, epochs, optimizer=rule, **rest)
