"""Scores of a network's output, computed on the device: higher is better.

Each takes the output O and the targets Y with one column per sample, and optional
sample weights, and returns a 0-D array, so that early stopping can compare scores on
the device without reading them back.  Leading dimensions are a stack of networks
(``xpnet.core.stacks``): O of shape (K, n_L, N), weights (K, N), one score per network.
"""

from __future__ import annotations

from typing import Any

Array = Any


def _weighted_mean(x: Array, s: Array | None, *, xp: Any) -> Array:
    """The mean of ``x`` over its last axis (the samples), weighted by ``s`` if given."""
    if s is None:
        return xp.mean(x, axis=-1)
    return xp.sum(s * x, axis=-1) / xp.sum(s, axis=-1)


def accuracy(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """The fraction of samples whose largest output is their class: a 0-D array.

    Parameters
    ----------
    O : array of shape (n_classes, N)
        The network output, one column per sample.
    Y : array of shape (n_classes, N)
        The one-hot labels.
    s : array of shape (N,), optional
        Sample weights: the weighted fraction.
    """
    hit = xp.argmax(O, axis=-2) == xp.argmax(Y, axis=-2)
    return _weighted_mean(xp.astype(hit, O.dtype), s, xp=xp)


def subset_accuracy(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """Multi-label accuracy: the fraction of samples whose every label is right.

    A label is predicted present where its sigmoid output exceeds 0.5, as
    scikit-learn's ``accuracy_score`` judges multi-label predictions.

    Parameters
    ----------
    O, Y : arrays of shape (n_labels, N)
        The network output and the 0/1 targets, one column per sample.
    s : array of shape (N,), optional
        Sample weights.
    """
    hit = xp.all((O > 0.5) == (Y > 0.5), axis=-2)
    return _weighted_mean(xp.astype(hit, O.dtype), s, xp=xp)


def r2_score(O: Array, Y: Array, s: Array | None = None, *, xp: Any) -> Array:
    """R² = 1 − Σ(y − o)² / Σ(y − ȳ)², averaged over the outputs: a 0-D array.

    A constant target (Σ(y − ȳ)² = 0) scores 1 when predicted exactly and 0 otherwise,
    as in scikit-learn.  With sample weights, both sums and the mean ȳ are weighted.

    Parameters
    ----------
    O, Y : arrays of shape (n_outputs, N)
        The network output and the targets, one column per sample.
    s : array of shape (N,), optional
        Sample weights.
    """
    w = None if s is None else s[..., None, :]  # each sample's weight, for every output
    y_bar = _weighted_mean(Y, w, xp=xp)[..., None]
    w = 1.0 if w is None else w
    ss_res = xp.sum(w * (Y - O) ** 2, axis=-1)
    ss_tot = xp.sum(w * (Y - y_bar) ** 2, axis=-1)
    varies = ss_tot > 0
    safe = xp.where(varies, ss_tot, xp.ones_like(ss_tot))
    r2 = xp.where(varies, 1.0 - ss_res / safe, xp.astype(ss_res == 0, O.dtype))
    return xp.mean(r2, axis=-1)
