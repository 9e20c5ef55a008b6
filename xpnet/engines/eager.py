"""The eager engine: the core run one operation at a time, in this process.

It is the reference every other engine equals, and the one that runs whatever no other
engine does differently.  On a CPU it takes each batch's samples in chunks that stay in
cache and, on NumPy, spreads them over the cores (``xpnet.engines._threads``), with
BLAS held to one thread meanwhile; both are held while the engine is open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from ..core.backprop import loss_and_gradients, output
from ..core.optimizers import Optimizer, OptimizerState
from ..core.stacks import StackBatch, StackValidation, stack_epoch
from ..core.step import Samples, Step, epoch, keep_the_best
from ..training.engine import BlockPlan, BlockResult, Kept, Validation
from ..training.samples import check_finite
from ..training.sparse import is_sparse, take_rows
from ._threads import chunked

Array = Any


class Eager:
    """Runs the core's step one operation at a time: the reference engine.

    Parameters
    ----------
    how : Step
        The network's activations, the objective, the optimizer and the penalty, in
        the namespace the parameters are computed on.
    device
        The device the parameters are computed on.
    widest : int
        The largest layer size: the height of the largest temporary of a chunk.
    batch_size : int, optional
        Samples per step (None: all); the chunks are planned for a batch.
    chunk_size : int, optional
        The user's samples per chunk; None plans them.
    """

    #: Whether a full-batch stack may gather its members' rows of X into copies on the
    #: device (``xpnet.training.stacks``); where not, each member weighs all of X.
    gathers_rows: ClassVar[bool] = True

    def __init__(
        self, how: Step, *, device: Any, widest: int, batch_size: int | None = None,
        chunk_size: int | None = None,
    ) -> None:  # fmt: skip
        self.how, self.xp, self.device = how, how.xp, device
        self.widest, self.batch_size, self.chunk_size = widest, batch_size, chunk_size

    # -- resources and data ------------------------------------------------------------

    @contextmanager
    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> Iterator[tuple[Samples, Samples | None]]:
        """Check X, and hold the chunk plan (threads, BLAS's limit) for a batch of data.

        X may be a sparse matrix: the core takes its chunks and products as they are.
        """
        for part in (data, validation):
            if part is not None:
                check_finite(part.X, self.xp, "X")
        N = data.X.shape[0]
        B = N if self.batch_size is None else min(self.batch_size, N)
        # A chunk of a sparse X costs little but its gradient, as large as W⁽¹⁾: one
        # of at least n_0 samples does as much work of its own as that costs.
        least = max(256, data.X.shape[1]) if is_sparse(data.X) else 256
        sizes = dict(N=B, widest=self.widest, chunk_size=self.chunk_size, least=least)
        with chunked(self.xp, self.device, dtype=data.X.dtype, **sizes) as (chunk_size, map_chunks):
            # take_rows: mini-batches of a sparse X are its own rows (xpnet.training.sparse).
            self.how = dataclasses.replace(
                self.how, chunk_size=chunk_size, map=map_chunks, rows=take_rows
            )
            yield data, validation

    def blocks(self, data: Samples) -> tuple[int, ...] | None:
        """The samples are one block: an order is a permutation of them all."""
        return None

    def adopt(self, arrays: list[Array]) -> list[Array]:
        return list(arrays)

    def publish(self, arrays: list[Array], like: Array) -> list[Array]:
        return list(arrays)

    # -- arithmetic --------------------------------------------------------------------

    def loss_and_gradients(
        self, W: list[Array], b: list[Array], data: Samples
    ) -> tuple[Array, list[Array], list[Array]]:
        """E_total and its gradients over all of ``data``, in the plan's chunks."""
        how = self.how
        return loss_and_gradients(
            W, b, data.X.T, data.Y, f=how.f, objective=how.objective, xp=self.xp, s=data.s,
            S=data.weight(), alpha=how.alpha, chunk_size=how.chunk_size, map=how.map,
        )  # fmt: skip

    def output(self, W: list[Array], b: list[Array], X: Array) -> Array:
        """A⁽ᴸ⁾ of shape (n_L, N) for the rows of X, in the plan's chunks."""
        how = self.how
        return output(W, b, X.T, f=how.f, xp=self.xp, chunk_size=how.chunk_size, map=how.map)

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """The plan's epochs one after another, each followed by its validation pass."""
        E, V = [], []
        for mu, order in zip(plan.mu, plan.orders, strict=True):
            W, b, state, E_e = epoch(
                W, b, state, data, mu=mu, batch_size=plan.batch_size, order=order,
                how=self.how, device=self.device,
            )  # fmt: skip
            E.append(E_e)
            if validation is not None:
                kept, V_e = self.validate(W, b, kept, validation)
                V.append(V_e)
        return BlockResult(W, b, state, E, kept, V)

    def run_stack_block(
        self, W: list[Array], b: list[Array], state: OptimizerState,
        epochs: list[Iterable[StackBatch]], *, alpha: Any, optimizer: Optimizer,
        validation: StackValidation | None = None, kept: Kept | None = None,
    ) -> tuple[list, list, OptimizerState, list, Kept | None, list]:  # fmt: skip
        """A stack's epochs (``xpnet.training.stacks``), one after another, with the
        members' penalties ``alpha`` (a float, or one per member) and update rule
        (``xpnet.core.optimizers.stacked``); each epoch's losses are a (K,) array.  With
        ``validation``, each epoch ends with every member's validation pass: its best
        parameters so far (``kept``), and the epoch's (K, 2) validation losses and
        scores."""
        how, E, V = dataclasses.replace(self.how, alpha=alpha, optimizer=optimizer), [], []
        for batches in epochs:
            W, b, state, E_e = self.stack_epoch(W, b, state, batches, how=how)
            E.append(E_e)
            if validation is not None:
                O = output(W, b, validation.A0, f=how.f, xp=self.xp, chunk_size=how.chunk_size,
                           map=how.map)  # fmt: skip
                held_out = Samples(None, validation.Y, validation.s)
                *best, values = keep_the_best(
                    O, W, b, kept.W, kept.b, kept.score, held_out, validation.S,
                    validation.score, how=how,
                )  # fmt: skip
                kept = Kept(*best)
                V.append(values)
        return W, b, state, E, kept, V

    def stack_epoch(
        self, W: list[Array], b: list[Array], state: OptimizerState,
        batches: Iterable[StackBatch], *, how: Step,
    ) -> tuple[list[Array], list[Array], OptimizerState, Array]:  # fmt: skip
        """One epoch of a stack (``xpnet.core.stacks.stack_epoch``), one operation at a time."""
        return stack_epoch(W, b, state, batches, how=how)

    def validate(
        self, W: list[Array], b: list[Array], kept: Kept, validation: Validation
    ) -> tuple[Kept, Array]:
        """The validation pass after an epoch: the best so far, and the epoch's (2,) values."""
        O = self.validation_output(W, b, validation.samples.X)
        *best, values = keep_the_best(
            O, W, b, kept.W, kept.b, kept.score, validation.samples, validation.S,
            validation.score, how=self.how,
        )  # fmt: skip
        return Kept(*best), values

    def validation_output(self, W: list[Array], b: list[Array], X: Array) -> Array:
        """The output on the validation samples, as the validation pass compares it."""
        return self.output(W, b, X)
