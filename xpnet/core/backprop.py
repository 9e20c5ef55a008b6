"""The functional core: forward pass, backpropagation, and E_total with its gradients.

The code follows the seed equation by equation.  Samples are *columns*: the input is
A⁽⁰⁾ = Xᵀ of shape (n_0, N), and every quantity of layer l holds one column per sample,
so each equation below is one operation over all N samples at once.

Python lists are 0-based while the seed numbers layers 1..L, so ``W[l]`` holds W⁽ˡ⁺¹⁾
and is fed by ``A[l]`` = A⁽ˡ⁾; ``A`` has L + 1 entries with ``A[0]`` the input.

Every function also takes a *stack* of K networks with the same layer sizes, trained
together (``xpnet.core.stacks``): each array then has a leading dimension K, W⁽ˡ⁾ of
shape (K, n_l, n_{l−1}) and A⁽ˡ⁾ of (K, n_l, N), and the equations are the same, read
with the Array API's batched ``@``, ``matrix_transpose`` and sums over the last axis (the
samples).  One network is the case without that dimension.

The input is touched by two products only, Z⁽¹⁾ = W⁽¹⁾ A⁽⁰⁾ and ∇W⁽¹⁾ = Δ⁽¹⁾ (A⁽⁰⁾)ᵀ, and
by the chunks' column ranges.  ``A0`` may therefore be any operand for which ``W @ A0``
and ``D @ A0.T`` are the dense products (arrays of ``xp``, as a dense W or Δ times an
operand that defines ``__rmatmul__`` returns them), ``A0[:, cols]`` a range of its
columns and ``A0.shape`` its shape: a sparse matrix, for one (``xpnet.training.sparse``).

These functions trust their inputs (the estimators validate at the boundary) and take the
array namespace ``xp`` by keyword.  They never write into the input A⁽⁰⁾, the targets or
the parameters; the arrays they create themselves (Z, A⁽ˡ⁾ for l ≥ 1, Δ) are worked on
in place, and :func:`backward` consumes the hidden activations it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .activations import Activation
from .losses import Objective
from .per_model import per_model

Array = Any


def forward(
    W: Sequence[Array], b: Sequence[Array], A0: Array, *, f: Sequence[Activation], xp: Any
) -> list[Array]:
    """Forward pass: Z⁽ˡ⁾ = W⁽ˡ⁾ A⁽ˡ⁻¹⁾ + b⁽ˡ⁾,  A⁽ˡ⁾ = f(Z⁽ˡ⁾),  for l = 1..L.

    Parameters
    ----------
    W : sequence of L arrays, ``W[l]`` of shape (n_{l+1}, n_l)
    b : sequence of L arrays, ``b[l]`` of shape (n_{l+1},)
    A0 : array of shape (n_0, N), or an operand as described above
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
        A.append(f_l.of_sum(W_l @ A[-1], b_l, xp=xp))  # f(Z + b), over the fresh product Z
    return A


def backward(
    W: Sequence[Array], A: list[Array], D_L: Array, *, f: Sequence[Activation], xp: Any
) -> tuple[list[Array], list[Array]]:
    """Backpropagation: every Δ⁽ˡ⁾, and the gradients summed over the samples.

    Starting from the output delta Δ⁽ᴸ⁾ (owned by the loss, see ``xpnet.core.losses``)::

        Σᵢ ∂E(cᵢ)/∂W⁽ˡ⁾ = Δ⁽ˡ⁾ (A⁽ˡ⁻¹⁾)ᵀ          one matrix product over all samples
        Σᵢ ∂E(cᵢ)/∂b⁽ˡ⁾ = Σᵢ Δ⁽ˡ⁾[:, i]
        Δ⁽ˡ⁻¹⁾ = (W⁽ˡ⁾)ᵀ Δ⁽ˡ⁾ ⊙ f'(Z⁽ˡ⁻¹⁾)         f' written from A⁽ˡ⁻¹⁾

    The 1/N of E_total is left to the caller, so that sums over chunks of samples add up.

    Parameters
    ----------
    W : sequence of L arrays, ``W[l]`` of shape (n_{l+1}, n_l)
    A : list of L + 1 arrays, ``A[l]`` of shape (n_l, N), from :func:`forward`
        Consumed: the hidden activations are overwritten once they are no longer needed.
    D_L : array of shape (n_L, N)
        Δ⁽ᴸ⁾ = ∂E(cᵢ)/∂Z⁽ᴸ⁾ for each sample i.
    f : sequence of L activations, as given to :func:`forward`
    xp : array namespace

    Returns
    -------
    sum_W : list of L arrays, shaped like ``W``
    sum_b : list of L arrays, shaped like the biases
    """
    L = len(W)
    sum_W: list[Array] = [None] * L
    sum_b: list[Array] = [None] * L
    D = D_L
    for l in reversed(range(L)):
        sum_W[l] = D @ _transposed(A[l], xp=xp)
        sum_b[l] = xp.sum(D, axis=-1)
        if l > 0:  # Δ⁽⁰⁾ would be the gradient with respect to the input: never needed
            D = f[l - 1].times_f_prime(_transposed(W[l], xp=xp) @ D, A[l], xp=xp)
    return sum_W, sum_b


