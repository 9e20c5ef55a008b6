"""The ``xpnet`` command: train, predict, evaluate, info.

``xpnet train`` with no arguments trains a classifier on scikit-learn's digits on NumPy
and prints its held-out accuracy.  Features are standardised with the training split's
mean and standard deviation (and regression targets likewise); the scaling is then
folded into the first (and last) layer's W and b, so a saved model takes raw features
and returns targets in their own units, from ``xpnet.load`` as from ``xpnet predict``.

With ``--backend dask`` the data are cut into blocks of rows (``--dask-blocks``) and
computed by a Dask cluster: a ``LocalCluster`` the command starts and closes, or the
scheduler at ``--scheduler``.  The parameters, and everything after training (the
score, the saved model, checkpoints, the plot), come back to the host as NumPy arrays.

Every expected failure (a bad option, a missing file, a backend that cannot run here)
is one line ``xpnet: error: ...`` on stderr, with exit status 2.  Data that will train
poorly (a classifier with too few samples per class) get a line ``xpnet: warning: ...``
and the command goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import numpy as np  # host-side: data sets, scaling and results on the host

from . import __version__
from ._backends import BACKENDS, BackendError, device_name
from ._data import (
    DATASETS,
    DataError,
    classification_warning,
    infer_task,
    load_data,
    require,
    split,
)
from ._validation import ENGINES, SOLVERS

#: The backends where ``--engine jit`` compiles (see ``xpnet._compiled``).
JIT_BACKENDS = ("jax", "torch", "cupy")

#: Defaults of ``xpnet train``: the README's digits job reaches ~97% held-out accuracy.
DEFAULT_EPOCHS = 300
DEFAULT_LEARNING_RATE = {"classify": 2.0, "regress": 0.1}
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


class CommandError(Exception):
    """An error to report as one line and exit status 2."""


# -- argument parsing ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def _float_in(low: float, high: float, what: str, closed: str = "()") -> Callable[[str], float]:
    """An argparse type: a float between ``low`` and ``high``, an end included where
    ``closed`` ("()", "[]", "[)") has a bracket."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value >= low if closed[0] == "[" else value > low
        below = value <= high if closed[1] == "]" else value < high
        if not (above and below):  # NaN included
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_float = _float_in(0.0, math.inf, "a positive number")
_fraction = _float_in(0.0, 1.0, "a number between 0 and 1")
_unit_interval = _float_in(0.0, 1.0, "a number from 0 to 1", "[]")
_non_negative = _float_in(0.0, math.inf, "a number >= 0", "[)")


def _hidden(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes like 64,32 (or none), got {text!r}"
        ) from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    return sizes


_DATA_HELP = (
    f"a bundled data set ({', '.join(DATASETS)}), a .csv file with a header row, or an .npz "
    "file with the features in X"
)

_TRAIN_EXAMPLES = """examples:
  xpnet train                                   digits on NumPy: the quick start
  xpnet train --data iris --hidden 16 --epochs 200 --quiet
  xpnet train --solver adam --alpha 1e-4        Adam (μ = 0.01) with an L2 penalty
  xpnet train --backend cupy --dtype float32    the same job on an NVIDIA GPU
  xpnet train --backend torch --device cuda:0
  xpnet train --backend dask --dtype float64    on a LocalCluster of this machine's cores
  xpnet train --backend dask --scheduler tcp://10.0.0.5:8786 --dask-blocks 32
  xpnet train --data houses.csv --target price --task regress --lr 0.05
  xpnet train --early-stopping --save m.npz --plot loss.png
"""

_PREDICT_EXAMPLES = """examples:
  xpnet predict --model m.npz                   the held-out split of the model's data
  xpnet predict --model m.npz --data new.csv --output predictions.csv
  xpnet predict --model m.npz --data new.npz --output out.npz --proba
  xpnet predict --model m.npz --backend torch --device cuda:0
  xpnet predict --model m.npz --backend dask --scheduler tcp://10.0.0.5:8786
"""

_EVALUATE_EXAMPLES = """examples:
  xpnet evaluate --model m.npz                  the held-out split the training reported on
  xpnet evaluate --model m.npz --data more.csv  every row of another file
  xpnet evaluate --model m.npz --backend cupy   served on the GPU
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with examples shown verbatim and a bad command line told in one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # Without argparse's usage block above it: the message names the option, and
        # --help tells the rest.  Status 2, argparse's own and every other error's.
        self.exit(2, f"xpnet: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xpnet",
        description="Train, use and inspect multilayer perceptrons on any Array API backend.",
        epilog="run 'xpnet COMMAND --help' for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    # Not required=True: with no command, main prints the help rather than one line.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a network and report its held-out score",
        description="Train a multilayer perceptron by backpropagation and gradient descent "
        "(or Adam), and report its score on a held-out split.",
        epilog=_TRAIN_EXAMPLES,
    )
    _add_train_options(train)
    train.set_defaults(run=_train)

    predict = commands.add_parser(
        "predict",
        help="write a saved model's predictions (CSV or .npz)",
        description="Predict with a model saved by 'xpnet train --save'.",
        epilog=_PREDICT_EXAMPLES,
    )
    _add_serve_options(predict)
    predict.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="a .csv or .npz file (default: CSV on standard output)",
    )
    predict.add_argument(
        "--proba", action="store_true", help="add each class's probability (classifiers)"
    )
    predict.set_defaults(run=_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="print a saved model's score on data",
        description="Score a model saved by 'xpnet train --save': accuracy for a "
        "classifier; R², RMSE and MAE for a regressor.",
        epilog=_EVALUATE_EXAMPLES,
    )
    _add_serve_options(evaluate)
    evaluate.set_defaults(run=_evaluate)

    info = commands.add_parser(
        "info",
        help="print the version and the backends and devices usable here",
        description="Print xpnet's version, each backend's devices (or why it cannot run "
        "here) and the optional packages the command uses.",
        epilog="example:\n  xpnet info",
    )
    info.set_defaults(run=_info)
    return parser


def _add_train_options(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--data", default="digits", help=_DATA_HELP + " (default: digits)")
    add(
        "--target",
        metavar="NAME",
        help="the target column (CSV) or array (.npz) (default: 'target', "
        "else 'y', else the last CSV column)",
    )
    add(
        "--task",
        choices=("classify", "regress"),
        help="default: classify for text labels or few distinct integers, else regress",
    )
    _add_backend_options(p)
    add(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="the floating dtype to train in (default: float32)",
    )
    add(
        "--hidden",
        type=_hidden,
        default=(64,),
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (default: 64)",
    )
    add(
        "--activation",
        default="sigmoid",
        help="hidden layers' f: sigmoid, tanh, relu, identity (default: sigmoid)",
    )
    add(
        "--output-activation",
        help="the output layer's f (default: the loss's natural one: softmax "
        "for cross_entropy, identity for regression)",
    )
    add("--loss", help="mse or cross_entropy (default: cross_entropy to classify, mse to regress)")
    add(
        "--solver",
        choices=SOLVERS,
        default="sgd",
        help="the update rule: gradient descent (sgd) or Adam (default: sgd)",
    )
    add(
        "--lr",
        type=_positive_float,
        metavar="MU",
        help="the learning rate μ (default: 2.0 to classify, 0.1 to regress; 0.01 for adam)",
    )
    add(
        "--momentum",
        type=_unit_interval,
        default=0.0,
        metavar="BETA",
        help="β of gradient descent with Nesterov's momentum, from 0 to 1 (default: 0: none)",
    )
    add(
        "--alpha",
        type=_non_negative,
        default=0.0,
        help="the L2 penalty on the weights, α/2N Σ‖W‖² in the loss (default: 0)",
    )
    add(
        "--epochs",
        type=_positive_int,
        help=f"epochs to train (default: {DEFAULT_EPOCHS})",
    )
    add(
        "--batch-size",
        type=_positive_int,
        metavar="B",
        help="mini-batch size (default: all samples: batch gradient descent)",
    )
    add(
        "--engine",
        choices=ENGINES,
        help="how the epochs run: eager (one array operation at a time), jit (compiled: "
        "on jax and torch full-batch epochs, on cupy fused kernels) or auto (jit where it "
        "pays: long full-batch runs on jax) (default: auto, or a checkpoint's)",
    )
    add(
        "--seed",
        type=int,
        default=0,
        help="seeds the split, the initial weights and the batches (default: 0)",
    )
    add(
        "--test-fraction",
        type=_fraction,
        default=0.25,
        metavar="F",
        help="share of the samples held out for the score (default: 0.25)",
    )
    add(
        "--early-stopping",
        action="store_true",
        help="hold out part of the training split and stop when its score "
        "stops improving; keeps the best epoch's parameters",
    )
    add(
        "--validation-fraction",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="share of the training split held out by --early-stopping (default: 0.1)",
    )
    add(
        "--n-iter-no-change",
        type=_positive_int,
        default=30,
        metavar="N",
        help="epochs without improvement before --early-stopping stops (default: 30)",
    )
    add(
        "--tol",
        type=float,
        default=1e-4,
        help="the improvement that counts for --early-stopping (default: 1e-4)",
    )
    add("--save", metavar="PATH", help="write the trained model to PATH (.npz)")
    add(
        "--checkpoint",
        metavar="PATH",
        help="write the training state to PATH every --checkpoint-every epochs, at the end "
        "and on Ctrl-C; a run killed meanwhile carries on with --resume PATH",
    )
    add(
        "--checkpoint-every",
        type=_positive_int,
        default=100,
        metavar="N",
        help="epochs between checkpoints (default: 100)",
    )
    add(
        "--resume",
        metavar="PATH",
        help="carry on the run that wrote the checkpoint PATH, with its data, split and "
        "settings, up to its --epochs in all (or the --epochs given here)",
    )
    add("--plot", metavar="PATH.png", help="draw the loss per epoch to PATH (.png, .svg or .pdf)")
    add("--quiet", action="store_true", help="print only the result (and any warning)")


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="the array library to compute with (default: numpy); dask: Dask arrays of "
        "NumPy blocks of samples, computed by a Dask cluster (see --scheduler)",
    )
    p.add_argument(
        "--device",
        help="a device of the backend: cpu, cuda:0, gpu:1, device1, ... "
        "(default: the backend's default device)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --backend dask: the address of a running Dask scheduler "
        "(tcp://host:8786) to compute on (default: a LocalCluster of this machine's "
        "cores, started and closed by the command; Dask's threaded scheduler if "
        "dask.distributed is not installed)",
    )
    p.add_argument(
        "--dask-blocks",
        type=_positive_int,
        metavar="K",
        help="with --backend dask: cut the samples into K blocks of rows, each one task "
        "per step (default: one per worker thread of the cluster)",
    )


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help="a model saved by --save")
    p.add_argument(
        "--data", metavar="DATA", help=_DATA_HELP + " (default: the data the model was trained on)"
    )
    p.add_argument(
        "--target", metavar="NAME", help="the target column/array (default: the model's)"
    )
    p.add_argument(
        "--split",
        choices=("test", "train", "all"),
        help="which rows: the held-out split of training ('test', the default "
        "without --data), the training split, or 'all' (the default with --data)",
    )
    _add_backend_options(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad command line told in one line
        return int(exc.code or 0)
    if args.command is None:
        # The help, where a user typing a bare `xpnet` looks for it, but status 2 as any
        # other incomplete command line: a script whose `xpnet $COMMAND` lost its command
        # fails instead of passing.  (git prints its usage with status 1; argparse's own
        # usage errors, and ours, are 2.)
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (xpnet predict | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CommandError, DataError, BackendError, ValueError, TypeError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"xpnet: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130


# -- train -----------------------------------------------------------------------------------


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
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CommandError(f"{option} {path!r}: the folder does not exist")
    resumed = _resumed(args) if args.resume is not None else None
    if resumed is not None:  # the run's data, split and settings are the checkpoint's
        est, run = resumed
        args.data, args.target, args.task = run["data"], run["target"], run["task"]
        args.seed, args.test_fraction, args.dtype = run["seed"], run["test_fraction"], run["dtype"]
        if args.epochs is not None:
            est.set_params(max_iter=args.epochs)
        if args.engine is not None:  # how the epochs run, not what they compute
            est.set_params(engine=args.engine)
    _check_engine(args, est.batch_size if resumed is not None else args.batch_size)

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
    run = {
        "data": data.source,
        "target": data.target,
        "features": data.features,
        "task": task,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
    }
    # A checkpoint holds the network as trained, on standardised features, with the
    # scaling beside it: resuming needs the exact parameters, which folding would round.
    scaling = {"mu_x": mu_x, "s_x": s_x, "mu_y": mu_y, "s_y": s_y}
    checkpoint = None
    if args.checkpoint is not None:
        from ._io import save

        as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in scaling.items()}
        path = args.checkpoint
        extra = {"cli": {**run, "dtype": args.dtype, "scaling": as_json}}

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
        with _FinishTheBlockOnCtrlC() as interrupts:
            try:
                est.fit(
                    X_dev, y_dev, callback=interrupts.after(bar), checkpoint=checkpoint,
                    checkpoint_every=args.checkpoint_every if checkpoint else None,
                    resume=resumed is not None,
                )  # fmt: skip
            except KeyboardInterrupt:
                trained = getattr(est, "n_iter_", 0) > epochs_before
                if interrupts.aborted or not trained:
                    raise  # a second Ctrl-C, or nothing trained yet: stop at once
            finally:
                if bar is not None:
                    bar.close()
            wall = time.perf_counter() - start
            return _report(args, est, data, train, test, task, score_name, run, scaling,
                           xp=xp, device=device, dtype=dtype, wall=wall,
                           epochs_before=epochs_before, interrupted=interrupts.requested,
                           scheduler=scheduler,
                           blocks=X_dev.chunks[0] if scheduler else None)  # fmt: skip


def _report(args, est, data, train, test, task, score_name, run, scaling, *, xp, device, dtype,
            wall, epochs_before, interrupted, scheduler=None, blocks=None) -> int:  # fmt: skip
    """After training: the held-out score, --save, --plot and the summary.

    ``scheduler`` and ``blocks`` (the training data's rows per block) describe a run on
    Dask; None otherwise.
    """
    _fold_scaling(est, **scaling, xp=xp, device=device, dtype=dtype)
    X_test = _to_backend(args, xp, data.X[test], dtype=dtype, device=device)
    metrics = _metrics(est, X_test, data.y[test], task=task, xp=xp, device=device, dtype=dtype)
    name, value = next(iter(metrics.items()))

    if args.save is not None:
        from ._io import save

        save(est, args.save, extra={"cli": {**run, "metrics": metrics}})
    if args.plot is not None:
        from ._progress import plot_losses

        plot_losses(
            args.plot,
            est.loss_curve_,
            validation_losses=est.validation_loss_curve_,
            validation_scores=est.validation_scores_,
            score_name=score_name,
            title=f"xpnet: {os.path.basename(data.source)}, {_layer_sizes(est)}, "
            f"{args.backend} {args.dtype}, {_update_rule(est)}",
        )

    status = 130 if interrupted else 0  # the shell's status for a run ended by Ctrl-C
    if args.quiet:
        print(f"{name}: {value:.4f}")
        if interrupted:
            print(f"xpnet: interrupted at epoch {est.n_iter_}", file=sys.stderr)
        return status
    from ._progress import duration, table

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
        ("device", device_name(device)),
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
    return status


class _FinishTheBlockOnCtrlC:
    """Ctrl-C during training: the first finishes the block of epochs under way, the
    second aborts at once.

    The first SIGINT only sets a flag, which the progress callback reads at the next
    read-back (every 16 epochs) and turns into a KeyboardInterrupt there: the fit then
    keeps every epoch read back, and the command goes on to save, plot and report them.
    From then on, and until the command ends, SIGINT raises KeyboardInterrupt at once
    (``aborted``): saving is atomic, so an abort leaves no partial file.
    """

    def __init__(self) -> None:
        self.requested = self.aborted = False
        self.previous: Any = None

    def __enter__(self) -> _FinishTheBlockOnCtrlC:
        # Signal handlers belong to the main thread (main() may run in another one).
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._first)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _first(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._second)
        print(
            "\nxpnet: stopping after this block of epochs (Ctrl-C again to abort)",
            file=sys.stderr,
        )

    def _second(self, signum: int, frame: Any) -> None:
        self.aborted = True
        raise KeyboardInterrupt

    def after(self, callback: Callable[..., Any] | None) -> Callable[..., None]:
        """``callback``, then a KeyboardInterrupt if Ctrl-C was pressed meanwhile."""

        def each_block(losses: list[float], scores: list[float] | None) -> None:
            if callback is not None:
                callback(losses, scores)
            if self.requested:
                raise KeyboardInterrupt

        return each_block


def _resumed(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The estimator of a checkpoint written by ``xpnet train --checkpoint``, and its run."""
    from ._io import load_with_metadata

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
    from . import MLPClassifier, MLPRegressor

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
    if args.output_activation is not None:
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
    from ._validation import check_hyperparameters

    check_hyperparameters(est, natural_output=cls._natural_output)  # report before loading data
    return est


def _progress_bar(epochs: int, score_name: str, *, done: int = 0) -> Any:
    from ._progress import ProgressBar

    return ProgressBar(epochs, score_name=score_name, done=done)


def _backend(name: str, device_spec: str | None, dtype_name: str) -> tuple[Any, Any, Any]:
    from ._backends import device, namespace

    xp = namespace(name)
    return xp, device(name, xp, device_spec), getattr(xp, dtype_name)


def _check_engine(args: argparse.Namespace, batch_size: int | None) -> None:
    """``--engine jit`` where nothing compiles: said before the data is loaded."""
    if args.engine != "jit":
        return
    if args.backend not in JIT_BACKENDS:
        raise CommandError(
            f"--engine jit compiles on {', '.join(JIT_BACKENDS)}, not --backend {args.backend}"
        )
    if batch_size is not None and args.backend != "cupy":
        raise CommandError(
            f"--engine jit compiles full-batch epochs on {args.backend}, not mini-batches "
            f"(--batch-size {batch_size}); on cupy it fuses the kernels of every step"
        )


def _check_dask_options(args: argparse.Namespace) -> None:
    for option, value in (("--scheduler", args.scheduler), ("--dask-blocks", args.dask_blocks)):
        if value is not None and args.backend != "dask":
            raise CommandError(f"{option} applies to --backend dask only, not {args.backend!r}")


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace) -> Iterator[Any]:
    """On Dask, its scheduler for the run (None on other backends), closed at the end.

    Sets ``args.dask_blocks`` to the number of blocks to cut the data into.
    """
    if args.backend != "dask":
        yield None
        return
    from ._backends import dask_scheduler

    with dask_scheduler(args.scheduler) as scheduler:
        if scheduler.note is not None:
            print(f"xpnet: warning: {scheduler.note}", file=sys.stderr)
        args.dask_blocks = args.dask_blocks or scheduler.threads
        yield scheduler


def _to_backend(args: argparse.Namespace, xp: Any, a: np.ndarray, *, dtype, device) -> Any:
    """A host array as the backend's: on Dask, in ``args.dask_blocks`` blocks of rows."""
    from ._backends import to_backend

    return to_backend(args.backend, xp, a, dtype=dtype, device=device, blocks=args.dask_blocks)


def _sizes(blocks: Sequence[int]) -> str:
    """Block sizes in a few words: "336", "336–337"."""
    low, high = min(blocks), max(blocks)
    return f"{low}" if low == high else f"{low}–{high}"


def _fold_scaling(est, mu_x, s_x, mu_y, s_y, *, xp, device, dtype) -> None:
    """Fold x ↦ (x − mu_x)/s_x into layer 1 and o ↦ s_y·o + mu_y into layer L.

    W⁽¹⁾(x − m)/s + b⁽¹⁾ = (W⁽¹⁾/s) x + (b⁽¹⁾ − (W⁽¹⁾/s) m), and for an identity output
    s_y(W⁽ᴸ⁾a + b⁽ᴸ⁾) + m_y = (s_y W⁽ᴸ⁾) a + (s_y b⁽ᴸ⁾ + m_y): the network then takes raw
    features and returns raw targets.  Done in float64 on the host, once.
    """
    from ._host import to_numpy

    mu_x, s_x = np.asarray(mu_x, dtype=np.float64), np.asarray(s_x, dtype=np.float64)
    W = [to_numpy(W_l).astype(np.float64) for W_l in est.weights_]
    b = [to_numpy(b_l).astype(np.float64) for b_l in est.biases_]
    W[0] = W[0] / s_x[None, :]
    b[0] = b[0] - W[0] @ mu_x
    if mu_y is not None:
        W[-1], b[-1] = s_y * W[-1], s_y * b[-1] + mu_y
    est.weights_ = [xp.asarray(W_l, dtype=dtype, device=device) for W_l in W]
    est.biases_ = [xp.asarray(b_l, dtype=dtype, device=device) for b_l in b]


def _update_rule(est: Any) -> str:
    """The solver and its effective settings: "sgd, μ = 2.0", "adam, μ = 0.01, α = 0.0001"."""
    text = f"{est.solver}, μ = {est._learning_rate()}"  # learning_rate may be None
    if est.solver == "sgd" and est.momentum > 0:
        text += f", {'Nesterov ' * est.nesterovs_momentum}momentum {est.momentum}"
    return text + (f", α = {est.alpha}" if est.alpha > 0 else "")


def _layer_sizes(est: Any) -> str:
    sizes = [est.weights_[0].shape[1], *(W_l.shape[0] for W_l in est.weights_)]
    return "-".join(str(n) for n in sizes)


def _metrics(est, X, y, *, task, xp, device, dtype) -> dict[str, float]:
    """Accuracy for a classifier; R², RMSE and MAE for a regressor (the first is the headline)."""
    if task == "classify":
        return {"accuracy": est.score(X, y)}
    from ._host import to_numpy

    prediction = to_numpy(est.predict(X)).astype(np.float64)
    residual = np.asarray(y, dtype=np.float64) - prediction
    return {
        "R²": est.score(X, xp.asarray(y, dtype=dtype, device=device)),
        "RMSE": float(np.sqrt(np.mean(residual**2))),
        "MAE": float(np.mean(np.abs(residual))),
    }


# -- predict and evaluate --------------------------------------------------------------------


def _check_serve_options(args: argparse.Namespace) -> None:
    """What ``predict`` and ``evaluate`` can check before a Dask cluster starts."""
    _check_dask_options(args)
    if not os.path.isfile(args.model):
        raise CommandError(f"--model {args.model!r}: no such file")
    _backend(args.backend, args.device, "float32")  # the library and the device


def _serve(args: argparse.Namespace, *, need_target: bool):
    """The model on the chosen backend, the rows to serve it, and the training record.

    On Dask, runs inside :func:`_scheduler`, which sets the number of blocks.
    """
    from ._backends import device, namespace
    from ._io import load_with_metadata

    xp = namespace(args.backend)
    dev = device(args.backend, xp, args.device)
    est, meta = load_with_metadata(args.model, xp=xp, device=dev)
    cli = meta.get("extra", {}).get("cli") or {}
    if "scaling" in cli:  # a checkpoint: trained on standardised features, not yet folded
        dtype = est.weights_[0].dtype
        _fold_scaling(est, **cli["scaling"], xp=xp, device=dev, dtype=dtype)
    source = args.data or cli.get("data")
    if source is None:
        raise CommandError(f"{args.model!r} does not record its data: name it with --data")
    target = args.target or cli.get("target")
    # A file's columns are matched to the model's features by name (CSV) or count (.npz).
    features = cli.get("features") if source.lower().endswith((".csv", ".npz")) else None
    data = load_data(source, target=target, features=features, need_target=need_target)
    if data.X.shape[1] != est.n_features_in_:
        raise CommandError(
            f"{source!r} has {data.X.shape[1]} features but the model takes {est.n_features_in_}"
        )
    which = args.split or ("test" if args.data is None else "all")
    rows = np.arange(data.X.shape[0])
    if which != "all":
        if "seed" not in cli:
            raise CommandError(f"{args.model!r} does not record its split: use --split all")
        task = cli.get("task", "classify")
        train, test = split(
            data.y, data.X.shape[0], task=task, test_fraction=cli["test_fraction"], seed=cli["seed"]
        )
        rows = test if which == "test" else train
    dtype = est.weights_[0].dtype
    X = _to_backend(args, xp, data.X[rows], dtype=dtype, device=dev)
    y = None if data.y is None else data.y[rows]
    return est, X, y, xp, dev, dtype, data, which, cli


def _predict(args: argparse.Namespace) -> int:
    from . import MLPClassifier
    from ._host import to_numpy

    if args.output is not None and os.path.splitext(args.output)[1].lower() not in (".csv", ".npz"):
        raise CommandError(f"--output {args.output!r} must end in .csv or .npz")
    _check_serve_options(args)
    proba = classes = None
    with _scheduler(args):  # on Dask: the results come to the host before it closes
        est, X, _, _, _, _, _, _, _ = _serve(args, need_target=False)
        if args.proba and not isinstance(est, MLPClassifier):
            raise CommandError("--proba needs a classifier; this model is a regressor")
        prediction = to_numpy(est.predict(X))
        if args.proba:
            proba, classes = to_numpy(est.predict_proba(X)), to_numpy(est.classes_)
    columns = {"prediction": prediction}
    if prediction.ndim == 2:
        columns = {f"prediction_{j}": prediction[:, j] for j in range(prediction.shape[1])}
    if proba is not None:
        for k, label in enumerate(classes.tolist()):
            columns[f"proba_{label}"] = proba[:, k]
    if args.output is not None and args.output.lower().endswith(".npz"):
        arrays = {"prediction": prediction}
        if proba is not None:
            arrays |= {"proba": proba, "classes": classes}
        from ._io import _write_atomic

        _write_atomic(args.output, arrays)
        return 0
    import csv

    out = sys.stdout if args.output is None else open(args.output, "w", newline="")
    try:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([_csv_value(v) for v in row])
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _csv_value(v: Any) -> str:
    # NumPy scalars included: under NumPy 2 their repr is "np.float64(...)".
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def _evaluate(args: argparse.Namespace) -> int:
    from . import MLPClassifier
    from ._progress import table

    _check_serve_options(args)
    with _scheduler(args):
        est, X, y, xp, dev, dtype, data, which, _ = _serve(args, need_target=True)
        task = "classify" if isinstance(est, MLPClassifier) else "regress"
        metrics = _metrics(est, X, y, task=task, xp=xp, device=dev, dtype=dtype)
    rows = [(name, f"{value:.4f}") for name, value in metrics.items()]
    rows.append(("samples", f"{X.shape[0]} ({data.source}, {which})"))
    print(table(rows))
    return 0


# -- info ------------------------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    import array_api_compat

    from ._backends import report
    from ._progress import extras, table

    print(
        f"xpnet {__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__}, "
        f"array-api-compat {array_api_compat.__version__})"
    )
    print("backends:")
    print(table([(name, f"{version:<10} {status}") for name, version, status in report()]))
    print('optional packages of the command (pip install "xpnet[examples]"):')
    print(table(extras()))
    return 0
