"""Training a stack: K networks of the same layer sizes as one computation, each its own fit.

Each network of the stack (a :class:`Member`) trains on its own rows of the shared
samples (a fold of cross-validation), in its own order (its own generator), with its own
step size and penalty, and stops by its own rules: everything its separate fit would
decide is decided for it alone, on the host, as :func:`xpnet.training.loop.run_epochs`
decides it for one network.  The engine runs the epochs of every network still
training together (``xpnet.core.stacks``), and the values of a block of epochs are read
back at once, for all of them.

At each read-back, a network whose loss diverged is set aside with its error, one
that a stopping rule ended or that reached ``n_epochs`` is set aside with its
:class:`~xpnet.training.loop.History`, and the stack is cut down to the others: a
network that stopped costs nothing afterwards, and none of them changes another's
arithmetic (a diverging network's NaN stays in its own slice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np  # host-side: each network's orders, step sizes and batch plans

from .._host import to_numpy
from ..core.optimizers import Optimizer, OptimizerState, stacked
from ..core.stacks import StackBatch, StackValidation, gather
from ..core.step import Samples
from .engine import Engine, Kept
from .loop import READBACK_EVERY, History, Record
from .samples import sample_order
from .schedules import NoImprovement, Schedule, apply_stopping_rules

Array = Any


class Member(NamedTuple):
    """One network of a stack, as its separate fit would start.

    Attributes
    ----------
    rows : numpy.ndarray of int, shape (N_k,)
        Its training samples, as rows of the shared samples, in the order its separate
        fit would hold them.
    W, b : lists of L arrays
        Its starting parameters (host arrays, as drawn).
    schedule : Schedule
        Its learning-rate schedule (its own μ).
    rng : numpy.random.Generator
        Its own generator, which orders its mini-batches as its separate fit's would.
    alpha : float
        Its L2 penalty.
    optimizer : Optimizer
        Its update rule: every member's is of one kind (``name``), with its own
        constants (momentum, Adam's β₁, β₂ and ε).
    validation : numpy.ndarray of int, or None
        With early stopping, the rows it holds out (its split, drawn as its separate
        fit draws it); it stops by scikit-learn's rule on them, with its schedule's
        ``tol`` and ``n_iter_no_change``, and keeps its best epoch's parameters.
    """

    rows: np.ndarray
    W: list[Any]
    b: list[Any]
    schedule: Schedule
    rng: np.random.Generator
    alpha: float
    optimizer: Optimizer
    validation: np.ndarray | None = None


class Outcome(NamedTuple):
    """How a network of a stack ended: its history, or the error that ended it."""

    history: History | None
    error: Exception | None = None


#: ``report(epochs, training, stopped, failed)``: after each read-back of a stack, the
#: epochs trained and how many networks are still training, have stopped or failed.
Report = Callable[[int, int, int, int], None]


def run_stack(
    members: Sequence[Member],
    data: Samples,
    *,
    n_epochs: int,
    engine: Engine,
    batch_size: int | None,
    shuffle: bool,
    score: Callable[..., Array] | None = None,
    report: Report | None = None,
    shared_order: np.random.Generator | None = None,
) -> list[Outcome]:
    """Train the members for up to ``n_epochs`` epochs each, as one stack.

    Parameters
    ----------
    members : sequence of K Member
    data : Samples
        The shared samples, made ready by the engine: X of shape (N, n_0), Y of shape
        (n_L, N), and their weights (``s_host``) if any.
    engine : Engine
        Runs the stack's blocks of epochs (``run_stack_block``).
    batch_size : int or None
        Samples per step; None, or at least every member's number of samples, takes
        them all: one step per epoch.  (A stack is all full-batch or all mini-batch.)
    shuffle : bool
        Whether mini-batches are drawn in each member's own random order.
    score : callable, optional
        With early stopping (members with ``validation``), the validation score
        (``xpnet.core.scores``).
    report : callable, optional
        Progress after each read-back (see ``Report``).
    shared_order : numpy.random.Generator, optional
        One generator for every member's mini-batch order, where all of them train on
        the same rows: each epoch's order is drawn once, from it, and each step's batch
        gathered once for the whole stack.  The members then no longer equal their
        separate fits (whose orders are their own); their generators are left as they
        came.  None (the default): each member draws its own order.

    Returns
    -------
    list of K Outcome
        In the members' order: each one's :class:`~xpnet.training.loop.History` (as
        :func:`~xpnet.training.loop.run_epochs` returns it for its separate fit), or
        the ValueError its divergence raised.
    """
    xp, device, dtype = engine.xp, engine.device, data.X.dtype
    K = len(members)
    N_k = np.array([len(m.rows) for m in members])
    mini = batch_size is not None and bool(np.all(batch_size < N_k))
    if shared_order is not None and any(
        not np.array_equal(m.rows, members[0].rows) for m in members
    ):
        raise ValueError(
            "shared_order needs every network of the stack to train on the same samples "
            "(with early stopping, each holds out its own)."
        )
    plan = _Planner(members, data.s_host, batch_size if mini else None, shuffle, xp, device, dtype,
                    shared_order)  # fmt: skip

    def update_rule(live: list[int]) -> Optimizer:
        """The stack's update rule, with the constants of the members in ``live``."""
        return stacked([members[j].optimizer for j in live], xp=xp, device=device, dtype=dtype)

    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]

    def on_device(arrays: list[np.ndarray]) -> Array:
        """The members' host arrays as one array on the device, in X's dtype."""
        return xp.asarray(np.stack(arrays), dtype=dtype, device=device)

    W = [on_device([m.W[l] for m in members]) for l in range(len(members[0].W))]
    b = [on_device([m.b[l] for m in members]) for l in range(len(members[0].b))]
    alphas = np.array([m.alpha for m in members])
    optimizer = update_rule(list(range(K)))
    state = optimizer.init([*W, *b], xp=xp)
    t = np.zeros(K, dtype=np.int64)  # each member's steps: its optimizer's step count
    scheds = [m.schedule.start() for m in members]
    validating = members[0].validation is not None
    records = [Record(validating, xp=xp) for _ in members]
    outcomes: list[Outcome | None] = [None] * K
    live = list(range(K))  # the members still training, in the stack's order
    # An engine whose samples stay where they are (Dask's, in their blocks) gathers none.
    gathers = engine.gathers_rows
    full = None if mini else plan.full_batch(live, index=index, X=data.X, Y=data.Y,
                                             gathers=gathers)  # fmt: skip
    validation, kept, patience = None, None, []
    if validating:  # each member's held-out rows, its best epoch so far, and its count
        validation = plan.validation(live, index=index, X=data.X, Y=data.Y, score=score)
        kept = Kept(W, b, xp.full((K,), -math.inf, dtype=dtype, device=device))
        patience = [NoImprovement(m.schedule.tol, m.schedule.n_iter_no_change) for m in members]

    done = 0
    while live and done < n_epochs:
        k = min(READBACK_EVERY, n_epochs - done)
        how_alpha = 0.0
        if alphas[live].any():  # one penalty per member, or none at all
            how_alpha = xp.asarray(alphas[live], dtype=dtype, device=device)
        epochs, mus = [], []
        for _ in range(k):
            mu = [members[j].schedule.mu(scheds[j]) for j in live]
            mus.append(mu)
            for j in live:
                scheds[j] = members[j].schedule.epoch_end(scheds[j], int(N_k[j]))
            if mini:
                epochs.append(plan.epoch(live, mu, t, X=data.X, Y=data.Y, index=index))
            else:
                epochs.append([plan.step_of(full, live, mu, t)])
        W, b, state, E, kept, V = engine.run_stack_block(
            W, b, state, epochs, alpha=how_alpha, optimizer=optimizer, validation=validation,
            kept=kept,
        )  # fmt: skip
        done += k
        # One read-back for the whole stack: each epoch's losses, each member's squared
        # parameter norms (whose overflow is divergence too), and with early stopping
        # each epoch's validation losses and scores.
        norms = [xp.sum(p * p, axis=tuple(range(1, p.ndim))) for p in [*W, *b]]
        values = [xp.stack(E), xp.stack(norms)]
        if validating:
            V = xp.stack(V)  # (k, K, 2)
            values += [V[..., 0], V[..., 1]]
        host = to_numpy(xp.concat(values, axis=0))
        n_norms = len(norms)
        ending: list[int] = []
        for n, j in enumerate(live):
            record, mu_j = records[j], [mu[n] for mu in mus]
            try:
                losses = record.checked(list(map(float, host[:k, n])), first_epoch=done - k + 1,
                                        mu=mu_j)  # fmt: skip
                norms_j = host[k : k + n_norms, n]
                record.check_parameters(list(map(float, norms_j)), last_epoch=done, mu=mu_j)
            except ValueError as diverged:
                outcomes[j] = Outcome(None, diverged)
                ending.append(n)
                continue
            record.losses += losses
            scores = None
            if validating:
                start = k + n_norms
                record.validation_losses += list(map(float, host[start : start + k, n]))
                scores = list(map(float, host[start + k : start + 2 * k, n]))
                record.scores += scores
            rule = patience[j] if validating else None
            scheds[j], stop = apply_stopping_rules(
                members[j].schedule, scheds[j], rule, losses, scores
            )
            if stop or done == n_epochs:
                outcomes[j] = Outcome(
                    _history(record, n, W, b, state, int(t[j]), scheds[j], kept, rule, xp=xp)
                    ._replace(stopped=stop)
                )  # fmt: skip
                ending.append(n)
        if ending:
            staying = [n for n in range(len(live)) if n not in ending]
            live = [live[n] for n in staying]
            if live:
                keep = xp.asarray(np.array(staying), dtype=index, device=device)
                W, b = ([xp.take(p, keep, axis=0) for p in group] for group in (W, b))
                optimizer = update_rule(live)
                state = OptimizerState(
                    state.t, tuple([xp.take(m, keep, axis=0) for m in g] for g in state.moments)
                )
                # Gathered again, as at the start (the same layout, the same bits).
                if full is not None:
                    full = plan.full_batch(live, index=index, X=data.X, Y=data.Y,
                                           gathers=gathers)  # fmt: skip
                if validating:
                    validation = plan.validation(live, index=index, X=data.X, Y=data.Y,
                                                 score=score)  # fmt: skip
                    kept = Kept(*([xp.take(p, keep, axis=0) for p in group]
                                  for group in (kept.W, kept.b)),
                                xp.take(kept.score, keep, axis=0))  # fmt: skip
        if report is not None:
            failed = sum(o is not None and o.error is not None for o in outcomes)
            report(done, len(live), K - len(live) - failed, failed)
    return outcomes  # type: ignore[return-value]


