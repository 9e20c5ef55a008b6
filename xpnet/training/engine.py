"""The engine interface: what the training loop asks of a way to run the core.

An engine is chosen once per fit (``xpnet.engines.choose``) and carries it out: it
holds the fit's resources, makes the data ready, and runs blocks of epochs.  The loop
decides everything on the host beforehand, in a :class:`BlockPlan` (each epoch's step
size and sample order, the batch size), and takes back a :class:`BlockResult`: the new
parameters and optimizer state, and the block's values, still on the device.  Engines
never see the schedule, the record or the random generator; the loop never sees an
engine's type.

``xpnet.engines.eager.Eager`` implements all of it, one operation at a time; every other
engine replaces only what it does differently.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

from ..core.optimizers import OptimizerState
from ..core.step import Samples, Step

Array = Any


class Validation(NamedTuple):
    """Early stopping's validation samples, as the validation pass after each epoch needs them.

    Attributes
    ----------
    samples : Samples
        The held-out samples, their targets and weights, made ready by the engine.
    S : float
        Σ sᵢ of the validation samples (their number without weights).
    score : callable ``score(O, Y, s, *, xp) -> 0-D array``
        Higher is better (``xpnet.core.scores``).
    """

    samples: Samples
    S: float
    score: Callable[..., Array]


class Kept(NamedTuple):
    """The best parameters so far and their validation score, on the device."""

    W: list[Array]
    b: list[Array]
    score: Array


class BlockPlan(NamedTuple):
    """A block of epochs as the loop decided it on the host.

    Attributes
    ----------
    mu : list of float
        The schedule's μ of each epoch (each step's own step size is the optimizer's
        ``step_size`` of it).
    orders : list
        Each epoch's sample order (``xpnet.training.samples.sample_order``), or None
        for the samples' own order.
    batch_size : int or None
        Samples per step; None (or at least N) takes them all: one step per epoch.
    """

    mu: list[float]
    orders: list[Any]
    batch_size: int | None


class BlockResult(NamedTuple):
    """What a block of epochs leaves: the new state, and its values on the device.

    Attributes
    ----------
    W, b, state
        The parameters and the optimizer's state after the block's last step.
    E : list of arrays
        The block's epoch losses, in order, as 0-D or 1-D arrays (several epochs each).
    kept : Kept or None
        With early stopping, the best parameters after the block.
    V : list of arrays
        With early stopping, each epoch's validation loss and score, as (2,) or (k, 2)
        arrays in order; else empty.
    """

    W: list[Array]
    b: list[Array]
    state: OptimizerState
    E: list[Array]
    kept: Kept | None = None
    V: tuple[Array, ...] | list[Array] = ()


class Engine(Protocol):
    """A way to run the core's arithmetic for one fit (or one prediction).

    Attributes
    ----------
    how : Step
        The step the engine runs, with its own chunking and substitutes in place.
    xp, device
        The namespace and device the parameters are computed on (on Dask, the
        blocks').
    """

    how: Step
    xp: Any
    device: Any
    #: Whether a full-batch stack may gather its networks' rows of X into copies
    #: (``xpnet.training.stacks``); where not (Dask's blocks), each weighs all of X.
    gathers_rows: bool

    def open(
        self, data: Samples, validation: Samples | None = None
    ) -> AbstractContextManager[tuple[Samples, Samples | None]]:
        """Hold the fit's resources while it runs, and yield the data made ready (checked
        for NaN and infinity where the engine reads it)."""
        ...

    def blocks(self, data: Samples) -> tuple[int, ...] | None:
        """The sizes of the blocks within which mini-batches are drawn, or None (all the
        samples as one): what a sample order is drawn over."""
        ...

    def loss_and_gradients(
        self, W: list[Array], b: list[Array], data: Samples
    ) -> tuple[Array, list[Array], list[Array]]:
        """E_total and its gradients over all of ``data``, as concrete arrays."""
        ...

    def output(self, W: list[Array], b: list[Array], X: Array) -> Array:
        """The network's output A⁽ᴸ⁾, of shape (n_L, N), for the samples in the rows of X."""
        ...

    def run_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, plan: BlockPlan,
        data: Samples, validation: Validation | None, kept: Kept | None,
    ) -> BlockResult:  # fmt: skip
        """Train the epochs of ``plan``; with ``validation``, a validation pass after each."""
        ...

    def run_stack_block(
        self, W: list[Array], b: list[Array], state: OptimizerState, epochs: list[Any], *,
        alpha: Any, optimizer: Any, validation: Any = None, kept: Kept | None = None,
    ) -> tuple[list, list, OptimizerState, list, Kept | None, list]:  # fmt: skip
        """Train a stack's epochs (``xpnet.training.stacks``): each an iterable of
        ``xpnet.core.stacks.StackBatch``, with the networks' penalties ``alpha`` and
        update rule.  With ``validation`` (``StackValidation``), each epoch ends with
        every network's validation pass.  Returns W, b, the state, each epoch's (K,)
        losses, the best parameters so far and each epoch's (K, 2) validation values."""
        ...

    def adopt(self, arrays: list[Array]) -> list[Array]:
        """Arrays of the data's namespace (a fit's attributes) as the engine computes on."""
        ...

    def publish(self, arrays: list[Array], like: Array) -> list[Array]:
        """Arrays the engine computed, as the data's namespace keeps them (``like``)."""
        ...