def _transposed(A: Array, *, xp: Any) -> Array:
    """Aᵀ, of each matrix of a stack.  A 2-D operand's own ``.T``: a sparse input has no
    ``matrix_transpose``."""
    return A.T if len(A.shape) == 2 else xp.matrix_transpose(A)


def _columns(A: Array, cols: slice) -> Array:
    """The columns ``cols`` of A, of each matrix of a stack.  A 2-D operand is indexed
    ``[:, cols]``, which every sparse matrix takes."""
    return A[:, cols] if len(A.shape) == 2 else A[..., cols]


def chunk_sums(
    W: Sequence[Array],
    b: Sequence[Array],
    A0: Array,
    Y: Array,
    s: Array | None = None,
    *,
    f: Sequence[Activation],
    objective: Objective,
    xp: Any,
) -> tuple[Array, list[Array], list[Array]]:
    """Σᵢ sᵢ E(cᵢ) and the gradients summed over the samples (columns) of one chunk.

    With sample weights, each column of Δ⁽ᴸ⁾ is scaled by its sᵢ; the chain rule carries
    the weight through every Δ⁽ˡ⁾ below it.

    Parameters
    ----------
    W, b, f, xp
        As in :func:`forward`.
    A0 : array of shape (n_0, n)
        The chunk's input, one column per sample.
    Y : array of shape (n_L, n)
        The chunk's targets, one column per sample.
    s : array of shape (n,), optional
        The chunk's sample weights; None weighs every sample 1.
    objective : Objective
        The (loss, output activation) pair: E(cᵢ) and Δ⁽ᴸ⁾.

    Returns
    -------
    E_sum : 0-D array
    sum_W, sum_b : lists of L arrays, as from :func:`backward`
    """
    A = forward(W, b, A0, f=f, xp=xp)
    E_sum = objective.loss_sum(Y, A[-1], s, xp=xp)
    D_L = objective.output_delta(Y, A[-1], xp=xp)
    if s is not None:
        D_L *= s[..., None, :]  # a fresh Δ⁽ᴸ⁾: scaled in place
    return (E_sum, *backward(W, A, D_L, f=f, xp=xp))


def sample_sums(
    W: Sequence[Array],
    b: Sequence[Array],
    A0: Array,
    Y: Array,
    s: Array | None = None,
    *,
    f: Sequence[Activation],
    objective: Objective,
    xp: Any,
    chunk_size: int | None = None,
    map: Callable[..., Iterator[Any]] = map,
) -> tuple[Array, list[Array], list[Array]]:
    """Σᵢ sᵢ E(cᵢ) and the gradients summed over the N samples in the columns of ``A0``.

    Every term is a sum over samples, so the samples are taken in chunks of columns and
    the chunks' sums added, in chunk order: the (n_l, chunk) temporaries stay small
    enough to remain in the processor's cache, and chunks can be computed concurrently,
    with the same result as one after another.

    Parameters
    ----------
    W, b, f, xp
        As in :func:`forward`.
    A0 : array of shape (n_0, N)
        The input, one column per sample.
    Y : array of shape (n_L, N)
        The targets, one column per sample.
    s : array of shape (N,), optional
        Sample weights; None weighs every sample 1.
    objective : Objective
        The (loss, output activation) pair: E(cᵢ) and Δ⁽ᴸ⁾.
    chunk_size : int, optional
        Samples per chunk; None takes all N at once.
    map : callable, default: the built-in ``map``
        Applies :func:`chunk_sums` to the chunks and yields the results in order; an
        engine may spread the chunks over the processor's cores.

    Returns
    -------
    E_sum : 0-D array
    sum_W, sum_b : lists of L arrays, as from :func:`backward`
    """

    def sums(chunk: slice) -> tuple[Array, list[Array], list[Array]]:
        s_c = None if s is None else s[..., chunk]
        return chunk_sums(
            W, b, _columns(A0, chunk), Y[..., chunk], s_c, f=f, objective=objective, xp=xp
        )

    parts = map(sums, _chunks(A0.shape[-1], chunk_size))
    E, sum_W, sum_b = next(parts)
    for E_c, sum_W_c, sum_b_c in parts:
        E += E_c  # the first chunk's sums are fresh arrays: accumulate into them
        for l in range(len(W)):
            sum_W[l] += sum_W_c[l]
            sum_b[l] += sum_b_c[l]
    return E, sum_W, sum_b


