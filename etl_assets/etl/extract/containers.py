"""Containers: recognize an export by its first bytes, walk a tar or zip archive's headers once, open members in place.

The member index keeps only what a load needs (``messages.json`` and ``media/<name>`` regular files),
so an archive of any member count is walked in linear time and bounded memory, once per file and process.
"""

from __future__ import annotations

import io
import mmap
import os
import re
import struct
import tempfile
import tarfile
import zipfile
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, overload

from ..errors import InvalidExportError
from .records import MESSAGES_MEMBER


def sniff_container(head: bytes) -> str:
    """Name the container from its first bytes: ``tar``, ``gzip``, ``zip``, ``json`` or ``unknown``."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "json"
    if stripped.startswith((b"[", b'"')) or stripped[:1].isdigit() or stripped[:4] in (b"null", b"true"):
        return "json"
    return "unknown"


_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError)

_EXTENSIONS = {"tar": "tar", "tar.gz": "tar.gz", "zip": "zip", "json": "json", "json.gz": "json.gz"}


def _root_name(name: str) -> str:
    """A member name without a leading ``./``."""
    while name.startswith("./"):
        name = name[2:]
    return name


# -- the member index: one walk of the archive's headers --------------------------------------

ARCHIVE_ERRORS = _ARCHIVE_ERRORS
"""What reading a damaged archive member raises (bad CRC, truncated data, broken compression)."""

MEDIA_NAME = re.compile(r"^(?:\./)?media/([A-Za-z0-9_-][A-Za-z0-9._-]{0,200})$")
"""A media file that may be copied: a plain name directly under ``media/`` (no ``..``, no folders)."""

_walks = 0


def archive_walks() -> int:
    """How many times this process walked an archive's headers (for tests and statistics)."""
    return _walks


@dataclass(slots=True, frozen=True)
class TarEntry:
    """What opening a tar member needs of its header: a ``TarInfo`` takes five times the memory,
    which an archive of 100,000 media files would feel."""

    name: str
    size: int
    offset_data: int
    sparse: tuple[tuple[int, int], ...] | None

    @classmethod
    def of(cls, info: tarfile.TarInfo) -> TarEntry:
        return cls(info.name, info.size, info.offset_data, tuple(map(tuple, info.sparse)) if info.sparse else None)

    def issparse(self) -> bool:
        return self.sparse is not None

    def tarinfo(self) -> tarfile.TarInfo:
        """A regular file's ``TarInfo`` for ``TarFile.extractfile``."""
        info = tarfile.TarInfo(self.name)
        info.size = self.size
        info.offset_data = self.offset_data
        info.type = tarfile.REGTYPE
        info.sparse = [tuple(extent) for extent in self.sparse] if self.sparse else None
        return info


@dataclass(slots=True, frozen=True)
class MediaEntry:
    """A regular file ``media/<file_name>`` of the archive, with its header (to open it later)."""

    file_name: str
    size: int
    """Size from the header: the expanded size, which the copy does not trust alone."""
    info: TarEntry | zipfile.ZipInfo

    @property
    def info_name(self) -> str:
        return _entry_name(self.info)


