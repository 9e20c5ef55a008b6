"""A sparse X (SciPy's, and cupyx's on CuPy): the same fits as dense, never made dense."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import _make_backend, assert_close

import xpnet
from xpnet._host import to_numpy
from xpnet.core.activations import ACTIVATIONS
from xpnet.core.backprop import loss_and_gradients, output
from xpnet.core.losses import OBJECTIVES

sp = pytest.importorskip("scipy.sparse", reason="sparse input is SciPy's")


def _sparse_problem(N=80, n_in=30, density=0.2, seed=0):
    """A sparse X (CSR, float64) with about ``density`` of its entries stored, a
    regression target, and labels of three classes."""
    rng = np.random.default_rng(seed)
    X = sp.random_array((N, n_in), density=density, format="csr", rng=rng)
    X.data = rng.normal(size=X.nnz)
    z = X @ rng.normal(size=n_in)
    return X, np.tanh(z), np.digitize(z, [-0.5, 0.5])


# -- the library the sparse matrix comes from ------------------------------------------


class Library:
    """SciPy on the CPU, or cupyx on a CUDA device: sparse X, dense arrays, and back."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "cupyx":
            self.backend = _make_backend("cupy")  # skips without CuPy or a CUDA device
            import cupyx.scipy.sparse

            self.sparse = cupyx.scipy.sparse
        else:
            self.backend = _make_backend("numpy")
            self.sparse = sp

    def csr(self, X):
        if self.name == "cupyx":
            import cupy

            return self.sparse.csr_matrix(cupy.asarray(X.toarray()))
        return sp.csr_array(X)

    def dense(self, a):
        return self.backend.asarray(a)


@pytest.fixture(params=["scipy", "cupyx"])
def library(request):
    return Library(request.param)


def _assert_same_fit(est, ref, *, rtol=1e-12):
    assert est.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=rtol)
    for P, P_ref in zip(est.weights_ + est.biases_, ref.weights_ + ref.biases_, strict=True):
        np.testing.assert_allclose(to_numpy(P), to_numpy(P_ref), rtol=rtol, atol=1e-15)
    if ref.validation_scores_ is not None:
        np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_, rtol=rtol)


# -- the same fits as dense -----------------------------------------------------------------

CASES = {
    "full-batch": dict(),
    "chunks-of-7": dict(chunk_size=7),
    "mini-batches-shuffled-adam-weights": dict(
        solver="adam", batch_size=16, alpha=0.1, weighted=True
    ),
    "mini-batches-in-order-momentum": dict(batch_size=16, shuffle=False, momentum=0.9),
    "early-stopping": dict(early_stopping=True, n_iter_no_change=3, max_iter=40),
    "poisson": dict(loss="poisson", learning_rate=0.05),
}


@pytest.mark.parametrize("case", list(CASES))
def test_regressor_fits_equal_dense_fits(library, case):
    params = dict(CASES[case])
    weighted = params.pop("weighted", False)
    X, y, _ = _sparse_problem()
    if params.get("loss") == "poisson":
        y = np.round(np.exp(y))
    s = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y)) if weighted else None
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", max_iter=12, random_state=0) | params
    ref = xpnet.MLPRegressor(**kw).fit(X.toarray(), y, sample_weight=s)
    to = library.dense
    est = xpnet.MLPRegressor(**kw).fit(
        library.csr(X), to(y), sample_weight=None if s is None else to(s)
    )
    _assert_same_fit(est, ref)
    pred = est.predict(library.csr(X))
    assert_close(pred, ref.predict(X.toarray()), library.backend, rtol=1e-12, atol=1e-15)
    assert est.score(library.csr(X), to(y)) == pytest.approx(ref.score(X.toarray(), y), rel=1e-12)
    grad_W, grad_b = est.gradients(library.csr(X), to(y))
    grad_W_ref, grad_b_ref = ref.gradients(X.toarray(), y)
    for g, g_ref in zip(grad_W + grad_b, grad_W_ref + grad_b_ref, strict=True):
        assert_close(g, g_ref, library.backend, rtol=1e-12, atol=1e-15)


def test_classifier_fits_equal_dense_fits(library):
    X, _, labels = _sparse_problem()
    kw = dict(hidden_layer_sizes=(6,), learning_rate=1.0, max_iter=12, random_state=0)
    ref = xpnet.MLPClassifier(**kw).fit(X.toarray(), labels)
    est = xpnet.MLPClassifier(**kw).fit(library.csr(X), library.dense(labels))
    _assert_same_fit(est, ref)
    assert_close(est.predict_proba(library.csr(X)), ref.predict_proba(X.toarray()),
                 library.backend, rtol=1e-12, atol=1e-15)  # fmt: skip
    assert est.score(library.csr(X), library.dense(labels)) == ref.score(X.toarray(), labels)


