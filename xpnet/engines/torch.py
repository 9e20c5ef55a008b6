"""PyTorch: each full-batch step one compiled program, and on CUDA, blocks of them as CUDA graphs.

Only with ``engine="jit"``: PyTorch's compiler takes seconds for a step (8–16 s for a
small network on a 2-core CPU), more than most fits save.  Nothing here is a second
implementation of the math: the compiler traces the eager path's own
``xpnet.core.step.step``, so the result is the eager result up to the order of
floating-point operations.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.backprop import output
from ..core.optimizers import OptimizerState, rule, step_sizes
from ..core.stacks import StackBatch, stack_step
from ..core.step import Samples, Step, keep_the_best, step
from ..training.engine import BlockPlan, BlockResult, Kept, Validation
from .eager import Eager

Array = Any


class TorchSteps(Eager):
    """Runs full-batch epochs on PyTorch, each step through one ``torch.compile``-d program.

    PyTorch's compiler (TorchDynamo, then Inductor by default) traces the eager path's
    ``step`` whole (``fullgraph=True``: a graph break is an error, not a silent fallback)
    and fuses its elementwise work.  The step size goes in as a 0-D tensor, so that a
    schedule's changing μ does not compile anew; the block's step sizes are one tensor,
    made once per block.  The batch is taken whole (``chunk_size`` does not apply), and
    each new number of samples compiles anew.  The validation pass of early stopping
    stays eager.
    """

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        with super().open(data, validation) as (data, validation):
            #: The step as compiled: the batch whole.
            self.whole = dataclasses.replace(
                self.how, f=tuple(self.how.f), chunk_size=None, map=map
            )
            # Σ sᵢ as a 0-D tensor: as a Python number, its value would be compiled in,
            # and every fit with other sample weights would compile anew.
            S = data.weight()
            self.S = (
                None if S is None else self.xp.asarray(S, dtype=data.X.dtype, device=self.device)
            )
            self.A0 = data.X.T
            self._program: Any = None
            yield data, validation

    def program(self, W: list[Array], b: list[Array], data: Samples) -> Any:
        """The compiled step for these settings, the shapes of W and b and this fit's
        data: ``(W, b, moments, mu) -> (W, b, moments, E)``.

        It holds the data and the compiled program, not the engine, so that what keeps
        it (a CUDA graph's block) never keeps the engine alive.
        """
        if self._program is None:  # shapes, dtypes and device stay the same through a fit
            inputs = _signature(*W, *b, self.A0, data.Y, data.s, self.S)
            self._program = _torch_program(self.whole, TORCH_BACKEND, inputs)
        return functools.partial(self._program, self.A0, data.Y, data.s, self.S)

    def step_sizes(self, plan: BlockPlan, state: OptimizerState, data: Samples) -> Array:
        """Each epoch's step size, one tensor on the device."""
        mu_t = step_sizes(self.how.optimizer, plan.mu, state.t)
        return self.xp.asarray(mu_t, dtype=data.X.dtype, device=self.device)

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """The plan's epochs one compiled step each; validation passes eager."""
        steps, moments = self.step_sizes(plan, state, data), state.moments
        one_step = self.program(W, b, data)
        E, V = [], []
        for i in range(len(plan.mu)):
            W, b, moments, E_i = one_step(W, b, moments, steps[i])
            E.append(E_i)
            if validation is not None:
                kept, V_i = self.validate(W, b, kept, validation)
                V.append(V_i)
        return BlockResult(W, b, OptimizerState(state.t + len(plan.mu), moments), E, kept, V)


class TorchStackSteps(Eager):
    """Stacks of networks on PyTorch (``engine="jit"``, full batch): each step of the stack
    one ``torch.compile``-d program.

    The compiler traces the core's ``stack_step`` whole, as :class:`TorchSteps` traces one
    network's step.  The networks' step sizes, penalties and update constants go in as
    tensors (one value per network), so a program serves every block and every stack of
    its shape; a stack that shrinks compiles anew.  The batch is taken whole; the
    validation passes of early stopping stay eager.  On CUDA,
    :class:`TorchStackGraphBlocks` captures its blocks as CUDA graphs.
    """

    def stack_epoch(
        self, W: list[Array], b: list[Array], state: OptimizerState, batches: Any, *,
        how: Step,
    ) -> tuple[list[Array], list[Array], OptimizerState, Array]:  # fmt: skip
        """One epoch of the stack (``xpnet.core.stacks.stack_epoch``), a compiled program
        per step; each network's epoch loss weighs its batch losses as that does."""
        constants, E, moments = tuple(how.optimizer.hyperparameters), 0.0, state.moments
        for batch in batches:
            inputs = (*batch[:6], W, b, moments, how.alpha, constants)
            W, b, moments, E_B = _stack_program(how, how.optimizer.name, inputs)(*inputs)
            E = E + E_B * batch.share
        return W, b, OptimizerState(state.t, moments), E


class TorchStackGraphBlocks(TorchStackSteps):
    """Stacks of networks on PyTorch CUDA (``engine="jit"``, full batch): each block of
    epochs of the compiled stack step, one CUDA graph, replayed.

    As :class:`TorchGraphBlocks` does for one network: the first block of a length runs
    uncaptured (the warm-up), the second is captured, later ones replay it.  A block
    reads and writes buffers of its own (:class:`_StackBuffers`): the parameters, the
    moments, each epoch's step sizes (one per network), the penalties and the update
    constants are copied in before it, and its parameters, moments and losses copied
    out after.  The stack's full batch (X, or the members' gathered rows, their weights
    and Σ sᵢ) is read where it lies: a graph is kept for the batch it captured, and a
    stack that shrinks (a new batch, new shapes) warms up and captures anew.  With early
    stopping the blocks run as :class:`TorchStackSteps` runs them, uncaptured.
    """

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        with super().open(data, validation) as ready:
            #: By block length: the batch it was made for, its buffers, its runner and
            #: once captured its graph.
            self.graphs: dict[int, tuple[tuple, _Block]] = {}
            try:
                yield ready
            finally:
                for _, block in self.graphs.values():
                    block.release()
                self.graphs = {}

    def run_stack_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, epochs: list[Any], *,
        alpha: Any, optimizer: Any, validation: Any = None, kept: Kept | None = None,
    ) -> tuple[list, list, OptimizerState, list, Kept | None, list]:  # fmt: skip
        """The block's epochs as one replay of their graph (captured at the second block of
        its length and batch)."""
        batches = [list(batch) for batch in epochs]
        if validation is not None or any(len(one) != 1 for one in batches):
            return super().run_stack_block(W, b, state, batches, alpha=alpha,
                                           optimizer=optimizer, validation=validation,
                                           kept=kept)  # fmt: skip
        full = batches[0][0]
        mu = self.xp.stack([one[0].mu for one in batches])  # (k, K)
        constants = tuple(optimizer.hyperparameters)
        k, batch_inputs = len(batches), tuple(full[:4])
        made = self.graphs.get(k)
        if made is not None and not all(a is c for a, c in zip(made[0], batch_inputs, strict=True)):
            made[1].release()  # made for another batch: the stack shrank
            made = None
        if made is None:
            buffers = _StackBuffers(W, b, state.moments, mu, alpha, constants)
            buffers.load(W, b, state.moments, mu, alpha, constants)
            inputs = (*batch_inputs, full.mu, None, W, b, state.moments, buffers.alpha,
                      buffers.constants)  # fmt: skip
            program = _stack_program(self.how, optimizer.name, inputs)
            run = functools.partial(_stack_epochs, program, batch_inputs, buffers, self.xp)
            block = _Block(buffers, run)
            _warm_up(block.run, self.device)
            self.graphs[k] = (batch_inputs, block)
        else:
            block = made[1]
            if block.graph is None:
                block.graph = _capture(block.run, self.device)
            block.buffers.load(W, b, state.moments, mu, alpha, constants)
            block.graph.replay()
        W, b, moments, E = block.buffers.results()
        return W, b, OptimizerState(state.t, moments), list(E * full.share), kept, []