def means(
    E_sum: Array,
    sum_W: list[Array],
    sum_b: list[Array],
    W: Sequence[Array],
    *,
    S: float,
    alpha: float,
    xp: Any,
) -> tuple[Array, list[Array], list[Array]]:
    """E_total and its gradients from the sums over the samples::

        E_total = (1/S) Σᵢ sᵢ E(cᵢ)             S = Σᵢ sᵢ, or N without weights
        ∇W⁽ˡ⁾ E_total = (1/S) Δ⁽ˡ⁾ (A⁽ˡ⁻¹⁾)ᵀ
        ∇b⁽ˡ⁾ E_total = (1/S) Σᵢ Δ⁽ˡ⁾ᵢ

    With the L2 penalty α (scikit-learn's ``alpha``; weights only, never biases)::

        E_total += (α / 2S) Σₗ ‖W⁽ˡ⁾‖²
        ∇W⁽ˡ⁾ E_total += (α / S) W⁽ˡ⁾

    The sums (fresh arrays, from :func:`sample_sums` or an engine's own) are added into.
    In a stack, S and α may be (K,) arrays, one value per network.
    """
    if getattr(alpha, "ndim", 0) > 0 or alpha != 0.0:
        for l, W_l in enumerate(W):
            E_sum += (alpha / 2.0) * xp.sum(W_l * W_l, axis=(-2, -1))
            sum_W[l] += per_model(alpha, W_l, xp=xp) * W_l
    return (
        E_sum / S,
        [g / per_model(S, g, xp=xp) for g in sum_W],
        [g / per_model(S, g, xp=xp) for g in sum_b],
    )


def loss_and_gradients(
    W: Sequence[Array],
    b: Sequence[Array],
    A0: Array,
    Y: Array,
    *,
    f: Sequence[Activation],
    objective: Objective,
    xp: Any,
    s: Array | None = None,
    S: float | None = None,
    alpha: float = 0.0,
    chunk_size: int | None = None,
    map: Callable[..., Iterator[Any]] = map,
) -> tuple[Array, list[Array], list[Array]]:
    """E_total and its gradients at (W, b) over the N samples in the columns of ``A0``:
    :func:`sample_sums`, then :func:`means`.

    ``S`` is Σᵢ sᵢ, which the caller knows on the host (it is needed there to check the
    weights); None means N, and is required when ``s`` is None.  The other parameters
    are those of :func:`sample_sums` and :func:`means`.

    Returns
    -------
    E : 0-D array
        E_total, on the device (reading it to the host is left to the caller).
    grad_W, grad_b : lists of L arrays
        ∇W⁽ˡ⁾ E_total and ∇b⁽ˡ⁾ E_total.
    """
    E, sum_W, sum_b = sample_sums(
        W, b, A0, Y, s, f=f, objective=objective, xp=xp, chunk_size=chunk_size, map=map
    )
    return means(E, sum_W, sum_b, W, S=A0.shape[-1] if S is None else S, alpha=alpha, xp=xp)


def output(
    W: Sequence[Array],
    b: Sequence[Array],
    A0: Array,
    *,
    f: Sequence[Activation],
    xp: Any,
    chunk_size: int | None = None,
    map: Callable[..., Iterator[Any]] = map,
) -> Array:
    """The network output A⁽ᴸ⁾ of shape (..., n_L, N), ``chunk_size`` samples at a time.

    ``chunk_size`` and ``map`` are as in :func:`sample_sums`.
    """

    def output_of(chunk: slice) -> Array:
        return forward(W, b, _columns(A0, chunk), f=f, xp=xp)[-1]

    O = list(map(output_of, _chunks(A0.shape[-1], chunk_size)))
    return O[0] if len(O) == 1 else xp.concat(O, axis=-1)


def _chunks(N: int, chunk_size: int | None) -> list[slice]:
    """The column ranges of N samples taken ``chunk_size`` at a time (None: all at once)."""
    step = N if chunk_size is None else chunk_size
    return [slice(start, min(start + step, N)) for start in range(0, N, step)]
