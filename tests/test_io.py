"""Checkpoints: one .npz of parameters and JSON metadata, any backend in and out, no pickle."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from conftest import import_jax

import xpnet
from xpnet._host import to_numpy


def _iris_like(N=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(N) % 3
    X = rng.normal(size=(N, 4)) + y[:, None]
    return X, y


def _classifier(dtype=np.float64, labels=None, **kw):
    X, y = _iris_like()
    y = y if labels is None else np.asarray(labels)[y]
    params = dict(hidden_layer_sizes=(6, 5), learning_rate=1.0, max_iter=20, random_state=0)
    return xpnet.MLPClassifier(**(params | kw)).fit(X.astype(dtype), y), X.astype(dtype), y


def _namespace(name):
    """The module a user would pass as ``xp``, and a device of it."""
    if name == "numpy":
        return np, None
    if name.startswith("array_api_strict"):
        xp = pytest.importorskip("array_api_strict")
        return xp, xp.Device("device1") if name.endswith("device1") else None
    if name == "torch":
        return pytest.importorskip("torch"), None
    if name == "jax":
        import_jax()
        import jax.numpy as jnp

        return jnp, None
    raise ValueError(name)


def _on(name, X):
    xp, device = _namespace(name)
    return xp.asarray(X) if device is None else xp.asarray(X, device=device)


BACKENDS = ["numpy", "torch", "jax", "array_api_strict", "array_api_strict_device1"]


def test_round_trip_keeps_everything(tmp_path):
    est, X, y = _classifier(labels=["cat", "dog", "émeu"], early_stopping=True, max_iter=40)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = xpnet.load(path)
    assert type(loaded) is xpnet.MLPClassifier
    assert loaded.get_params() == est.get_params()
    for a, b in zip(loaded.weights_ + loaded.biases_, est.weights_ + est.biases_, strict=True):
        assert type(a) is np.ndarray and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.classes_.dtype.kind == "U"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    for name in ("loss_curve_", "n_iter_", "n_features_in_", "n_layers_", "out_activation_",
                 "validation_scores_", "validation_loss_curve_", "best_validation_score_",
                 "best_loss_"):  # fmt: skip
        assert getattr(loaded, name) == getattr(est, name), name
    # A loaded model trains on: partial_fit continues from the saved parameters.
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == est.n_iter_ + 1


@pytest.mark.parametrize("y_2d", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regressor_round_trip(tmp_path, dtype, y_2d):
    X, _ = _iris_like()
    y = X[:, :2] @ np.array([[1.0, 0.5], [-1.0, 2.0]])
    y = y if y_2d else y[:, 0]
    est = xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=10, random_state=0)
    est.fit(X.astype(dtype), y.astype(dtype))
    est.save(tmp_path / "r.npz")
    loaded = xpnet.load(tmp_path / "r.npz")
    prediction = loaded.predict(X.astype(dtype))
    assert prediction.dtype == dtype and prediction.shape == y.shape
    np.testing.assert_array_equal(prediction, est.predict(X.astype(dtype)))
    assert loaded.best_loss_ == est.best_loss_ and loaded.validation_scores_ is None


@pytest.mark.parametrize("target", BACKENDS)
@pytest.mark.parametrize("source", BACKENDS)
def test_trained_on_one_backend_served_on_another(tmp_path, source, target):
    X, y = _iris_like()
    X = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(6,), learning_rate=1.0, max_iter=15, random_state=0)
    est = xpnet.MLPClassifier(**kw).fit(_on(source, X), _on(source, y))
    est.save(tmp_path / "m.npz")
    xp, device = _namespace(target)
    loaded = xpnet.load(tmp_path / "m.npz", xp=xp, device=device)
    X_t = _on(target, X)
    proba = loaded.predict_proba(X_t)
    assert type(proba) is type(X_t) and proba.dtype == X_t.dtype
    if device is not None:
        assert proba.device == device and loaded.classes_.device == device
    np.testing.assert_allclose(to_numpy(proba), to_numpy(est.predict_proba(_on(source, X))),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(
        to_numpy(loaded.predict(X_t)), to_numpy(est.predict(_on(source, X)))
    )


def test_xp_may_be_a_compat_namespace(tmp_path):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch

    est, _, _ = _classifier()
    est.save(tmp_path / "m.npz")
    for xp in (torch, array_api_compat.torch):
        loaded = xpnet.load(tmp_path / "m.npz", xp=xp)
        assert isinstance(loaded.weights_[0], torch.Tensor)
        assert loaded.weights_[0].dtype == torch.float64
        assert isinstance(loaded.classes_, torch.Tensor)
    with pytest.raises(TypeError, match="xp must be an array library module"):
        xpnet.load(tmp_path / "m.npz", xp="torch")


def test_unsaveable_things_are_refused(tmp_path):
    with pytest.raises(xpnet.NotFittedError):
        xpnet.MLPRegressor().save(tmp_path / "m.npz")
    est, _, _ = _classifier(random_state=np.random.default_rng(0))
    est.save(tmp_path / "m.npz")  # a Generator cannot be written: it becomes None
    assert xpnet.load(tmp_path / "m.npz").random_state is None
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_is_atomic(tmp_path, monkeypatch):
    est, X, _ = _classifier()
    path = tmp_path / "m.npz"
    est.save(path)
    before = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    def interrupted(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        xpnet.MLPClassifier(max_iter=1).fit(X, [0, 1] * 30).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


# -- files that are not (or no longer) xpnet models -----------------------------------------


def _rewrite(path, meta=None, **arrays):
    """Rewrite the model at ``path`` with changed metadata fields or arrays (None deletes)."""
    with np.load(path) as f:
        contents = dict(f)
    if meta is not None:
        m = json.loads(contents["metadata"].tobytes())
        m.update(meta)
        contents["metadata"] = np.frombuffer(json.dumps(m).encode(), dtype=np.uint8)
    for k, v in arrays.items():
        if v is None:
            del contents[k]
        else:
            contents[k] = v
    np.savez(path, **contents)


@pytest.fixture
def model(tmp_path):
    est, _, _ = _classifier()
    path = tmp_path / "m.npz"
    est.save(path)
    return path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(meta={"format": "other"}), "not an xpnet model file .*format marker"),
        (dict(meta={"format_version": 99}), "format version 99, newer than this xpnet reads"),
        (dict(meta={"estimator": "os.system"}), "unknown estimator 'os.system'"),
        (dict(meta={"dtype": "float16"}), "dtype must be one of"),
        (dict(meta={"layer_sizes": [4, 7, 5, 3]}), "hidden_layer_sizes .* do not match"),
        (dict(meta={"params": {"learning_rate": -1.0}}), "invalid hyperparameters .*learning_rate"),
        (dict(meta={"params": {"exec": "x"}}), "invalid hyperparameters"),
        (dict(meta={"loss_curve": "x"}), "loss_curve must be a list of numbers"),
        (dict(W_1=np.zeros((3, 6))), r"W_1 must be float64 of shape \(5, 6\)"),
        (dict(b_0=np.zeros(6, dtype=np.float32)), "b_0 must be float64"),
        (dict(W_0=np.full((6, 4), np.nan)), "W_0 holds NaN"),
        (dict(b_2=None), r"arrays missing: \['b_2'\]"),
        (dict(more=np.zeros(1)), r"unexpected arrays: \['more'\]"),
        (dict(classes=np.arange(4)), "classes must be a 1-D array of 3 labels"),
        (dict(metadata=np.zeros(3)), "'metadata' must be a 1-D uint8 array"),
        (dict(metadata=np.frombuffer(b"{not json", dtype=np.uint8)), "not valid JSON"),
        (dict(metadata=None), "no 'metadata' in the archive"),
    ],
)  # fmt: skip
def test_tampered_files_are_refused(model, change, match):
    _rewrite(model, **change)
    with pytest.raises(ValueError, match=f"Cannot load '.*m.npz': .*{match}"):
        xpnet.load(model)


def test_truncated_and_foreign_files_are_refused(model, tmp_path):
    data = model.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        model.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"Cannot load .*m\.npz"):
            xpnet.load(model)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an xpnet model file"):
        xpnet.load(text)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"a single .npy array"):
        xpnet.load(npy)
    with pytest.raises(FileNotFoundError):
        xpnet.load(tmp_path / "missing.npz")


class _Payload:
    def __reduce__(self):
        return (open, (os.environ["XPNET_TEST_MARKER"], "w"))


def test_pickled_content_is_never_executed(model, tmp_path, monkeypatch):
    marker = tmp_path / "executed"
    monkeypatch.setenv("XPNET_TEST_MARKER", str(marker))
    pickled = tmp_path / "evil.npz"
    pickled.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="not an xpnet model file"):
        xpnet.load(pickled)
    objects = np.empty(1, dtype=object)
    objects[0] = _Payload()
    _rewrite(model, classes=objects)
    with pytest.raises(ValueError, match="'classes' is damaged or not plain data"):
        xpnet.load(model)
    assert not marker.exists()
