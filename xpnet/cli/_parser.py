"""The command line of ``xpnet``: the parser and each subcommand's options.

The subcommands' options are added by small functions, one per group of options, in the
order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from .._version import __version__
from ..engines import ENGINES
from ..estimators._validation import SOLVERS
from ._argtypes import (
    _fraction,
    _hidden,
    _non_negative,
    _positive_float,
    _positive_int,
    _unit_interval,
)
from ._backends import BACKENDS
from ._data import DATASETS
from ._info import _info
from ._serve import _evaluate, _predict
from ._train import DEFAULT_EPOCHS, _train

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


# -- the options of each subcommand -----------------------------------------------------


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """``xpnet train``'s options, group by group, in the order ``--help`` lists them."""
    _add_data_options(p)
    _add_compute_options(p)
    _add_network_options(p)
    _add_optimizer_options(p)
    _add_schedule_options(p)
    _add_split_options(p)
    _add_stopping_options(p)
    _add_output_options(p)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """What to learn: the data, its target and the task."""
    add = p.add_argument
    add("--data", help=_DATA_HELP + " (default: digits)")
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


def _add_compute_options(p: argparse.ArgumentParser) -> None:
    """Where and in what to compute: the backend options and the dtype."""
    _add_backend_options(p)
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="the floating dtype to train in (default: float32)",
    )


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """The network: its hidden layers, activations and loss."""
    add = p.add_argument
    add(
        "--hidden",
        type=_hidden,
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (default: 64)",
    )
    add(
        "--activation",
        help="hidden layers' f: sigmoid, tanh, relu, identity (default: sigmoid)",
    )
    add(
        "--output-activation",
        help="the output layer's f (default: the loss's natural one: softmax "
        "for cross_entropy, identity for regression, exp for poisson)",
    )
    add(
        "--loss",
        help="mse, cross_entropy, or poisson to regress counts "
        "(default: cross_entropy to classify, mse to regress)",
    )


def _add_optimizer_options(p: argparse.ArgumentParser) -> None:
    """The update rule: the solver, the learning rate, momentum and the L2 penalty."""
    add = p.add_argument
    add(
        "--solver",
        choices=SOLVERS,
        help="the update rule: gradient descent (sgd), Adam, or L-BFGS (lbfgs: full-batch, "
        "--epochs counts its iterations) (default: sgd)",
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
        metavar="BETA",
        help="β of gradient descent with Nesterov's momentum, from 0 to 1 (default: 0: none)",
    )
    add(
        "--alpha",
        type=_non_negative,
        help="the L2 penalty on the weights, α/2N Σ‖W‖² in the loss (default: 0)",
    )


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    """How the training runs: epochs, mini-batches and the engine."""
    add = p.add_argument
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


def _add_split_options(p: argparse.ArgumentParser) -> None:
    """The seed and the held-out split."""
    add = p.add_argument
    add(
        "--seed",
        type=int,
        help="seeds the split, the initial weights and the batches (default: 0)",
    )
    add(
        "--test-fraction",
        type=_fraction,
        metavar="F",
        help="share of the samples held out for the score (default: 0.25)",
    )


def _add_stopping_options(p: argparse.ArgumentParser) -> None:
    """Early stopping on a validation split of the training split."""
    add = p.add_argument
    add(
        "--early-stopping",
        action="store_true",
        default=None,
        help="hold out part of the training split and stop when its score "
        "stops improving; keeps the best epoch's parameters",
    )
    add(
        "--validation-fraction",
        type=_fraction,
        metavar="F",
        help="share of the training split held out by --early-stopping (default: 0.1)",
    )
    add(
        "--n-iter-no-change",
        type=_positive_int,
        metavar="N",
        help="epochs without improvement before --early-stopping stops (default: 30)",
    )
    add(
        "--tol",
        type=float,
        help="the improvement that counts for --early-stopping (default: 1e-4)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """What the run writes: the model, checkpoints (and --resume from one), the plot."""
    add = p.add_argument
    add("--save", metavar="PATH", help="write the trained model to PATH (.npz)")
    add(
        "--checkpoint",
        metavar="PATH",
        help="write the training state to PATH every --checkpoint-every epochs, at the end "
        "and on Ctrl-C or SIGTERM; a run killed meanwhile carries on with --resume PATH "
        "(default with --resume: the checkpoint resumed)",
    )
    add(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="epochs between checkpoints (default: 100, or the resumed run's)",
    )
    add(
        "--resume",
        metavar="PATH",
        help="carry on the run that wrote the checkpoint PATH, with its data, split and "
        "settings (which cannot be given again), up to its --epochs in all (or the "
        "--epochs given here), checkpointing to PATH as it did",
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
