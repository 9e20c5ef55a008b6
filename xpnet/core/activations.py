"""Activation functions f and their derivatives f', written for the Array API.

Each derivative is written from the activation's *output* a = f(z), as the seed does
for the sigmoid (f'(z) = a(1 - a)).  The backward pass therefore needs only the
activations A, never the pre-activations Z, which saves one (n_l, N) array per layer.

Every function takes the array namespace ``xp`` as a keyword.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any


@dataclass(frozen=True)
class Activation:
    """A named activation: a = f(z), and the chain rule through it, D ⊙ f'(z), with f' from a.

    Both functions may overwrite their array arguments, which the caller owns and no
    longer needs: the forward pass hands ``f`` the fresh product W A + b, and the
    backward pass hands ``times_f_prime`` a fresh Δ and an A⁽ˡ⁾ whose last use (the
    gradient of the layer above) is behind it.  Working in place saves an allocation
    and a pass over memory per operation; namespaces with immutable arrays (JAX, Dask)
    simply rebind the names.

    Attributes
    ----------
    name : str
        The name users pass, e.g. ``"sigmoid"``.
    f : callable ``f(Z, *, xp) -> A``
        The activation, applied elementwise (column-wise for softmax).
    times_f_prime : callable ``times_f_prime(D, A, *, xp) -> D ⊙ f'(Z)`` or None
        The product with f'(z) written through a = f(z).  None for softmax, whose
        Jacobian is not diagonal: it is only an output, where the loss supplies Δ⁽ᴸ⁾.
    of_sum : callable ``of_sum(Z, b, *, xp) -> f(Z + b)``
        The bias added, then the activation applied: what the forward pass calls.  An
        engine may substitute one pass over Z for both (``xpnet.engines.fused``).
    """

    name: str
    f: Callable[..., Array]
    times_f_prime: Callable[..., Array] | None
    of_sum: Callable[..., Array] = None  # type: ignore[assignment]  # set from f below

    def __post_init__(self) -> None:
        if self.of_sum is None:
            object.__setattr__(self, "of_sum", _then(self.f))


def _then(f: Callable[..., Array]) -> Callable[..., Array]:
    """f(Z + b) as two operations: b added to Z in place, then f."""

    def of_sum(Z: Array, b: Array, *, xp: Any) -> Array:
        Z += b[..., :, None]  # Z is a fresh product: adding in place saves an (n_l, N) array
        return f(Z, xp=xp)

    return of_sum


def _identity(Z: Array, *, xp: Any) -> Array:
    return Z


def _times_one(D: Array, A: Array, *, xp: Any) -> Array:
    return D  # f'(z) = 1


def _sigmoid(Z: Array, *, xp: Any) -> Array:
    # a = 1 / (1 + e^{-z}).  For z < about -709 (-88 in float32) e^{-z} overflows to
    # inf and a = 0, the correct limit.
    Z *= -1.0
    E = xp.exp(Z)
    E += 1.0
    return 1.0 / E  # a division, not E **= -1: NumPy's power is several times slower


def _sigmoid_times_f_prime(D: Array, A: Array, *, xp: Any) -> Array:
    D *= A  # f'(z) = a (1 - a)
    D *= 1.0 - A
    return D


def _tanh(Z: Array, *, xp: Any) -> Array:
    return xp.tanh(Z)


def _tanh_times_f_prime(D: Array, A: Array, *, xp: Any) -> Array:
    A *= A  # f'(z) = 1 - a²
    D *= 1.0 - A
    return D


def _relu(Z: Array, *, xp: Any) -> Array:
    # The 0 as a (1, 1) array of Z's kind: a Python 0.0 makes array-api-compat's PyTorch
    # wrapper ask torch.result_type, which PyTorch's compiler cannot trace.  maximum
    # (not a where on Z > 0) so that a NaN in Z stays NaN and a diverging fit is caught.
    return xp.maximum(Z, xp.zeros_like(Z[..., :1, :1]))


def _relu_times_f_prime(D: Array, A: Array, *, xp: Any) -> Array:
    # f'(z) = 1 where a > 0, else 0 (the subgradient at z = 0 is taken as 0, as
    # scikit-learn and PyTorch do).
    return xp.where(A > 0.0, D, 0.0)


def _exp(Z: Array, *, xp: Any) -> Array:
    return xp.exp(Z)


def _exp_times_f_prime(D: Array, A: Array, *, xp: Any) -> Array:
    D *= A  # f'(z) = e^z = a
    return D


def _softmax(Z: Array, *, xp: Any) -> Array:
    # Columns are samples: normalise over the outputs (axis -2).  Subtracting the column
    # maximum leaves the result unchanged and keeps exp() from overflowing.
    Z -= xp.max(Z, axis=-2, keepdims=True)
    A = xp.exp(Z)
    A /= xp.sum(A, axis=-2, keepdims=True)
    return A


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", _identity, _times_one),
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_times_f_prime),
    "tanh": Activation("tanh", _tanh, _tanh_times_f_prime),
    "relu": Activation("relu", _relu, _relu_times_f_prime),
    "softmax": Activation("softmax", _softmax, None),
    "exp": Activation("exp", _exp, _exp_times_f_prime),
}

#: Activations usable in hidden layers.  Softmax and exp are outputs only: softmax's
#: Jacobian is not diagonal, and exp is the inverse of the Poisson loss's log link, whose
#: unbounded growth a hidden layer has no use for (scikit-learn offers neither there).
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
