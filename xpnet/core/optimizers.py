"""Update rules: how a step turns the gradients into a change of the parameters.

Every optimizer is a pair of pure functions, as in optax: ``init(P, xp=...)`` makes the
state from the parameters, and ``update(G, state, mu=..., xp=...)`` takes the gradients
and the state to the updates U and the new state, so that a step is P ← P + U.  Both
return new arrays and write nothing they are given.  The step size ``mu`` that
``update`` takes is the step's own, worked out on the host by ``step_size`` from the
schedule's μ and the step count: Adam's bias correction lives there, so that a compiled
block of steps can take its step sizes as an array.

``P`` and ``G`` are flat lists of arrays, the weights then the biases
(``[*W, *b]``, as scikit-learn's ``coefs_ + intercepts_``), and the state is an
:class:`OptimizerState`: a step count and zero or more lists of per-parameter arrays
(the moments), one array per parameter.  That one shape for every rule lets the
training loop materialise, save, load and move any optimizer's state without knowing
which rule made it.

The rules and their names follow scikit-learn's ``MLPRegressor``/``MLPClassifier``
exactly (``solver``, ``momentum``, ``nesterovs_momentum``, ``beta_1``, ``beta_2``,
``epsilon``), so that the same starting weights give the same trajectory.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .per_model import per_model

Array = Any


class OptimizerState(NamedTuple):
    """What an update rule carries from one step to the next.

    Attributes
    ----------
    t : int
        The number of steps taken so far.
    moments : tuple of lists of arrays
        Each list holds one array per parameter, shaped like it: () for plain gradient
        descent, (V,) the velocities for momentum, (M, V) the first and second moments
        for Adam.
    """

    t: int
    moments: tuple[list[Array], ...]


class Optimizer(NamedTuple):
    """An update rule: ``init`` and ``update``, and the moments its state holds.

    Attributes
    ----------
    name : str
        ``"sgd"``, ``"momentum"``, ``"nesterov"`` or ``"adam"``.
    n_moments : int
        The number of moment lists in its :class:`OptimizerState`.
    init : callable ``init(P, *, xp) -> OptimizerState``
    update : callable ``update(G, state, *, mu, xp) -> (U, OptimizerState)``
        ``mu`` is the step size of this step: ``step_size(μ, state.t + 1)``.
    step_size : callable ``step_size(mu, t) -> float``
        The step size of step t (1, 2, ...) when the schedule's is ``mu``.
    hyperparameters : tuple of float
        The rule's constants, in the order of its signature: () for gradient descent,
        (β,) for momentum, (β₁, β₂, ε, 1 − β₁, 1 − β₂) for Adam.  An engine's fused
        kernels take them as arguments (``xpnet.engines.fused``), and a stack's rule
        takes each as an array of one value per network (:func:`stacked`).
    fused_update : callable ``fused_update(P, G, state, *, mu, xp) -> (P + U, state)`` or None
        ``update`` and its application in one pass per parameter, where a backend has a
        fused kernel for it (``xpnet.engines.fused``); None runs ``update``, then
        :func:`apply_updates`.  See :func:`advance`.
    """

    name: str
    n_moments: int
    init: Callable[..., OptimizerState]
    update: Callable[..., tuple[list[Array], OptimizerState]]
    step_size: Callable[[float, int], float] = lambda mu, t: mu
    hyperparameters: tuple[float, ...] = ()
    fused_update: Callable[..., tuple[list[Array], OptimizerState]] | None = None


def _zero_moments(n_moments: int) -> Callable[..., OptimizerState]:
    def init(P: Sequence[Array], *, xp: Any) -> OptimizerState:
        """Step 0, every moment zero (``zeros_like`` keeps each parameter's device and dtype)."""
        return OptimizerState(0, tuple([xp.zeros_like(p) for p in P] for _ in range(n_moments)))

    return init


def gradient_descent() -> Optimizer:
    """Batch gradient descent, the seed's step: U = −μ ∇E_total.

    The state holds nothing but the step count.
    """

    def update(
        G: Sequence[Array], state: OptimizerState, *, mu: float, xp: Any
    ) -> tuple[list[Array], OptimizerState]:
        return [(-per_model(mu, g, xp=xp)) * g for g in G], OptimizerState(state.t + 1, ())

    return Optimizer("sgd", 0, _zero_moments(0), update)


def momentum(beta: float, *, nesterov: bool) -> Optimizer:
    """Gradient descent with momentum β (scikit-learn's ``momentum``)::

        V ← β V − μ ∇E_total
        U = β V − μ ∇E_total     (Nesterov's momentum, with the new V)
        U = V                    (classical momentum)

    The velocities V start at zero.
    """

    def update(
        G: Sequence[Array], state: OptimizerState, *, mu: float, xp: Any
    ) -> tuple[list[Array], OptimizerState]:
        (V,) = state.moments
        mu_ = [per_model(mu, g, xp=xp) for g in G]
        beta_ = [per_model(beta, g, xp=xp) for g in G]
        V = [c * v - m * g for v, g, m, c in zip(V, G, mu_, beta_, strict=True)]
        U = [c * v - m * g for v, g, m, c in zip(V, G, mu_, beta_, strict=True)] if nesterov else V
        return U, OptimizerState(state.t + 1, (V,))

    name = "nesterov" if nesterov else "momentum"
    return Optimizer(name, 1, _zero_moments(1), update, hyperparameters=(beta,))


def adam(
    beta_1: float, beta_2: float, epsilon: float, one_minus_beta_1: float | None = None,
    one_minus_beta_2: float | None = None,
) -> Optimizer:  # fmt: skip
    """Adam (Kingma and Ba, 2014) in scikit-learn's form::

        t ← t + 1
        M ← β₁ M + (1 − β₁) ∇E_total
        V ← β₂ V + (1 − β₂) (∇E_total)²
        U = −μₜ M / (√V + ε),    μₜ = μ √(1 − β₂ᵗ) / (1 − β₁ᵗ)   (``step_size``)

    The bias correction is folded into the step size μₜ and ε is added to √V, not to
    the bias-corrected √V̂ as PyTorch's ``Adam`` does (the two differ by about 1e-4
    relative at the first step).  M and V start at zero.

    1 − β₁ and 1 − β₂ are worked out once, in double precision, from the numbers β₁ and
    β₂; a stack's rule (:func:`stacked`), whose constants are arrays of the parameters'
    dtype, takes each network's own as ``one_minus_beta_1`` and ``one_minus_beta_2``
    (in float32, 1 − 0.9 rounded once is not 1 − (0.9 rounded)).
    """
    if one_minus_beta_1 is None:
        one_minus_beta_1 = 1.0 - beta_1
    if one_minus_beta_2 is None:
        one_minus_beta_2 = 1.0 - beta_2

    def update(
        G: Sequence[Array], state: OptimizerState, *, mu: float, xp: Any
    ) -> tuple[list[Array], OptimizerState]:
        t = state.t + 1
        M, V = state.moments
        M_new, V_new, U = [], [], []
        for m, v, g in zip(M, V, G, strict=True):
            b1, b2 = per_model(beta_1, g, xp=xp), per_model(beta_2, g, xp=xp)
            c1, c2 = per_model(one_minus_beta_1, g, xp=xp), per_model(one_minus_beta_2, g, xp=xp)
            M_new.append(b1 * m + c1 * g)
            V_new.append(b2 * v + c2 * (g * g))
        for m, v in zip(M_new, V_new, strict=True):
            eps = per_model(epsilon, v, xp=xp)
            U.append((-per_model(mu, m, xp=xp)) * m / (xp.sqrt(v) + eps))
        return U, OptimizerState(t, (M_new, V_new))

    def step_size(mu: float, t: int) -> float:
        """μₜ = μ √(1 − β₂ᵗ) / (1 − β₁ᵗ): the bias correction of M and V, folded in."""
        return mu * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)

    hyperparameters = (beta_1, beta_2, epsilon, one_minus_beta_1, one_minus_beta_2)
    return Optimizer(
        "adam", 2, _zero_moments(2), update, step_size, hyperparameters=hyperparameters
    )