def _stack_epochs(program: Any, batch: tuple, buffers: _StackBuffers, xp: Any) -> None:
    """A stack's block of full-batch epochs, from the buffers into the buffers: what is
    captured."""
    W, b, moments = buffers.W, buffers.b, buffers.moments
    E = []
    for i in range(buffers.mu.shape[0]):
        W, b, moments, E_i = program(*batch, buffers.mu[i], None, W, b, moments,
                                     buffers.alpha, buffers.constants)  # fmt: skip
        E.append(E_i)
    for into, value in zip(buffers.flat(), _flat(W, b, moments, None), strict=True):
        into.copy_(value)
    buffers.E.copy_(xp.stack(E))


class _StackBuffers:
    """What a stack's captured block reads and writes: its own arrays, never the caller's.
    α and the update constants are buffers where they are arrays (one value per network),
    and stay the numbers compiled in where they are numbers."""

    def __init__(self, W, b, moments, mu, alpha, constants) -> None:  # fmt: skip
        def like(a: Any) -> Any:
            return a.new_empty(a.shape) if hasattr(a, "new_empty") else a

        self.W, self.b = [like(a) for a in W], [like(a) for a in b]
        self.moments = tuple([like(a) for a in m] for m in moments)
        self.mu, self.alpha = like(mu), like(alpha)
        self.constants = tuple(like(c) for c in constants)
        self.E = mu.new_empty(mu.shape)

    def flat(self) -> list[Array]:
        return _flat(self.W, self.b, self.moments, None)

    def load(self, W, b, moments, mu, alpha, constants) -> None:  # fmt: skip
        """Copy a block's starting point, step sizes, penalties and constants in."""
        into = [*self.flat(), self.mu, self.alpha, *self.constants]
        values = [*_flat(W, b, moments, None), mu, alpha, *constants]
        for buffer, value in zip(into, values, strict=True):
            if hasattr(buffer, "copy_"):
                buffer.copy_(value)
            elif buffer != value:  # a number compiled in: the same block, the same number
                raise ValueError(f"a captured stack's constant changed: {buffer} to {value}")

    def results(self) -> tuple[list[Array], list[Array], tuple, Array]:
        """Copies of what the block left: W, b, the moments and each epoch's losses."""
        moments = tuple([a.clone() for a in m] for m in self.moments)
        return [a.clone() for a in self.W], [a.clone() for a in self.b], moments, self.E.clone()


