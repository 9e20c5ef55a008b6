"""The functional core: forward pass, backpropagation and one batch gradient descent step.

The code follows the seed equation by equation.  Samples are *columns*: the input is
A⁽⁰⁾ = Xᵀ of shape (n_0, N), and every quantity of layer l holds one column per sample,
so each equation below is one operation over all N samples at once.

Python lists are 0-based while the seed numbers layers 1..L, so ``W[l]`` holds W⁽ˡ⁺¹⁾
and is fed by ``A[l]`` = A⁽ˡ⁾; ``A`` has L + 1 entries with ``A[0]`` the input.

These functions trust their inputs (the estimators validate at the boundary), take the
array namespace ``xp`` by keyword and never write into an array they were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._activations import Activation
from ._losses import Objective

Array = Any


def forward(
    W: Sequence[Array], b: Sequence[Array], A0: Array, *, f: Sequence[Activation], xp: Any
) -> list[Array]:
    """Forward pass: Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾ + b⁽ˡ⁾,  A⁽ˡ⁾ = f(Z⁽ˡ⁾),  for l = 1..L.

    Parameters
    ----------
    W : sequence of L arrays, ``W[l]`` of shape (n_{l+1}, n_l)
    b : sequence of L arrays, ``b[l]`` of shape (n_{l+1},)
    A0 : array of shape (n_0, N)
        The input, one column per sample (Xᵀ).
    f : sequence of L activations, one per layer (the last is the output's)
    xp : array namespace

    Returns
    -------
    A : list of L + 1 arrays, ``A[l]`` of shape (n_l, N)
        ``A[0]`` is ``A0`` itself; ``A[L]`` is the network's output O.
    """
    A = [A0]
    for W_l, b_l, f_l in zip(W, b, f, strict=True):
        Z = W_l @ A[-1] + b_l[:, None]
        A.append(f_l.f(Z, xp=xp))
    return A


def backward(
    W: Sequence[Array], A: Sequence[Array], D_L: Array, *, f: Sequence[Activation], xp: Any
) -> tuple[list[Array], list[Array]]:
    """Backpropagation: every Δ⁽ˡ⁾ and the gradients of E_total, batched over N samples.

    Starting from the output delta Δ⁽ᴸ⁾ (owned by the loss, see ``xpnet._losses``)::

        ∇W⁽ˡ⁾ E_total = (1/N) Δ⁽ˡ⁾ (A⁽ˡ⁻¹⁾)ᵀ          one matrix product over all samples
        ∇b⁽ˡ⁾ E_total = (1/N) Σᵢ Δ⁽ˡ⁾[:, i]
        Δ⁽ˡ⁻¹⁾ = (W⁽ˡ⁾)ᵀ Δ⁽ˡ⁾ ⊙ f'(Z⁽ˡ⁻¹⁾)             f' written from A⁽ˡ⁻¹⁾

    Parameters
    ----------
    W : sequence of L arrays, ``W[l]`` of shape (n_{l+1}, n_l)
    A : sequence of L + 1 arrays, ``A[l]`` of shape (n_l, N), from :func:`forward`
    D_L : array of shape (n_L, N)
        Δ⁽ᴸ⁾ = ∂E(c_i)/∂Z⁽ᴸ⁾ for each sample i.
    f : sequence of L activations, as given to :func:`forward`
    xp : array namespace

    Returns
    -------
    grad_W : list of L arrays, shaped like ``W``
    grad_b : list of L arrays, shaped like the biases
    """
    L = len(W)
    N = A[0].shape[1]
    grad_W: list[Array] = [None] * L
    grad_b: list[Array] = [None] * L
    D = D_L
    for l in reversed(range(L)):
        grad_W[l] = (D @ A[l].T) / N
        grad_b[l] = xp.sum(D, axis=1) / N
        if l > 0:  # Δ⁽⁰⁾ would be the gradient with respect to the input: never needed
            D = W[l].T @ D
            f_prime = f[l - 1].f_prime
            if f_prime is not None:
                D = D * f_prime(A[l], xp=xp)
    return grad_W, grad_b


def loss_and_gradients(
    W: Sequence[Array],
    b: Sequence[Array],
    A0: Array,
    Y: Array,
    *,
    f: Sequence[Activation],
    objective: Objective,
    xp: Any,
) -> tuple[Array, list[Array], list[Array]]:
    """E_total and its gradients at (W, b) over the N samples in the columns of ``A0``.

    Parameters
    ----------
    W, b, f, xp
        As in :func:`forward`.
    A0 : array of shape (n_0, N)
        The input, one column per sample.
    Y : array of shape (n_L, N)
        The targets, one column per sample.
    objective : Objective
        The (loss, output activation) pair: E_total and Δ⁽ᴸ⁾.

    Returns
    -------
    E : 0-D array
        E_total, on the device (reading it to the host is left to the caller).
    grad_W, grad_b : lists of L arrays
        ∇W⁽ˡ⁾ E_total and ∇b⁽ˡ⁾ E_total.
    """
    A = forward(W, b, A0, f=f, xp=xp)
    E = objective.value(Y, A[-1], xp=xp)
    D_L = objective.output_delta(Y, A[-1], xp=xp)
    grad_W, grad_b = backward(W, A, D_L, f=f, xp=xp)
    return E, grad_W, grad_b


def gradient_descent_step(
    W: Sequence[Array],
    b: Sequence[Array],
    grad_W: Sequence[Array],
    grad_b: Sequence[Array],
    *,
    mu: float,
) -> tuple[list[Array], list[Array]]:
    """One step of batch gradient descent: W⁽ˡ⁾ ← W⁽ˡ⁾ − μ ∇W⁽ˡ⁾,  b⁽ˡ⁾ ← b⁽ˡ⁾ − μ ∇b⁽ˡ⁾.

    Returns new arrays (names are rebound, nothing is written), so the step is the same
    on mutable (NumPy, CuPy, PyTorch) and immutable (JAX, Dask) arrays.
    """
    W = [W_l - mu * g for W_l, g in zip(W, grad_W, strict=True)]
    b = [b_l - mu * g for b_l, g in zip(b, grad_b, strict=True)]
    return W, b
