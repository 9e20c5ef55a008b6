"""The core against independent oracles: finite differences, PyTorch's autograd, a step by hand."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from conftest import assert_close

import xpnet
from xpnet.core.activations import HIDDEN_ACTIVATIONS
from xpnet.core.losses import OBJECTIVES

# Every (loss, output activation) pair xpnet defines, crossed with every hidden activation.
PAIRS = sorted(OBJECTIVES)
CASES = [(hidden, loss, out) for hidden in HIDDEN_ACTIVATIONS for loss, out in PAIRS]

# The seed's method: full-batch gradient descent with sigmoid hidden units (not the defaults).
SEED = dict(solver="sgd", activation="sigmoid")


def _problem(loss: str, out: str, seed: int = 0):
    """A small network 3 → 4 → 3 → n_out on 6 samples, with targets the loss accepts."""
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 3, 2]
    X = rng.normal(size=(6, sizes[0]))
    if loss == "cross_entropy" and out == "softmax":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=6)]
    elif loss == "poisson":
        Y = rng.poisson(1.5, size=(6, sizes[-1])).astype(float)  # counts, zeros among them
    elif loss == "cross_entropy" or out == "sigmoid":
        Y = rng.uniform(0.1, 0.9, size=(6, sizes[-1]))
    else:
        Y = rng.normal(size=(6, sizes[-1]))
    # An exp output grows fast: Poisson's layers get smaller weights, outputs of 0.1 to 10.
    scale = 0.4 if loss == "poisson" else 0.8
    W = [rng.normal(scale=scale, size=(n, m)) for m, n in pairwise(sizes)]
    b = [rng.normal(scale=0.5, size=n) for n in sizes[1:]]
    return X, Y, W, b


def _reference_loss(X, Y, W, b, hidden: str, loss: str, out: str) -> float:
    """E_total written out in plain NumPy, rows as samples: independent of xpnet's code."""
    f = {
        "identity": lambda z: z,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0),
        "softmax": lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
        "exp": np.exp,
    }
    a = X
    for l, (W_l, b_l) in enumerate(zip(W, b, strict=True)):
        a = f[out if l == len(W) - 1 else hidden](a @ W_l.T + b_l)
    if loss == "mse":
        return 0.5 * np.sum((Y - a) ** 2) / len(X)
    if loss == "poisson":  # half the deviance, with y log(y/o) = 0 at y = 0
        return np.sum(np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / a), 0) - Y + a) / len(X)
    if out == "softmax":
        return -np.sum(Y * np.log(a)) / len(X)
    return -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)) / len(X)


def _estimator(hidden: str, loss: str, out: str, W, b, X, Y, backend):
    """A regressor holding the parameters W, b, as arrays of ``backend``."""
    est = xpnet.MLPRegressor(
        hidden_layer_sizes=tuple(w.shape[0] for w in W[:-1]),
        activation=hidden,
        output_activation=out,
        loss=loss,
        max_iter=1,
        random_state=0,
    )
    est.fit(backend.asarray(X), backend.asarray(Y))  # fixes the layer sizes
    est.weights_ = [backend.asarray(w) for w in W]
    est.biases_ = [backend.asarray(c) for c in b]
    return est


@pytest.mark.parametrize(("hidden", "loss", "out"), CASES)
def test_gradients_match_central_differences(backend, hidden, loss, out):
    X, Y, W, b = _problem(loss, out)
    est = _estimator(hidden, loss, out, W, b, X, Y, backend)
    grad_W, grad_b = est.gradients(backend.asarray(X), backend.asarray(Y))

    h = 1e-6
    for params, grads in ((W, grad_W), (b, grad_b)):
        for P, G in zip(params, grads, strict=True):
            expected = np.empty_like(P)
            for i in np.ndindex(P.shape):
                P_i = P[i]
                P[i] = P_i + h
                E_plus = _reference_loss(X, Y, W, b, hidden, loss, out)
                P[i] = P_i - h
                E_minus = _reference_loss(X, Y, W, b, hidden, loss, out)
                P[i] = P_i
                expected[i] = (E_plus - E_minus) / (2 * h)
            assert_close(G, expected, backend, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("hidden", "loss", "out"), CASES)
