#!/usr/bin/env python
"""Where the time of one full-batch epoch goes: the stages of xpnet's step, timed alone.

``bench.py`` says how far an epoch is from its floor; this script says which part of the
step the gap is in.  Each stage runs k times in a loop; two times are printed per call:

* ``issue``: until the loop returns, before waiting for the device — the host's cost of
  dispatching the work (Python, the array library, kernel launches);
* ``done``: until the device has finished as well.

On the CPU the two are equal.  On a GPU, ``done`` ≈ ``issue`` means the host is the
bottleneck (launch-bound: fewer, larger operations would help); ``done`` ≫ ``issue``
means the device is, and the per-stage differences show which kernels cost.

Examples::

    python scripts/profile_epoch.py                         # NumPy, S and M, float32
    python scripts/profile_epoch.py --backend cupy --dtype float64
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_impls import PROBLEMS, make_data, synchronize, to_lib

import xpnet
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.backprop import backward, forward, loss_and_gradients
from xpnet.core.losses import OBJECTIVES
from xpnet.core.optimizers import apply_updates, gradient_descent


def stages(X: Any, Y: Any, problem: Any, dtype: str, lib: str) -> dict[str, Any]:
    """Closures, one per stage, each doing that stage once on (X, Y)."""
    import array_api_compat as aac

    xp = aac.array_namespace(X)
    rng = np.random.default_rng(0)
    sizes = [X.shape[1], *problem.hidden, Y.shape[1]]
    W = [
        to_lib((rng.standard_normal((m, n)) / np.sqrt(n)).astype(dtype), lib)
        for n, m in itertools.pairwise(sizes)
    ]
    b = [to_lib(np.zeros(m, dtype=dtype), lib) for m in sizes[1:]]
    f = [ACTIVATIONS["sigmoid"]] * len(problem.hidden) + [ACTIVATIONS["identity"]]
    objective = OBJECTIVES[("mse", "identity")]
    A0, YT = X.T, xp.asarray(Y.T, copy=True)
    Z1 = W[0] @ A0
    H = lambda: xp.asarray(Z1, copy=True)  # noqa: E731  a fresh hidden-sized array

    def fwd() -> Any:
        return forward(W, b, A0, f=f, xp=xp)

    def fwd_loss_delta() -> Any:
        A = fwd()
        return objective.loss_sum(YT, A[-1], xp=xp), objective.output_delta(YT, A[-1], xp=xp)

    def fwd_bwd() -> Any:
        A = fwd()
        D_L = objective.output_delta(YT, A[-1], xp=xp)
        return backward(W, A, D_L, f=f, xp=xp)

    def grads() -> Any:
        return loss_and_gradients(W, b, A0, YT, f=f, objective=objective, xp=xp)

    sgd = gradient_descent()
    state = sgd.init(W + b, xp=xp)

    def step() -> Any:
        _, gW, gb = grads()
        U, _ = sgd.update(gW + gb, state, mu=0.01, xp=xp)
        return apply_updates(W + b, U)

    def floor() -> Any:
        A = A0
        out = []
        for W_l in W:
            out.append(W_l @ A)
            A = out[-1]
        D = out[-1]
        for l in reversed(range(len(W))):
            out.append(D @ (A0 if l == 0 else out[l - 1]).T)
            if l > 0:
                D = W[l].T @ D
        return out

    return {
        "floor (matmuls only)": floor,
        "matmul W1·A0": lambda: W[0] @ A0,
        "copy of Z1 (one pass)": H,
        "sigmoid(Z1)": lambda: f[0].f(H(), xp=xp),
        "sum(Z1, axis=1)": lambda: xp.sum(Z1, axis=1),
        "D ⊙ f'(A) on Z1": lambda: f[0].times_f_prime(H(), Z1, xp=xp),
        "forward": fwd,
        "forward + loss + Δᴸ": fwd_loss_delta,
        "forward + backward": fwd_bwd,
        "loss_and_gradients": grads,
        "+ gradient step": step,
    }


def time_stage(fn: Any, lib: str, target_s: float) -> tuple[float, float, int]:
    """(issue s, done s, k) per call, from a loop of k calls lasting about ``target_s``."""
    fn()
    synchronize(lib)
    k = 1
    while True:
        start = time.perf_counter()
        for _ in range(k):
            fn()
        issued = time.perf_counter()
        synchronize(lib)
        done = time.perf_counter()
        if done - start > target_s or k >= 1 << 16:
            return (issued - start) / k, (done - start) / k, k
        k *= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch", "cupy"))
    parser.add_argument("--problems", default="S,M")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--target-seconds", type=float, default=0.2)
    args = parser.parse_args()
    lib = {"numpy": "numpy", "torch": "torch-cuda", "cupy": "cupy"}[args.backend]
    if args.backend == "torch":
        import torch

        lib = "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
    for name in args.problems.split(","):
        problem = PROBLEMS[name]
        X_h, Y_h, _ = make_data(problem, args.dtype)
        X, Y = to_lib(X_h, lib), to_lib(Y_h, lib)
        print(f"\n{name} {args.dtype} on {lib}: N {problem.N}, hidden {problem.hidden}")
        print(f"{'stage':<26} {'issue ms':>9} {'done ms':>9} {'k':>6}")
        for label, fn in stages(X, Y, problem, args.dtype, lib).items():
            issue, done, k = time_stage(fn, lib, args.target_seconds)
            print(f"{label:<26} {issue * 1e3:9.3f} {done * 1e3:9.3f} {k:6d}")

        def fit(k: int, X: Any = X, Y: Any = Y, problem: Any = problem) -> None:
            xpnet.MLPRegressor(
                hidden_layer_sizes=problem.hidden,
                solver="sgd",
                activation="sigmoid",
                n_iter_no_change=float("inf"),
                learning_rate=problem.learning_rate,
                max_iter=k,
                random_state=0,
            ).fit(X, Y)

        for k in (1, 16, 64):
            start = time.perf_counter()
            fit(k)
            synchronize(lib)
            print(f"fit(max_iter={k:<3})               {'':>9} "
                  f"{(time.perf_counter() - start) * 1e3 / k:9.3f} per epoch")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
