"""Atomic files and folders: a reader, or a process killed at any instant (SIGKILL included), finds
the old artefact or the complete new one, never a mix or nothing.

* A new file is written to a temporary sibling ``.<name>.tmp-XXXXXXXX``, fsynced and renamed over
  the target (:func:`write_bytes`, :func:`new_file`).
* A new folder is built in a temporary sibling and swapped with the old one in **one** step,
  ``renameat2(RENAME_EXCHANGE)`` on Linux (``renamex_np(RENAME_SWAP)`` on macOS); the old folder,
  now at the temporary name, is removed afterwards (:func:`new_dir`). Where the file system cannot
  exchange (:func:`can_exchange` is false, e.g. NFS), the old folder is moved aside to
  ``.<name>.old-XXXXXXXX`` and the new one moved in; a run killed between the two renames leaves
  the target missing until the next write to it, which moves the old folder back first.
* Each writer holds an exclusive ``flock`` on its temporary file or folder for as long as it lives
  (the kernel drops it when the process dies, however it dies). Before writing, :func:`clean_stale`
  removes the temporaries of the same target that nobody holds: leftovers of killed runs.

Every step that changes the file system is visible to ``sys.addaudithook`` (Python's own events
plus ``plastix.exchange``), which the kill-injection tests use to stop a writer between any two.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["write_bytes", "new_file", "new_dir", "clean_stale", "can_exchange"]

_TMP, _OLD = ".tmp-", ".old-"
_RAND = r"[a-z0-9_]{8}"  # tempfile's random part
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 2  # macOS stdio.h


def _stale_pattern(name: str) -> re.Pattern:
    """Temporaries of target ``name``: ours, and the ``.<name>.XXXXXXXX.tmp`` files of older plastix."""
    n = re.escape(name)
    return re.compile(rf"^\.{n}(\.tmp-{_RAND}|\.old-{_RAND}|\.{_RAND}\.tmp)$")


def _open_lockable(path: Path) -> int:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    return os.open(path, flags)


def clean_stale(target: str | os.PathLike) -> list[str]:
    """Remove the temporaries of ``target`` that no living writer holds; if ``target`` is missing
    and an ``.old-`` folder of an interrupted non-atomic swap is left, move it back first.
    Returns the names removed."""
    target = Path(target)
    try:
        names = sorted(os.listdir(target.parent))
    except FileNotFoundError:
        return []
    pattern = _stale_pattern(target.name)
    removed = []
    for name in names:
        if not pattern.match(name):
            continue
        path = target.parent / name
        try:
            fd = _open_lockable(path)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a living writer's
            os.close(fd)
            continue
        try:
            if _OLD in name and not os.path.lexists(target):
                os.rename(path, target)  # the old artefact of a swap killed half-way
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def _locked_temp(target: Path, kind: str, mark: str = _TMP) -> tuple[Path, int]:
    """A new temporary file or folder (``kind``) beside ``target``, with its lock held."""
    while True:
        if kind == "dir":
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{mark}", dir=target.parent))
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        else:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}{mark}", dir=target.parent)
            tmp = Path(name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:  # not removed by a cleaner between creation and lock
            return tmp, fd
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename)."""
    with new_file(path) as tmp:
        tmp.write_bytes(data)


def new_file(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name; when the block
    exits normally the file is fsynced and renamed to ``path``, on an error it is removed."""
    return _beside(Path(path), "file", _commit_file, lambda tmp: tmp.unlink(missing_ok=True))


def new_dir(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder beside ``path`` to fill; when the block exits normally its files are
    fsynced and it replaces ``path`` (folder or nothing) in one atomic step, on an error it is
    removed."""
    return _beside(Path(path), "dir", _commit_dir, lambda tmp: shutil.rmtree(tmp, ignore_errors=True))


@contextlib.contextmanager
def _beside(path: Path, kind: str, commit: Callable[[Path, Path], None],
            discard: Callable[[Path], None]) -> Iterator[Path]:
    """A locked temporary ``kind`` beside ``path``: ``commit(tmp, path)`` after the block, or ``discard(tmp)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp, fd = _locked_temp(path, kind)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    finally:
        os.close(fd)


def _commit_file(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _commit_dir(tmp: Path, path: Path) -> None:
    _fsync_tree(tmp)
    _replace_dir(tmp, path)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _replace_dir(src: Path, dst: Path) -> None:
    """Make folder ``src`` appear at ``dst``; the folder there before is removed."""
    if not os.path.lexists(dst):
        os.rename(src, dst)
    elif _exchange(src, dst):  # one step: dst is the new folder, src the old one
        shutil.rmtree(src, ignore_errors=True)
    else:  # two renames; a run killed between them is repaired by the next clean_stale(dst)
        old = dst.with_name(f".{dst.name}{_OLD}{secrets.token_hex(4)}")
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the two paths in one atomic step; False where the platform or file system cannot."""
    sys.audit("plastix.exchange", str(a), str(b))
    libc = _libc()
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def can_exchange(folder: str | os.PathLike) -> bool:
    """Whether folders in ``folder`` can be swapped in one atomic step."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".plastix-probe-") as d:
        a, b = Path(d) / "a", Path(d) / "b"
        a.mkdir()
        b.mkdir()
        return _exchange(a, b)
