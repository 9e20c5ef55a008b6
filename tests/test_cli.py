"""The ``xpnet`` command, run for real in a subprocess."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

SCRIPT = Path(sys.executable).parent / ("xpnet.exe" if os.name == "nt" else "xpnet")


def xpnet(*args, cwd, script=False, check=True):
    """Run ``xpnet ARGS`` (the console script, or ``python -m xpnet``) and return the result."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "xpnet"]
    env = dict(os.environ, PYTHONWARNINGS="error", COLUMNS="100")
    result = subprocess.run([*command, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _rows(stdout):
    """The summary table as {label: value}."""
    return dict(line.strip().split("  ", 1) for line in stdout.splitlines() if "  " in line)


@pytest.fixture(scope="module")
def digits_job(tmp_path_factory):
    """The README's job, once: ``xpnet train`` (with --save and --plot)."""
    if not SCRIPT.exists():
        pytest.skip(f"the console script is not installed at {SCRIPT}")
    folder = tmp_path_factory.mktemp("digits")
    return folder, xpnet("train", "--save", "m.npz", "--plot", "loss.png", cwd=folder, script=True)


def test_train_runs_the_digits_job(digits_job):
    folder, result = digits_job
    rows = {k: v.strip() for k, v in _rows(result.stdout).items()}
    assert float(rows["accuracy (held out)"]) >= 0.96
    assert rows["epochs"] == "300" and rows["backend"] == "numpy"
    assert rows["device"] == "cpu" and rows["dtype"] == "float32"
    for label in ("wall time", "time per epoch", "samples per second", "data", "network"):
        assert label in rows
    assert "300/300" in result.stderr and "loss=" in result.stderr  # the progress bar
    assert (folder / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reproduces_the_accuracy(digits_job):
    folder, result = digits_job
    trained = _rows(result.stdout)["accuracy (held out)"].strip()
    evaluated = _rows(xpnet("evaluate", "--model", "m.npz", cwd=folder).stdout)
    assert evaluated["accuracy"].strip() == trained
    assert evaluated["samples"].strip() == "450 (digits, test)"


def test_quiet_prints_only_the_result(tmp_path):
    result = xpnet("train", "--data", "iris", "--epochs", "20", "--quiet", cwd=tmp_path)
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert line.startswith("accuracy: ") and 0.0 <= float(line.split()[1]) <= 1.0


def test_trained_on_one_backend_evaluated_on_another(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("array_api_strict")
    trained = xpnet("train", "--data", "wine", "--epochs", "30", "--backend", "torch",
                    "--dtype", "float64", "--early-stopping", "--save", "w.npz", "--quiet",
                    cwd=tmp_path)  # fmt: skip
    accuracy = trained.stdout.split()[1]
    served = xpnet("evaluate", "--model", "w.npz", "--backend", "array_api_strict",
                   "--device", "device1", cwd=tmp_path)  # fmt: skip
    assert _rows(served.stdout)["accuracy"].strip() == accuracy


def test_csv_with_text_labels_train_predict_evaluate(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    with open(tmp_path / "flowers.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "b", "c", "d", "species"])
        for x, k in zip(iris.data, iris.target, strict=True):
            writer.writerow([*x, iris.target_names[k]])
    xpnet("train", "--data", "flowers.csv", "--target", "species", "--epochs", "40",
          "--save", "f.npz", "--quiet", cwd=tmp_path)  # fmt: skip
    xpnet("predict", "--model", "f.npz", "--data", "flowers.csv", "--proba",
          "--output", "p.csv", cwd=tmp_path)  # fmt: skip
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 150
    assert set(rows[0]) == {"prediction", "proba_setosa", "proba_versicolor", "proba_virginica"}
    assert {r["prediction"] for r in rows} <= set(iris.target_names)
    result = xpnet("evaluate", "--model", "f.npz", "--data", "flowers.csv", cwd=tmp_path)
    assert _rows(result.stdout)["samples"].strip() == "150 (flowers.csv, all)"


def test_npz_regression(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    np.savez(tmp_path / "d.npz", X=X, y=100.0 + 10.0 * np.tanh(X @ [1.0, -0.5, 0.3]))
    result = xpnet("train", "--data", "d.npz", "--epochs", "200",
                   "--save", "r.npz", cwd=tmp_path)  # fmt: skip
    assert float(_rows(result.stdout)["R² (held out)"]) > 0.8
    xpnet("predict", "--model", "r.npz", "--data", "d.npz", "--output", "out.npz", cwd=tmp_path)
    with np.load(tmp_path / "out.npz") as out:
        prediction = out["prediction"]
    assert prediction.shape == (200,) and 80.0 < prediction.mean() < 120.0  # in y's own units


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["train", "--lr", "-1"],
        ["train", "--epochs", "many"],
        ["train", "--hidden", "64,x"],
        ["train", "--backend", "nosuch"],
        ["train", "--test-fraction", "1.5"],
        ["train", "--data", "nope"],
        ["train", "--data", "missing.csv"],
        ["train", "--device", "cuda:7"],
        ["train", "--activation", "swish"],
        ["train", "--plot", "loss.txt"],
        ["train", "--save", "no/such/folder/m.npz"],
        ["evaluate", "--model", "missing.npz"],
        ["evaluate", "--model", "notes.txt"],
        ["predict", "--model", "notes.txt", "--output", "p.json"],
        ["predict"],
    ],
)
def test_wrong_arguments_give_one_line_and_exit_2(tmp_path, args):
    (tmp_path / "notes.txt").write_text("not a model")
    result = xpnet(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("xpnet") and "error: " in last


def test_own_errors_are_exactly_one_line(tmp_path):
    result = xpnet("train", "--data", "iris", "--hidden", "4", "--activation", "swish",
                   cwd=tmp_path, check=False)  # fmt: skip
    assert result.stderr == (
        "xpnet: error: activation must be one of ('identity', 'sigmoid', 'tanh', 'relu'), "
        "got 'swish'.\n"
    )


def test_a_missing_extra_is_named(tmp_path):
    code = "import sys; sys.modules['tqdm'] = None; from xpnet.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "train"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        'xpnet: error: tqdm is needed here but is not installed: pip install "xpnet[examples]"\n'
    )


@pytest.mark.parametrize("command", [[], ["train"], ["predict"], ["evaluate"], ["info"]])
def test_help_everywhere_with_examples(tmp_path, command):
    result = xpnet(*command, "--help", cwd=tmp_path)
    assert result.stdout.startswith("usage: xpnet")
    if command:
        assert "example" in result.stdout


def test_info_lists_backends(tmp_path):
    import xpnet as package

    result = xpnet("info", cwd=tmp_path)
    assert result.stdout.startswith(f"xpnet {package.__version__} ")
    assert "numpy" in result.stdout and "devices: cpu" in result.stdout
    for name in ("cupy", "torch", "jax", "array_api_strict"):
        assert name in result.stdout


def test_import_stays_light():
    code = (
        "import sys, xpnet, xpnet.cli; "
        "print(sorted(m for m in ('sklearn', 'tqdm', 'matplotlib', 'torch', 'jax') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_csv_values_are_plain_numbers():
    from xpnet.cli import _csv_value

    assert _csv_value(np.float64(0.25)) == "0.25"
    assert _csv_value(np.float32(0.5)) == "0.5"
    assert _csv_value("cat") == "cat" and _csv_value(np.int64(3)) == "3"
