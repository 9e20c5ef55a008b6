"""Losses E_total, and the output delta Δ⁽ᴸ⁾ = ∂E/∂Z⁽ᴸ⁾ of each (loss, output activation) pair.

Columns are samples: ``Y`` and ``A_L`` (the network output A⁽ᴸ⁾) have shape (n_L, N).
Every loss is a mean over the N samples.  The deltas are *per sample* (no 1/N): the
backward pass applies the 1/N of batch gradient descent once, to the gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._activations import ACTIVATIONS, HIDDEN_ACTIVATIONS

Array = Any


@dataclass(frozen=True)
class Objective:
    """A (loss, output activation) pair: E_total and the output delta Δ⁽ᴸ⁾.

    Attributes
    ----------
    loss, output_activation : str
        The names users pass.
    value : callable ``value(Y, A_L, *, xp) -> 0-D array``
        E_total, the loss averaged over the N samples (columns).
    output_delta : callable ``output_delta(Y, A_L, *, xp) -> (n_L, N) array``
        Δ⁽ᴸ⁾, one column per sample.
    """

    loss: str
    output_activation: str
    value: Callable[..., Array]
    output_delta: Callable[..., Array]


def _mse(Y: Array, A_L: Array, *, xp: Any) -> Array:
    """E_total = (1/N) Σᵢ ½‖yᵢ − oᵢ‖²  (the seed's loss, step 4)."""
    R = Y - A_L
    return xp.sum(R * R) / (2.0 * Y.shape[1])


def _mse_delta(name: str) -> Callable[..., Array]:
    f_prime = ACTIVATIONS[name].f_prime

    def output_delta(Y: Array, A_L: Array, *, xp: Any) -> Array:
        """Δ⁽ᴸ⁾ = −(Y − A⁽ᴸ⁾) ⊙ f'(Z⁽ᴸ⁾)  (the seed's output-layer delta)."""
        D = A_L - Y
        return D if f_prime is None else D * f_prime(A_L, xp=xp)

    return output_delta


def _log(A: Array, *, xp: Any) -> Array:
    # A saturated output (exactly 0 or 1) would make the loss infinite; clipping at the
    # dtype's eps keeps E_total finite, as scikit-learn does.  Deltas never take a log.
    eps = float(xp.finfo(A.dtype).eps)
    return xp.log(xp.clip(A, eps, 1.0 - eps))


def _cross_entropy(Y: Array, A_L: Array, *, xp: Any) -> Array:
    """E_total = −(1/N) Σᵢ Σₖ y_ki log o_ki  (softmax outputs, one-hot targets)."""
    return -xp.sum(Y * _log(A_L, xp=xp)) / Y.shape[1]


def _binary_cross_entropy(Y: Array, A_L: Array, *, xp: Any) -> Array:
    """E_total = −(1/N) Σᵢ Σₖ [y_ki log o_ki + (1 − y_ki) log(1 − o_ki)]  (sigmoid outputs)."""
    return -xp.sum(Y * _log(A_L, xp=xp) + (1.0 - Y) * _log(1.0 - A_L, xp=xp)) / Y.shape[1]


def _residual(Y: Array, A_L: Array, *, xp: Any) -> Array:
    """Δ⁽ᴸ⁾ = A⁽ᴸ⁾ − Y: the output's derivative cancels against that of the logarithm."""
    return A_L - Y


OBJECTIVES: dict[tuple[str, str], Objective] = {
    **{("mse", f): Objective("mse", f, _mse, _mse_delta(f)) for f in HIDDEN_ACTIVATIONS},
    ("cross_entropy", "softmax"): Objective("cross_entropy", "softmax", _cross_entropy, _residual),
    ("cross_entropy", "sigmoid"): Objective(
        "cross_entropy", "sigmoid", _binary_cross_entropy, _residual
    ),
}

LOSSES = ("mse", "cross_entropy")
