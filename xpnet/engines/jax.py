"""JAX: a block of full-batch epochs compiled as one program.

The block is a ``jax.lax.scan`` over the epochs of the eager path's own functions
(``xpnet.core.step.step`` and, with early stopping, ``keep_the_best``), traced by
``jax.jit`` once per shape (a block of 16 and the remainder), on CPU and GPU alike.  The
compiler only sees them traced, so the result is the eager result up to the order of
floating-point operations; nothing here is a second implementation of the math.  The
step sizes of the block's epochs (the schedule's μ and Adam's bias correction) are
worked out on the host beforehand and go in as an array.  The batch is taken whole:
inside a compiled program, chunking only slows XLA down.  Arrays the caller owns are
never donated.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

import numpy as np  # host-side: the step sizes of a block

from ..core.backprop import output
from ..core.optimizers import Optimizer, OptimizerState, step_sizes
from ..core.stacks import StackBatch, StackValidation, stack_step
from ..core.step import Samples, Step, keep_the_best, step
from ..training.engine import BlockPlan, BlockResult, Kept, Validation
from .eager import Eager

Array = Any

#: With ``engine="auto"``, a fit compiles only when it trains at least this many epochs:
#: compiling the two block shapes of a small network costs more than a short fit (or
#: a partial_fit) saves; fits of a few hundred epochs gain (see the README's figures).
MIN_EPOCHS_TO_COMPILE = 200


class Jax(Eager):
    """Runs blocks of full-batch epochs as one ``jax.jit``-compiled ``lax.scan`` each."""

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """The plan's epochs as one program, validation passes included."""
        # Inside the program the batch is whole; the Step is also the program's cache key.
        how = dataclasses.replace(self.how, f=tuple(self.how.f), chunk_size=None, map=map)
        # A host array: the program takes it in with its call, which costs less than
        # making a device array of it first (about 1 ms of the host's time).
        steps = np.asarray(
            step_sizes(how.optimizer, plan.mu, state.t), dtype=np.dtype(data.X.dtype)
        )
        program = _jax_program(how, None if validation is None else validation.score)
        best = None if kept is None else tuple(kept)
        val = (
            None if validation is None else (validation.samples._replace(s_host=None), validation.S)
        )
        (W, b, moments, best), out = program(
            W, b, state.moments, best, steps, data.X, data.Y, data.s, data.weight(), val
        )
        state = OptimizerState(state.t + len(plan.mu), moments)
        if validation is None:
            return BlockResult(W, b, state, [out])
        E, V = out
        return BlockResult(W, b, state, [E], Kept(*best), [V])

    def run_stack_block(
        self, W: list[Array], b: list[Array], state: OptimizerState,
        epochs: list[Iterable[StackBatch]], *, alpha: Any, optimizer: Optimizer,
        validation: StackValidation | None = None, kept: Kept | None = None,
    ) -> tuple[list, list, OptimizerState, list, Kept | None, list]:  # fmt: skip
        """A stack's epochs as the eager engine runs them, each step one compiled
        program (every step of a stack has one shape: its batches are padded), and each
        validation pass another; a stack that shrinks is compiled again."""
        how = dataclasses.replace(
            self.how, f=tuple(self.how.f), chunk_size=None, map=map, optimizer=optimizer
        )
        # One penalty for all (a number) is part of the program; one per member, an input.
        shared = not hasattr(alpha, "shape")
        one_step = _stack_step_program(dataclasses.replace(how, alpha=alpha if shared else 0.0))
        alpha = None if shared else alpha
        moments, E, V = state.moments, [], []
        for batches in epochs:
            E_e: Any = 0.0
            for batch in batches:
                W, b, moments, E_B = one_step(W, b, moments, batch, alpha)
                E_e = E_e + E_B
            E.append(E_e)
            if validation is not None:
                validate = _stack_validation_program(how, validation.score)
                held_out = (validation.A0, validation.Y, validation.s, validation.S)
                best, values = validate(W, b, tuple(kept), held_out)
                kept = Kept(*best)
                V.append(values)
        return W, b, OptimizerState(state.t, moments), E, kept, V


@functools.lru_cache(maxsize=16)
def _stack_step_program(how: Step) -> Any:
    """``xpnet.core.stacks.stack_step`` jitted; the members' penalties are an argument, or
    with None, ``how.alpha``."""
    import jax

    def one_step(W, b, moments, batch, alpha):
        with_alpha = how if alpha is None else dataclasses.replace(how, alpha=alpha)
        W, b, state, E = stack_step(W, b, OptimizerState(0, moments), batch, how=with_alpha)
        return W, b, state.moments, E * batch.share  # its share of each member's epoch loss

    return jax.jit(one_step)


@functools.lru_cache(maxsize=16)
def _stack_validation_program(how: Step, score: Any) -> Any:
    """A stack's validation pass (``keep_the_best`` over the stack), jitted."""
    import jax

    def validate(W, b, kept, held_out):
        A0, Y, s, S = held_out
        O = output(W, b, A0, f=how.f, xp=how.xp)
        *best, values = keep_the_best(O, W, b, *kept, Samples(None, Y, s), S, score, how=how)
        return tuple(best), values

    return jax.jit(validate)


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
            O = output(W, b, val[0].X.T, f=how.f, xp=how.xp)
            *kept, V = keep_the_best(O, W, b, *kept, *val, score, how=how)
            return (W, b, state.moments, tuple(kept)), (E, V)

        return jax.lax.scan(one_epoch, (W, b, moments, kept), steps)

    return jax.jit(block)
