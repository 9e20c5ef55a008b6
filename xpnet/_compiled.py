"""Compiled execution: a block of full-batch epochs run as one program.

The Array API runs one operation at a time, and on some backends that costs more than
the arithmetic: each operation is dispatched from Python, and on a GPU each is a kernel
launch and a pass over memory.  Backends that can compile take the same code instead as
one program per block of epochs (the ``READBACK_EVERY`` epochs between two read-backs).

Nothing here is a second implementation of the math.  A compiled block calls, epoch by
epoch, the eager path's own functions: ``xpnet._training.step`` (the core's E_total and
gradients, then the optimizer's update) and, with early stopping,
``xpnet._training.keep_the_best``.  The compiler only sees them traced, so the result is
the eager result up to the order of floating-point operations.  The step sizes of the
block's epochs (the schedule's μ and Adam's bias correction) are worked out on the host
beforehand and go in as an array, as the schedule's decisions are taken at read-backs.

- **JAX**: the block is a ``jax.lax.scan`` over the epochs, traced by ``jax.jit``
  once per shape (a block of 16 and the remainder), on CPU and GPU alike.  The batch is
  taken whole: inside a compiled program, chunking only slows XLA down.  Arrays the
  caller owns are never donated.

- **Dask**, mini-batches: the block is one task graph, a chain of one task per Dask block
  and epoch, or per run of blocks one worker holds (``xpnet._dask.epochs_in_blocks``),
  computed once, so that the client waits on the cluster once per block of epochs rather
  than once per epoch.  (A full-batch step needs the sum over all blocks before the next
  can start: one graph per step.)

- **PyTorch** (``engine="jit"`` only): each full-batch step is one program compiled by
  ``torch.compile`` from the eager path's ``step``, the batch whole.  Its first
  compilation takes seconds (8–16 s for a small network on a 2-core CPU), more than most
  fits save, so it runs only when asked for.  The step size and Σ sᵢ go in as 0-D
  tensors, so that neither compiles anew; new shapes do, into a program of their own.
  On CUDA, the blocks of epochs of that compiled step are also captured as a CUDA
  graph, over buffers the runner owns, and replayed (:class:`TorchGraphBlocks`): one
  launch per block instead of a few per operation.

- **CuPy** (``engine="jit"`` only): CuPy cannot capture a step (it refuses cuBLAS calls
  while a stream is capturing), but it compiles elementwise kernels: the step's
  elementwise work runs through the fused kernels of ``xpnet._fused`` (:func:`step_for`),
  epoch by epoch, mini-batches included.

``engine="auto"`` compiles where that is exact and pays for itself: JAX arrays, full-batch
descent, and at least ``MIN_EPOCHS_TO_COMPILE`` epochs; and Dask's mini-batches, whose
graphs cost nothing to build.  Other cases and ``engine="eager"`` run epoch by epoch, as
before.  (CUDA graphs and CuPy's fused kernels are for "jit" alone until their gain has
been measured on a GPU.)
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the step sizes of a block

from . import _dask, _fused
from ._optimizers import OptimizerState
from ._training import (
    BestParameters,
    Record,
    Samples,
    Schedule,
    ScheduleState,
    Step,
    keep_the_best,
    shuffled,
    step,
)

Array = Any

#: With ``engine="auto"``, a fit compiles only when it trains at least this many epochs.
#: Compiling the two block shapes of a small network takes 0.2–0.4 s on a 2-core CPU,
#: and a compiled epoch saves 1–3 ms there (S: 2.4 → 0.3 ms), so fits of a few hundred
#: epochs and more gain; a short fit or a partial_fit stays eager.
MIN_EPOCHS_TO_COMPILE = 200


def step_for(engine: str, how: Step) -> Step:
    """The :class:`~xpnet._training.Step` a fit's epochs take: on CuPy with
    ``engine="jit"``, with the fused kernels of ``xpnet._fused``; else ``how`` itself."""
    if engine == "jit" and aac.is_cupy_namespace(how.xp):
        return _fused.fused(how)
    return how


def block_runner(
    engine: str,
    *,
    how: Step,
    data: Samples,
    schedule: Schedule,
    batch_size: int | None,
    n_epochs: int,
    device: Any,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
) -> Any:
    """How a fit runs its blocks of epochs: a compiled runner, or None for the eager loop.

    ``shuffle`` and ``rng`` are the fit's, for runners that draw the mini-batch order.

    Raises
    ------
    ValueError
        For ``engine="jit"`` where no compiled path exists (neither JAX, PyTorch nor
        CuPy, or mini-batches on JAX or PyTorch).
    """
    if engine == "eager":
        return None
    full_batch = batch_size is None or batch_size >= data.X.shape[0]
    if _dask.is_dask(data.X) and not full_batch and engine == "auto":
        return DaskBlocks(how, data, schedule, batch_size, shuffle, rng)
    if engine == "jit" and aac.is_cupy_namespace(how.xp):
        return None  # epoch by epoch, through fused kernels (see step_for)
    on_jax, on_torch = aac.is_jax_namespace(how.xp), aac.is_torch_namespace(how.xp)
    if engine == "jit" and not (full_batch and (on_jax or on_torch)):
        library = type(data.X).__module__.split(".")[0]
        why = "mini-batches" if not full_batch else f"{library} arrays"
        raise ValueError(
            f"engine='jit' compiles full-batch training on JAX or PyTorch arrays and "
            f"fuses kernels on CuPy, not {why}; use engine='auto' or 'eager'."
        )
    # PyTorch's compiler takes seconds for a step (8–16 s here): only when asked for.
    if engine == "jit" and on_torch:
        runner = TorchGraphBlocks if _on_cuda(device) else TorchSteps
        return runner(how, data, schedule, device)
    if not (on_jax and full_batch) or (engine == "auto" and n_epochs < MIN_EPOCHS_TO_COMPILE):
        return None
    return JaxBlocks(how, data, schedule, device)


def _on_cuda(device: Any) -> bool:
    """Whether a PyTorch device is a CUDA GPU (where steps are captured as CUDA graphs)."""
    return getattr(device, "type", None) == "cuda"


def _step_sizes(
    schedule: Schedule, how: Step, sched: ScheduleState, t: int, k: int, N: int
) -> tuple[list[float], list[float], ScheduleState]:
    """The schedule's μ of each of k epochs, decided on the host as ever; each step's own
    step size (``how.optimizer.step_size`` from step t + 1); and the schedule's state after."""
    mus = []
    for _ in range(k):
        mus.append(schedule.mu(sched))
        sched = schedule.epoch_end(sched, N)
    step_size = how.optimizer.step_size
    return mus, [step_size(mu, t + i + 1) for i, mu in enumerate(mus)], sched