class TorchGraphBlocks(TorchSteps):
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
    ``partial_fit``'s blocks, are never captured.  The graphs, their memory pools and the
    buffers are released when the fit ends (when :meth:`open` exits), and Python's cycle
    collector is held off during a capture, which a collection could break.

    What that costs, once per fit: the warm-up block runs as :class:`TorchSteps` does, a
    launch per operation; the capture waits for the device to finish, empties PyTorch's
    cache of freed memory (``torch.cuda.graph`` does both) and records the second block,
    which is then replayed.  Only from the third block on does a replay of 16 epochs
    replace 16 steps' launches without a capture to pay for, so a fit of 32 epochs or
    fewer gains nothing, and a benchmark that fits a fresh estimator per timing sees
    these costs in every timing.  ``engine="auto"`` does not take this runner: a gain
    could only show in fits of more than 32 epochs, and none has been measured on a GPU
    yet.
    """

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        with super().open(data, validation) as ready:
            #: For each block length: its buffers, its epochs as one function, and once
            #: captured, its graph.
            self.graphs: dict[int, _Block] = {}
            try:
                yield ready
            finally:
                # A graph holds its memory pool, and a block its buffers and the data:
                # all of it goes at the end of the fit, not whenever the engine does.
                for block in self.graphs.values():
                    block.release()
                self.graphs = {}

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """The plan's epochs as one replay of their graph (captured at the second block)."""
        k = len(plan.mu)
        mu_t = step_sizes(self.how.optimizer, plan.mu, state.t)
        kept_ = None if kept is None else list(kept)
        block = self.graphs.get(k)
        if block is None:
            buffers = _Buffers(W, b, state.moments, kept_, k)
            buffers.load(W, b, state.moments, kept_, mu_t)
            one_step = self.program(W, b, data)
            block = _Block(
                buffers, functools.partial(_epochs, one_step, buffers, validation, self.whole)
            )
            _warm_up(block.run, self.device)
            self.graphs[k] = block
        else:
            if block.graph is None:
                block.graph = _capture(block.run, self.device)
            block.buffers.load(W, b, state.moments, kept_, mu_t)
            block.graph.replay()
        W, b, moments, kept_, E, V = block.buffers.results()
        state = OptimizerState(state.t + k, moments)
        if validation is None:
            return BlockResult(W, b, state, [E])
        return BlockResult(W, b, state, [E], Kept(*kept_), [V])


