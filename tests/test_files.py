"""Saving writes regular files only, atomically, and cleans up after itself; fit and the
command check where they will save before training; loading refuses special files."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import xpnet
from xpnet import _files
from xpnet.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file kinds")


def _data(N=40, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    return X, np.sin(X).sum(axis=1)


def _fitted(**params):
    X, y = _data()
    settings = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    return xpnet.MLPRegressor(**(settings | params)).fit(X, y)


def _temporary(folder, name="m.npz"):
    pattern = re.compile(re.escape(f".{name}.xpnet-") + r"[0-9]+-[0-9a-f]{12}\.tmp")
    return sorted(f for f in os.listdir(folder) if pattern.fullmatch(f))


def _same(a, b):
    for got, want in zip([*a.weights_, *a.biases_], [*b.weights_, *b.biases_], strict=True):
        np.testing.assert_array_equal(got, want)


def _as_character_device(monkeypatch, path):
    """Make ``os.stat`` report ``path`` as a character device: the test never makes or
    touches a real one."""
    real_stat, target = os.stat, os.path.realpath(path)

    def fake_stat(p, *args, **kwargs):
        st = real_stat(p, *args, **kwargs)
        if isinstance(p, (str, os.PathLike)) and os.path.realpath(p) == target:
            fields = list(st)
            fields[stat.ST_MODE] = stat.S_IFCHR | 0o666
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(os, "stat", fake_stat)


# -- what saving writes ----------------------------------------------------------------------


def test_saving_over_a_fifo_or_a_device_refuses_and_leaves_it(tmp_path, monkeypatch):
    est = _fitted()
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"Cannot save to '.*pipe\.npz': it is a FIFO"):
        est.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    device = tmp_path / "device.npz"
    device.write_bytes(b"stands for a device")
    _as_character_device(monkeypatch, device)
    with pytest.raises(ValueError, match=r"'.*device\.npz': it is a character device"):
        est.save(device)
    assert device.read_bytes() == b"stands for a device"
    assert sorted(os.listdir(tmp_path)) == ["device.npz", "pipe.npz"]


def test_saving_over_a_directory_refuses(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"Cannot save to '.*m\.npz': it is a directory"):
        _fitted().save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_symlink_is_written_through_and_keeps_pointing_at_the_new_model(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "real.npz"
    target.write_bytes(b"an old model")
    target.chmod(0o640)
    link = tmp_path / "latest.npz"
    link.symlink_to(os.path.join("models", "real.npz"))  # relative, as links often are
    est = _fitted()
    est.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("models", "real.npz")
    _same(xpnet.load(target), est)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's permissions
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(tmp_path / "models" / "new.npz")
    est.save(dangling)  # the link's target is created
    assert dangling.is_symlink()
    _same(xpnet.load(tmp_path / "models" / "new.npz"), est)
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "models", "next.npz"]
    assert sorted(os.listdir(tmp_path / "models")) == ["new.npz", "real.npz"]


def test_a_link_to_a_special_file_is_refused_naming_both(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "m.npz").symlink_to(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"'.*m\.npz' \(a link to '.*pipe'\): it is a FIFO"):
        _fitted().save(tmp_path / "m.npz")
    assert (tmp_path / "m.npz").is_symlink()


def test_a_failed_write_names_the_path_keeps_its_errno_and_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    est = _fitted()
    est.save(path)
    before = path.read_bytes()
    seen = []

    def disk_full(fh, **arrays):
        fh.write(b"PK\x03\x04 part of an archive")
        seen.extend(_temporary(tmp_path))  # the temporary file has xpnet's name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match=r"Cannot save to '.*m\.npz': No space left") as error:
        est.save(path)
    assert error.value.errno == errno.ENOSPC
    assert ".tmp" not in str(error.value)
    assert len(seen) == 1 and f".xpnet-{os.getpid()}-" in seen[0]
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def test_a_failed_fsync_is_reported_the_same_way(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    est = _fitted()
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match=r"Cannot save to '.*m\.npz': No space left"):
        est.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


_KILLED_WHILE_SAVING = """
import os, signal, sys
import numpy as np
import xpnet

X = np.arange(12.0).reshape(6, 2)
est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, X[:, 0])

def killed(fh, **arrays):
    fh.write(b"PK\\x03\\x04" + bytes(4096))
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # as kill -9, mid-save: no handler runs

