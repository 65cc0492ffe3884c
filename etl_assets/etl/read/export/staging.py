"""The export folder appears whole or not at all.

Everything is written into a temporary folder next to ``OUT_DIR`` (same file system) and
renamed into place at the end, so an interrupted or failed export leaves no half-written
folder. ``--force`` replaces only a folder an earlier export made (it holds the marker
file), never an unrelated non-empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ReadInputError

MARKER = ".skype-etl-export"
"""Written into every export; ``--force`` replaces only folders that hold it."""


def check_target(out_dir: Path, force: bool) -> None:
    """Fail early, before reading anything, when ``out_dir`` cannot or must not be written."""
    parent = out_dir.parent
    if not parent.is_dir():
        raise ReadInputError(f"{out_dir}: the folder {parent} does not exist")
    if out_dir.exists() or out_dir.is_symlink():
        if out_dir.is_symlink() or not out_dir.is_dir():
            raise ReadInputError(f"{out_dir}: exists and is not a folder")
        if any(out_dir.iterdir()):
            if not force:
                raise ReadInputError(f"{out_dir}: exists and is not empty (use --force to replace an earlier export)")
            if not (out_dir / MARKER).is_file():
                raise ReadInputError(f"{out_dir}: not an earlier export of skype-etl; refusing to replace it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReadInputError(f"{out_dir}: cannot write into {parent} (permission denied)")


@contextmanager
def staged_folder(out_dir: Path, force: bool) -> Iterator[Path]:
    """A temporary folder to write the export into, renamed to ``out_dir`` on success only."""
    check_target(out_dir, force)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as e:
        raise ReadInputError(f"{out_dir}: cannot write into {out_dir.parent} ({e.strerror or e})") from None
    try:
        yield staging
        _publish(staging, out_dir, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_marker(folder: Path, summary: dict) -> None:
    (folder / MARKER).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _publish(staging: Path, out_dir: Path, force: bool) -> None:
    """Swap the finished folder into place; an earlier export is moved aside first, then removed."""
    check_target(out_dir, force)  # the folder may have changed while the export ran
    old: Path | None = None
    if out_dir.is_dir():
        if any(out_dir.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / "previous")
        else:
            out_dir.rmdir()
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old / "previous", out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
