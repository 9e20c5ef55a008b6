"""The ``xpnet`` command: in a subprocess where the console matters, else ``main`` in-process."""

from __future__ import annotations

import csv
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from xpnet.cli import main
from xpnet.cli._data import DATASETS

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
def test_wrong_arguments_give_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args):
    # In this process (a new one per case costs seconds); the two below run the command.
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("xpnet: error: ")


@pytest.mark.parametrize(
    "args", [["train", "--lr", "-1"], ["evaluate", "--model", "notes.txt"]], ids=["argparse", "own"]
)
def test_wrong_arguments_give_one_line_and_exit_2_from_the_command(tmp_path, args):
    # The whole process: nothing else on stderr, before or after main() (no traceback,
    # no warning at exit).
    (tmp_path / "notes.txt").write_text("not a model")
    result = xpnet(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("xpnet: error: ")


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
        "print(sorted(m for m in ('sklearn', 'pandas', 'tqdm', 'matplotlib', 'torch', 'jax') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_csv_values_are_plain_numbers():
    from xpnet.cli._serve import _csv_value

    assert _csv_value(np.float64(0.25)) == "0.25"
    assert _csv_value(np.float32(0.5)) == "0.5"
    assert _csv_value("cat") == "cat" and _csv_value(np.int64(3)) == "3"


# -- in-process: main(argv) and capsys ----------------------------------------------------


def _readme_section():
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    return text.split("## The `xpnet` command", 1)[1].split("\n## ", 1)[0]


def test_readme_and_help_list_the_bundled_data_sets(capsys):
    (row,) = [line for line in _readme_section().splitlines() if line.startswith("| `--data` |")]
    meaning = row.split("|")[3]  # | option | default | meaning |: the names, then the files
    assert tuple(re.findall(r"`(\w+)`", meaning.split(", a `.csv`")[0])) == DATASETS
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"a bundled data set ({', '.join(DATASETS)})" in help_text


def test_lbfgs_trains_until_it_converges(capsys, tmp_path):
    model = str(tmp_path / "m.npz")
    args = ["train", "--data", "wine", "--solver", "lbfgs", "--epochs", "500", "--save", model]
    assert main(args) == 0
    out, _ = capsys.readouterr()
    rows = _rows(out)
    assert rows["network"].strip().endswith("lbfgs") and int(rows["epochs"]) < 500
    assert main(["evaluate", "--model", model]) == 0
    assert _rows(capsys.readouterr().out)["accuracy"] == rows["accuracy (held out)"]


@pytest.mark.parametrize("name", DATASETS)
def test_every_bundled_data_set_trains(capsys, name):
    # breast_cancer's feature_names is a NumPy array, the others' a list.
    assert main(["train", "--data", name, "--epochs", "3", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    (line,) = out.splitlines()
    metric, value = line.split(": ")
    assert metric == ("R²" if name == "diabetes" else "accuracy") and np.isfinite(float(value))


def _object_npy(path):
    with open(path, "wb") as fh:  # np.save(path) would append .npy to the name
        np.save(fh, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _object_npz(path):
    np.savez(path, metadata=np.array([{"format": "xpnet-model"}], dtype=object))


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (_object_npy, "a single .npy array"),
        (_object_npz, "the array 'metadata' is damaged or not plain data"),
        (lambda path: path.write_bytes(bytes(range(256)) * 4), "not an .npz archive"),
        (lambda path: path.write_bytes(pickle.dumps([1, 2])), "not an .npz archive"),
        (lambda path: path.write_bytes(b""), "not an .npz archive"),
    ],
)
def test_a_file_that_is_not_a_model_says_so_without_numpys_advice(tmp_path, capsys, write,
                                                                  problem):  # fmt: skip
    path = tmp_path / "m.npz"
    write(path)
    assert main(["evaluate", "--model", str(path), "--data", "iris"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"xpnet: error: Cannot load {str(path)!r}: not an xpnet model file (")
    assert problem in err and "pickle=" not in err and "pickle.load" not in err


def test_missing_features_are_counted_and_a_few_named(tmp_path, capsys):
    model = str(tmp_path / "m.npz")
    assert main(["train", "--epochs", "2", "--save", model, "--quiet"]) == 0
    other = tmp_path / "other.csv"
    columns = [*(f"pixel_{j // 8}_{j % 8}" for j in range(60)), "a", "b", "c", "d", "target"]
    other.write_text(",".join(columns) + "\n" + ",".join(["0"] * len(columns)) + "\n")
    capsys.readouterr()
    for command in ("evaluate", "predict"):
        assert main([command, "--model", model, "--data", str(other)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == (
            f"xpnet: error: {str(other)!r} has 60 of the model's 64 features: no column "
            "'pixel_7_4', 'pixel_7_5', 'pixel_7_6', 'pixel_7_7'; its columns are 'pixel_0_0', "
            "'pixel_0_1', 'pixel_0_2', 'pixel_0_3', 'pixel_0_4', ... (65 in all)\n"
        )
    other.write_text("u,v,w,target\n1,2,3,0\n")
    assert main(["evaluate", "--model", model, "--data", str(other)]) == 2
    assert capsys.readouterr().err == (
        f"xpnet: error: {str(other)!r} has 0 of the model's 64 features: no column 'pixel_0_0', "
        "'pixel_0_1', 'pixel_0_2', 'pixel_0_3', 'pixel_0_4', ... (64 missing); its columns are "
        "'u', 'v', 'w', 'target'\n"
    )


def test_no_command_prints_the_help_with_status_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("usage: xpnet") and "train" in out and "evaluate" in out
    assert err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "-3"], "argument --epochs: expected a number >= 1, got '-3'"),
        (["train", "--hidden", "a"], "argument --hidden: expected layer sizes like 64,32"),
        (["train", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
        (["train", "--solver", "newton"], "argument --solver: invalid choice: 'newton'"),
        (["train", "--momentum", "2"], "argument --momentum: expected a number from 0 to 1"),
        (["train", "--alpha", "-1"], "argument --alpha: expected a number >= 0, got '-1'"),
        (["train", "--alpha", "nan"], "argument --alpha: expected a number >= 0, got 'nan'"),
        (["train", "--solver", "adam", "--momentum", "0.9"], "--momentum applies to --solver sgd"),
        (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["train", "--engine", "fast"], "argument --engine: invalid choice: 'fast'"),
        (
            ["train", "--engine", "jit"],
            "--engine jit compiles on jax, torch, cupy, not --backend numpy",
        ),
        (
            ["train", "--engine", "jit", "--backend", "torch", "--batch-size", "32", "--quiet"],
            "engine='jit' compiles full-batch training on JAX or PyTorch arrays and fuses "
            "kernels on CuPy, not mini-batches",
        ),
        (["tran"], "argument COMMAND: invalid choice: 'tran'"),
        (["evaluate"], "the following arguments are required: --model"),
    ],
)
def test_a_bad_command_line_is_one_line_without_the_usage(capsys, args, message):
    if "torch" in args and "--batch-size" in args:  # refused once the data and PyTorch are in
        pytest.importorskip("torch", reason="PyTorch is not installed")
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"xpnet: error: {message}") and err.count("\n") == 1


def test_classifying_a_quantity_warns_and_trains(capsys):
    # diabetes: 442 samples of 214 distinct whole numbers.  warnings.warn would fail here:
    # pytest turns warnings into errors, as `python -W error` does.
    args = ["train", "--data", "diabetes", "--task", "classify", "--epochs", "2", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("accuracy: ")
    (line,) = err.splitlines()
    assert line.startswith("xpnet: warning: --task classify: the target has 214 distinct values")
    assert "then --task regress" in line and "1.5 training samples per class on average" in line
    assert "of the 214 classes have fewer than 2 training samples" in line


def test_few_samples_per_class_warn(tmp_path, capsys):
    rows = [f"{k + 0.1 * i},{k - 0.2 * i},c{k}" for i in range(4) for k in range(6)]
    (tmp_path / "few.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
    args = ["train", "--data", str(tmp_path / "few.csv"), "--epochs", "2", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("accuracy: ") and err == (
        "xpnet: warning: --task classify: only 3.0 training samples per class on average: "
        "expect a poor held-out accuracy\n"
    )


def test_adam_at_its_own_default_learning_rate(capsys):
    assert main(["train", "--solver", "adam", "--epochs", "50", "--quiet"]) == 0
    assert float(capsys.readouterr().out.split()[1]) > 0.9
    assert main(["train", "--data", "iris", "--solver", "adam", "--epochs", "3"]) == 0
    network = _rows(capsys.readouterr().out)["network"]
    assert network.strip().endswith("loss cross_entropy, adam, μ = 0.01")


def test_momentum_and_alpha(capsys):
    args = ["train", "--data", "iris", "--momentum", "0.9", "--alpha", "1e-3", "--epochs", "20"]
    assert main(args) == 0
    rows = _rows(capsys.readouterr().out)
    assert (
        rows["network"]
        .strip()
        .endswith("loss cross_entropy, sgd, μ = 2.0, Nesterov momentum 0.9, α = 0.001")
    )
    assert 0.0 <= float(rows["accuracy (held out)"]) <= 1.0


def test_engine_jit_trains_to_the_eager_result(capsys, monkeypatch):
    # On PyTorch, --engine jit runs each step through torch.compile, to the eager run's
    # accuracy.  (Its graph is handed to "aot_eager": Inductor's C++ takes seconds, and
    # tests/test_compiled.py runs it.)
    pytest.importorskip("torch", reason="PyTorch is not installed")
    import xpnet.engines.torch

    monkeypatch.setattr(xpnet.engines.torch, "TORCH_BACKEND", "aot_eager")
    results = []
    for engine in ("eager", "jit"):
        args = ["train", "--data", "iris", "--backend", "torch", "--dtype", "float64",
                "--epochs", "20", "--engine", engine, "--quiet"]  # fmt: skip
        assert main(args) == 0
        results.append(capsys.readouterr().out)
    assert results[0] == results[1] and results[0].startswith("accuracy: ")
