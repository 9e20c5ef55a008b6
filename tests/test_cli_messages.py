"""The command's data files and messages: CSV read by pandas, a missing header refused, a
missing target or a bad field named, the loss's natural output, ``xpnet info``'s table."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

from xpnet.cli import main
from xpnet.cli._data import load_data

TRAIN = ["train", "--epochs", "2", "--quiet"]


def _write(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def _labelled(header=True, n=24):
    """Lines of a small CSV file: two features and a text label."""
    lines = [f"{k + 0.1 * i},{k - 0.25 * i},{'yes' if k % 2 else 'no'}"
             for i in range(n // 4) for k in range(4)]  # fmt: skip
    return ["a,b,label", *lines] if header else lines


def _error(capsys, args):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("xpnet: error: ")
    return err.removeprefix("xpnet: error: ").rstrip("\n")


def test_a_csv_file_needs_pandas_and_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path / "d.csv", _labelled())
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    assert _error(capsys, [*TRAIN, "--data", path]) == (
        'pandas is needed here but is not installed: pip install "xpnet[examples]"'
    )


def test_values_are_read_exactly_as_python_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3)) * 10.0 ** rng.integers(-8, 8, size=(50, 3))
    texts = [[repr(float(v)) for v in row] for row in values]
    lines = ["x,y,z,target"] + [",".join([*row, str(k % 3)]) for k, row in enumerate(texts)]
    data = load_data(_write(tmp_path / "d.csv", lines))
    expected = np.array([[float(t) for t in row] for row in texts])
    np.testing.assert_array_equal(data.X, expected)  # every bit: no rounding on the way
    assert data.features == ["x", "y", "z"] and data.target == "target"
    assert data.y.dtype == np.int64 and list(data.y[:4]) == [0, 1, 2, 0]


def test_labels_keep_their_text(tmp_path):
    lines = ["a,b,label", "1, 2, yes", "3,4,True", "5,6, 007", "7,8,no"]
    data = load_data(_write(tmp_path / "d.csv", lines))
    assert list(data.y) == ["yes", "True", "007", "no"]  # as written, spaces stripped
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4], [5, 6], [7, 8]])


@pytest.mark.parametrize(
    "lines",
    [
        _labelled(header=False),  # text labels: the first label comes again below
        ["1.5,2.0,0", "0.5,1.0,1", "2.5,3.0,0", "1.0,1.0,1"],  # numbers only
    ],
    ids=["labels", "numbers"],
)
def test_a_csv_file_without_a_header_row_is_refused(tmp_path, capsys, lines):
    path = _write(tmp_path / "d.csv", lines * 4)
    first = ", ".join(repr(field) for field in lines[0].split(","))
    assert _error(capsys, [*TRAIN, "--data", path]) == (
        f"{path!r} has no header row: its first line ({first}) reads as data like the lines "
        "below it, not as column names; add a first line that names the columns"
    )


@pytest.mark.parametrize(
    "header",
    ["0,1,2", "1,2,3", "400,410,label", "a,b,label"],
    ids=["pandas-positions", "counted-from-1", "wavelengths-and-a-label", "words"],
)
def test_names_that_are_numbers_can_be_a_header(tmp_path, capsys, header):
    # Column numbers (pandas' names for a table without any) are names, and so are
    # numbers beside a word.
    rows = [f"{k + 0.1 * i},{k - 0.25 * i},{k % 2}" for i in range(6) for k in range(4)]
    path = _write(tmp_path / "d.csv", [header, *rows])
    target = header.split(",")[-1]
    assert main([*TRAIN, "--data", path, "--target", target]) == 0
    assert capsys.readouterr().out.startswith("accuracy: ")


def test_a_misspelt_target_is_named_as_such(tmp_path, capsys):
    path = _write(tmp_path / "d.csv", _labelled())
    assert _error(capsys, [*TRAIN, "--data", path, "--target", "lable"]) == (
        f"no column 'lable' in {path!r}; its columns are 'a', 'b', 'label'"
    )
    model = str(tmp_path / "m.npz")
    assert main([*TRAIN, "--data", path, "--save", model]) == 0
    capsys.readouterr()
    assert _error(capsys, ["evaluate", "--model", model, "--target", "lable"]) == (
        f"no column 'lable' in {path!r}; its columns are 'a', 'b', 'label'"
    )
    # predict needs no target: a model's own one may be missing from new data.
    _write(tmp_path / "new.csv", ["a,b", "1,2", "3,4"])
    assert main(["predict", "--model", model, "--data", str(tmp_path / "new.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "prediction"


def test_a_misspelt_npz_target_is_named_as_such(tmp_path, capsys):
    path = str(tmp_path / "d.npz")
    np.savez(path, X=np.ones((8, 2)), y=np.arange(8) % 2)
    assert _error(capsys, [*TRAIN, "--data", path, "--target", "lable"]) == (
        f"no array 'lable' in {path!r}; its arrays are 'X', 'y'"
    )
    np.savez(path, X=np.ones((8, 2)), labels=np.arange(8) % 2)
    assert _error(capsys, [*TRAIN, "--data", path]) == (
        f"no array 'y' in {path!r}; its arrays are 'X', 'labels'; name the target with --target"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["1,2,no", "3,yes,yes"], "line 3, column 'b': 'yes' is not a number"),
        (["1,2,no", "", "3,,yes"], "line 4, column 'b': '' is not a number"),
        (["1,2,no", "3,NA,yes"], "line 3, column 'b': 'NA' is not a number"),
        (["1,2,no", "3,4"], "line 3: 2 fields, the header has 3"),
        (["1,2,no", "3,4,yes", "5,6"], "line 4: 2 fields, the header has 3"),
    ],
    ids=["word", "empty-after-a-blank-line", "NA", "short-row", "short-last-row"],
)
def test_a_bad_field_is_named_with_its_line(tmp_path, capsys, body, message):
    path = _write(tmp_path / "d.csv", ["a,b,label", *body])
    assert _error(capsys, [*TRAIN, "--data", path]) == f"{path!r} {message}"


def test_a_long_row_and_a_repeated_name_are_refused(tmp_path, capsys):
    for line, rows in ((3, ["1,2,no", "3,4,yes,5"]), (2, ["1,2,no,5", "3,4,yes"])):
        # pandas drops the extra fields of a long first row, with only a warning.
        path = _write(tmp_path / "d.csv", ["a,b,label", *rows])
        assert _error(capsys, [*TRAIN, "--data", path]) == (
            f"{path!r} line {line}: 4 fields, the header has 3"
        )
    path = _write(tmp_path / "d.csv", ["a,a,label", "1,2,no", "3,4,yes"])
    assert _error(capsys, [*TRAIN, "--data", path]) == (
        f"{path!r} has more than one column named 'a'"
    )


def test_a_regression_loss_takes_its_natural_output(tmp_path, capsys):
    # --output-activation defaults to the loss's natural one, for regression too (the
    # regressor's own default, identity, goes with mse only).
    rows = [f"{0.1 * k},{0.2 * (k % 5)},{(k % 7) / 7}" for k in range(40)]
    path = _write(tmp_path / "d.csv", ["a,b,p", *rows])
    args = [
        "train",
        "--data",
        path,
        "--task",
        "regress",
        "--loss",
        "cross_entropy",
        "--epochs",
        "2",
    ]
    assert main(args) == 0
    assert "sigmoid → sigmoid, loss cross_entropy" in capsys.readouterr().out


def test_info_aligns_its_columns(capsys, monkeypatch):
    # Versions longer than ten characters (PyTorch's "2.5.1+cu124") included, and the
    # optional packages' versions under the backends' ones.
    rows = [("numpy", "2.4.6", "devices: cpu"), ("torch", "2.5.1+cu124", "devices: cpu, cuda:0"),
            ("array_api_strict", "2.6.1", "devices: CPU_DEVICE, device1")]  # fmt: skip
    monkeypatch.setattr("xpnet.cli._info.report", lambda: rows)
    assert main(["info"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert len(lines) == len(rows) + 4  # scikit-learn, pandas, tqdm, matplotlib
    versions = {line.index(line.split()[1]) for line in lines}
    statuses = {line.index("devices:") for line in lines[: len(rows)]}
    assert len(versions) == 1 and len(statuses) == 1
    assert "pandas" in lines[len(rows) + 1]
