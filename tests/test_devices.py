"""Devices named by strings: ``xpnet.load(device=...)`` and the command's ``--device`` agree."""

from __future__ import annotations

import importlib
import re

import array_api_compat as aac
import numpy as np
import pytest
from conftest import import_jax

import xpnet
from xpnet._host import to_numpy
from xpnet.estimators._devices import as_device, device_name


def _namespace(name):
    """The Array API namespace of backend ``name`` (made without a device), or a skip."""
    if name == "jax":
        return import_jax().numpy
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict")
    pytest.importorskip({"dask": "dask.array"}.get(name, name), reason=f"{name} is not installed")
    return importlib.import_module(f"array_api_compat.{name}" + ".array" * (name == "dask"))


def _cuda_device_count(name):
    """CUDA devices the library ``name`` can use here (0 where it cannot run on one)."""
    try:
        if name == "cupy":
            return importlib.import_module("cupy").cuda.runtime.getDeviceCount()
        if name == "torch":
            return importlib.import_module("torch").cuda.device_count()
    except Exception:  # no driver, no runtime: no device
        return 0
    return len([d for d in import_jax().devices() if d.platform in ("gpu", "cuda")])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    y = np.arange(30) % 3
    est = xpnet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    est.save(path)
    return path, X, est


def test_load_onto_jax_by_the_command_s_device_name(model):
    jax = import_jax()
    path, X, est = model
    loaded = xpnet.load(path, xp=jax.numpy, device="cpu")
    cpu = jax.devices("cpu")[0]
    assert loaded.weights_[0].device == cpu and loaded.classes_.device == cpu
    prediction = loaded.predict(jax.numpy.asarray(X, device=cpu))
    np.testing.assert_array_equal(to_numpy(prediction), est.predict(X))


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("numpy", "cpu", lambda xp: "cpu"),
        ("dask", "cpu", lambda xp: "cpu"),
        ("torch", "cpu", lambda xp: xp.empty(0).device),
        ("jax", "cpu", lambda xp: import_jax().devices("cpu")[0]),
        ("jax", "cpu:0", lambda xp: import_jax().devices("cpu")[0]),
        ("array_api_strict", "cpu", lambda xp: xp.Device("CPU_DEVICE")),
        ("array_api_strict", "device1", lambda xp: xp.Device("device1")),
    ],
)
def test_a_name_is_read_as_the_library_s_own_device(model, name, spec, expected):
    xp = _namespace(name)
    module = xp if name in ("jax", "array_api_strict") else importlib.import_module(name)
    assert as_device(xp, spec) == expected(module)
    if name != "dask":  # a Dask array's device is its blocks'
        loaded = xpnet.load(model[0], xp=module, device=spec)
        assert aac.device(loaded.weights_[0]) == expected(module)


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("numpy", "cuda:0", "numpy has no device 'cuda:0'; it takes 'cpu'"),
        ("numpy", "CPU", "numpy has no device 'CPU'; it takes 'cpu'"),
        ("dask", "gpu", "dask has no device 'gpu'; it takes 'cpu'"),
        ("torch", "tpu:x", "torch has no device 'tpu:x'; it takes a torch.device string"),
        ("jax", "gpu:7", "jax has no device 'gpu:7' (its devices here: "),
        ("jax", "cuda:7", "jax has no device 'cuda:7' (its devices here: "),
        ("jax", "cpu:", "jax has no device 'cpu:'; it takes 'cpu', 'gpu' or 'cuda'"),
        ("array_api_strict", "gpu", "array_api_strict has no device 'gpu'; it takes 'cpu' or "),
    ],
)
def test_a_name_of_no_device_is_refused_by_load_and_the_command(model, name, spec, message):
    from xpnet.cli._backends import BackendError, device

    xp = _namespace(name)
    with pytest.raises(ValueError) as library_error:
        as_device(xp, spec)
    assert str(library_error.value).startswith(message)
    with pytest.raises(BackendError) as command_error:
        device(name, xp, spec)
    if name != "dask":  # the command's Dask takes NumPy blocks only, and says so
        assert str(command_error.value) == str(library_error.value)
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            xpnet.load(model[0], xp=xp, device=spec)


@pytest.mark.parametrize("name", ["cupy", "torch", "jax"])
def test_cuda_and_gpu_name_the_same_gpu_everywhere(name):
    xp = _namespace(name)
    n = _cuda_device_count(name)
    if n == 0:
        with pytest.raises(ValueError, match=f"'cuda:{n}'"):
            as_device(xp, f"cuda:{n}")
        pytest.skip(f"{name} has no CUDA device here")
    devices = [as_device(xp, spec) for spec in ("cuda", "cuda:0", "gpu", "gpu:0")]
    assert all(d == devices[0] for d in devices)
    assert device_name(devices[1]) in ("cuda:0", "gpu:0")
    assert as_device(xp, f"cuda:{n - 1}") == as_device(xp, f"gpu:{n - 1}")
    with pytest.raises(ValueError, match=f"'cuda:{n}'"):
        as_device(xp, f"cuda:{n}")


def test_a_device_object_and_none_pass_through():
    xp = _namespace("array_api_strict")
    device = xp.Device("device1")
    assert as_device(xp, device) is device
    assert as_device(xp, None) == xp.__array_namespace_info__().default_device()


def test_the_training_summary_names_jax_s_device(capsys):
    # JAX's default device is None ("uncommitted"); the summary names where JAX put it.
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    jax = import_jax()
    from xpnet.cli import main

    assert main(["train", "--data", "iris", "--epochs", "2", "--backend", "jax"]) == 0
    out = capsys.readouterr().out
    rows = dict(line.strip().split("  ", 1) for line in out.splitlines() if "  " in line)
    first = jax.devices()[0]
    assert rows["device"].strip() == f"{first.platform}:{first.id}"
