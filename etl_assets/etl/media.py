"""Media files of an export (``media/<docid>.<n>.<ext>``), copied into the artifact store.

Only regular files whose names are plain ``media/<name>`` are taken: no directories,
links, devices, ``..`` or absolute paths, so nothing is ever written outside the store.
Each file is streamed; one larger than ``max_bytes`` is skipped and reported.
"""

from __future__ import annotations

import logging
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .extractor import Extractor

log = logging.getLogger(__name__)
MEDIA_DIR = "media"
_MEDIA_NAME = re.compile(r"^(?:\./)?media/([A-Za-z0-9_-][A-Za-z0-9._-]{0,200})$")


def media_index(extractor: Extractor) -> dict[str, str] | None:
    """Docid -> the file it will have in the store (``media/<file>``), from member names only.

    ``None`` when the archive has no ``media/`` folder (exported without files). For a
    docid with several files (``.1.`` content, ``.2.`` preview) the ``.1.`` file is named.
    """
    index: dict[str, str] | None = None
    for file_name, _, _ in _media_members(extractor):
        index = {} if index is None else index
        docid, _, rest = file_name.partition(".")
        if rest == "json" or rest.endswith(".json"):
            continue
        if docid not in index or rest.startswith("1."):
            index[docid] = f"{MEDIA_DIR}/{file_name}"
    return index


def copy_media(extractor: Extractor, artifacts_dir: Path, *, max_bytes: int | None = None) -> tuple[int, int]:
    """Copy every media file (manifests included) into ``<artifacts_dir>/media``.

    Files already there with the right size are kept, so a re-run after a crash copies
    only what is missing. Returns (files copied, bytes copied).
    """
    media_dir = artifacts_dir / MEDIA_DIR
    copied = copied_bytes = 0
    for file_name, size, open_file in _media_members(extractor):
        if max_bytes is not None and size > max_bytes:
            log.warning("%s: skipped %s (%d bytes, over the limit of %d)", extractor.name, file_name, size, max_bytes)
            continue
        target = media_dir / file_name
        if _size(target) != size:  # a copy cut short by a crash has another size: copied again
            media_dir.mkdir(parents=True, exist_ok=True)
            with open_file() as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            copied += 1
            copied_bytes += size
    return copied, copied_bytes


def count_media(extractor: Extractor) -> int:
    """How many media files (manifests included) :func:`copy_media` would take."""
    return sum(1 for _ in _media_members(extractor))


def _media_members(extractor: Extractor) -> Iterator[tuple[str, int, object]]:
    """(file name under ``media/``, size, opener) of every media file that may be copied."""
    if extractor.path is None or extractor.container not in ("tar", "tar.gz", "zip"):
        return
    for name, size, open_file in _regular_members(extractor):
        match = _MEDIA_NAME.match(name)
        if match is not None:
            yield match.group(1), size, open_file


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _regular_members(extractor: Extractor) -> Iterator[tuple[str, int, object]]:
    """(name, size, opener) of every regular file of the archive, in archive order."""
    assert extractor.path is not None
    if extractor.container == "zip":
        with zipfile.ZipFile(extractor.path) as archive:
            for info in archive.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if not info.is_dir() and not is_link:
                    yield info.filename, info.file_size, _zip_opener(archive, info)
        return
    with tarfile.open(extractor.path, mode="r:*") as archive:
        for info in archive:
            if info.isfile():
                yield info.name, info.size, _tar_opener(archive, info)


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    @contextmanager
    def open_file() -> Iterator[BinaryIO]:
        with archive.open(info) as handle:
            yield handle  # type: ignore[misc]

    return open_file


def _tar_opener(archive: tarfile.TarFile, info: tarfile.TarInfo):
    @contextmanager
    def open_file() -> Iterator[BinaryIO]:
        handle = archive.extractfile(info)
        assert handle is not None
        with handle:
            yield handle  # type: ignore[misc]

    return open_file