def _epochs(one_step: Any, buffers: _Buffers, validation: Validation | None, how: Step) -> None:
    """A block's epochs, from the buffers' values into the buffers: what is captured.

    ``one_step`` is the compiled step on the fit's data (:meth:`TorchSteps.program`),
    ``how`` the step as compiled, for the validation pass.
    """
    W, b, moments, kept = buffers.W, buffers.b, buffers.moments, buffers.kept
    xp = how.xp
    E, V = [], []
    for mu in buffers.mu_t:
        W, b, moments, E_i = one_step(W, b, moments, mu)
        E.append(E_i)
        if validation is not None:
            val = validation.samples
            O = output(W, b, val.X.T, f=how.f, xp=xp)
            *kept, V_i = keep_the_best(O, W, b, *kept, val, validation.S, validation.score, how=how)
            V.append(V_i)
    for into, value in zip(buffers.flat(), _flat(W, b, moments, kept), strict=True):
        into.copy_(value)
    buffers.E.copy_(xp.stack(E))
    if validation is not None:
        buffers.V.copy_(xp.stack(V))


@dataclasses.dataclass
class _Block:
    """One block length's runner: its buffers, its epochs, and once captured its graph.

    Nothing in it refers to the engine, so it and the engine are freed as soon as they
    are let go, without waiting for Python's cycle collector.
    """

    buffers: _Buffers | _StackBuffers
    run: Any
    graph: _Graph | None = None

    def release(self) -> None:
        """Free the graph and its memory pool now."""
        if self.graph is not None:
            self.graph.release()
            self.graph = None


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


def free_memory(device: Any) -> int:
    """The free memory of a CUDA ``device``, in bytes."""
    import torch

    return int(torch.cuda.mem_get_info(device)[0])


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


def _capture(block: Any, device: Any) -> _Graph:
    """``block`` captured as a CUDA graph on ``device`` (after :func:`_warm_up`), with
    Python's cycle collector held off meanwhile."""
    with _no_collection():
        return _record(block, device)


@contextmanager
def _no_collection() -> Iterator[None]:
    """Python's cycle collector off, and back on afterwards (after an error too) if it
    was on.

    A collection during a capture may free what no capture may free: another graph (one
    kept alive by a reference cycle, say), whose destruction breaks the capture under
    way.  PyTorch collected before each capture until 2.9 (pytorch/pytorch#161037); now
    the capturing code must keep the collector out.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _record(block: Any, device: Any) -> _Graph:
    """``block`` recorded as a CUDA graph on ``device``.  The device is made current for
    the capture and the replays: the capture stream and the kernels the block launches
    must be on the device the data is on.

    ``torch.cuda.graph`` synchronizes the device and empties PyTorch's cache of freed
    memory before it records (once per fit and block length)."""
    import torch

    with torch.cuda.device(device):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
            block()
    return _Graph(graph, device)


class _Graph:
    """A captured CUDA graph: replayed on its device, and released once the fit ends."""

    def __init__(self, graph: Any, device: Any) -> None:
        self.graph, self.device = graph, device

    def replay(self) -> None:
        import torch

        with torch.cuda.device(self.device):
            self.graph.replay()

    def release(self) -> None:
        """Free the graph and its private memory pool (the tensors made during the
        capture) now, rather than when the last reference to it goes."""
        import torch

        with torch.cuda.device(self.device):
            self.graph.reset()


#: The compiler ``torch.compile`` uses (its default, Inductor; tests may choose another).
TORCH_BACKEND = "inductor"


def _signature(*tensors: Array | None) -> tuple:
    """What a compiled step is specialised to: each input's shape, strides, dtype, device."""
    return tuple(
        None if a is None else (tuple(a.shape), a.stride(), str(a.dtype), str(a.device))
        for a in tensors
    )


