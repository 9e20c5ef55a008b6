"""Sparse samples: a SciPy (or, on CuPy, ``cupyx.scipy.sparse``) matrix as X.

Only the first layer's two products touch the input, Z⁽¹⁾ = W⁽¹⁾ Xᵀ and ∇W⁽¹⁾ = Δ⁽¹⁾ X,
and a sparse matrix computes both from its stored values alone, returning dense arrays.
X is kept in CSR form, one row per sample, so that its transpose Xᵀ is a CSC matrix
(n_0, N) without a copy, and the core's input A⁽⁰⁾ = Xᵀ is an operand that does all the
core asks of it (see ``xpnet.core.backprop``): ``W @ A0`` and ``D @ A0.T`` (dense
arrays), ``A0[:, cols]`` (a chunk's columns, copying that chunk's stored values only) and
``A0.shape``.  The core therefore runs on it unchanged, chunk by chunk, and X is never
made dense.

This module holds what training asks of X besides the products: telling a sparse X
apart, the array its stored values are held in (for the finiteness check, and for the
namespace and device of everything else), and the rows a mini-batch or a validation
split takes.  Nothing here imports SciPy or CuPy: a sparse matrix is recognised by the
module of its type.
"""

from __future__ import annotations

from typing import Any

Array = Any

#: The modules whose matrices (and SciPy's sparse arrays) xpnet takes as a sparse X.
SPARSE_MODULES = ("scipy.sparse", "cupyx.scipy.sparse")


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a SciPy or cupyx sparse matrix (or SciPy sparse array)."""
    return type(x).__module__.startswith(SPARSE_MODULES)


def stored_values(X: Any) -> Array:
    """The dense array of the values a sparse X stores (NumPy's, or CuPy's on a GPU);
    ``X`` itself if it is not sparse.  The values left out are zeros: finite, and of the
    same namespace and device."""
    return X.data if is_sparse(X) else X


def take_rows(X: Any, i: Array, *, xp: Any) -> Any:
    """The samples X's rows ``i`` (indices on X's device), as ``xp.take`` along axis 0.

    A sparse X (CSR) takes its own rows: a batch is a CSR matrix of those rows' stored
    values.  This is the ``rows`` of the step the eager engine runs
    (``xpnet.core.step.Step``).
    """
    return X[i] if is_sparse(X) else xp.take(X, i, axis=0)


def widest(layer_sizes: list[int], X: Any) -> int:
    """The largest height of a chunk's temporaries, (n_l, chunk) for l ≥ 1, and of X's
    own n_0 rows when X is dense (a sparse X's many columns are no temporary of the
    chunk's, and would make its chunks needlessly small)."""
    return max(layer_sizes[1:] if is_sparse(X) else layer_sizes)
