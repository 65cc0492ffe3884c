"""Packing a generated export: messages.json with endpoints and media into tar, tar.gz or zip.

Archives are written with fixed member times and gzip mtime, so the same arguments give
the same bytes; tar headers are dropped as they are written to keep memory flat.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import time
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Iterator, Protocol


class _ArchiveSource(Protocol):
    """What packing needs of the generator (named here, so this module does not import it)."""

    export_date: str

    def endpoints_json(self) -> bytes: ...

    def media_entries(self, expiry: str) -> Iterator[tuple[str, bytes, bool]]: ...


def _infer_archive(path: Path) -> str:
    """Archive kind from the file name, so callers rarely have to say it."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".tar"):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".json"):
        return "json"
    raise ValueError(f"cannot infer the archive kind from {path.name!r}; pass archive=")



def _pack(kind: str, out: Path, tmp: Path, gen: _ArchiveSource, media: bool, mtime: int) -> int:
    """Put messages.json (and endpoints, media) into the archive.

    Returns the media files written (``media/<docid>.1.<ext>``) and every member under
    ``media/`` (files, their manifests and previews)."""
    written = members = 0
    expiry = gen.export_date + ":00Z"
    extras: list[tuple[str, bytes]] = [("endpoints.json", gen.endpoints_json())]

    def entries() -> Iterator[tuple[str, bytes, bool]]:
        yield from ((n, b, False) for n, b in extras)
        if media:
            yield from gen.media_entries(expiry)

    if kind in ("tar", "tar.gz"):
        with open(out, "wb") as raw:
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=1) if kind == "tar.gz" else None
            try:
                with tarfile.open(fileobj=gz or raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    info = tarfile.TarInfo("messages.json")
                    info.size = tmp.stat().st_size
                    info.mtime = mtime
                    info.mode = 0o644
                    with open(tmp, "rb") as src:
                        tar.addfile(info, src)
                    for name, data, is_file in entries():
                        ti = tarfile.TarInfo(name)
                        ti.size = len(data)
                        ti.mtime = mtime
                        ti.mode = 0o644
                        tar.addfile(ti, BytesIO(data))
                        tar.members.clear()  # TarFile keeps every TarInfo otherwise: memory would grow with media
                        written += is_file
                        members += name.startswith("media/")
            finally:
                if gz is not None:
                    gz.close()
        return written, members
    stamp = time.gmtime(mtime)[:6]
    os.utime(tmp, (mtime, mtime))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
        zf.write(tmp, "messages.json")
        for name, data, is_file in entries():
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data)
            written += is_file
            members += name.startswith("media/")
    return written, members