class JaxBlocks:
    """Runs blocks of full-batch epochs as one ``jax.jit``-compiled ``lax.scan`` each."""

    def __init__(self, how: Step, data: Samples, schedule: Schedule, device: Any) -> None:
        # Inside the program the batch is whole; the Step is also the program's cache key.
        self.how = dataclasses.replace(how, f=tuple(how.f), chunk_size=None, map=map)
        self.data, self.schedule, self.device = data, schedule, device
        self.S = data.weight()
        self.dtype = np.dtype(data.X.dtype)

    def __call__(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        k: int, record: Record, best: BestParameters | None,
    ) -> tuple[list[Array], list[Array], OptimizerState, ScheduleState]:  # fmt: skip
        """Train k epochs; add their losses (and validation values) to the record."""
        data, N = self.data, self.data.X.shape[0]
        mus, mu_t, sched = _step_sizes(self.schedule, self.how, sched, state.t, k, N)
        # A host array: the program takes it in with its call, which costs less than
        # making a device array of it first (about 1 ms of the host's time).
        steps = np.asarray(mu_t, dtype=self.dtype)
        program = _jax_program(self.how, None if best is None else best.score)
        kept = None if best is None else (best.W, best.b, best.best)
        val = None if best is None else (best.validation._replace(s_host=None), best.S)
        (W, b, moments, kept), out = program(
            W, b, state.moments, kept, steps, data.X, data.Y, data.s, self.S, val
        )
        if best is None:
            record.add(out, *mus)
        else:
            E, V = out
            record.add(E, *mus)
            best.W, best.b, best.best = kept
            best.pending.append(V)
        return W, b, OptimizerState(state.t + k, moments), sched