def _signature_of(values: Any) -> Any:
    """:func:`_signature` of the tensors in nested tuples and lists; other values (the
    numbers a program is specialised to) as they are."""
    if isinstance(values, (tuple, list)):
        return tuple(_signature_of(v) for v in values)
    if hasattr(values, "stride"):
        return _signature(values)[0]
    return values


def _stack_program(how: Step, name: str, inputs: tuple) -> Any:
    """The compiled stack step (:func:`_torch_stack_program`) for the network and objective
    of ``how`` (its penalty and rule are inputs), a rule of kind ``name``, and ``inputs``."""
    whole = dataclasses.replace(
        how, f=tuple(how.f), optimizer=None, alpha=0.0, chunk_size=None, map=map
    )
    return _torch_stack_program(whole, name, TORCH_BACKEND, _signature_of(inputs))


@functools.lru_cache(maxsize=16)
def _torch_stack_program(how: Step, name: str, backend: str, inputs: tuple) -> Any:
    """The compiled step of a stack (``xpnet.core.stacks.stack_step``) for a network's
    settings ``how`` (without its penalty and rule), an update rule of kind ``name``, by
    ``backend``, for inputs as ``inputs`` describes them (:func:`_signature_of`): the
    batch's six arrays, then W, b, the moments, α and the rule's constants."""
    import torch

    f, objective, xp = how.f, how.objective, how.xp

    def one_step(A0, Y, s, S, mu, active, W, b, moments, alpha, constants):
        step_ = Step(f, objective, rule(name, constants), alpha, xp)
        batch = StackBatch(A0, Y, s, S, mu, active, None)
        W, b, state, E = stack_step(W, b, OptimizerState(0, moments), batch, how=step_)
        return W, b, state.moments, E

    code = one_step.__code__.replace()  # a code object of its own, as in _torch_program
    one_step = types.FunctionType(code, one_step.__globals__, None, None, one_step.__closure__)
    return torch.compile(one_step, fullgraph=True, dynamic=False, backend=backend)


@functools.lru_cache(maxsize=16)
def _torch_program(how: Step, backend: str, inputs: tuple) -> Any:
    """The compiled step for a network, objective, optimizer and penalty, by ``backend``,
    for inputs of the shapes, dtypes and device ``inputs`` describes (:func:`_signature`).

    Cached, so that fits with the same settings and data shapes reuse it.
    """
    import torch

    # The fit's data first, so that :meth:`TorchSteps.program` can bind them.
    def one_step(A0, Y, s, S, W, b, moments, mu):
        W, b, state, E = step(W, b, OptimizerState(0, moments), A0, Y, s, S, mu=mu, how=how)
        return W, b, state.moments, E

    # TorchDynamo keeps its programs on the function's code object, at most 8 of them,
    # and with fullgraph=True a ninth is an error.  Every closure of one_step shares
    # one code object, so each settings and shapes get a copy of their own: it compiles
    # once, and no number of different fits in a process exhausts the limit.
    code = one_step.__code__.replace()
    one_step = types.FunctionType(code, one_step.__globals__, None, None, one_step.__closure__)
    return torch.compile(one_step, fullgraph=True, dynamic=False, backend=backend)
