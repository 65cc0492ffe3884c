"""Private by default: what skype-etl writes is readable by its owner alone.

An export is someone's private history. Directories the project creates are 0700 and
the files written by a process that runs the pipeline are 0600, whatever the umask the
user's shell had (the common 022 would make every Parquet file and media file readable
by all local users).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077


def restrict_new_files() -> None:
    """Make every file and directory this process creates from now on owner-only.

    A process-wide setting on purpose: Parquet writers, Dagster's logs and the media copy
    all create files, and none of them takes a mode.
    """
    os.umask(OWNER_ONLY_UMASK)


def private_directory(path: str | Path) -> Path:
    """``path`` as a directory only its owner can enter: created 0700, tightened if wider.

    Parents that do not exist yet are created 0700 as well; existing parents are left as
    they are (never widened, never narrowed: they are not ours).
    """
    path = Path(path).expanduser().absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path}: not a directory")
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    return path