def test_gradients_match_torch_autograd(backend, hidden, loss, out):
    torch = pytest.importorskip("torch", reason="PyTorch is the autograd oracle")
    X, Y, W, b = _problem(loss, out, seed=1)
    est = _estimator(hidden, loss, out, W, b, X, Y, backend)
    grad_W, grad_b = est.gradients(backend.asarray(X), backend.asarray(Y))

    f = {
        "identity": lambda z: z,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softmax": lambda z: torch.softmax(z, dim=1),
        "exp": torch.exp,
    }
    Wt = [torch.tensor(w, requires_grad=True) for w in W]
    bt = [torch.tensor(c, requires_grad=True) for c in b]
    a = torch.tensor(X)
    for l, (W_l, b_l) in enumerate(zip(Wt, bt, strict=True)):
        a = f[out if l == len(W) - 1 else hidden](a @ W_l.T + b_l)
    Yt = torch.tensor(Y)
    if loss == "mse":
        E = 0.5 * torch.sum((Yt - a) ** 2) / len(X)
    elif loss == "poisson":  # the negative log-likelihood: the deviance less terms in y
        E = torch.nn.functional.poisson_nll_loss(a, Yt, log_input=False, eps=0.0, reduction="sum")
        E = E / len(X)
    elif out == "softmax":
        E = torch.nn.functional.cross_entropy(torch.log(a), Yt.argmax(dim=1))
    else:
        E = torch.nn.functional.binary_cross_entropy(a, Yt, reduction="sum") / len(X)
    E.backward()
    for G, P in zip(grad_W + grad_b, Wt + bt, strict=True):
        assert_close(G, P.grad.numpy(), backend, rtol=1e-10, atol=1e-14)


def test_one_step_of_the_seeds_network_by_hand():
    """The seed's network, 2 inputs → 3 sigmoid → 2 sigmoid, one sample, one step of μ.

    Every number is computed from the seed's scalar equations, neuron by neuron.
    """
    x, y = [0.5, -1.0], [0.2, 0.9]
    w2 = [[0.1, 0.4], [-0.3, 0.2], [0.25, -0.5]]  # w_ij⁽²⁾
    b2 = [0.1, -0.2, 0.05]
    w3 = [[0.3, -0.1, 0.2], [-0.4, 0.5, 0.1]]  # w_ij⁽³⁾
    b3 = [0.0, 0.1]
    mu = 0.5

    def sig(z):
        return 1 / (1 + math.exp(-z))

    a2 = [sig(sum(w2[i][j] * x[j] for j in range(2)) + b2[i]) for i in range(3)]
    a3 = [sig(sum(w3[i][j] * a2[j] for j in range(3)) + b3[i]) for i in range(2)]
    # δ⁽³⁾ᵢ = −(yᵢ − aᵢ⁽³⁾) f'(zᵢ⁽³⁾),  f'(z) = a(1 − a)
    d3 = [-(y[i] - a3[i]) * a3[i] * (1 - a3[i]) for i in range(2)]
    # δ⁽²⁾ᵢ = (Σⱼ δⱼ⁽³⁾ wⱼᵢ⁽³⁾) f'(zᵢ⁽²⁾)
    d2 = [sum(d3[j] * w3[j][i] for j in range(2)) * a2[i] * (1 - a2[i]) for i in range(3)]
    # ∂E/∂wᵢⱼ⁽ˡ⁾ = δᵢ⁽ˡ⁾ aⱼ⁽ˡ⁻¹⁾,  ∂E/∂bᵢ⁽ˡ⁾ = δᵢ⁽ˡ⁾;  w ← w − μ ∂E/∂w
    new_w3 = [[w3[i][j] - mu * d3[i] * a2[j] for j in range(3)] for i in range(2)]
    new_b3 = [b3[i] - mu * d3[i] for i in range(2)]
    new_w2 = [[w2[i][j] - mu * d2[i] * x[j] for j in range(2)] for i in range(3)]
    new_b2 = [b2[i] - mu * d2[i] for i in range(3)]
    E = 0.5 * sum((y[i] - a3[i]) ** 2 for i in range(2))

    est = xpnet.MLPRegressor(
        hidden_layer_sizes=(3,), output_activation="sigmoid", learning_rate=mu, max_iter=1, **SEED
    )
    est.weights_ = [np.array(w2), np.array(w3)]
    est.biases_ = [np.array(b2), np.array(b3)]
    est.partial_fit(np.array([x]), np.array([y]))

    np.testing.assert_allclose(est.weights_[0], new_w2, rtol=1e-14)
    np.testing.assert_allclose(est.biases_[0], new_b2, rtol=1e-14)
    np.testing.assert_allclose(est.weights_[1], new_w3, rtol=1e-14)
    np.testing.assert_allclose(est.biases_[1], new_b3, rtol=1e-14)
    assert est.loss_curve_ == [pytest.approx(E, rel=1e-14)]
    assert est.n_iter_ == 1


@pytest.mark.parametrize(("hidden", "loss", "out"), CASES)
def test_loss_decreases_under_a_small_step(backend, hidden, loss, out):
    X, Y, W, b = _problem(loss, out, seed=2)
    est = _estimator(hidden, loss, out, W, b, X, Y, backend)
    est.set_params(learning_rate=1e-3, max_iter=15, warm_start=True)
    est.fit(backend.asarray(X), backend.asarray(Y))
    curve = est.loss_curve_[-15:]  # warm_start appends to the first fit's curve
    assert all(np.diff(curve) < 0), curve
