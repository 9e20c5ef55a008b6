"""Losses E_total, and the output delta Δ⁽ᴸ⁾ = ∂E/∂Z⁽ᴸ⁾ of each (loss, output activation) pair.

Columns are samples: ``Y`` and ``A_L`` (the network output A⁽ᴸ⁾) have shape (n_L, n),
for a batch of samples or a chunk of one.  Losses are returned as *sums* over those
samples, Σᵢ E(cᵢ), and deltas per sample: the caller divides by the batch's N once,
after summing over chunks, which is what makes chunking exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS

Array = Any


@dataclass(frozen=True)
class Objective:
    """A (loss, output activation) pair: E_total and the output delta Δ⁽ᴸ⁾.

    Attributes
    ----------
    loss, output_activation : str
        The names users pass.
    loss_sum : callable ``loss_sum(Y, A_L, s=None, *, xp) -> 0-D array``
        Σᵢ sᵢ E(cᵢ) over the samples (columns), with ``s`` of shape (n,) the sample
        weights; without them Σᵢ E(cᵢ) = N · E_total.
    output_delta : callable ``output_delta(Y, A_L, *, xp) -> (n_L, n) array``
        Δ⁽ᴸ⁾, one column per sample.  May overwrite ``A_L``: call it after ``loss_sum``.
    """

    loss: str
    output_activation: str
    loss_sum: Callable[..., Array]
    output_delta: Callable[..., Array]


def _weighted_sum(E: Array, s: Array | None, *, xp: Any) -> Array:
    """Σᵢ sᵢ Eᵢ over the samples (the last axis), or Σᵢ Eᵢ without weights (the same sum
    when s = 1): one per network of a stack."""
    return xp.sum(E if s is None else s * E, axis=-1)


def _mse(Y: Array, A_L: Array, s: Array | None = None, *, xp: Any) -> Array:
    """Σᵢ sᵢ ½‖yᵢ − oᵢ‖²: N times the seed's E_total (step 4) when s = 1."""
    R = Y - A_L
    return _weighted_sum(xp.sum(R * R, axis=-2), s, xp=xp) / 2.0


def _mse_delta(name: str) -> Callable[..., Array]:
    times_f_prime = ACTIVATIONS[name].times_f_prime

    def output_delta(Y: Array, A_L: Array, *, xp: Any) -> Array:
        """Δ⁽ᴸ⁾ = −(Y − A⁽ᴸ⁾) ⊙ f'(Z⁽ᴸ⁾)  (the seed's output-layer delta)."""
        return times_f_prime(A_L - Y, A_L, xp=xp)

    return output_delta


def _log(A: Array, *, xp: Any) -> Array:
    # A saturated output (exactly 0 or 1) would make the loss infinite; clipping at the
    # dtype's eps keeps E_total finite, as scikit-learn does.  Deltas never take a log.
    eps = float(xp.finfo(A.dtype).eps)
    return xp.log(xp.clip(A, eps, 1.0 - eps))


def _cross_entropy(Y: Array, A_L: Array, s: Array | None = None, *, xp: Any) -> Array:
    """−Σᵢ sᵢ Σₖ y_ki log o_ki  (softmax outputs, one-hot targets)."""
    return -_weighted_sum(xp.sum(Y * _log(A_L, xp=xp), axis=-2), s, xp=xp)


def _binary_cross_entropy(Y: Array, A_L: Array, s: Array | None = None, *, xp: Any) -> Array:
    """−Σᵢ sᵢ Σₖ [y_ki log o_ki + (1 − y_ki) log(1 − o_ki)]  (sigmoid outputs)."""
    E = xp.sum(Y * _log(A_L, xp=xp) + (1.0 - Y) * _log(1.0 - A_L, xp=xp), axis=-2)
    return -_weighted_sum(E, s, xp=xp)


def _poisson(Y: Array, A_L: Array, s: Array | None = None, *, xp: Any) -> Array:
    """Σᵢ sᵢ Σₖ [y_ki log(y_ki / o_ki) − y_ki + o_ki]  (exp outputs, targets y ≥ 0).

    Half the Poisson deviance, scikit-learn's ``loss="poisson"``: it is 0 where o = y,
    and it differs from the negative log-likelihood o − y log o only by terms in y.
    """
    # y log(y/o) is 0 at y = 0 (its limit), where log(0/o) would make it 0 · (−inf) =
    # NaN: 1 stands in for y/o there.
    Y_log = Y * xp.log(xp.where(Y > 0.0, Y / A_L, 1.0))
    return _weighted_sum(xp.sum(Y_log - Y + A_L, axis=-2), s, xp=xp)


def _residual(Y: Array, A_L: Array, *, xp: Any) -> Array:
    """Δ⁽ᴸ⁾ = A⁽ᴸ⁾ − Y: the output's derivative cancels against that of the logarithm.

    Cross-entropy: ∂E/∂o = (o − y) / (o(1 − o)) and f'(z) = o(1 − o) for the sigmoid
    (the softmax likewise, over the column).  Poisson: ∂E/∂o = 1 − y/o and f'(z) = o
    for the exp.
    """
    return A_L - Y


OBJECTIVES: dict[tuple[str, str], Objective] = {
    **{("mse", f): Objective("mse", f, _mse, _mse_delta(f)) for f in HIDDEN_ACTIVATIONS},
    ("cross_entropy", "softmax"): Objective("cross_entropy", "softmax", _cross_entropy, _residual),
    ("cross_entropy", "sigmoid"): Objective(
        "cross_entropy", "sigmoid", _binary_cross_entropy, _residual
    ),
    ("poisson", "exp"): Objective("poisson", "exp", _poisson, _residual),
}

LOSSES = ("mse", "cross_entropy", "poisson")