class MediaEntries(Sequence[MediaEntry]):
    """The media entries of an archive, column-wise: the member names back to back in one
    buffer, their ends, sizes and data offsets in arrays. A tar of 190,000 media files takes
    about 14 MB so (25 MB with a string per name, 63 MB in entry objects); an entry is built
    when it is read. Zip entries (and sparse tar members) keep their header."""

    __slots__ = ("_names", "_ends", "_sizes", "_offsets", "_headers")

    def __init__(self) -> None:
        self._names = bytearray()
        """Every name as UTF-8, undecodable bytes kept (``surrogateescape``, as ``tarfile`` reads them)."""
        self._ends = array("q")
        self._sizes = array("q")
        self._offsets = array("q")
        self._headers: dict[int, TarEntry | zipfile.ZipInfo] = {}

    def add(self, name: str, size: int, info: tarfile.TarInfo | zipfile.ZipInfo) -> None:
        """Add the member ``name`` (``media/<file>`` or ``./media/<file>``)."""
        if isinstance(info, tarfile.TarInfo) and not info.sparse:
            self._offsets.append(info.offset_data)
        else:
            self._offsets.append(-1)
            self._headers[len(self)] = TarEntry.of(info) if isinstance(info, tarfile.TarInfo) else info
        self._names += name.encode("utf-8", "surrogateescape")
        self._ends.append(len(self._names))
        self._sizes.append(size)

    def spill(self) -> None:
        """Move the names out of memory, into an unlinked temporary file mapped back on demand.

        Called once the archive is walked and the names are not needed for a while (the
        transform): their pages come back only when entries are read (the media copy).
        """
        if not isinstance(self._names, bytearray) or not self._names:
            return
        with tempfile.TemporaryFile(prefix="media-names-") as f:
            f.write(self._names)
            f.flush()
            self._names = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[assignment]

    def __getstate__(self) -> tuple:
        return bytearray(self._names), self._ends, self._sizes, self._offsets, self._headers

    def __setstate__(self, state: tuple) -> None:
        self._names, self._ends, self._sizes, self._offsets, self._headers = state

    def _name(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._names[start : self._ends[i]].decode("utf-8", "surrogateescape")

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> MediaEntry: ...
    @overload
    def __getitem__(self, i: slice) -> list[MediaEntry]: ...
    def __getitem__(self, i: int | slice) -> MediaEntry | list[MediaEntry]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("media entry index out of range")
        name, size, offset = self._name(i), self._sizes[i], self._offsets[i]
        header = self._headers.get(i)
        info = header if header is not None else TarEntry(name, size, offset, None)
        return MediaEntry(name[name.index("media/") + 6 :], size, info)


@dataclass(slots=True)
class MemberIndex:
    """What a load needs of an archive's members, from one walk of its headers.

    Only ``messages.json`` candidates and media entries keep their header; every other
    member is only counted, so memory does not grow with members the load ignores.
    """

    messages: list[tarfile.TarInfo | zipfile.ZipInfo] = field(default_factory=list)
    """Members named ``messages.json`` at the root, of any type (a link is an error)."""
    media: MediaEntries = field(default_factory=MediaEntries)
    """Media files in archive order."""
    members: int = 0


def _walk_archive(f: BinaryIO, container: str, name: str) -> MemberIndex:
    """The index of a tar (headers walked once, no header kept beyond the needed ones) or a zip."""
    global _walks
    if container not in ("tar", "tar.gz", "zip"):
        return MemberIndex()
    _walks += 1
    try:
        return _walk_zip(f) if container == "zip" else _walk_tar(f)
    except _ARCHIVE_ERRORS as e:
        kind = "zip" if container == "zip" else "tar"
        raise InvalidExportError(name, f"damaged {kind} archive ({e})") from None


def _walk_tar(f: BinaryIO) -> MemberIndex:
    index = MemberIndex()
    archive = tarfile.open(fileobj=f, mode="r:*")
    while (info := archive.next()) is not None:
        archive.members.clear()  # tarfile keeps every header it reads; the index keeps what it needs
        _add_member(index, info, info.isfile())
    return index


def _walk_zip(f: BinaryIO) -> MemberIndex:
    index = MemberIndex()
    with zipfile.ZipFile(f) as archive:
        for info in archive.infolist():
            _add_member(index, info, not info.is_dir() and not _zip_is_link(info))
    return index


def _add_member(index: MemberIndex, info: tarfile.TarInfo | zipfile.ZipInfo, regular: bool) -> None:
    index.members += 1
    name = _entry_name(info)
    if _root_name(name) == MESSAGES_MEMBER:
        index.messages.append(info)
        return
    if regular and MEDIA_NAME.match(name) is not None:
        index.media.add(name, _entry_size(info), info)


def _entry_name(info: tarfile.TarInfo | TarEntry | zipfile.ZipInfo) -> str:
    return info.filename if isinstance(info, zipfile.ZipInfo) else info.name


def _entry_size(info: tarfile.TarInfo | TarEntry | zipfile.ZipInfo) -> int:
    return info.file_size if isinstance(info, zipfile.ZipInfo) else info.size


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _is_regular(info: tarfile.TarInfo | zipfile.ZipInfo) -> bool:
    return not _zip_is_link(info) if isinstance(info, zipfile.ZipInfo) else info.isfile()


def open_tar_entry(
    f: BinaryIO, info: tarfile.TarInfo | TarEntry, archive: tarfile.TarFile | None = None
) -> BinaryIO:
    """A stream of a member found by the walk, read in place (``archive`` reuses an open tar)."""
    if isinstance(info, TarEntry):
        info = info.tarinfo()
    if archive is None:
        f.seek(0)
        archive = tarfile.open(fileobj=f, mode="r:*")  # reads one header, not the whole archive
    stream = archive.extractfile(info)
    assert stream is not None
    return stream  # type: ignore[return-value]


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
"""A zip local file header (30 bytes); its last two fields are the name and extra field lengths."""


def open_zip_entry(f: BinaryIO, info: zipfile.ZipInfo) -> BinaryIO:
    """A stream of a zip member found in the central directory, without reading that directory again.

    Skips the member's local header as ``ZipFile.open`` does; the stream checks the CRC at its end.
    """
    if info.flag_bits & 0x1:
        raise zipfile.BadZipFile(f"{info.filename} is encrypted")
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    fields = _LOCAL_HEADER.unpack(header)
    f.seek(fields[10] + fields[11], io.SEEK_CUR)
    return zipfile.ZipExtFile(f, "r", info, None, False)  # type: ignore[return-value]


FileIdentity = tuple[int, int, int, int, int]


def file_identity(st: os.stat_result) -> FileIdentity:
    """Device, inode, size, mtime and ctime: any replacement or write changes one (ctime is set by the kernel)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _file_key(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of a file's current content for the index cache: device, inode, size, mtime."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _IndexCache:
    """The indexes of the last few archives this process walked (an index is small)."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: dict[tuple, MemberIndex] = {}

    def get(self, key: tuple) -> MemberIndex | None:
        index = self._items.pop(key, None)
        if index is not None:
            self._items[key] = index
        return index

    def put(self, key: tuple, index: MemberIndex) -> None:
        self._items.pop(key, None)
        self._items[key] = index
        while len(self._items) > self._size:
            self._items.pop(next(iter(self._items)))


_INDEX_CACHE = _IndexCache()