def test_partial_fit_equals_dense_partial_fit(library):
    X, y, _ = _sparse_problem()
    kw = dict(hidden_layer_sizes=(5,), batch_size=32, solver="adam", random_state=0)
    ref, est = xpnet.MLPRegressor(**kw), xpnet.MLPRegressor(**kw)
    for _ in range(3):
        ref.partial_fit(X.toarray(), y)
        est.partial_fit(library.csr(X), library.dense(y))
    _assert_same_fit(est, ref)


@pytest.mark.parametrize(
    "convert",
    [sp.csr_array, sp.csr_matrix, sp.csc_array, sp.csc_matrix, sp.coo_array, sp.lil_matrix],
    ids=lambda c: c.__name__,
)
def test_every_scipy_format_fits_as_csr(convert):
    X, y, _ = _sparse_problem(N=40)
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, batch_size=8, random_state=0)
    ref = xpnet.MLPRegressor(**kw).fit(X, y)
    X_in = convert(X)
    est = xpnet.MLPRegressor(**kw).fit(X_in, y)
    _assert_same_fit(est, ref)
    pred = est.predict(X_in)
    assert type(pred) is np.ndarray and pred.shape == (40,) and pred.dtype == np.float64


def test_float32_stays_float32_and_integers_train_in_float64():
    X, y, _ = _sparse_problem(N=40)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    est.fit(X.astype(np.float32), y.astype(np.float32))
    assert {P.dtype for P in est.weights_ + est.biases_} == {np.dtype(np.float32)}
    assert est.predict(X.astype(np.float32)).dtype == np.float32
    ones = (X != 0).astype(np.int64)
    est.fit(ones, y)
    assert est.weights_[0].dtype == np.float64
    ref = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    _assert_same_fit(est, ref.fit(ones.toarray().astype(float), y))


def test_the_users_matrix_is_left_as_it_was():
    X, y, _ = _sparse_problem(N=40)
    X_csc = X.tocsc()
    before = [a.copy() for a in (X_csc.data, X_csc.indices, X_csc.indptr)]
    xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, batch_size=8).fit(X_csc, y)
    for a, a_before in zip((X_csc.data, X_csc.indices, X_csc.indptr), before, strict=True):
        np.testing.assert_array_equal(a, a_before)
    assert X_csc.format == "csc"


# -- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "what"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nan_and_infinity_among_the_stored_values_are_refused(value, what):
    X, y, _ = _sparse_problem(N=40)
    fitted = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, y)
    X = X.copy()
    X.data[5] = value
    with pytest.raises(ValueError, match=f"Input X contains {what}"):
        xpnet.MLPRegressor(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=f"Input X contains {what}"):
        fitted.predict(X)


def test_sparse_targets_and_weights_are_refused_with_advice():
    X, y, _ = _sparse_problem(N=40)
    y_sparse = sp.csr_array(y[:, None])
    with pytest.raises(TypeError, match=r"y is a sparse matrix .* y must be dense: .*y\.toarray"):
        xpnet.MLPRegressor(max_iter=1).fit(X, y_sparse)
    with pytest.raises(TypeError, match=r"y is a sparse matrix"):
        xpnet.MLPClassifier(max_iter=1).fit(X, sp.csr_array((y > 0)[:, None].astype(int)))
    with pytest.raises(TypeError, match=r"sample_weight is a sparse matrix"):
        xpnet.MLPRegressor(max_iter=1).fit(X, y, sample_weight=sp.csr_array(np.ones((1, 40))))


@pytest.mark.parametrize(
    ("X_bad", "match"),
    [
        (sp.csr_array((0, 3)), r"0 sample\(s\)"),
        (sp.csr_array((4, 0)), r"0 feature\(s\)"),
        (sp.coo_array(np.ones(4)), r"Expected a 2-D array X .* got 1-D"),
        (sp.csr_array(np.ones((4, 3)) * 1j), r"Complex data not supported"),
    ],
)
def test_bad_sparse_shapes_and_dtypes_are_named(X_bad, match):
    with pytest.raises(ValueError, match=match):
        xpnet.MLPRegressor(max_iter=1).fit(X_bad, np.zeros(X_bad.shape[0]))


def test_the_features_are_checked_against_the_fit():
    X, y, _ = _sparse_problem(N=40)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 29 features, but MLPRegressor is expecting 30"):
        est.predict(X[:, 1:])


def test_jit_is_refused_for_scipy_matrices():
    X, y, _ = _sparse_problem(N=40)
    with pytest.raises(ValueError, match=r"engine='jit' .* not scipy arrays"):
        xpnet.MLPRegressor(max_iter=1, engine="jit").fit(X, y)


