"""The files xpnet writes and reads: regular files only, written atomically.

Every file xpnet saves (a model, a checkpoint, the command's ``.npz`` predictions) goes
through :func:`write_atomic`, and every place that will save one later (``fit``'s
``checkpoint=``, the command's ``--save``, ``--checkpoint`` and ``--plot``) asks
:func:`check_writable` first, before any training.  The rules:

- **Only regular files.**  A path that names a device, a FIFO, a socket or a directory
  is refused with an error naming it: renaming over it would replace ``/dev/null`` (as
  root) or a pipe another program reads.
- **A symbolic link is written through.**  The link's final target is the file
  replaced (its temporary file is made in the target's folder, so that the rename stays
  within one file system), and the link stays, pointing at the new data.  A file's
  other hard links keep the previous data: they name the old file, which the rename
  takes out of this folder only.
- **Temporary files are recognisable**: ``.NAME.xpnet-PID-HEX.tmp`` beside the target
  ``NAME``, with the writer's process id.  They are removed on every failure path, and a
  save to ``NAME`` removes those a killed process left behind (see
  :func:`_remove_leftovers` for the rule).
- **Errors name the path asked for**, never the temporary file, and keep their
  ``errno``: a full disk is ``OSError(ENOSPC)`` "Cannot save to 'm.npz': No space left
  on device", raised by the save that failed.

Reading (:func:`open_regular`) refuses anything but a regular file before opening it
for reading, so that a FIFO cannot block a load forever.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

#: A leftover temporary file whose writer's process is gone is removed once it has not
#: been written to for this long (seconds).  The pid is only meaningful on the machine
#: that wrote the file; on a folder shared between machines, a live writer elsewhere
#: keeps its file's modification time fresh while it writes.
ABANDONED_AFTER = 600.0
#: ... and any leftover once it has not been written to for this long, whatever its pid
#: says (the pid may have been reused, or belong to another machine).
STALE_AFTER = 86400.0

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO must not wait


def check_writable(path: str | os.PathLike) -> str:
    """Check, before any work, that a file can be saved at ``path``.

    The folder must exist and take new files (a file is created there and removed at
    once: the one test that also holds for read-only file systems and for root), and
    ``path``, if it exists, must be a regular file (through any symbolic links).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        The file that a save to ``path`` replaces: ``path`` with its links resolved.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError, OSError
        If the folder does not exist, is not a folder or takes no new file, or ``path``
        is a directory.
    ValueError
        If ``path`` is a device, a FIFO, a socket or another special file.
    """
    shown, target = _resolve(path)
    folder, name = os.path.split(target)
    try:
        st = os.stat(folder)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(
                errno.ENOENT, f"Cannot save to {shown}: the folder {folder!r} does not exist"
            ) from None
        raise _named(exc, shown) from None
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(
            errno.ENOTDIR, f"Cannot save to {shown}: {folder!r} is not a folder"
        )
    _check_target(target, shown)
    probe = os.path.join(folder, _temporary_name(name))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o600)
    except OSError as exc:
        raise _named(exc, shown) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return target


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Save a file at ``path`` with ``write(fh)``, all or nothing.

    The data go to a temporary file beside the target, which is flushed to the disk and
    renamed over the target only once complete: an interrupted save leaves any earlier
    file as it was, and no temporary file.  The new file keeps the permissions of the
    file it replaces.

    Parameters
    ----------
    path : str or os.PathLike
        Written exactly as given; a symbolic link is written through to its target.
    write : callable
        ``write(fh)`` writes the contents to the binary file object ``fh``.

    Raises
    ------
    OSError
        If writing fails (the errno kept, the message naming ``path``).
    ValueError
        If ``path`` is a device, a FIFO, a socket or another special file.
    """
    shown, target = _resolve(path)
    folder, name = os.path.split(target)
    existing = _check_target(target, shown)
    _remove_leftovers(folder, name)
    tmp = os.path.join(folder, _temporary_name(name))
    try:
        # os.open applies the umask to 0o666, so a new file gets the permissions of any other.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    except OSError as exc:
        raise _named(exc, shown) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if existing is not None:
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))
        _check_target(target, shown)  # again: a FIFO made meanwhile is not replaced either
        os.replace(tmp, target)  # atomic on POSIX and Windows alike
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, shown) from exc
        raise
    _sync_folder(folder)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; refuse anything else at once.

    The kind is checked before opening (a FIFO would block ``open`` until a writer
    came) and again on the opened file, which is opened without waiting, in case the
    path changed in between.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If ``path`` is a directory, a device, a FIFO, a socket or another special file.
    """
    shown = repr(os.fspath(path))
    _refuse_special(os.stat(path), shown)
    fd = os.open(path, os.O_RDONLY | _O_BINARY | _O_NONBLOCK)
    try:
        _refuse_special(os.fstat(fd), shown)
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# -- helpers -----------------------------------------------------------------------------


def _resolve(path: str | os.PathLike) -> tuple[str, str]:
    """How errors name ``path``, and the file it designates, symbolic links resolved."""
    given = os.fspath(path)
    if isinstance(given, bytes):
        given = os.fsdecode(given)
    target = os.path.realpath(given)
    if os.path.islink(given):
        return f"{given!r} (a link to {target!r})", target
    return repr(given), target


def _check_target(target: str, shown: str) -> os.stat_result | None:
    """The target's status if it is a regular file, None if it does not exist yet."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a loop of links, a path through a file, ...
        raise _named(exc, shown) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"Cannot save to {shown}: it is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"Cannot save to {shown}: it is {_kind(st.st_mode)}, not a regular file; "
            "xpnet saves to regular files only."
        )
    return st