def _history(
    record: Record, n: int, W: list[Array], b: list[Array], state: OptimizerState, t: int,
    sched: Any, kept: Kept | None, patience: NoImprovement | None, *, xp: Any,
) -> History:  # fmt: skip
    """The history of the stack's network ``n`` as its own fit's: its parameters (with
    early stopping, its best epoch's, and its latest beside them), its optimizer state
    and its record."""

    def own(arrays: list[Array]) -> list[Array]:
        return [xp.asarray(p[n, ...], copy=True) for p in arrays]

    state_n = OptimizerState(t, tuple(own(group) for group in state.moments))
    if kept is None:
        return record.history(own(W), own(b), state_n, sched)
    return record.history(
        own(kept.W), own(kept.b), state_n, sched, latest=(own(W), own(b)),
        patience=(patience.count, patience.best),
    )  # fmt: skip


#: A full-batch stack gathers each member's rows (a fold's training rows) only while the
#: copies together take at most this many bytes; beyond, each member weighs all of X
#: (0 on the rows that are not its own).  A copy saves the products of the rows a member
#: does not train on: on digits, 16 networks on 5-fold training rows took 625 µs per
#: network and epoch gathered, 680 weighing all of X.  Copies of a large X (the
#: benchmark's M: 4 of them, 1.2 GB) cost more than they save.
GATHERED_BYTES = 64 << 20