np.savez = killed
est.save(sys.argv[1])
"""


def test_a_later_save_removes_what_a_killed_writer_left(tmp_path):
    path = tmp_path / "m.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED_WHILE_SAVING),
                          str(path)], env=env, capture_output=True, timeout=120)  # fmt: skip
    assert run.returncode == -9, run.stderr.decode()
    (left,) = _temporary(tmp_path)
    est = _fitted()
    est.save(path)  # just killed: within the grace for writers on other machines, kept
    assert _temporary(tmp_path) == [left]

    def aged(name, seconds):
        t = time.time() - seconds
        os.utime(tmp_path / name, (t, t))

    aged(left, _files.ABANDONED_AFTER + 60)
    mine = f".m.npz.xpnet-{os.getpid()}-{'a' * 12}.tmp"  # a live writer's, however old
    stale = f".m.npz.xpnet-{os.getpid()}-{'b' * 12}.tmp"  # untouched for over a day
    others = [
        f".other.npz.xpnet-999999-{'c' * 12}.tmp",  # another target's
        ".m.npz.0123456789ab.tmp",  # not xpnet's pattern
        f"m.npz.xpnet-999999-{'d' * 12}.tmp",
    ]
    for name in [mine, stale, *others]:
        (tmp_path / name).write_bytes(b"x")
        aged(name, _files.ABANDONED_AFTER + 60)
    aged(stale, _files.STALE_AFTER + 60)
    link = f".m.npz.xpnet-999999-{'e' * 12}.tmp"
    (tmp_path / link).symlink_to(tmp_path / others[0])  # never followed nor removed
    est.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", mine, link, *others])
    _same(xpnet.load(path), est)


# -- checked before training -----------------------------------------------------------------


def _unwritable_targets(tmp_path):
    (tmp_path / "a file").write_text("x")
    (tmp_path / "a folder.npz").mkdir()
    os.mkfifo(tmp_path / "a pipe.npz")
    return [
        (tmp_path / "no such" / "c.npz", FileNotFoundError,
         "the folder '.*no such' does not exist"),
        (tmp_path / "a file" / "c.npz", NotADirectoryError, "'.*a file' is not a folder"),
        (tmp_path / "a folder.npz", IsADirectoryError, "it is a directory"),
        (tmp_path / "a pipe.npz", ValueError, "it is a FIFO"),
    ]  # fmt: skip


def test_fit_checks_its_checkpoint_path_before_the_first_epoch(tmp_path):
    X, y = _data()
    epochs = []
    for path, error, match in _unwritable_targets(tmp_path):
        est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=64, random_state=0)
        with pytest.raises(error, match=f"Cannot save to '.*': {match}"):
            est.fit(X, y, checkpoint=path, callback=lambda losses, _: epochs.extend(losses))
        assert epochs == [], f"{path}: trained before finding out"
        assert not hasattr(est, "weights_")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_fit_checks_that_the_folder_takes_new_files(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    X, y = _data()
    try:
        with pytest.raises(PermissionError, match=r"Cannot save to .*c\.npz"):
            xpnet.MLPRegressor(max_iter=5).fit(X, y, checkpoint=folder / "c.npz")
    finally:
        folder.chmod(0o700)


def test_the_command_checks_the_same_way(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    for path, _, match in _unwritable_targets(tmp_path):
        for option in ("--save", "--checkpoint"):
            assert main(["train", "--quiet", option, str(path)]) == 2
            err = capsys.readouterr().err
            assert re.search(f"xpnet: error: {option}: Cannot save to '.*': {match}", err), err


def test_a_checkpoint_that_fails_stops_the_fit_at_the_next_read_back(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    X, y = _data()
    path = tmp_path / "c.npz"
    epochs = []
    est = xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=1999, random_state=0)
    monkeypatch.setattr(os, "fsync", no_space)  # the folder takes files; writing them fails
    with pytest.raises(OSError, match=r"Cannot save to '.*c\.npz': No space left") as error:
        est.fit(X, y, checkpoint=path, checkpoint_every=1000,
                callback=lambda losses, _: epochs.extend(losses))  # fmt: skip
    assert error.value.errno == errno.ENOSPC
    # The write at epoch 1000 failed; the fit stopped at a read-back soon after, not at
    # the end, after 999 more epochs.
    assert 1000 <= len(epochs) < 1500
    assert os.listdir(tmp_path) == []


# -- what loading reads ----------------------------------------------------------------------


def test_loading_a_fifo_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "m.npz"
    os.mkfifo(fifo)
    outcome = {}

    def load():
        try:
            xpnet.load(fifo)
        except BaseException as exc:
            outcome["error"] = exc

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let it go
        reader.join()
        pytest.fail("load() waited for a writer on the FIFO")
    assert isinstance(outcome["error"], ValueError)
    assert re.fullmatch(r"Cannot load '.*m\.npz': it is a FIFO \(named pipe\), not a "
                        r"regular file\.", str(outcome["error"]))  # fmt: skip
    with pytest.raises(ValueError, match=r"Cannot load '.*': it is a directory"):
        xpnet.load(tmp_path)
    assert main(["evaluate", "--model", str(fifo)]) == 2
    assert "it is a FIFO" in capsys.readouterr().err