class TorchSteps:
    """Runs full-batch epochs on PyTorch, each step through one ``torch.compile``-d program.

    PyTorch's compiler (TorchDynamo, then Inductor by default) traces the eager path's
    ``step`` whole (``fullgraph=True``: a graph break is an error, not a silent fallback)
    and fuses its elementwise work.  The step size goes in as a 0-D tensor, so that a
    schedule's changing μ does not compile anew; the block's step sizes are one tensor,
    made once per block.  The batch is taken whole (``chunk_size`` does not apply), and
    each new number of samples compiles anew.  The validation pass of early stopping
    stays eager.
    """

    def __init__(self, how: Step, data: Samples, schedule: Schedule, device: Any) -> None:
        self.how = dataclasses.replace(how, f=tuple(how.f), chunk_size=None, map=map)
        self.data, self.schedule, self.device = data, schedule, device
        # Σ sᵢ as a 0-D tensor: as a Python number, its value would be compiled in, and
        # every fit with other sample weights would compile anew.
        S = data.weight()
        self.S = None if S is None else how.xp.asarray(S, dtype=data.X.dtype, device=device)
        self.A0 = data.X.T
        self._program: Any = None

    def program(self, W: list[Array], b: list[Array], *args: Any) -> Any:
        """The compiled step, for these settings and the shapes of W, b and the data."""
        if self._program is None:  # shapes, dtypes and device stay the same through a fit
            data = self.data
            inputs = _signature(*W, *b, self.A0, data.Y, data.s, self.S)
            self._program = _torch_program(self.how, TORCH_BACKEND, inputs)
        return self._program(W, b, *args)

    def __call__(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        k: int, record: Record, best: BestParameters | None,
    ) -> tuple[list[Array], list[Array], OptimizerState, ScheduleState]:  # fmt: skip
        """Train k epochs; add their losses (and validation values) to the record."""
        xp, data, N = self.how.xp, self.data, self.data.X.shape[0]
        mus, mu_t, sched = _step_sizes(self.schedule, self.how, sched, state.t, k, N)
        steps = xp.asarray(mu_t, dtype=data.X.dtype, device=self.device)
        moments = state.moments
        for i, mu in enumerate(mus):
            W, b, moments, E = self.program(
                W, b, moments, self.A0, data.Y, data.s, self.S, steps[i]
            )
            record.add(E, mu)
            if best is not None:
                best.after_epoch(W, b)
        return W, b, OptimizerState(state.t + k, moments), sched


class TorchGraphBlocks:
    """PyTorch on CUDA: each block of epochs of the compiled step, one CUDA graph, replayed.

    A CUDA graph replays the kernels it captured on the memory they used then, so a block
    runs over buffers this runner owns (:class:`_Buffers`): the parameters, the moments,
    with early stopping the best parameters so far, and the block's step sizes are copied
    in before it, and what the block leaves (its losses and validation values too) is
    copied out after it, as the next replay overwrites it.  The copies are of the
    parameters, once per block of epochs.  Early stopping's validation pass is captured
    with the epochs.

    The first block of each length runs uncaptured, on a side stream: it is the warm-up
    PyTorch asks for before a capture (its compiler and cuBLAS set themselves up then,
    which must not happen during one), and its result is the block's.  The second block
    of that length captures the graph, and it and every later one replay it.  Only full
    blocks of ``READBACK_EVERY`` epochs recur in a fit, so the remainder, and a
    ``partial_fit``'s blocks, are never captured.
    """

    def __init__(self, how: Step, data: Samples, schedule: Schedule, device: Any) -> None:
        # The compiled step, A⁽⁰⁾ and Σ sᵢ as a tensor: as TorchSteps runs them.
        self.runner = TorchSteps(how, data, schedule, device)
        #: For each block length: its buffers, its epochs as one function, and once
        #: captured, the graph's replay.
        self.blocks: dict[int, list[Any]] = {}

    def __call__(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        k: int, record: Record, best: BestParameters | None,
    ) -> tuple[list[Array], list[Array], OptimizerState, ScheduleState]:  # fmt: skip
        """Train k epochs; add their losses (and validation values) to the record."""
        runner, N = self.runner, self.runner.data.X.shape[0]
        mus, mu_t, sched = _step_sizes(runner.schedule, runner.how, sched, state.t, k, N)
        kept = None if best is None else [best.W, best.b, best.best]
        if k not in self.blocks:
            buffers = _Buffers(W, b, state.moments, kept, k)
            buffers.load(W, b, state.moments, kept, mu_t)
            block = functools.partial(self._block, buffers, best)
            _warm_up(block, runner.device)
            self.blocks[k] = [buffers, block, None]
        else:
            buffers, block, replay = self.blocks[k]
            if replay is None:
                replay = self.blocks[k][2] = _capture(block, runner.device)
            buffers.load(W, b, state.moments, kept, mu_t)
            replay()
        W, b, moments, kept, E, V = buffers.results()
        record.add(E, *mus)
        if best is not None:
            best.W, best.b, best.best = kept
            best.pending.append(V)
        return W, b, OptimizerState(state.t + k, moments), sched

    def _block(self, buffers: _Buffers, best: BestParameters | None) -> None:
        """The block's epochs, from the buffers' values into the buffers: what is captured."""
        runner, data = self.runner, self.runner.data
        W, b, moments, kept = buffers.W, buffers.b, buffers.moments, buffers.kept
        E, V = [], []
        for mu in buffers.mu_t:
            W, b, moments, E_i = runner.program(
                W, b, moments, runner.A0, data.Y, data.s, runner.S, mu
            )
            E.append(E_i)
            if best is not None:
                *kept, V_i = keep_the_best(
                    W, b, *kept, best.validation, best.S, best.score, how=runner.how
                )
                V.append(V_i)
        for into, value in zip(buffers.flat(), _flat(W, b, moments, kept), strict=True):
            into.copy_(value)
        xp = runner.how.xp
        buffers.E.copy_(xp.stack(E))
        if best is not None:
            buffers.V.copy_(xp.stack(V))


