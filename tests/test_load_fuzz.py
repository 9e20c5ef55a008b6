"""Damaged and hostile model files: loading gives the model, or a ValueError naming the file.

Real model files (a regressor with Adam's moments, a classifier with text labels and
momentum) are truncated, have bits flipped in each region of the zip archive (local
headers, data, central directory, end record) and are rebuilt with duplicated, extra,
missing, compressed or foreign members, nested JSON and huge declared shapes.  Every
outcome must be a successful load of an equal model or a ``ValueError`` whose message
names the file: never another exception, a hang, or a large allocation.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import xpnet

#: Bits flipped per region and model (the end record has 22 bytes: each gets one).
FLIPS = 30
#: Truncations per model, spread over the file, besides the last bytes one by one.
CUTS = 40


def _models(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    regressor = xpnet.MLPRegressor(hidden_layer_sizes=(3,), solver="adam", max_iter=3,
                                   batch_size=10, random_state=0).fit(X, np.sin(X))  # fmt: skip
    labels = np.array(["a", "b", "c"])[np.arange(30) % 3]
    classifier = xpnet.MLPClassifier(hidden_layer_sizes=(3,), momentum=0.9, max_iter=3,
                                     random_state=0).fit(X, labels)  # fmt: skip
    paths = []
    for name, est in (("regressor", regressor), ("classifier", classifier)):
        est.save(tmp_path / f"{name}.npz")
        paths.append(tmp_path / f"{name}.npz")
    return paths


def _assert_equal(a, b):
    assert type(a) is type(b) and a.get_params() == b.get_params()
    for got, want in zip([*a.weights_, *a.biases_], [*b.weights_, *b.biases_], strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    assert a._optimizer_state.t == b._optimizer_state.t
    for got, want in zip(a._optimizer_state.moments, b._optimizer_state.moments, strict=True):
        for m, n in zip(got, want, strict=True):
            np.testing.assert_array_equal(m, n)
    assert a._rng.bit_generator.state == b._rng.bit_generator.state
    if hasattr(b, "classes_"):
        np.testing.assert_array_equal(a.classes_, b.classes_)


# -- building mutated files ------------------------------------------------------------------


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def _archive(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicated name, as it should
        with zipfile.ZipFile(buffer, "w", compression) as z:
            for name, content in members:
                z.writestr(name, content)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_header(shape, descr="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _replace(members, name, content):
    return [(n, content if n == name else c) for n, c in members]


def _with_metadata(members, change):
    meta = json.loads(np.load(io.BytesIO(dict(members)["metadata.npy"])).tobytes())
    change(meta)
    text = json.dumps(meta).encode()
    return _replace(members, "metadata.npy", _npy(np.frombuffer(text, dtype=np.uint8)))


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _huge_network(meta):
    big = 2**20
    meta["layer_sizes"] = [big, big, meta["layer_sizes"][-1]]
    meta["params"]["hidden_layer_sizes"] = [big]


def _patched(data, offset, fmt, value):
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


def _central_entry(data, name):
    """The offset of ``name``'s entry in the central directory (its name follows the
    entry's 46 bytes of fixed fields)."""
    at = data.index(name.encode(), data.index(b"PK\x01\x02")) - 46
    assert data[at : at + 4] == b"PK\x01\x02"
    return at


def _hostile(data):
    """(what, file contents) for each structural change of the model file ``data``."""
    members = _members(data)
    W_0 = dict(members)["W_0.npy"]
    weights = W_0[len(_npy_header((1, 1))) :]  # W_0's data, after its header
    deep = np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8)
    huge = _npy_header((7 * 2**20, 2**20))  # 56 TiB of float64
    rebuilt = {
        "a duplicated member": [*members, ("W_0.npy", W_0)],
        "a duplicated member, other data": [*members, ("b_0.npy", _npy(np.zeros(3)))],
        "an extra member": [*members, ("extra.npy", _npy(np.zeros(2)))],
        "a missing member": [m for m in members if m[0] != "b_0.npy"],
        "a member that is not .npy data": _replace(members, "W_0.npy", b"not data"),
        "a member not named .npy": [*members, ("notes.txt", b"hello")],
        "an empty member": _replace(members, "W_0.npy", b""),
        "deeply nested JSON": _replace(members, "metadata.npy", _npy(deep)),
        "nested JSON in extra": _with_metadata(members, lambda m: m.update(extra=_nested(40))),
        "a huge declared shape": _replace(members, "W_0.npy", huge + weights),
        "a negative declared shape": _replace(members, "W_0.npy", _npy_header((-3, 2)) + weights),
        "an object array": _replace(members, "W_0.npy", _npy_header((1,), "|O") + b"\x80\x04N."),
        "huge layer sizes": _with_metadata(members, _huge_network),
    }
    for what, changed in rebuilt.items():
        yield what, _archive(changed)
    yield "compressed members", _archive(members, zipfile.ZIP_DEFLATED)
    bomb = _npy_header((8 * 2**20,), "|u1") + bytes(8 * 2**20)
    buffer = io.BytesIO(_archive(members))
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr("bomb.npy", bomb, compress_type=zipfile.ZIP_DEFLATED)
    yield "a zip bomb", buffer.getvalue()
    cd = _central_entry(data, "W_0.npy")
    yield "a huge declared size", _patched(data, cd + 24, "<I", 2**31 - 1)
    yield "an encrypted flag", _patched(data, cd + 8, "<H", 1)
    yield "an unknown compression", _patched(data, cd + 10, "<H", 99)
    yield "a version from the future", _patched(data, cd + 6, "<H", 99)


