"""Initial parameters, drawn on the host so that every backend starts from the same weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def glorot_uniform(
    layer_sizes: Sequence[int], activations: Sequence[str], rng: Any
) -> tuple[list[Any], list[Any]]:
    """Draw W⁽ˡ⁾ and b⁽ˡ⁾ uniformly from [−r, r] with r = √(k / (n_{l−1} + n_l)).

    k = 6 is Glorot and Bengio's choice for tanh-like units; k = 2 for the sigmoid,
    whose slope at 0 is a quarter of tanh's (the convention scikit-learn uses too).

    Parameters
    ----------
    layer_sizes : sequence of L + 1 ints
        n_0 (inputs), n_1, ..., n_L (outputs).
    activations : sequence of L str
        The activation of each layer 1..L.
    rng : numpy.random.Generator
        The only source of randomness, on the host (so that every backend starts from
        the same weights); layer by layer, W then b.

    Returns
    -------
    W : list of L float64 arrays, ``W[l]`` of shape (n_{l+1}, n_l)
    b : list of L float64 arrays, ``b[l]`` of shape (n_{l+1},)
    """
    W, b = [], []
    for n_in, n_out, name in zip(layer_sizes[:-1], layer_sizes[1:], activations, strict=True):
        r = math.sqrt((2.0 if name == "sigmoid" else 6.0) / (n_in + n_out))
        W.append(rng.uniform(-r, r, size=(n_out, n_in)))
        b.append(rng.uniform(-r, r, size=n_out))
    return W, b