# -- how it is computed ---------------------------------------------------------------------


def test_the_core_takes_the_transposed_matrix_as_its_input():
    # A⁽⁰⁾ = Xᵀ, a CSC view of the CSR X: W⁽¹⁾ @ A⁽⁰⁾, Δ⁽¹⁾ @ A⁽⁰⁾ᵀ and A⁽⁰⁾[:, chunk]
    # are all the core asks of it.
    import array_api_compat.numpy as xp

    X, y, _ = _sparse_problem()
    rng = np.random.default_rng(2)
    W = [rng.normal(size=(5, 30)), rng.normal(size=(1, 5))]
    b = [rng.normal(size=5), rng.normal(size=1)]
    f = [ACTIVATIONS["tanh"], ACTIVATIONS["identity"]]
    objective = OBJECTIVES[("mse", "identity")]
    A0 = X.T
    assert A0.format == "csc" and A0.shape == (30, 80)
    for chunk_size in (None, 13):
        E, grad_W, grad_b = loss_and_gradients(
            W, b, A0, y[None, :], f=f, objective=objective, xp=xp, chunk_size=chunk_size
        )
        E_ref, grad_W_ref, grad_b_ref = loss_and_gradients(
            W, b, X.toarray().T, y[None, :], f=f, objective=objective, xp=xp
        )
        assert float(E) == pytest.approx(float(E_ref), rel=1e-13)
        for g, g_ref in zip(grad_W + grad_b, grad_W_ref + grad_b_ref, strict=True):
            assert type(g) is np.ndarray
            np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)
        O = output(W, b, A0, f=f, xp=xp, chunk_size=chunk_size)
        np.testing.assert_allclose(O, output(W, b, X.toarray().T, f=f, xp=xp), rtol=1e-13)


def test_a_large_sparse_X_is_never_made_dense():
    # 20 000 × 20 000 at density 1e-4: 3.2 GB as a dense float64 array, 0.5 MB stored.
    rng = np.random.default_rng(0)
    N, n_in, nnz = 20_000, 20_000, 40_000
    X = sp.csr_array(
        (rng.normal(size=nnz), (rng.integers(0, N, nnz), rng.integers(0, n_in, nnz))),
        shape=(N, n_in),
    )
    y = rng.normal(size=N)
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    tracemalloc.start()
    try:
        est.fit(X, y)
        est.partial_fit(X[:5000], y[:5000])
        est.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # W⁽¹⁾ and its gradients are 0.6 MB each; one dense row block of 1000 samples alone
    # would be 160 MB.
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"


class _Ducked:
    """A sparse matrix with only the interface cupyx's matrices share with SciPy's,
    under cupyx's module name: what xpnet may use of a sparse X, and no more."""

    __module__ = "cupyx.scipy.sparse._csr"
    __array_priority__ = 101  # as cupyx's: NumPy's (and CuPy's) `@` defer to __rmatmul__

    def __init__(self, m) -> None:
        self._m = m
        self.shape, self.dtype, self.format, self.data = m.shape, m.dtype, m.format, m.data

    @property
    def T(self):
        return _Ducked(self._m.T)

    def tocsr(self):
        return _Ducked(self._m.tocsr())

    def astype(self, dtype):
        return _Ducked(self._m.astype(dtype))

    def __getitem__(self, key):
        return _Ducked(self._m[key])

    def __matmul__(self, other):
        return self._m @ other

    def __rmatmul__(self, other):
        return other @ self._m


@pytest.mark.parametrize("params", [dict(), dict(batch_size=16, early_stopping=True)])
def test_a_matrix_with_cupyx_s_interface_fits_as_scipy_s(params):
    X, y, _ = _sparse_problem()
    kw = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0, **params)
    ref = xpnet.MLPRegressor(**kw).fit(X, y)
    est = xpnet.MLPRegressor(**kw).fit(_Ducked(sp.csc_matrix(X)), y)
    _assert_same_fit(est, ref)
    np.testing.assert_allclose(est.predict(_Ducked(sp.csr_matrix(X))), ref.predict(X), rtol=1e-12)


def test_the_memory_benchmark_runs(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_sparse.py"
    out = tmp_path / "sparse.json"
    cmd = [sys.executable, str(script), "--rows", "3000", "--features", "2000", "--density",
           "1e-3", "--hidden", "8", "--epochs", "2", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "fit: peak allocated" in proc.stdout
    report = json.loads(out.read_text())
    assert report["dense_X_bytes"] == 3000 * 2000 * 4
    fit = report["fit"]
    assert fit["nnz"] > 0 and fit["W1_bytes"] == 8 * 2000 * 4
    assert 0 < fit["fit_peak_bytes"] < report["dense_X_bytes"]
    assert fit["seconds_per_epoch"] > 0