def _refuse_special(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"Cannot load {shown}: it is {_kind(st.st_mode)}, not a regular file.")


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _named(exc: OSError, shown: str) -> OSError:
    """``exc`` as the error of saving to ``shown``: the same errno (hence the same
    subclass), a message naming the path asked for instead of the temporary file."""
    if exc.errno is None:
        return OSError(f"Cannot save to {shown}: {exc}")
    return OSError(exc.errno, f"Cannot save to {shown}: {exc.strerror}")


def _temporary_name(name: str) -> str:
    return f".{name}.xpnet-{os.getpid()}-{secrets.token_hex(6)}.tmp"


def _remove_leftovers(folder: str, name: str) -> None:
    """Remove the temporary files that writers killed while saving ``name`` left behind.

    Only files of xpnet's own pattern for this very target are considered,
    ``.NAME.xpnet-PID-HEX.tmp``, and only regular files (never a link).  One is
    removed when it has not been written to for ``ABANDONED_AFTER`` seconds and its
    writer's process is not running here, or for ``STALE_AFTER`` seconds whatever its
    pid.  A running writer is never disturbed: it writes its file from start to end
    (the modification time keeps up) and renames it a moment later; a pid still
    running may have been reused, which only keeps a leftover longer.  The grace
    period keeps a writer on another machine sharing the folder safe, whose pid means
    nothing here.
    """
    pattern = re.compile(re.escape(f".{name}.xpnet-") + r"([0-9]{1,10})-[0-9a-f]{12}\.tmp")
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # cleaning up is a courtesy: the save itself reports a real problem
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        idle = now - st.st_mtime
        if stat.S_ISREG(st.st_mode) and (
            idle > STALE_AFTER or (idle > ABANDONED_AFTER and not _running(int(found[1])))
        ):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when it cannot be told)."""
    if os.name != "posix":
        return True  # Windows' os.kill(pid, 0) would end the process, not probe it
    if pid <= 0:
        return False  # 0 and -1 would signal a whole group
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or beyond any pid the system gives
        return False
    except OSError:
        return True  # another user's process (PermissionError), or unknown
    return True


def _sync_folder(folder: str) -> None:
    """Flush the rename to the disk, so that it survives a crash (POSIX only)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