def _flat(W: list[Array], b: list[Array], moments: tuple, kept: list | None) -> list[Array]:
    """The arrays a block carries, in one list: W, b, each moment, the best W, b and score."""
    flat = [*W, *b, *(m for moment in moments for m in moment)]
    return flat if kept is None else [*flat, *kept[0], *kept[1], kept[2]]


class _Buffers:
    """The arrays a captured block reads and writes: its own, never the caller's."""

    def __init__(
        self, W: list[Array], b: list[Array], moments: tuple, kept: list | None, k: int
    ) -> None:
        # Shaped like what a block carries; :meth:`load` fills them before each block.
        def like(arrays: list[Array]) -> list[Array]:
            return [a.new_empty(a.shape) for a in arrays]

        self.W, self.b, self.moments = like(W), like(b), tuple(like(m) for m in moments)
        self.kept = None if kept is None else [like(kept[0]), like(kept[1]), *like(kept[2:])]
        self.mu_t = W[0].new_empty((k,))  # the step size of each epoch
        self.E = W[0].new_empty((k,))
        self.V = None if kept is None else W[0].new_empty((k, 2))

    def flat(self) -> list[Array]:
        return _flat(self.W, self.b, self.moments, self.kept)

    def load(
        self, W: list[Array], b: list[Array], moments: tuple, kept: list | None,
        mu_t: list[float],
    ) -> None:  # fmt: skip
        """Copy a block's starting point and step sizes in."""
        for into, value in zip(self.flat(), _flat(W, b, moments, kept), strict=True):
            into.copy_(value)
        self.mu_t.copy_(self.mu_t.new_tensor(mu_t, device="cpu"))

    def results(self) -> tuple[Any, ...]:
        """Copies of what the block left: W, b, moments, the best so far, E and V."""

        def copies(arrays: list[Array]) -> list[Array]:
            return [a.clone() for a in arrays]

        kept = None if self.kept is None else [*map(copies, self.kept[:2]), *copies(self.kept[2:])]
        V = None if self.V is None else self.V.clone()
        moments = tuple(copies(m) for m in self.moments)
        return copies(self.W), copies(self.b), moments, kept, self.E.clone(), V


def _warm_up(block: Any, device: Any) -> None:
    """Run ``block`` uncaptured on a side stream of ``device``, as PyTorch asks before a
    capture, and have the device's current stream wait for it."""
    import torch

    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            block()
        torch.cuda.current_stream().wait_stream(side)


def _capture(block: Any, device: Any) -> Any:
    """``block`` captured as a CUDA graph on ``device`` (after :func:`_warm_up`); returns
    the graph's replay.  The device is made current for both: the capture stream and the
    kernels the block launches must be on the device the data is on."""
    import torch

    with torch.cuda.device(device):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
            block()

    def replay() -> None:
        with torch.cuda.device(device):
            graph.replay()

    return replay


