"""Writes that survive a power cut: data synced before the marker that vouches for it.

A rename is atomic but not durable: after a power cut the new name may point at a file
whose data never reached the disk, and a new directory entry may be lost. The rules here:
sync a file's data before anything names it complete, write small markers to a temporary
name, sync, rename, then sync the directory that holds the new name (and its parent, which
may hold a directory just created). Every sync and rename is recorded for the tests when
``ETL_FSYNC_LOG`` is set (see ``faults.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .faults import record_fsync, record_sync


def _fsync_fd(fd: int) -> None:
    os.fsync(fd)
    record_fsync(fd)


def fsync_path(path: str | Path, *, directory: bool = False) -> None:
    """Flush a file's data (or a directory's entries) to the disk."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def fsync_dirs(*directories: str | Path) -> None:
    for directory in dict.fromkeys(Path(d) for d in directories):
        fsync_path(directory, directory=True)


def sync_files(paths: Iterable[str | Path]) -> None:
    """Sync closed files and then the directories holding them (their entries may be new)."""
    paths = [Path(p) for p in paths]
    for path in paths:
        fsync_path(path)
    fsync_dirs(*(p.parent for p in paths))


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash or power cut leaves the old or the new content whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        _fsync_fd(handle.fileno())
    replace(tmp, path)


def replace(source: str | Path, target: str | Path) -> None:
    """Rename ``source`` to ``target`` and sync the directory (and its parent) holding the new name."""
    source, target = Path(source), Path(target)
    os.replace(source, target)
    record_sync("rename", str(source.absolute()), str(target.absolute()))
    fsync_dirs(target.parent, target.parent.parent)


def sync_filesystem(path: str | Path) -> None:
    """Flush every file written on the filesystem holding ``path`` (Linux ``syncfs``; elsewhere ``sync``).

    One call instead of one fsync per file: the media copy writes tens of thousands of
    small files, and only its report, written after this, vouches for them.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc_syncfs(fd) != 0:
            os.sync()
        record_sync("syncfs", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self") else str(path))
    finally:
        os.close(fd)


def _libc_syncfs(fd: int) -> int:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.syncfs(fd))
    except (OSError, AttributeError):
        return -1