class _Planner:
    """Each step's batches for the members still training, planned on the host.

    A member's steps, step sizes and batch weights are those of its separate fit
    (``xpnet.core.step.epoch``); this lays them side by side, padded to the stack's
    batch size, and sends each epoch's plan to the device in one transfer per array.
    """

    def __init__(self, members, s_host, batch_size, shuffle, xp, device, dtype,
                 shared_order=None) -> None:  # fmt: skip
        self.members, self.s_host, self.B, self.shuffle = members, s_host, batch_size, shuffle
        self.xp, self.device, self.dtype = xp, device, dtype
        self.shared_order = shared_order

    def _weights(self, rows: np.ndarray) -> np.ndarray:
        return np.ones(len(rows)) if self.s_host is None else self.s_host[rows]

    def full_batch(self, live, *, index, X, Y, gathers: bool = True) -> StackBatch:
        """Every epoch's one batch: the members' whole training sets.

        Members that all train on every sample in order share X itself, as each one's
        own fit takes it.  Otherwise each member's rows are gathered once, if the engine
        ``gathers`` rows and those copies together take at most ``GATHERED_BYTES``;
        beyond that, each member takes all of X with weight 0 on the rows that are not
        its own (a fold's held-out rows cost their products, but no copy of X is made).
        """
        rows = [self.members[j].rows for j in live]
        N, n_0 = X.shape
        everything = all(len(r) == N and np.array_equal(r, np.arange(N)) for r in rows)
        itemsize = self.xp.finfo(self.dtype).bits // 8
        copies = sum(map(len, rows)) * n_0 * itemsize
        if everything or not gathers or copies > GATHERED_BYTES:
            s = np.zeros((len(rows), N))
            for n, r in enumerate(rows):
                s[n, r] = self._weights(r)
            return self._batch(X.T, Y, s, rows)
        return self._gathered(rows, index=index, X=X, Y=Y)

    def _gathered(self, rows: list[np.ndarray], *, index, X, Y) -> StackBatch:
        """Each member's ``rows`` gathered once, padded with weight-0 samples."""
        width = max(len(r) for r in rows)
        i = np.zeros((len(rows), width), dtype=np.int64)
        s = np.zeros((len(rows), width))
        for n, r in enumerate(rows):
            i[n, : len(r)], s[n, : len(r)] = r, self._weights(r)
        A0, Y_rows = gather(X, Y, self.xp.asarray(i, dtype=index, device=self.device), xp=self.xp)
        return self._batch(A0, Y_rows, s, rows)

    def _batch(self, A0: Array, Y: Array, s: np.ndarray, rows: list[np.ndarray]) -> StackBatch:
        """A full batch of the members' samples ``A0``, with their weights ``s`` and Σ sᵢ
        over their ``rows``; each epoch's step sizes are set by :meth:`step_of`."""
        xp, device, dtype = self.xp, self.device, self.dtype
        S = np.array([float(self._weights(r).sum()) for r in rows])
        as_array = lambda v: xp.asarray(v, dtype=dtype, device=device)  # noqa: E731
        return StackBatch(A0, Y, as_array(s), as_array(S), None, None, None)

    def validation(self, live, *, index, X, Y, score) -> StackValidation:
        """The members' held-out rows, gathered once, padded with weight-0 samples."""
        rows = [self.members[j].validation for j in live]
        held_out = self._gathered(rows, index=index, X=X, Y=Y)
        return StackValidation(held_out.A0, held_out.Y, held_out.s, held_out.S, score)

    def step_of(self, full: StackBatch, live, mu: list[float], t: np.ndarray) -> StackBatch:
        """The full-batch epoch's step: each member's step size for its next step."""
        xp, device, dtype = self.xp, self.device, self.dtype
        steps = []
        for n, j in enumerate(live):
            t[j] += 1
            steps.append(self.members[j].optimizer.step_size(mu[n], int(t[j])))
        ones = xp.ones(len(live), dtype=dtype, device=device)
        return full._replace(mu=xp.asarray(np.array(steps), dtype=dtype, device=device),
                             share=ones)  # fmt: skip

    def epoch(self, live, mu, t, *, X, Y, index) -> Iterator[StackBatch]:
        """A mini-batch epoch: each member's batches in its own order, side by side."""
        if self.shared_order is not None:
            return self._shared_epoch(live, mu, t, X=X, Y=Y, index=index)
        B, K = self.B, len(live)
        plans = []  # each member's batches (its rows), their Σ sᵢ, and the samples stepped on
        for j in live:
            m = self.members[j]
            order = m.rows[sample_order(m.rng, None, len(m.rows))] if self.shuffle else m.rows
            mine = [order[start : start + B] for start in range(0, len(order), B)]
            weights = [float(self._weights(r).sum()) for r in mine]
            stepped = sum(len(r) for r, S in zip(mine, weights, strict=True) if S != 0.0)
            plans.append((mine, weights, stepped))
        n_steps = max(len(mine) for mine, _, _ in plans)
        i = np.zeros((n_steps, K, B), dtype=np.int64)
        s = np.zeros((n_steps, K, B))
        S, step, share = np.ones((n_steps, K)), np.zeros((n_steps, K)), np.zeros((n_steps, K))
        active = np.zeros((n_steps, K), dtype=bool)
        for n, (j, (mine, weights, stepped)) in enumerate(zip(live, plans, strict=True)):
            for q, (rows, S_q) in enumerate(zip(mine, weights, strict=True)):
                if S_q == 0.0:  # nothing to learn from: no step, as alone
                    continue
                i[q, n, : len(rows)], s[q, n, : len(rows)] = rows, self._weights(rows)
                t[j] += 1
                S[q, n], step[q, n] = S_q, self.members[j].optimizer.step_size(mu[n], int(t[j]))
                share[q, n], active[q, n] = len(rows) / stepped, True
        xp, device, dtype = self.xp, self.device, self.dtype
        i_d = xp.asarray(i, dtype=index, device=device)
        s_d, S_d, step_d, share_d = (
            xp.asarray(v, dtype=dtype, device=device) for v in (s, S, step, share)
        )
        active_d = xp.asarray(active, device=device)

        def batches() -> Iterator[StackBatch]:
            # Gathered as the engine reaches each step: one step's batch in memory at a
            # time, however many epochs the block plans.
            for q in range(n_steps):
                A0, Y_q = gather(X, Y, i_d[q, ...], xp=xp)
                some = None if active[q].all() else active_d[q, ...]
                yield StackBatch(A0, Y_q, s_d[q, ...], S_d[q, ...], step_d[q, ...], some,
                                 share_d[q, ...])  # fmt: skip

        return batches()

    def _shared_epoch(self, live, mu, t, *, X, Y, index) -> Iterator[StackBatch]:
        """A mini-batch epoch in one order for every member (``shared_order``): each
        step's batch gathered once, its rows of X shared by the whole stack."""
        B, K, rows = self.B, len(live), self.members[live[0]].rows
        order = rows[sample_order(self.shared_order, None, len(rows))] if self.shuffle else rows
        every = [order[start : start + B] for start in range(0, len(order), B)]
        # A batch without weight teaches no member anything: no step, as alone.
        mine = [r for r in every if float(self._weights(r).sum()) != 0.0]
        stepped = sum(len(r) for r in mine)
        n_steps = len(mine)
        i, s = np.zeros((n_steps, B), dtype=np.int64), np.zeros((n_steps, K, B))
        S, step, share = (np.zeros((n_steps, K)) for _ in range(3))
        for q, r in enumerate(mine):
            i[q, : len(r)], s[q, :, : len(r)] = r, self._weights(r)
            S[q], share[q] = float(self._weights(r).sum()), len(r) / stepped
            for n, j in enumerate(live):
                t[j] += 1
                step[q, n] = self.members[j].optimizer.step_size(mu[n], int(t[j]))
        xp, device, dtype = self.xp, self.device, self.dtype
        i_d = xp.asarray(i, dtype=index, device=device)
        s_d, S_d, step_d, share_d = (
            xp.asarray(v, dtype=dtype, device=device) for v in (s, S, step, share)
        )

        def batches() -> Iterator[StackBatch]:
            for q in range(n_steps):
                A0 = xp.take(X, i_d[q, ...], axis=0).T  # (n_0, B): one batch for all
                yield StackBatch(A0, xp.take(Y, i_d[q, ...], axis=1), s_d[q, ...], S_d[q, ...],
                                 step_d[q, ...], None, share_d[q, ...])  # fmt: skip

        return batches()
