"""What training works on: the samples, their order in an epoch, and the early-stopping split.

Everything random is drawn here, on the host, from the fit's seeded generator, so that
every backend and every engine sees the same batches and the same split.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np  # host-side: the seeded generator, orders and splits

from .._host import to_numpy
from ..core.step import Samples
from .sparse import stored_values, take_rows

Array = Any

__all__ = [
    "BlockOrder",
    "Samples",
    "check_finite",
    "held_out",
    "sample_order",
    "validation_split",
]


def check_finite(x: Array, xp: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity.

    The sum of all elements is finite exactly when every element is, unless finite
    elements overflow it: one pass over ``x`` and a 0-D result, with the elementwise
    test only to tell an overflow apart.  One host synchronisation.  Of a sparse
    matrix, the values it stores are checked (those it leaves out are zeros).
    """
    x = stored_values(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an overflowing sum is handled below
        total = xp.sum(x)
    if bool(xp.isfinite(total)):
        return
    if bool(xp.all(xp.isfinite(x))):
        return
    what = "NaN" if bool(xp.any(xp.isnan(x))) else "infinity"
    raise ValueError(f"Input {name} contains {what}; xpnet needs finite values (no NaN or inf).")


class BlockOrder(NamedTuple):
    """The order of a mini-batch epoch over samples held in blocks (Dask's): the blocks'
    order, and each block's samples' order."""

    blocks: np.ndarray
    within: list[np.ndarray]


def sample_order(rng: np.random.Generator, blocks: tuple[int, ...] | None, N: int) -> Any:
    """A random order of N samples for a mini-batch epoch, drawn from ``rng``.

    ``blocks`` are the sizes of the blocks the samples are held in, where an engine
    draws batches within blocks (Dask's), or None: then a permutation of the N samples
    (host indices); else a :class:`BlockOrder`.  One block is visited first without a
    draw, so that its samples' order is the one N samples held whole get from the same
    generator.
    """
    if blocks is None:
        return rng.permutation(N)
    first = rng.permutation(len(blocks)) if len(blocks) > 1 else np.zeros(1, dtype=np.intp)
    return BlockOrder(first, [rng.permutation(n) for n in blocks])


def validation_split(
    X: Array,
    Y: Array,
    s_host: np.ndarray | None = None,
    *,
    fraction: float,
    rng: np.random.Generator,
    stratify: bool,
    xp: Any,
    device: Any,
) -> tuple[Samples, Samples]:
    """Hold out ``ceil(fraction · N)`` samples, drawn from ``rng``, for validation.

    With ``stratify`` (Y one-hot), each class gives its share of the held-out samples,
    rounded by largest remainder; finding the classes reads the labels back once.
    Both parts keep the samples in their original order.

    Parameters
    ----------
    X : array of shape (N, n_0), or a sparse matrix (CSR)
    Y : array of shape (n_L, N)
    s_host : numpy.ndarray of shape (N,), optional
        Sample weights, on the host; split alike and moved to the device.

    Returns
    -------
    train, validation : Samples
    """
    N = X.shape[0]
    labels = to_numpy(xp.argmax(Y, axis=0)) if stratify else None  # one read-back
    train, val = held_out(N, fraction=fraction, rng=rng, labels=labels, n_classes=Y.shape[0])
    parts = []
    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    for rows in (train, val):
        i = xp.asarray(rows, dtype=index, device=device)
        s_part = None if s_host is None else s_host[rows]
        s = None if s_part is None else xp.asarray(s_part, dtype=X.dtype, device=device)
        parts.append(Samples(take_rows(X, i, xp=xp), xp.take(Y, i, axis=1), s, s_part))
    return parts[0], parts[1]


def held_out(
    N: int, *, fraction: float, rng: np.random.Generator, labels: np.ndarray | None = None,
    n_classes: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The rows early stopping trains on and those it holds out, as :func:`validation_split`
    draws them: ``ceil(fraction · N)`` held out, stratified by ``labels`` (each sample's
    class, of ``n_classes``) if given.  Both in increasing order.
    """
    n_val = math.ceil(fraction * N)
    if n_val == 1 and N > 1:
        # One sample's score cannot tell an epoch from the next: scikit-learn refuses it.
        raise ValueError(
            f"The validation set is too small: validation_fraction={fraction!r} of {N} "
            f"samples holds out {n_val}, and scoring needs at least 2. Increase "
            "'validation_fraction' or the size of your dataset."
        )
    if not 0 < n_val < N:
        raise ValueError(
            f"validation_fraction={fraction!r} of {N} sample(s) leaves "
            f"{N - n_val} for training and {n_val} for validation; early stopping needs "
            "at least one of each."
        )
    if labels is None:
        val = rng.permutation(N)[:n_val]
    else:
        members = [np.flatnonzero(labels == k) for k in range(n_classes)]
        quota = np.array([n_val * len(m) / N for m in members])
        take = np.floor(quota).astype(np.int64)
        # Largest remainders first; a stable sort breaks ties by class order.
        for k in np.argsort(-(quota - take), kind="stable")[: n_val - int(take.sum())]:
            take[k] += 1
        val = np.concatenate([rng.permutation(m)[:t] for m, t in zip(members, take, strict=True)])
    is_val = np.zeros(N, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