def _regions(data):
    """The byte offsets of each region of the zip archive ``data``."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos, start_dir = z.infolist(), z.start_dir
    end = data.rindex(b"PK\x05\x06")
    local, body = [], []
    for info in infos:
        o = info.header_offset
        name_length, extra_length = struct.unpack("<HH", data[o + 26 : o + 30])
        data_start = o + 30 + name_length + extra_length
        local += range(o, data_start)
        body += range(data_start, data_start + info.compress_size)
    return {
        "local headers": local,
        "data": body,
        "central directory": list(range(start_dir, end)),
        "end record": list(range(end, len(data))),
    }


def _mutations(data, rng):
    """(what, file contents): truncations, bit flips in every region, hostile rebuilds."""
    n = len(data)
    cuts = set(range(0, n, max(1, n // CUTS))) | set(range(max(0, n - 24), n))
    for cut in sorted(cuts):
        yield f"truncated to {cut} bytes", data[:cut]
    for region, offsets in _regions(data).items():
        count = len(offsets) if region == "end record" else min(FLIPS, len(offsets))
        for at in sorted(rng.choice(offsets, size=count, replace=False)):
            bit = int(rng.integers(8))
            flipped = bytearray(data)
            flipped[at] ^= 1 << bit
            yield f"bit {bit} of byte {at} flipped ({region})", bytes(flipped)
    yield from _hostile(data)


# -- the tests -------------------------------------------------------------------------------


def test_every_damaged_or_hostile_file_loads_equal_or_gives_a_value_error(tmp_path):
    rng = np.random.default_rng(20)
    failures, outcomes = [], {"loaded": 0, "refused": 0}
    for original in _models(tmp_path):
        model, data = xpnet.load(original), original.read_bytes()
        path = tmp_path / "mutated.npz"
        for what, contents in _mutations(data, rng):
            path.write_bytes(contents)
            try:
                loaded = xpnet.load(path)
            except ValueError as exc:
                outcomes["refused"] += 1
                if repr(str(path)) not in str(exc):
                    failures.append(f"{original.name}, {what}: the message names no file: {exc}")
                continue
            except BaseException as exc:  # each outcome is reported, whatever it is
                failures.append(f"{original.name}, {what}: {type(exc).__name__}: {exc}")
                continue
            outcomes["loaded"] += 1
            try:
                _assert_equal(loaded, model)
            except AssertionError as exc:
                failures.append(f"{original.name}, {what}: loaded a different model: {exc}")
    assert not failures, "\n".join(failures[:20])
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes


@pytest.mark.parametrize(
    "what",
    [
        "a duplicated member, other data",
        "a member that is not .npy data",
        "a member not named .npy",
        "deeply nested JSON",
        "nested JSON in extra",
        "a huge declared shape",
        "a negative declared shape",
        "a zip bomb",
        "compressed members",
        "a huge declared size",
        "an encrypted flag",
        "an unknown compression",
        "a version from the future",
    ],
)
def test_each_hostile_change_gives_a_value_error_naming_the_file(tmp_path, what):
    regressor, _ = _models(tmp_path)
    contents = dict(_hostile(regressor.read_bytes()))[what]
    regressor.write_bytes(contents)
    with pytest.raises(ValueError, match=f"Cannot load '.*{regressor.name}': "):
        xpnet.load(regressor)


def test_a_zip_bomb_is_refused_before_anything_is_allocated(tmp_path):
    regressor, _ = _models(tmp_path)
    declared = 128 * 2**20
    bomb = zipfile.ZipInfo("bomb.npy")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(regressor, "a") as z, z.open(bomb, "w", force_zip64=True) as member:
        member.write(_npy_header((declared,), "|u1"))
        for _ in range(declared // 2**20):
            member.write(bytes(2**20))
    assert os.path.getsize(regressor) < declared // 500  # a ratio of about 1000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"Cannot load '.*regressor\.npz': .*compressed"):
            xpnet.load(regressor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"loading took {peak / 2**20:.0f} MiB"
