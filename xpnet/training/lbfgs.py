"""L-BFGS: the full-batch E_total minimised by a limited-memory quasi-Newton method.

Where gradient descent steps by −μ∇E, L-BFGS steps along d = −H∇E, with H an estimate of
the inverse Hessian built from the last m moves of the parameters and of the gradient,

    sₖ = P⁽ᵏ⁺¹⁾ − P⁽ᵏ⁾,    yₖ = ∇E(P⁽ᵏ⁺¹⁾) − ∇E(P⁽ᵏ⁾),

and a step length α along d chosen by a line search that meets the strong Wolfe
conditions (Nocedal & Wright, *Numerical Optimization*, 2nd ed., Algorithms 7.4, 3.5
and 3.6).  The objective is E_total of the whole training set, with its sample weights
and L2 penalty, exactly as the engine computes it for a full-batch step
(``engine.loss_and_gradients``): on Dask each evaluation is one task graph over the
blocks.

P, ∇E, d, s and y are flat lists of arrays (``[*W, *b]``), kept where the engine computes
them; only scalars come to the host: one read per evaluation (E, the slope ∇E·d and the
gradient's largest component) and one per iteration (the new direction's slope).  The
scalars of the two-loop recursion stay on the device.

The stopping rules are those of scipy's ``L-BFGS-B`` (scikit-learn's ``solver="lbfgs"``
calls it with ``gtol=tol``, ``maxiter=max_iter``, ``maxfun=max_fun``), checked after each
iteration in scipy's order: ``max_iter`` iterations; more than ``max_fun`` evaluations
(the line search under way is finished first); the gradient's largest component at most
``tol``; the relative reduction (E⁽ᵏ⁾ − E⁽ᵏ⁺¹⁾) / max(|E⁽ᵏ⁾|, |E⁽ᵏ⁺¹⁾|, 1) at most ``ftol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._host import to_numpy
from ..core.step import Samples
from .engine import Engine

Array = Any

#: The pairs (s, y) kept: scipy's default ``maxcor``.
HISTORY = 10
#: Evaluations one line search may take: scipy's default ``maxls``.
MAX_LINE_SEARCH = 20
#: The relative reduction of E below which the fit has converged: scipy's default ``ftol``
#: (its ``factr`` of 1e7 times float64's machine epsilon).
FTOL = 1e7 * 2.220446049250313e-16
#: The sufficient-decrease and curvature constants of the Wolfe conditions, those of
#: scipy's L-BFGS-B line search (Moré and Thuente's ``ftol`` and ``gtol``).
C1, C2 = 1e-3, 0.9
#: Differences of E within this many machine epsilons of E are taken for rounding by the
#: line search (well above the rounding of a sum over many samples, and in float64 well
#: below the relative reduction ``FTOL`` that ends a fit).
ROUNDING = 100
#: The largest step length the line search tries (scipy's ``stpmx``).
MAX_STEP = 1e10

#: Why a fit ended: the first three are convergence, the next two ``max_iter``/``max_fun``.
STATUS = {
    "gtol": "the gradient's largest component is at most tol",
    "ftol": "the relative reduction of the loss is at most ftol",
    "no_descent": "no step along the steepest descent lowers the loss any further",
    "max_iter": "max_iter iterations reached",
    "max_fun": "more than max_fun evaluations of the loss",
}


class Point(NamedTuple):
    """An evaluated point P + α d.

    Attributes
    ----------
    alpha : float
        The step length α along the search direction d.
    P, G : lists of arrays
        The parameters ``[*W, *b]`` and the gradient ∇E_total there.
    E : float
        E_total at P, on the host.
    slope : float
        φ'(α) = ∇E(P)·d, the derivative of φ(α) = E(P⁽ᵏ⁾ + α d).
    g_max : float
        maxᵢ |∇E(P)ᵢ|, for the ``tol`` test.
    """

    alpha: float
    P: list[Array]
    E: float
    G: list[Array]
    slope: float
    g_max: float


class Minimum(NamedTuple):
    """What :func:`minimize` returns.

    Attributes
    ----------
    W, b : lists of L arrays
        The parameters at the last iteration.
    losses : list of float
        E_total after each iteration.
    n_fun : int
        Evaluations of E_total and its gradient, the first one included.
    status : str
        Why it stopped: a key of :data:`STATUS`.
    g_max : float
        maxᵢ |∇E(P)ᵢ| at the last iteration.
    """

    W: list[Array]
    b: list[Array]
    losses: list[float]
    n_fun: int
    status: str
    g_max: float


def minimize(
    W: Sequence[Array],
    b: Sequence[Array],
    data: Samples,
    *,
    engine: Engine,
    max_iter: int,
    max_fun: int,
    tol: float,
    ftol: float = FTOL,
    m: int = HISTORY,
    on_iteration: Callable[[list[Array], list[Array], float], None] | None = None,
) -> Minimum:
    """Minimise E_total over all of ``data`` by L-BFGS, from (W, b).

    Each iteration k::

        dₖ = −Hₖ ∇E(Pₖ)                 two-loop recursion over the last m pairs (s, y)
        αₖ: strong Wolfe along dₖ       φ(α) ≤ φ(0) + c₁ α φ'(0),  |φ'(α)| ≤ c₂ |φ'(0)|
        Pₖ₊₁ = Pₖ + αₖ dₖ
        sₖ = αₖ dₖ,  yₖ = ∇E(Pₖ₊₁) − ∇E(Pₖ)   kept when sₖ·yₖ > ε (−αₖ ∇E(Pₖ)·dₖ)

    H₀ = γ I with γ = s·y / y·y of the newest pair (I and a first step of unit length
    when there is none).  A line search that finds no lower E (rounding, or a direction
    that has lost its way) restarts from the steepest descent with the pairs dropped;
    one that fails along the steepest descent too ends the fit (status "no_descent").

    Parameters
    ----------
    W, b : sequences of L arrays
        The starting parameters, as the engine computes on; never modified.
    data : Samples
        The training samples, made ready by the engine (``engine.open``).
    engine : Engine
        Computes E_total and its gradients (``engine.loss_and_gradients``).
    max_iter : int
        Iterations at most.
    max_fun : int
        Evaluations at most: no iteration starts once more were made.
    tol : float
        The fit has converged once every component of ∇E is at most ``tol`` in size.
    ftol : float, default :data:`FTOL`
        ... or once an iteration reduces E by at most ``ftol`` relative to E.
    m : int, default :data:`HISTORY`
        The number of pairs (s, y) kept.
    on_iteration : callable ``on_iteration(W, b, E)``, optional
        Called after each iteration with its parameters and E_total (a float).

    Returns
    -------
    Minimum

    Raises
    ------
    ValueError
        If E_total is not finite at the starting parameters.
    """
    xp, L = engine.xp, len(W)

    def evaluate(P: list[Array], d: list[Array] | None, alpha: float) -> Point:
        """E, ∇E and the slope ∇E·d at P (no slope without a direction d)."""
        E, grad_W, grad_b = engine.loss_and_gradients(P[:L], P[L:], data)
        G = [*grad_W, *grad_b]
        if d is None:
            (E, g_max), slope = _read(xp, E, _max_abs(G, xp=xp)), math.nan
        else:
            E, slope, g_max = _read(xp, E, _dot(G, d, xp=xp), _max_abs(G, xp=xp))
        return Point(alpha, P, E, G, slope, g_max)

    P = [*W, *b]
    here = evaluate(P, None, 0.0)
    if not math.isfinite(here.E):
        raise ValueError(
            f"The loss is {here.E} at the starting weights: scale X and y (for example to "
            "zero mean and unit variance), or start from finite, smaller weights."
        )
    n_fun, losses, pairs, status = 1, [], [], None
    if here.g_max <= tol:
        return Minimum(P[:L], P[L:], losses, n_fun, "gtol", here.g_max)
    while status is None:
        d = two_loop(here.G, pairs, xp=xp) if pairs else [-g for g in here.G]
        (slope,) = _read(xp, _dot(here.G, d, xp=xp))
        if not slope < 0.0:  # rounding has spoilt the direction, or ∇E vanished
            if pairs:
                pairs = []
                continue
            status = "no_descent"
            break
        # Without pairs, a first step of unit length along −∇E, as scipy's L-BFGS-B takes.
        alpha = 1.0 if pairs else 1.0 / math.sqrt(-slope)

        def phi(alpha: float, P: list[Array] = here.P, d: list[Array] = d) -> Point:
            return evaluate([p + alpha * d_i for p, d_i in zip(P, d, strict=True)], d, alpha)

        noise = ROUNDING * _eps(here.G[0], xp) * abs(here.E)
        found, n = strong_wolfe(phi, here._replace(slope=slope), alpha, noise=noise)
        n_fun += n
        if found is None:
            if pairs:  # retry along the steepest descent, as scipy's L-BFGS-B does
                pairs = []
                continue
            status = "no_descent"
            break
        # s·y = α (φ'(α) − φ'(0)): no dot product to take.  The pair is kept only where
        # it is positive beyond rounding, which keeps H positive definite (scipy's test).
        sy = found.alpha * (found.slope - slope)
        if m > 0 and sy > _eps(found.G[0], xp) * (-found.alpha * slope):
            s = [found.alpha * d_i for d_i in d]
            y = [g_new - g for g_new, g in zip(found.G, here.G, strict=True)]
            pairs = [*pairs, (s, y, 1.0 / sy, sy / _dot(y, y, xp=xp))][-m:]
        E_before, here = here.E, found._replace(alpha=0.0)
        losses.append(here.E)
        if on_iteration is not None:
            on_iteration(here.P[:L], here.P[L:], here.E)
        if len(losses) >= max_iter:
            status = "max_iter"
        elif n_fun > max_fun:
            status = "max_fun"
        elif here.g_max <= tol:
            status = "gtol"
        elif E_before - here.E <= ftol * max(abs(E_before), abs(here.E), 1.0):
            status = "ftol"
    return Minimum(here.P[:L], here.P[L:], losses, n_fun, status, here.g_max)


def two_loop(G: list[Array], pairs: list[tuple[Any, ...]], *, xp: Any) -> list[Array]:
    """The L-BFGS direction d = −H∇E by the two-loop recursion (Nocedal & Wright, Alg. 7.4)::

        q = ∇E
        for i = k−1, ..., k−m:   aᵢ = ρᵢ sᵢ·q,   q ← q − aᵢ yᵢ          ρᵢ = 1 / yᵢ·sᵢ
        r = γ q                                                        γ = sₖ₋₁·yₖ₋₁ / yₖ₋₁·yₖ₋₁
        for i = k−m, ..., k−1:   βᵢ = ρᵢ yᵢ·r,   r ← r + (aᵢ − βᵢ) sᵢ
        d = −r

    Parameters
    ----------
    G : list of arrays
        ∇E at the current parameters.
    pairs : list of (s, y, ρ, γ), oldest first
        s and y lists of arrays shaped like G; ρ a float; γ a 0-D array, the H₀ scale
        the pair gives when it is the newest.
    xp : array namespace

    Returns
    -------
    d : list of arrays, shaped like G
    """
    q, a = list(G), []
    for s, y, rho, _ in reversed(pairs):
        a_i = rho * _dot(s, q, xp=xp)  # a 0-D array: it stays on the device
        q = [q_j - a_i * y_j for q_j, y_j in zip(q, y, strict=True)]
        a.append(a_i)
    gamma = pairs[-1][3]
    r = [gamma * q_j for q_j in q]
    for (s, y, rho, _), a_i in zip(pairs, reversed(a), strict=True):
        beta = rho * _dot(y, r, xp=xp)
        r = [r_j + (a_i - beta) * s_j for r_j, s_j in zip(r, s, strict=True)]
    return [-r_j for r_j in r]


def strong_wolfe(
    phi: Callable[[float], Point],
    start: Point,
    alpha: float,
    *,
    c1: float = C1,
    c2: float = C2,
    max_evals: int = MAX_LINE_SEARCH,
    noise: float = 0.0,
) -> tuple[Point | None, int]:
    """A step length along d meeting the strong Wolfe conditions (Nocedal & Wright, Alg. 3.5)::

        φ(α) ≤ φ(0) + c₁ α φ'(0)        sufficient decrease
        |φ'(α)| ≤ c₂ |φ'(0)|            curvature

    with φ(α) = E(P + α d) and φ'(0) < 0.  Trial steps grow from ``alpha`` until one
    brackets an acceptable step, which :func:`_zoom` then narrows down.  Every evaluation
    gives φ and φ' together (a gradient is computed with each loss), so the trial steps
    are chosen by cubic interpolation.

    Near a minimum the differences of E sink into its rounding while its slopes stay
    accurate: there (differences within ``noise``) values are compared through the
    slopes, φ(a) − φ(b) ≈ (a − b)(φ'(a) + φ'(b))/2, exact for a quadratic.  The
    sufficient decrease then reads φ'(α) ≤ (2c₁ − 1) φ'(0), Hager and Zhang's
    approximate Wolfe condition (SIAM J. Optim. 16, 2005).

    Parameters
    ----------
    phi : callable ``phi(alpha) -> Point``
    start : Point
        α = 0: E and φ'(0) at the current parameters.
    alpha : float
        The first trial step.
    c1, c2 : float
    max_evals : int
        Evaluations at most.
    noise : float
        The rounding error of E: differences within it are not told apart by value.

    Returns
    -------
    point : Point or None
        The step found; failing the conditions within ``max_evals`` evaluations (or
        within rounding), the lowest E found that meets the sufficient decrease; None if
        none does.
    n : int
        The evaluations made.
    """
    g0 = start.slope

    def rise(p: Point, q: Point) -> float:
        """φ at p less φ at q: from the values, or within ``noise``, from the slopes."""
        difference = p.E - q.E
        if abs(difference) > noise or noise == 0.0:  # NaN goes on to NaN slopes
            return difference
        return (p.alpha - q.alpha) * (p.slope + q.slope) / 2.0

    def decreases(p: Point) -> bool:
        return math.isfinite(p.E) and rise(p, start) <= c1 * p.alpha * g0

    def zoom(lo: Point, hi: Point) -> tuple[Point | None, int]:
        return _zoom(phi, start, lo, hi, decreases, rise, c2=c2, n=n, max_evals=max_evals)

    previous, n = start, 0
    while n < max_evals:
        trial = phi(alpha)
        n += 1
        if not decreases(trial) or (previous is not start and not rise(trial, previous) < 0.0):
            return zoom(previous, trial)
        if abs(trial.slope) <= -c2 * g0:
            return trial, n
        if trial.slope >= 0.0:
            return zoom(trial, previous)
        # Still descending steeply: extrapolate, between 1.1 and 4 times the last step.
        low, high = trial.alpha + 1.1 * (trial.alpha - previous.alpha), 4.0 * trial.alpha
        guess = _cubic_minimizer(previous, trial)
        alpha = min(max(low, guess if math.isfinite(guess) else high), high, MAX_STEP)
        previous = trial
        if alpha <= trial.alpha:  # at MAX_STEP already
            break
    return (None if previous is start else previous), n


def _zoom(
    phi: Callable[[float], Point], start: Point, lo: Point, hi: Point,
    decreases: Callable[[Point], bool], rise: Callable[[Point, Point], float], *,
    c2: float, n: int, max_evals: int,
) -> tuple[Point | None, int]:  # fmt: skip
    """Narrow the interval between ``lo`` and ``hi`` down to a strong Wolfe step (N&W Alg. 3.6).

    ``lo`` is the step with the lowest E that meets the sufficient decrease so far (α = 0
    at first); the interval holds a step meeting both conditions.  Trial steps minimise
    the cubic through φ and φ' at both ends, kept a tenth of the interval away from them.
    """
    g0 = start.slope
    while n < max_evals:
        width = hi.alpha - lo.alpha
        if abs(width) <= _XTOL * max(lo.alpha, hi.alpha):
            break  # the interval is down to rounding: nothing new to learn in it
        guess = _cubic_minimizer(lo, hi)
        near, far = lo.alpha + 0.1 * width, hi.alpha - 0.1 * width
        low, high = min(near, far), max(near, far)
        alpha = min(max(guess, low), high) if math.isfinite(guess) else lo.alpha + 0.5 * width
        trial = phi(alpha)
        n += 1
        if not decreases(trial) or not rise(trial, lo) < 0.0:
            hi = trial
            continue
        if abs(trial.slope) <= -c2 * g0:
            return trial, n
        if trial.slope * width >= 0.0:
            hi = lo
        lo = trial
    return (None if lo is start else lo), n


#: The interval of :func:`_zoom` is given up once it is this narrow, relative to α.
_XTOL = 1e-8


def _cubic_minimizer(a: Point, b: Point) -> float:
    """The minimiser of the cubic through φ and φ' at steps a and b (N&W eq. 3.59);
    NaN where that cubic has none."""
    if a.alpha == b.alpha:
        return math.nan
    d1 = a.slope + b.slope - 3.0 * (a.E - b.E) / (a.alpha - b.alpha)
    radicand = d1 * d1 - a.slope * b.slope
    if not radicand >= 0.0:  # also NaN
        return math.nan
    d2 = math.copysign(math.sqrt(radicand), b.alpha - a.alpha)
    denominator = b.slope - a.slope + 2.0 * d2
    if denominator == 0.0:
        return math.nan
    return b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / denominator


def _dot(u: list[Array], v: list[Array], *, xp: Any) -> Array:
    """u·v over flat lists of arrays, as a 0-D array on their device."""
    total = None
    for u_i, v_i in zip(u, v, strict=True):
        term = xp.reshape(u_i, (-1,)) @ xp.reshape(v_i, (-1,))
        total = term if total is None else total + term
    return total


def _max_abs(G: list[Array], *, xp: Any) -> Array:
    """maxᵢ |Gᵢ| over a flat list of arrays, as a 0-D array on their device."""
    return xp.max(xp.stack([xp.max(xp.abs(g)) for g in G]))


def _read(xp: Any, *scalars: Array) -> list[float]:
    """0-D arrays (or host numbers) as Python floats, in one transfer from the device."""
    return [float(v) for v in to_numpy(xp.stack([xp.asarray(v) for v in scalars]))]


def _eps(like: Array, xp: Any) -> float:
    """The machine epsilon of the parameters' dtype."""
    return float(xp.finfo(like.dtype).eps)
