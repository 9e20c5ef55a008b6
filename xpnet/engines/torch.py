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
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.backprop import output
from ..core.optimizers import OptimizerState, step_sizes
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

    def program(
        self, W: list[Array], b: list[Array], moments: tuple, data: Samples, mu: Array
    ) -> Any:
        """The compiled step, for these settings and the shapes of W, b and the data."""
        if self._program is None:  # shapes, dtypes and device stay the same through a fit
            inputs = _signature(*W, *b, self.A0, data.Y, data.s, self.S)
            self._program = _torch_program(self.whole, TORCH_BACKEND, inputs)
        return self._program(W, b, moments, self.A0, data.Y, data.s, self.S, mu)

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
        E, V = [], []
        for i in range(len(plan.mu)):
            W, b, moments, E_i = self.program(W, b, moments, data, steps[i])
            E.append(E_i)
            if validation is not None:
                kept, V_i = self.validate(W, b, kept, validation)
                V.append(V_i)
        return BlockResult(W, b, OptimizerState(state.t + len(plan.mu), moments), E, kept, V)


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
    ``partial_fit``'s blocks, are never captured.
    """

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        with super().open(data, validation) as ready:
            #: For each block length: its buffers, its epochs as one function, and once
            #: captured, the graph's replay.
            self.graphs: dict[int, list[Any]] = {}
            yield ready

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """The plan's epochs as one replay of their graph (captured at the second block)."""
        k = len(plan.mu)
        mu_t = step_sizes(self.how.optimizer, plan.mu, state.t)
        kept_ = None if kept is None else list(kept)
        if k not in self.graphs:
            buffers = _Buffers(W, b, state.moments, kept_, k)
            buffers.load(W, b, state.moments, kept_, mu_t)
            block = functools.partial(self._block, buffers, data, validation)
            _warm_up(block, self.device)
            self.graphs[k] = [buffers, block, None]
        else:
            buffers, block, replay = self.graphs[k]
            if replay is None:
                replay = self.graphs[k][2] = _capture(block, self.device)
            buffers.load(W, b, state.moments, kept_, mu_t)
            replay()
        W, b, moments, kept_, E, V = buffers.results()
        state = OptimizerState(state.t + k, moments)
        if validation is None:
            return BlockResult(W, b, state, [E])
        return BlockResult(W, b, state, [E], Kept(*kept_), [V])

    def _block(self, buffers: _Buffers, data: Samples, validation: Validation | None) -> None:
        """The block's epochs, from the buffers' values into the buffers: what is captured."""
        W, b, moments, kept = buffers.W, buffers.b, buffers.moments, buffers.kept
        E, V = [], []
        for mu in buffers.mu_t:
            W, b, moments, E_i = self.program(W, b, moments, data, mu)
            E.append(E_i)
            if validation is not None:
                val, whole = validation.samples, self.whole
                O = output(W, b, val.X.T, f=whole.f, xp=self.xp)
                *kept, V_i = keep_the_best(
                    O, W, b, *kept, val, validation.S, validation.score, how=whole
                )
                V.append(V_i)
        for into, value in zip(buffers.flat(), _flat(W, b, moments, kept), strict=True):
            into.copy_(value)
        xp = self.xp
        buffers.E.copy_(xp.stack(E))
        if validation is not None:
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
