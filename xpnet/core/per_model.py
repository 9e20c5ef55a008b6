"""Values that differ between the networks of a stack, broadcast against their arrays.

A stack of K networks with the same layer sizes holds each array with a leading
dimension K: W⁽ˡ⁾ of shape (K, n_l, n_{l−1}), b⁽ˡ⁾ (K, n_l), E_total (K,).  A number that
may differ between them (a step size μ, the penalty α, Σᵢ sᵢ) is then an array of shape
(K,), and multiplies each array with one value per network.  For one network it is a
Python float or a 0-D array, and multiplies as it is.
"""

from __future__ import annotations

from typing import Any

Array = Any


def per_model(v: Any, like: Array, *, xp: Any) -> Any:
    """``v`` shaped to broadcast against ``like``: a (K,) array as (K, 1, ..., 1).

    Parameters
    ----------
    v : float, 0-D array or array of shape (K,)
        One value for every network, or one per network of the stack.
    like : array of shape (K, ...)
        The array ``v`` is to multiply (or add to, or divide).
    """
    if getattr(v, "ndim", 0) == 0:
        return v
    return xp.reshape(v, (v.shape[0],) + (1,) * (like.ndim - 1))
