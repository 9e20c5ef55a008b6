"""``xpnet train``: train a network and report its held-out score.

The data are loaded and split, the features (and regression targets) standardised with
the training split's statistics, and the network trained on the chosen backend: the first
Ctrl-C or SIGTERM finishes the block of epochs under way (:class:`_FinishTheBlockOnSignal`),
and ``--resume`` carries on the run of a checkpoint.  Then the scaling is folded into the
network, and the held-out score, ``--save``, ``--plot`` and the summary follow.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np  # host-side: data sets, scaling and results on the host

from .._errors import ConvergenceWarning
from .._files import check_writable
from ..estimators import MLPClassifier, MLPRegressor, load_with_metadata
from ..estimators._format import save
from ..estimators._validation import check_hyperparameters
from ._backends import device_name
from ._common import (
    CommandError,
    _backend,
    _check_dask_options,
    _fold_scaling,
    _metrics,
    _scheduler,
    _to_backend,
)
from ._data import (
    check_same_data,
    classification_warning,
    data_identity,
    infer_task,
    load_data,
    require,
    split,
)
from ._engine import _check_engine
from ._progress import ProgressBar, duration, plot_losses, table

#: Defaults of ``xpnet train``: the README's digits job reaches ~97% held-out accuracy.
DEFAULT_EPOCHS = 300
DEFAULT_LEARNING_RATE = {"classify": 2.0, "regress": 0.1}
DEFAULT_CHECKPOINT_EVERY = 100
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: The options that say what a run computes, with their defaults (None: decided later,
#: from the data or the solver).  The parser leaves them None when they are not given,
#: so that ``--resume``, which carries on a run with its own, can refuse them.
RUN_OPTIONS = {
    "data": "digits",
    "target": None,
    "task": None,
    "dtype": "float32",
    "hidden": (64,),
    "activation": "sigmoid",
    "output_activation": None,
    "loss": None,
    "solver": "sgd",
    "lr": None,
    "momentum": 0.0,
    "alpha": 0.0,
    "batch_size": None,
    "seed": 0,
    "test_fraction": 0.25,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "n_iter_no_change": 30,
    "tol": 1e-4,
}


def _train(args: argparse.Namespace) -> int:
    # Check everything that can be checked before the minutes of training (and before
    # the seconds a Dask cluster takes to start).
    _check_dask_options(args)
    require("sklearn")
    if not args.quiet:
        require("tqdm")
    if args.plot is not None:
        require("matplotlib")
        if os.path.splitext(args.plot)[1].lower() not in PLOT_SUFFIXES:
            raise CommandError(f"--plot {args.plot!r} must end in one of {PLOT_SUFFIXES}")
    for option, path in (("--save", args.save), ("--plot", args.plot),
                         ("--checkpoint", args.checkpoint)):  # fmt: skip
        if path is not None:
            _check_writable(option, path)
    if args.resume is not None:
        given = [name for name in RUN_OPTIONS if getattr(args, name) is not None]
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise CommandError(
                f"--resume carries on the checkpoint's run with its own data, split and "
                f"settings; {options} cannot be given with it (start a new run to change them)"
            )
    resumed = _resumed(args) if args.resume is not None else None
    for name, default in RUN_OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if resumed is not None:  # the run's data, split and settings are the checkpoint's
        est, run = resumed
        args.data, args.target, args.task = run["data"], run["target"], run["task"]
        args.seed, args.test_fraction, args.dtype = run["seed"], run["test_fraction"], run["dtype"]
        args.early_stopping = est.early_stopping
        if args.epochs is not None:
            est.set_params(max_iter=args.epochs)
        if args.engine is not None:  # how the epochs run, not what they compute
            est.set_params(engine=args.engine)
        # Checkpoints go on where the resumed run wrote them, as often: a job killed
        # again loses no more than the first time.
        if args.checkpoint is None:
            args.checkpoint = args.resume
        if args.checkpoint_every is None:
            args.checkpoint_every = run.get("checkpoint_every")
    if args.checkpoint_every is None:
        args.checkpoint_every = DEFAULT_CHECKPOINT_EVERY
    _check_engine(args, est.batch_size if resumed is not None else args.batch_size)

    if resumed is not None:
        check_same_data(resumed[1].get("data_identity"), args.data, args.data,
                        purpose=f"--resume {args.resume!r}")  # fmt: skip
    data = load_data(args.data, target=args.target)
    task = args.task or infer_task(data.y)
    if task == "regress" and data.y.dtype.kind not in "biuf":
        raise CommandError(f"--task regress needs a numeric target; {data.target!r} holds text")
    train, test = split(
        data.y, data.X.shape[0], task=task, test_fraction=args.test_fraction, seed=args.seed
    )
    X_train, y_train = data.X[train], data.y[train]
    if task == "classify" and (warning := classification_warning(data.y, y_train)):
        # A plain line, not warnings.warn: under `python -W error` that would end the
        # command with a traceback.  Shown with --quiet too: it is about the result.
        print(f"xpnet: warning: {warning}", file=sys.stderr)

    if resumed is None:
        est = _estimator(args, task)
    output = est.output_activation or est._natural_output.get(est.loss, "")
    # Standardise with the training split's statistics; a constant feature keeps scale 1.
    mu_x, s_x = X_train.mean(axis=0), X_train.std(axis=0)
    s_x = np.where(s_x > 0, s_x, 1.0)
    mu_y = s_y = None
    if task == "regress" and output == "identity":  # a linear output can absorb the scaling
        mu_y, s_y = float(np.mean(y_train)), float(np.std(y_train)) or 1.0

    xp, device, dtype = _backend(args.backend, args.device, args.dtype)
    score_name = "accuracy" if task == "classify" else "R²"
    identity = data_identity(data.source)
    run = {
        # A file by its absolute path, which evaluate and predict find from any folder.
        "data": data.source if identity is None else identity["path"],
        "target": data.target,
        "features": data.features,
        "task": task,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
        # What tells the data trained on from a file changed since: evaluate and predict
        # rebuild the held-out split only from the very same data.
        "data_identity": identity,
    }
    # A checkpoint holds the network as trained, on standardised features, with the
    # scaling beside it: resuming needs the exact parameters, which folding would round.
    scaling = {"mu_x": mu_x, "s_x": s_x, "mu_y": mu_y, "s_y": s_y}
    checkpoint = None
    if args.checkpoint is not None:
        as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in scaling.items()}
        path = args.checkpoint
        extra = {
            "cli": {**run, "dtype": args.dtype, "scaling": as_json,
                    "checkpoint_every": args.checkpoint_every}
        }  # fmt: skip

        def checkpoint(snapshot: Any) -> None:
            save(snapshot, path, extra=extra)

    # The scheduler (a Dask cluster) lives as long as anything is computed on it, the
    # held-out score and the saved model included.
    with _scheduler(args) as scheduler:
        if resumed is not None:  # onto the chosen backend, in training's own dtype
            est.weights_ = [xp.asarray(W_l, dtype=dtype, device=device) for W_l in est.weights_]
            est.biases_ = [xp.asarray(b_l, dtype=dtype, device=device) for b_l in est.biases_]
        X_dev = _to_backend(args, xp, (X_train - mu_x) / s_x, dtype=dtype, device=device)
        if task == "regress":
            y_scaled = y_train if mu_y is None else (y_train - mu_y) / s_y
            y_dev = _to_backend(args, xp, y_scaled, dtype=dtype, device=device)
        elif args.backend == "dask" and y_train.dtype.kind in "biuf":
            # In X's blocks, so that each block's labels are where its samples are.
            y_dev = _to_backend(args, xp, y_train, dtype=None, device=device)
        else:
            # Labels may stay on the host: fit moves numbers to X's device (and Dask
            # arrays of text are not class labels xpnet takes).
            y_dev = y_train

        epochs_before = est.n_iter_ if resumed is not None else 0
        bar = None if args.quiet else _progress_bar(est.max_iter, score_name, done=epochs_before)
        start = time.perf_counter()
        # The report says how many epochs ran: a ConvergenceWarning's traceback would
        # only repeat it, in Python's terms.
        with _FinishTheBlockOnSignal() as interrupts, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                est.fit(
                    X_dev, y_dev, callback=interrupts.after(bar), checkpoint=checkpoint,
                    checkpoint_every=args.checkpoint_every if checkpoint else None,
                    resume=resumed is not None,
                )  # fmt: skip
            except KeyboardInterrupt:
                trained = getattr(est, "n_iter_", 0) > epochs_before
                if interrupts.aborted or not trained:
                    # A second signal, or nothing trained yet: stop at once.
                    raise _Stopped(interrupts.status) from None
            finally:
                if bar is not None:
                    bar.close()
            wall = time.perf_counter() - start
            _report(args, est, data, train, test, task, score_name, run, scaling,
                    xp=xp, device=device, dtype=dtype, wall=wall, epochs_before=epochs_before,
                    interrupted=interrupts.requested, scheduler=scheduler,
                    blocks=X_dev.chunks[0] if scheduler else None)  # fmt: skip
            # A signal that came while the report was written still sets the status.
            return interrupts.status if interrupts.requested else 0


def _report(args, est, data, train, test, task, score_name, run, scaling, *, xp, device, dtype,
            wall, epochs_before, interrupted, scheduler=None, blocks=None) -> None:  # fmt: skip
    """After training: the held-out score, --save, --plot and the summary.

    ``scheduler`` and ``blocks`` (the training data's rows per block) describe a run on
    Dask; None otherwise.
    """
    _fold_scaling(est, **scaling, xp=xp, device=device, dtype=dtype)
    X_test = _to_backend(args, xp, data.X[test], dtype=dtype, device=device)
    metrics = _metrics(est, X_test, data.y[test], task=task, xp=xp, device=device, dtype=dtype)
    name, value = next(iter(metrics.items()))

    if args.save is not None:
        save(est, args.save, extra={"cli": {**run, "metrics": metrics}})
    if args.plot is not None:
        plot_losses(
            args.plot,
            est.loss_curve_,
            validation_losses=est.validation_loss_curve_,
            validation_scores=est.validation_scores_,
            score_name=score_name,
            title=f"xpnet: {os.path.basename(data.source)}, {_layer_sizes(est)}, "
            f"{args.backend} {args.dtype}, {_update_rule(est)}",
        )

    if args.quiet:
        print(f"{name}: {value:.4f}")
        if interrupted:
            print(f"xpnet: interrupted at epoch {est.n_iter_}", file=sys.stderr)
        return

    epochs = est.n_iter_
    trained = max(epochs - epochs_before, 1)
    note = ""
    if interrupted:
        note = f" of {est.max_iter} (interrupted at epoch {epochs})"
    elif args.early_stopping:
        note = (
            f" of {est.max_iter} (early stopping, best validation "
            f"{score_name} {est.best_validation_score_:.4f})"
        )
    elif epochs_before:
        note = f" (resumed at epoch {epochs_before})"
    rows = [
        (f"{name} (held out)", f"{value:.4f}"),
        *[(f"{k} (held out)", f"{v:.4g}") for k, v in list(metrics.items())[1:]],
        (
            "data",
            f"{data.source}: {len(train)} training, {len(test)} held-out samples, "
            f"{data.X.shape[1]} features",
        ),
        (
            "network",
            f"{_layer_sizes(est)}, {est.activation} → {est.out_activation_}, "
            f"loss {est.loss}, {_update_rule(est)}",
        ),
        ("epochs", f"{epochs}{note}"),
        ("final training loss", f"{est.loss_curve_[-1]:.4g}"),
        ("wall time", duration(wall)),
        ("time per epoch", duration(wall / trained)),
        ("samples per second", f"{trained * len(train) / wall:.3g}"),
        ("backend", args.backend),
        ("device", device_name(device, xp)),
        ("dtype", args.dtype),
    ]
    if scheduler is not None:
        rows.insert(-2, ("scheduler", scheduler.description))
        rows.insert(-2, ("blocks", f"{len(blocks)} of {_sizes(blocks)} training samples"))
    if args.save is not None:
        rows.append(("saved to", args.save))
    if args.checkpoint is not None:
        rows.append(("checkpoint", f"{args.checkpoint} (xpnet train --resume {args.checkpoint})"))
    if args.plot is not None:
        rows.append(("plot", args.plot))
    print(table(rows))


class _Stopped(KeyboardInterrupt):
    """The run stopped by a signal at once: ``status`` is the command's exit status."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status


class _FinishTheBlockOnSignal:
    """Ctrl-C (SIGINT) or SIGTERM during training: the first finishes the block of epochs
    under way, the second, either of them, aborts at once.

    The first signal only sets a flag, which the progress callback reads at the next
    read-back (every 16 epochs) and turns into a KeyboardInterrupt there: the fit then
    keeps every epoch read back, writes its checkpoint, and the command goes on to save,
    plot and report them, and exits with 128 + the signal's number (130 for Ctrl-C, 143
    for SIGTERM, as the shell reports a process that signal ended).  SIGTERM is what
    batch schedulers, Kubernetes and ``timeout`` send before they kill a job.  From then
    on, and until the command ends, either signal raises :class:`_Stopped` at once
    (``aborted``): saving is atomic, so an abort leaves no partial file.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = self.aborted = False
        self.status = 130
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _FinishTheBlockOnSignal:
        # Signal handlers belong to the main thread (main() may run in another one).
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._first) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self.previous.items():
            signal.signal(s, signal.SIG_DFL if previous is None else previous)

    def _first(self, signum: int, frame: Any) -> None:
        self.requested, self.status = True, 128 + signum
        for s in self.SIGNALS:
            signal.signal(s, self._second)
        if signum == signal.SIGINT:
            message = "stopping after this block of epochs (Ctrl-C again to abort)"
        else:
            message = "SIGTERM: stopping after this block of epochs (a second signal aborts)"
        print(f"\nxpnet: {message}", file=sys.stderr)

    def _second(self, signum: int, frame: Any) -> None:
        self.aborted = True
        raise _Stopped(self.status)

    def after(self, callback: Callable[..., Any] | None) -> Callable[..., None]:
        """``callback``, then a KeyboardInterrupt if a signal came meanwhile."""

        def each_block(losses: list[float], scores: list[float] | None) -> None:
            if callback is not None:
                callback(losses, scores)
            if self.requested:
                raise KeyboardInterrupt

        return each_block


def _check_writable(option: str, path: str) -> None:
    """The check ``fit`` makes of ``checkpoint=``, for an option that names a file to write."""
    try:
        check_writable(path)
    except OSError as exc:  # the message without "[Errno N]", which says nothing more here
        raise CommandError(f"{option}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


def _resumed(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The estimator of a checkpoint written by ``xpnet train --checkpoint``, and its run."""
    if not os.path.isfile(args.resume):
        raise CommandError(f"--resume {args.resume!r}: no such file")
    est, meta = load_with_metadata(args.resume)
    run = meta.get("extra", {}).get("cli") or {}
    if "scaling" not in run:
        raise CommandError(
            f"--resume {args.resume!r} is a trained model, not a checkpoint written by "
            "xpnet train --checkpoint: only a checkpoint holds the training state exactly"
        )
    return est, run


def _estimator(args: argparse.Namespace, task: str) -> Any:
    cls = MLPClassifier if task == "classify" else MLPRegressor
    if args.solver == "adam" and args.momentum > 0:
        raise CommandError("--momentum applies to --solver sgd only: Adam keeps its own moments")
    # DEFAULT_LEARNING_RATE suits plain gradient descent on standardised features; Adam's
    # steps do not scale with the gradient, and None takes the estimator's default for it.
    learning_rate = args.lr
    if learning_rate is None and args.solver == "sgd":
        learning_rate = DEFAULT_LEARNING_RATE[task]
    kw = {}
    if args.loss is not None:
        kw["loss"] = args.loss
    if args.output_activation is not None or args.loss is not None:
        # None: the loss's natural output, as --help says (the regressor's own default
        # is identity, which suits only mse).
        kw["output_activation"] = args.output_activation
    est = cls(
        hidden_layer_sizes=args.hidden,
        activation=args.activation,
        learning_rate=learning_rate,
        solver=args.solver,
        momentum=args.momentum,
        alpha=args.alpha,
        max_iter=args.epochs or DEFAULT_EPOCHS,
        batch_size=args.batch_size,
        random_state=args.seed,
        early_stopping=args.early_stopping,
        validation_fraction=args.validation_fraction,
        n_iter_no_change=args.n_iter_no_change,
        tol=args.tol,
        engine=args.engine or "auto",
        **kw,
    )
    check_hyperparameters(est, natural_output=cls._natural_output)  # report before loading data
    return est


def _progress_bar(epochs: int, score_name: str, *, done: int = 0) -> Any:
    return ProgressBar(epochs, score_name=score_name, done=done)


def _sizes(blocks: Sequence[int]) -> str:
    """Block sizes in a few words: "336", "336–337"."""
    low, high = min(blocks), max(blocks)
    return f"{low}" if low == high else f"{low}–{high}"


def _update_rule(est: Any) -> str:
    """The solver and its effective settings: "sgd, μ = 2.0", "adam, μ = 0.01, α = 0.0001"."""
    if est.solver == "lbfgs":  # no step size: the line search finds each step
        return "lbfgs" + (f", α = {est.alpha}" if est.alpha > 0 else "")
    text = f"{est.solver}, μ = {est._learning_rate()}"  # learning_rate may be None
    if est.solver == "sgd" and est.momentum > 0:
        text += f", {'Nesterov ' * est.nesterovs_momentum}momentum {est.momentum}"
    return text + (f", α = {est.alpha}" if est.alpha > 0 else "")


def _layer_sizes(est: Any) -> str:
    sizes = [est.weights_[0].shape[1], *(W_l.shape[0] for W_l in est.weights_)]
    return "-".join(str(n) for n in sizes)