class DaskBlocks:
    """Runs blocks of mini-batch epochs on Dask, one task graph per block of epochs."""

    def __init__(
        self, how: Step, data: Samples, schedule: Schedule, batch_size: int, shuffle: bool,
        rng: np.random.Generator,
    ) -> None:  # fmt: skip
        self.how, self.data, self.schedule = how, data, schedule
        self.batch_size, self.shuffle, self.rng = batch_size, shuffle, rng

    def __call__(
        self, W: list[Array], b: list[Array], state: OptimizerState, sched: ScheduleState,
        k: int, record: Record, best: BestParameters | None,
    ) -> tuple[list[Array], list[Array], OptimizerState, ScheduleState]:  # fmt: skip
        """Train k epochs; add their losses (and validation values) to the record."""
        X, N = self.data.X, self.data.X.shape[0]
        # With early stopping every epoch is followed by its validation pass: a graph
        # per epoch then.
        per_graph = 1 if best is not None else k
        for start in range(0, k, per_graph):
            mus, orders = [], []
            for _ in range(min(per_graph, k - start)):  # as the eager loop draws them
                mus.append(self.schedule.mu(sched))
                orders.append(shuffled(self.rng, X) if self.shuffle else None)
                sched = self.schedule.epoch_end(sched, N)
            W, b, state, E = _dask.epochs_in_blocks(
                W, b, state, self.data, mu=mus, batch_size=self.batch_size, order=orders,
                how=self.how,
            )  # fmt: skip
            record.add(E, *mus)
            if best is not None:
                best.after_epoch(W, b)
        return W, b, state, sched


#: The compiler ``torch.compile`` uses (its default, Inductor; tests may choose another).
TORCH_BACKEND = "inductor"


def _signature(*tensors: Array | None) -> tuple:
    """What a compiled step is specialised to: each input's shape, strides, dtype, device."""
    return tuple(
        None if a is None else (tuple(a.shape), a.stride(), str(a.dtype), str(a.device))
        for a in tensors
    )


@functools.lru_cache(maxsize=16)
def _torch_program(how: Step, backend: str, inputs: tuple) -> Any:
    """The compiled step for a network, objective, optimizer and penalty, by ``backend``,
    for inputs of the shapes, dtypes and device ``inputs`` describes (:func:`_signature`).

    Cached, so that fits with the same settings and data shapes reuse it.
    """
    import torch

    def one_step(W, b, moments, A0, Y, s, S, mu):
        W, b, state, E = step(W, b, OptimizerState(0, moments), A0, Y, s, S, mu=mu, how=how)
        return W, b, state.moments, E

    # TorchDynamo keeps its programs on the function's code object, at most 8 of them,
    # and with fullgraph=True a ninth is an error.  Every closure of one_step shares
    # one code object, so each settings and shapes get a copy of their own: it compiles
    # once, and no number of different fits in a process exhausts the limit.
    code = one_step.__code__.replace()
    one_step = types.FunctionType(code, one_step.__globals__, None, None, one_step.__closure__)
    return torch.compile(one_step, fullgraph=True, dynamic=False, backend=backend)


@functools.lru_cache(maxsize=16)
def _jax_program(how: Step, score: Any) -> Any:
    """The jitted block for a network, objective, optimizer and penalty (and score).

    Cached, so that fits with the same settings reuse the compiled programs.
    """
    import jax

    def block(W, b, moments, kept, steps, X, Y, s, S, val):
        def one_epoch(carry, mu):
            W, b, moments, kept = carry
            # A⁽⁰⁾ = Xᵀ inside the loop's body, where XLA folds the transpose into the
            # products.  Outside the program JAX would copy X to transpose it, and so does
            # XLA for an Xᵀ taken before the loop (once per block, 0.1 s for M in float64).
            A0 = X.T
            W, b, state, E = step(W, b, OptimizerState(0, moments), A0, Y, s, S, mu=mu, how=how)
            if kept is None:
                return (W, b, state.moments, None), E
            *kept, V = keep_the_best(W, b, *kept, *val, score, how=how)
            return (W, b, state.moments, tuple(kept)), (E, V)

        return jax.lax.scan(one_epoch, (W, b, moments, kept), steps)

    return jax.jit(block)
