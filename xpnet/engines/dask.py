"""Dask: the samples stay in Dask's blocks, where the core runs once per block; only sums travel.

The parameters and the optimizer's state are small concrete arrays of the blocks' own
kind (NumPy or CuPy), held by the client.  A full-batch step is one small task graph:
a task per block for its sums, a tree of additions, the totals to the client, which
takes the optimizer's step.  Mini-batches are drawn within blocks, in a chain of tasks
that hands the parameters from block to block: a graph per block of epochs
(``engine="auto"``), or per epoch (``"eager"``, and with early stopping, whose
validation pass follows every epoch).  The graphs themselves are written in
``xpnet.engines._dask_graph``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.backprop import means
from ..core.optimizers import OptimizerState, advance
from ..core.step import Samples, Step
from ..training.engine import BlockPlan, BlockResult, Kept, Validation
from . import _dask_graph as graphs
from .eager import Eager

Array = Any

is_dask = graphs.is_dask


class Dask(Eager):
    """Runs the core on each Dask block of samples, the optimizer's steps on the client.

    Parameters
    ----------
    how, device, widest, batch_size, chunk_size
        As for :class:`~xpnet.engines.eager.Eager`; ``how`` and ``device`` are the
        blocks' namespace and device.  Dask's blocks are the chunks: ``chunk_size``
        does not apply.
    epochs_per_graph : bool
        Whether a block of mini-batch epochs is one graph (else one graph per epoch).
    """

    #: A full-batch stack's members weigh all of X, whose samples stay in their blocks.
    gathers_rows = False

    def __init__(
        self, how: Step, *, device: Any, widest: int, batch_size: int | None = None,
        chunk_size: int | None = None, epochs_per_graph: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(how, device=device, widest=widest, batch_size=batch_size)
        self.epochs_per_graph = epochs_per_graph

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        """One span and task group on the cluster for the fit; the samples aligned in
        blocks of rows, their targets and weights persisted.  The validation samples
        stay on Dask, their targets and weights (small) come to the client once."""
        # A fit's tasks in one group and span; a prediction's are its own (no targets).
        training = data.Y is not None
        with graphs.fit_context(data.X) if training else contextlib.nullcontext():
            # The blocks check X for NaN and infinity in the fit's first graph.
            self.unchecked = True
            if validation is not None:
                validation = validation._replace(
                    Y=graphs.concrete(validation.Y), s=graphs.concrete(validation.s)
                )
            self.data = graphs.prepared(data) if training else data
            self._stack_weights: tuple[Any, Array] | None = None
            yield self.data, validation

    def blocks(self, data: Samples) -> tuple[int, ...]:
        """Mini-batches are drawn within Dask's blocks of rows."""
        return tuple(data.X.chunks[0])

    def adopt(self, arrays: list[Array]) -> list[Array]:
        return [graphs.concrete(a) for a in arrays]

    def publish(self, arrays: list[Array], like: Array) -> list[Array]:
        return [graphs.as_dask(a, like=like) for a in arrays]

    def _check(self) -> bool:
        """Whether the next graph is the fit's first, which checks X."""
        check, self.unchecked = self.unchecked, False
        return check

    def loss_and_gradients(
        self, W: list[Array], b: list[Array], data: Samples
    ) -> tuple[Array, list[Array], list[Array]]:
        """E_total and its gradients: a task per block, a tree of sums, computed."""
        how = self.how
        E, sum_W, sum_b = graphs.sample_sums(
            W, b, data.X, data.Y, data.s, f=how.f, objective=how.objective, check=self._check()
        )
        S = data.X.shape[0] if data.s_host is None else data.weight()
        return means(E, sum_W, sum_b, W, S=S, alpha=how.alpha, xp=self.xp)

    def output(self, W: list[Array], b: list[Array], X: Array) -> Array:
        """A⁽ᴸ⁾ of shape (n_L, N) as a lazy Dask array, a task per block of X's rows."""
        return graphs.output(W, b, X, f=self.how.f)

    def validation_output(self, W: list[Array], b: list[Array], X: Array) -> Array:
        """The output on the validation samples, computed (it is small), through the
        resubmission that survives a lost worker."""
        return graphs.output_computed(W, b, X, f=self.how.f)

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """Full batch: a graph per step.  Mini-batches: a graph per block of epochs, or
        per epoch."""
        N, how = data.X.shape[0], self.how
        B = N if plan.batch_size is None else min(plan.batch_size, N)
        per_graph = len(plan.mu) if B < N and self.epochs_per_graph and validation is None else 1
        E, V = [], []
        for start in range(0, len(plan.mu), per_graph):
            mu = plan.mu[start : start + per_graph]
            if B == N:
                E_e, grad_W, grad_b = self.loss_and_gradients(W, b, data)
                mu_t = how.optimizer.step_size(mu[0], state.t + 1)
                P, state = advance(
                    how.optimizer, [*W, *b], [*grad_W, *grad_b], state, mu=mu_t, xp=self.xp
                )
                W, b = P[: len(W)], P[len(W) :]
            else:
                W, b, state, E_e = graphs.epochs_in_blocks(
                    W, b, state, data, mu=mu, batch_size=B,
                    order=plan.orders[start : start + per_graph], how=how, check=self._check(),
                )  # fmt: skip
            E.append(E_e)
            if validation is not None:
                kept, V_e = self.validate(W, b, kept, validation)
                V.append(V_e)
        return BlockResult(W, b, state, E, kept, V)

    def run_stack_block(
        self, W: list[Array], b: list[Array], state: OptimizerState,
        epochs: list[Any], *, alpha: Any, optimizer: Any, validation: Any = None,
        kept: Kept | None = None,
    ) -> tuple[list, list, OptimizerState, list, Kept | None, list]:  # fmt: skip
        """A full-batch stack's epochs (``xpnet.training.stacks``): each step a graph of a
        task per block for the whole stack's sums (each member weighing all of X, 0 off
        its own rows), then every member's step on the client.  Stacks on Dask take
        neither mini-batches nor early stopping (``xpnet.estimators._stack.stack_key``)."""
        if validation is not None:
            raise ValueError("stacks on Dask do not hold out validation samples")
        data, E = self.data, []
        for batches in epochs:
            (batch,) = batches  # full batch: one step an epoch
            if batch.active is not None:
                raise ValueError("stacks on Dask take full batches only")
            E_sum, sum_W, sum_b = graphs.sample_sums(
                W, b, data.X, data.Y, self._weights_in_blocks(batch.s), f=self.how.f,
                objective=self.how.objective, check=self._check(),
            )  # fmt: skip
            E_e, grad_W, grad_b = means(E_sum, sum_W, sum_b, W, S=batch.S, alpha=alpha, xp=self.xp)
            P, new = advance(optimizer, [*W, *b], [*grad_W, *grad_b], state, mu=batch.mu,
                             xp=self.xp)  # fmt: skip
            W, b = P[: len(W)], P[len(W) :]
            state = OptimizerState(state.t, new.moments)  # the step counts are the host's
            E.append(E_e * batch.share)
        return W, b, state, E, kept, []

    def _weights_in_blocks(self, s: Array) -> Array:
        """The members' weights s (K, N), a concrete array, as a Dask array in X's blocks
        of rows, sent to the cluster once for as long as the stack keeps them."""
        if self._stack_weights is None or self._stack_weights[0] is not s:
            self._stack_weights = (s, graphs.weights_in_blocks(s, like=self.data.X))
        return self._stack_weights[1]