@functools.lru_cache(maxsize=64)
def make_optimizer(
    solver: str,
    *,
    momentum_: float = 0.0,
    nesterovs_momentum: bool = True,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
) -> Optimizer:
    """The update rule for scikit-learn's solver settings (validated by the caller).

    ``solver="sgd"`` with ``momentum_=0`` is plain gradient descent, whatever
    ``nesterovs_momentum`` says: with β = 0 both momentum rules reduce to it.  The same
    settings give the same (pure, stateless) rule, so that compiled programs built for
    it are found again.
    """
    if solver == "adam":
        return adam(beta_1, beta_2, epsilon)
    if momentum_ == 0.0:
        return gradient_descent()
    return momentum(momentum_, nesterov=nesterovs_momentum)


def stacked(optimizers: Sequence[Optimizer], *, xp: Any, device: Any, dtype: Any) -> Optimizer:
    """The update rule of a stack whose networks' rules are of one kind (``name``) and may
    differ in their constants: those as (K,) arrays, one per network.

    Each network's step sizes stay its own rule's ``step_size`` (Adam's bias correction
    with its own β₁ and β₂), worked out on the host; the stacked rule's ``step_size`` is
    not to be used.  Rules that are one and the same (the same settings) come back as
    they are.
    """
    first = optimizers[0]
    if all(o is first for o in optimizers) or not first.hyperparameters:
        return first
    constants = [
        xp.asarray([o.hyperparameters[i] for o in optimizers], dtype=dtype, device=device)
        for i in range(len(first.hyperparameters))
    ]
    return rule(first.name, constants)


def rule(name: str, hyperparameters: Sequence[Any]) -> Optimizer:
    """The update rule of kind ``name`` (an :class:`Optimizer`'s ``name``) with these
    constants, in the order of its ``hyperparameters``: numbers, or arrays of one value
    per network of a stack.  A compiled step builds its rule so, from constants it takes
    as inputs."""
    if name == "sgd":
        return gradient_descent()
    if name == "adam":
        return adam(*hyperparameters)
    return momentum(*hyperparameters, nesterov=name == "nesterov")


def apply_updates(P: Sequence[Array], U: Sequence[Array]) -> list[Array]:
    """P ← P + U, as new arrays: parameters the user assigned are never written."""
    return [p + u for p, u in zip(P, U, strict=True)]


def advance(
    optimizer: Optimizer, P: Sequence[Array], G: Sequence[Array], state: OptimizerState, *,
    mu: float, xp: Any,
) -> tuple[list[Array], OptimizerState]:  # fmt: skip
    """A step of the rule: the new parameters P + U, as new arrays, and the new state.

    Where the rule has a fused kernel (``fused_update``), the update and its application
    are one pass over each parameter; otherwise ``update``, then :func:`apply_updates`.
    """
    if optimizer.fused_update is not None:
        return optimizer.fused_update(P, G, state, mu=mu, xp=xp)
    U, state = optimizer.update(G, state, mu=mu, xp=xp)
    return apply_updates(P, U), state


def step_sizes(optimizer: Optimizer, mu: Sequence[float], t: int) -> list[float]:
    """The step sizes of consecutive steps t + 1, t + 2, ..., one per schedule's μ in ``mu``
    (full-batch epochs, one step each): what a compiled block takes as an array."""
    return [optimizer.step_size(mu_i, t + i + 1) for i, mu_i in enumerate(mu)]
