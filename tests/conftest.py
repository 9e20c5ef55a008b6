"""One backend fixture for every numeric test, and a comparison helper that checks more than values.

``pytest --backend numpy,torch`` selects backends; the default is every backend.  A
backend that cannot run here is skipped with the reason, which ``-ra`` reports.

Tests marked ``slow`` (real Dask clusters and worker processes, the benchmark scripts
run end to end: seconds each) run with ``--run-slow``, as CI runs the suite; without it
they are skipped, with that reason.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import array_api_compat as aac
import numpy as np
import pytest

from xpnet._host import to_numpy

# JAX takes 75% of a GPU's memory when it starts, unless told not to: with several test
# workers (pytest -n), the second would find none left.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

BACKENDS = (
    "numpy",
    "numpy_readonly",
    "array_api_strict",
    "array_api_strict_device1",
    "torch",
    "jax",
    "dask",
    "cupy",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        help=f"run numeric tests on these backends only (comma-separated; from {BACKENDS})",
    )
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the tests marked slow (clusters, worker processes, scripts end to end)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: runs with --run-slow (as CI runs the suite)")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


def _selected(config: pytest.Config) -> list[str]:
    names = [n.strip() for opt in config.getoption("--backend") for n in opt.split(",")]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown}; choose from {BACKENDS}")
    return names or list(BACKENDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _selected(metafunc.config), indirect=True)


@dataclass(frozen=True)
class Backend:
    """An array library to run a test on: its namespace, a device, and conversions."""

    name: str
    xp: Any
    device: Any
    readonly: bool = False

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """A NumPy array (or list) as an array of this backend, on its device."""
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        if self.readonly:
            a = a.copy()
            a.flags.writeable = False
            return a
        if self.name == "dask":
            import dask.array as da

            return da.from_array(a, chunks=-1)
        return self.xp.asarray(a, device=self.device)

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)


def import_jax() -> Any:
    """JAX, set up as the tests compare it: float64 enabled, matrix products in full float32.

    On a GPU, JAX's default precision takes float32 matrix products through TF32 (10-bit
    mantissas), which differs from the other libraries by about 1e-3; the README tells
    users to compare backends with TF32 off, and so do the tests.
    """
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    return jax


def _make_backend(name: str) -> Backend:
    if name in ("numpy", "numpy_readonly"):
        import array_api_compat.numpy as xp

        return Backend(name, xp, "cpu", readonly=name == "numpy_readonly")
    if name.startswith("array_api_strict"):
        xp = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
        device = xp.Device("device1") if name.endswith("device1") else xp.Device("CPU_DEVICE")
        return Backend(name, xp, device)
    if name == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        import array_api_compat.torch as xp

        return Backend(name, xp, torch.device("cpu"))
    if name == "jax":
        jax = import_jax()
        import jax.numpy as xp

        return Backend(name, xp, jax.devices()[0])
    if name == "dask":
        pytest.importorskip("dask.array", reason="Dask is not installed")
        import array_api_compat.dask.array as xp

        return Backend(name, xp, "cpu")
    if name == "cupy":
        cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
        try:
            n_gpus = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, no runtime: CuPy imports but cannot run
            pytest.skip(f"CuPy cannot reach a CUDA device: {exc}")
        if n_gpus == 0:
            pytest.skip("CuPy is installed but there is no CUDA device")
        xp = importlib.import_module("array_api_compat.cupy")
        return Backend(name, xp, cupy.cuda.Device(0))
    raise ValueError(name)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    return _make_backend(request.param)


def assert_same_kind(actual: Any, backend: Backend, *, dtype: Any = None, shape: Any = None):
    """Check that ``actual`` is an array of ``backend``'s namespace, on its device."""
    assert aac.is_array_api_obj(actual), f"expected an array, got {type(actual)}"
    xp = aac.array_namespace(actual)
    expected = aac.array_namespace(backend.asarray(np.zeros(1)))
    assert xp is expected, f"namespace {xp.__name__}, expected {expected.__name__}"
    if backend.name != "dask":
        assert aac.device(actual) == backend.device, (
            f"device {aac.device(actual)!r}, expected {backend.device!r}"
        )
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}"
    if shape is not None:
        assert tuple(actual.shape) == tuple(shape), f"shape {actual.shape}, expected {shape}"


def assert_close(
    actual: Any, expected: Any, backend: Backend, *, rtol: float = 1e-12, atol: float = 0.0
) -> None:
    """Check namespace, device, dtype and shape of ``actual``, then its values against NumPy's."""
    expected = np.asarray(expected)
    dtype = backend.dtype(str(expected.dtype)) if expected.dtype.kind == "f" else None
    assert_same_kind(actual, backend, dtype=dtype, shape=expected.shape)
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=rtol, atol=atol)


def engine_data(N: int = 120, n_in: int = 5, seed: int = 0) -> tuple[Any, Any, Any]:
    """A small problem for comparing engines: X (N, n_in), a smooth target y, and labels
    of three classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    y = np.tanh(X @ rng.normal(size=n_in))
    return X, y, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


def target_for(loss: str, y: Any) -> Any:
    """``engine_data``'s smooth target made fit for ``loss``: 0/1 for cross-entropy,
    counts for Poisson (e^y rounded, zeros among them), y itself for the squared error."""
    if loss == "cross_entropy":
        return (y > 0).astype(float)
    if loss == "poisson":
        return np.round(np.exp(y))
    return y


def assert_equal_fits(eager: Any, jit: Any, *, rtol: float = 1e-12) -> None:
    """Two fits of one problem agree: epochs, losses, parameters, validation record."""
    assert jit.n_iter_ == eager.n_iter_
    np.testing.assert_allclose(jit.loss_curve_, eager.loss_curve_, rtol=rtol)
    for got, want in zip(jit.weights_ + jit.biases_, eager.weights_ + eager.biases_, strict=True):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=rtol, atol=1e-14)
    if eager.validation_scores_ is not None:
        np.testing.assert_allclose(jit.validation_scores_, eager.validation_scores_, rtol=rtol)
        np.testing.assert_allclose(
            jit.validation_loss_curve_, eager.validation_loss_curve_, rtol=rtol
        )
