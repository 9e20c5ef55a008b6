"""Activation functions f and their derivatives f', written for the Array API.

Each derivative is written from the activation's *output* a = f(z), as the seed does
for the sigmoid (f'(z) = a(1 - a)).  The backward pass therefore needs only the
activations A, never the pre-activations Z, which saves one (n_l, N) array per layer.

Every function takes the array namespace ``xp`` as a keyword and returns a new array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any


@dataclass(frozen=True)
class Activation:
    """A named activation: its value a = f(z) and its derivative f'(z) written from a.

    Attributes
    ----------
    name : str
        The name users pass, e.g. ``"sigmoid"``.
    f : callable ``f(Z, *, xp) -> A``
        The activation, applied elementwise (or column-wise for softmax).
    f_prime : callable ``f_prime(A, *, xp) -> array`` or None
        f'(z) expressed through a = f(z).  ``None`` where f' = 1 (identity), so the
        backward pass can skip the multiplication, and for softmax, whose Jacobian is
        not diagonal: softmax is only used as an output, where its loss supplies
        Δ⁽ᴸ⁾ directly (see ``xpnet._losses``).
    """

    name: str
    f: Callable[..., Array]
    f_prime: Callable[..., Array] | None


def _identity(Z: Array, *, xp: Any) -> Array:
    return Z


def _sigmoid(Z: Array, *, xp: Any) -> Array:
    # 1 / (1 + e^{-z}) overflows e^{-z} for very negative z, but the quotient is then
    # exactly 0, the correct limit; exp(-z) -> inf is harmless here.
    return 1.0 / (1.0 + xp.exp(-Z))


def _sigmoid_prime(A: Array, *, xp: Any) -> Array:
    return A * (1.0 - A)


def _tanh(Z: Array, *, xp: Any) -> Array:
    return xp.tanh(Z)


def _tanh_prime(A: Array, *, xp: Any) -> Array:
    return 1.0 - A * A


def _relu(Z: Array, *, xp: Any) -> Array:
    return xp.maximum(Z, 0.0)


def _relu_prime(A: Array, *, xp: Any) -> Array:
    # The subgradient at z = 0 is taken as 0, as scikit-learn and PyTorch do.
    return xp.astype(A > 0.0, A.dtype)


def _softmax(Z: Array, *, xp: Any) -> Array:
    # Columns are samples: normalise over axis 0.  Subtracting the column maximum
    # leaves the result unchanged and keeps exp() from overflowing.
    E = xp.exp(Z - xp.max(Z, axis=0, keepdims=True))
    return E / xp.sum(E, axis=0, keepdims=True)


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", _identity, None),
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_prime),
    "tanh": Activation("tanh", _tanh, _tanh_prime),
    "relu": Activation("relu", _relu, _relu_prime),
    "softmax": Activation("softmax", _softmax, None),
}

#: Activations usable in hidden layers (softmax is an output-only activation).
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
