"""Extractor: open an export in any of its container forms and stream its records.

An export arrives as a ``.tar`` (the Skype download), a ``.tar.gz``/``.tgz``, a
``.zip`` or a bare ``messages.json``, from a path or a binary file object. The
container is recognized by its first bytes, not its name. Members are read by
name straight from the container; nothing is extracted to disk. ``messages.json``
is streamed with ijson's C backend, one conversation header or message at a time,
so memory does not grow with the file or with any one conversation.

Hostile input stays bounded:

- ``messages.json`` larger than ``max_member_bytes`` stops with a clear error, for a
  tar or zip member before a byte of it is inflated (its header gives the size).
- JSON nested deeper than :data:`MAX_DEPTH` levels is a whole-file error naming the
  record; the validating :meth:`Extractor.scan` finds it with constant memory
  (ijson's prefixed events would need memory quadratic in the depth).
- A string spanning many read buffers is read in growing buffers (yajl re-lexes a
  token from its start at every buffer, which is quadratic in the string's length).
- Invalid UTF-8 and unpaired surrogate escapes (``\\ud800``), which yajl rejects for
  the whole file or silently turns into ``?``, are replaced by a marked text:
  U+FFFD, a NUL and the original bytes spelled out (``\\xff``, ``\\ud800``). The NUL
  makes the transformer reject the record that holds it, with its location, while the
  rest of the export loads; the spelled-out bytes keep what was there. UTF-8 is only
  checked when yajl reports a problem: the parse then restarts with the repair on and
  continues where it stopped, so valid files pay nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import ijson

from .. import durable
from ..errors import InvalidExportError

MESSAGES_MEMBER = "messages.json"
_CHUNK = 1 << 20

MAX_DEPTH = 128
"""Deepest nesting of JSON containers accepted in ``messages.json`` (real exports use about 10)."""

MARK = "\ufffd\x00"
"""Starts the text that replaces invalid UTF-8 or an unpaired surrogate in a string."""


@dataclass(slots=True)
class ExportHeader:
    """Top-level fields of ``messages.json``."""

    user_id: str | None
    export_date: str | None


@dataclass(slots=True)
class ConversationRecord:
    """A conversation's own fields (everything but ``MessageList``), seen when it ends."""

    index: int
    data: dict
    has_message_list: bool
    messages: int = 0


@dataclass(slots=True)
class MessageRecord:
    """One message object, with where it sits in the file."""

    conversation_index: int
    index: int
    data: object

    @property
    def location(self) -> str:
        return f"conversations[{self.conversation_index}].MessageList[{self.index}]"


@dataclass(slots=True)
class ExtractSummary:
    """What one full pass over an export found."""

    sha256: str
    bytes: int
    container: str
    header: ExportHeader
    conversations: int = 0
    messages: int = 0
    media_files: list[str] = field(default_factory=list)


Record = ExportHeader | ConversationRecord | MessageRecord


class _HashingReader(io.RawIOBase):
    """Wraps a binary stream, hashing and counting the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.digest.update(data)
        self.bytes_read += n
        return n


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


class Extractor:
    """Opens one export and streams its records.

    ``source`` is a path or a seekable binary file object; ``name`` names it in errors
    when it is a file object. ``max_member_bytes`` bounds how much of ``messages.json``
    is read (a guard against decompression bombs); ``None`` means no bound.
    """

    def __init__(
        self,
        source: str | Path | BinaryIO,
        *,
        name: str | None = None,
        max_member_bytes: int | None = None,
        identity: FileIdentity | None = None,
    ) -> None:
        if isinstance(source, (str, Path)):
            self.path: Path | None = Path(source)
            self.name = name or str(source)
            self._fileobj: BinaryIO | None = None
        else:
            self.path = None
            self.name = name or getattr(source, "name", None) or "<stream>"
            self._fileobj = source
        self.max_member_bytes = max_member_bytes
        self.identity = identity
        """The file's identity when first opened (or as given): every later read must find the same."""
        self.container = self._sniff()
        self._index: MemberIndex | None = None

    # -- opening -----------------------------------------------------------------

    @contextmanager
    def _open_source(self) -> Iterator[BinaryIO]:
        if self._fileobj is not None:
            self._fileobj.seek(0)
            yield self._fileobj
            return
        assert self.path is not None
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            raise InvalidExportError(self.name, "file not found") from None
        except IsADirectoryError:
            raise InvalidExportError(self.name, "is a directory, not an export file") from None
        except OSError as e:
            raise InvalidExportError(self.name, f"cannot be read ({e.strerror})") from None
        with f:
            self._same_file(f)
            yield f
            self._same_file(f)

    def _same_file(self, f: BinaryIO) -> None:
        """Pin the file's identity on the first open; fail if a later read finds another file or new bytes.

        The hash is taken on one read and the records on later ones: a file replaced or
        rewritten in between (a download finishing, a sync client) would otherwise record
        one export's hash with another's messages.
        """
        now = file_identity(os.fstat(f.fileno()))
        if self.identity is None:
            self.identity = now
        elif now != self.identity:
            raise InvalidExportError(
                self.name,
                "changed while it was being loaded (it was replaced or written to after it was hashed);"
                " load it again once it is complete",
            )

    def _sniff(self) -> str:
        with self._open_source() as f:
            head = f.read(512)
        if not head:
            raise InvalidExportError(self.name, "the file is empty")
        kind = sniff_container(head)
        if kind == "gzip":
            kind = self._sniff_gzip()
        if kind == "unknown":
            raise InvalidExportError(
                self.name, "not a Skype export: expected a .tar, .tar.gz, .zip or messages.json"
            )
        return kind

    def _sniff_gzip(self) -> str:
        import gzip

        with self._open_source() as f:
            try:
                head = gzip.GzipFile(fileobj=f).read(512)
            except (OSError, EOFError, zlib.error) as e:
                raise InvalidExportError(self.name, f"damaged gzip data ({e})") from None
        inner = sniff_container(head)
        return {"tar": "tar.gz", "json": "json.gz"}.get(inner, "unknown")

    @contextmanager
    def open_member(self, member: str = MESSAGES_MEMBER) -> Iterator[BinaryIO]:
        """A binary stream of one member, read in place from the container."""
        with self._open_source() as f:
            if self.container == "json":
                yield f
            elif self.container == "json.gz":
                import gzip

                yield gzip.GzipFile(fileobj=f)  # type: ignore[misc]
            elif self.container in ("tar", "tar.gz"):
                yield self._tar_member(f, member)
            else:
                yield self._zip_member(f, member)

    def _too_large(self, member: str, size: int) -> None:
        if self.max_member_bytes is not None and size > self.max_member_bytes:
            raise InvalidExportError(
                self.name,
                f"{member} is larger than the limit of {self.max_member_bytes} bytes ({size} bytes)",
            )

    def members(self) -> MemberIndex:
        """The members a load needs, from one walk of the archive's headers (see :class:`MemberIndex`).

        Built once per archive file and process and shared by every extractor of it, so
        the scan, the transform, the media index and the media copy walk it once.
        """
        if self._index is None:
            key = _file_key(self.path) if self.path is not None else None
            self._index = _INDEX_CACHE.get(key) if key is not None else None
            if self._index is None:
                with self._open_source() as f:
                    self._index = _walk_archive(f, self.container, self.name)
                if key is not None:
                    _INDEX_CACHE.put(key, self._index)
        return self._index

    def _messages_entry(self, member: str) -> tarfile.TarInfo | zipfile.ZipInfo:
        """The one regular ``messages.json`` at the root, or a clear error."""
        if member != MESSAGES_MEMBER:
            raise ValueError(f"only {MESSAGES_MEMBER} is read from an archive, not {member}")
        wanted = self.members().messages
        if not wanted:
            raise InvalidExportError(self.name, f"the archive has no {member} at its root")
        if len(wanted) > 1:
            raise InvalidExportError(self.name, f"the archive holds {member} {len(wanted)} times")
        info = wanted[0]
        if not _is_regular(info):
            raise InvalidExportError(self.name, f"{member} in the archive is not a regular file")
        self._too_large(member, _entry_size(info))
        return info

    def _tar_member(self, f: BinaryIO, member: str) -> BinaryIO:
        """The member's stream, found in the index; its size is checked before a byte is read."""
        info = self._messages_entry(member)
        try:
            return open_tar_entry(f, info)  # type: ignore[arg-type]
        except _ARCHIVE_ERRORS as e:
            raise InvalidExportError(self.name, f"damaged tar archive ({e})") from None

    def _zip_member(self, f: BinaryIO, member: str) -> BinaryIO:
        info = self._messages_entry(member)
        try:
            return open_zip_entry(f, info)  # type: ignore[arg-type]
        except _ARCHIVE_ERRORS as e:
            raise InvalidExportError(self.name, f"damaged zip archive ({e})") from None

    @contextmanager
    def open_media(self) -> Iterator[Callable[[MediaEntry], BinaryIO]]:
        """An opener of the index's media entries, over one open source (entries in archive order).

        Read errors of one entry (a bad CRC, truncated data) surface as the archive
        library's exceptions (:data:`ARCHIVE_ERRORS`), for the caller to record.
        """
        with self._open_source() as f:
            if self.container == "zip":
                yield lambda entry: open_zip_entry(f, entry.info)  # type: ignore[arg-type]
                return
            try:  # one TarFile for all entries: a .tar.gz is then decompressed once, front to back
                archive = tarfile.open(fileobj=f, mode="r:*")
            except _ARCHIVE_ERRORS as e:
                raise InvalidExportError(self.name, f"damaged tar archive ({e})") from None
            yield lambda entry: open_tar_entry(f, entry.info, archive)  # type: ignore[arg-type]

    def member_names(self) -> list[str]:
        """Names of the members a load uses: ``messages.json`` and the media files."""
        if self.container in ("json", "json.gz"):
            return [MESSAGES_MEMBER]
        index = self.members()
        return [_entry_name(i) for i in index.messages] + [e.info_name for e in index.media]

    # -- whole-file operations ---------------------------------------------------

    def sha256(self) -> tuple[str, int]:
        """SHA-256 and size of the export file as stored."""
        with self._open_source() as f:
            reader = _HashingReader(f)
            while reader.read(_CHUNK):
                pass
        return reader.digest.hexdigest(), reader.bytes_read

    def copy_to(self, directory: str | Path) -> tuple[Path, str, int]:
        """Copy the export into a content-addressed store: ``<dir>/<sha256>.<ext>``.

        Hashes while copying; returns the stored path, the sha256 and the size. An
        existing copy with the same content is kept as it is.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".incoming-", dir=directory)
        tmp = Path(name)
        with self._open_source() as f, os.fdopen(fd, "wb") as out:
            reader = _HashingReader(f)
            shutil.copyfileobj(reader, out, _CHUNK)  # type: ignore[misc]
        sha = reader.digest.hexdigest()
        target = directory / f"{sha}.{_EXTENSIONS[self.container]}"
        if target.exists():
            tmp.unlink()
        else:
            durable.sync_files([tmp])
            durable.replace(tmp, target)
        return target, sha, reader.bytes_read

    def records(self) -> Iterator[Record]:
        """Stream the header, then each message and conversation as the file has them.

        A conversation's record comes when its object ends (its fields may follow its
        ``MessageList``). Raises :class:`InvalidExportError` for unusable JSON.
        """
        return self._parsed(lambda reader: _parse_messages_json(reader, self.name))

    def scan(self) -> Iterator[ExportHeader | ConversationRecord]:
        """A fast validating pass: the header and each conversation with its message count.

        The header comes when ``conversations`` starts and again at the end of the file.
        Checks the nesting depth of every value, so :meth:`messages` may build them.
        """
        return self._parsed(  # type: ignore[return-value]
            lambda reader: _parse_messages_json(reader, self.name, build_messages=False)
        )

    def messages(self) -> Iterator[object]:
        """Every message object in file order, built by ijson's C backend (fastest path).

        Call :meth:`scan` first: it validates the file (including its nesting depth) and
        gives each conversation's message count, which places these messages.
        """
        return self._parsed(lambda reader: _message_items(reader, self.name))

    def _parsed(self, produce: Callable[[_MemberReader], Iterator[object]]) -> Iterator:
        """Items of ``produce`` over ``messages.json``; if yajl meets invalid UTF-8, the
        parse restarts with the UTF-8 repair on and goes on after the items already given."""
        given = 0
        for repair in (False, True):
            with self.open_member() as stream:
                reader = _MemberReader(stream, self.max_member_bytes, self.name, repair_utf8=repair)
                skip = given
                try:
                    for item in produce(reader):
                        if skip:
                            skip -= 1
                            continue
                        yield item
                        given += 1
                    return
                except _NeedsUtf8Repair:
                    continue
        raise AssertionError("unreachable: the repairing parse does not ask for a repair")

    def summarize(self) -> ExtractSummary:
        """One full validating pass: sha256, size, header and record counts."""
        sha, size = self.sha256()
        summary = ExtractSummary(sha256=sha, bytes=size, container=self.container, header=ExportHeader(None, None))
        for record in self.scan():
            if isinstance(record, ConversationRecord):
                summary.conversations += 1
                summary.messages += record.messages
            else:
                summary.header = record
        summary.media_files = [n for n in self.member_names() if _root_name(n).startswith("media/")]
        return summary


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
class MediaEntry:
    """A regular file ``media/<file_name>`` of the archive, with its header (to open it later)."""

    file_name: str
    size: int
    """Size from the header: the expanded size, which the copy does not trust alone."""
    info: tarfile.TarInfo | zipfile.ZipInfo

    @property
    def info_name(self) -> str:
        return _entry_name(self.info)


@dataclass(slots=True)
class MemberIndex:
    """What a load needs of an archive's members, from one walk of its headers.

    Only ``messages.json`` candidates and media entries keep their header; every other
    member is only counted, so memory does not grow with members the load ignores.
    """

    messages: list[tarfile.TarInfo | zipfile.ZipInfo] = field(default_factory=list)
    """Members named ``messages.json`` at the root, of any type (a link is an error)."""
    media: list[MediaEntry] = field(default_factory=list)
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
    match = MEDIA_NAME.match(name)
    if match is not None and regular:
        index.media.append(MediaEntry(match.group(1), _entry_size(info), info))


def _entry_name(info: tarfile.TarInfo | zipfile.ZipInfo) -> str:
    return info.filename if isinstance(info, zipfile.ZipInfo) else info.name


def _entry_size(info: tarfile.TarInfo | zipfile.ZipInfo) -> int:
    return info.file_size if isinstance(info, zipfile.ZipInfo) else info.size


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _is_regular(info: tarfile.TarInfo | zipfile.ZipInfo) -> bool:
    return not _zip_is_link(info) if isinstance(info, zipfile.ZipInfo) else info.isfile()


def open_tar_entry(f: BinaryIO, info: tarfile.TarInfo, archive: tarfile.TarFile | None = None) -> BinaryIO:
    """A stream of a member found by the walk, read in place (``archive`` reuses an open tar)."""
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


# -- the byte stream ijson reads ----------------------------------------------------------

_READ = 1 << 16
"""ijson's read size; while inside a long string the reader returns up to :data:`_MAX_READ`."""
_MAX_READ = 1 << 26
_MAX_GROW = 10
_BOM = b"\xef\xbb\xbf"
_BACKSLASH = 0x5C
_ESCAPE_TAIL = 12
"""Bytes at the end of a read that may hold an escape continued in the next read (``\\ud83d\\ude00``)."""

_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)"
    rb"(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_UNESCAPED_QUOTE = re.compile(rb'(?<!\\)(?:\\\\)*"')
_STRUCTURAL = re.compile(rb"[\s\[\]{},:0-9+\-.eEtrufalsn]*")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _mark_surrogate(m: re.Match) -> bytes:
    """``\\ud800`` -> JSON text for U+FFFD, NUL, then ``\\ud800`` spelled out."""
    return m.group(1) + b"\\ufffd\\u0000\\" + m.group(2)


def _mark_byte(m: re.Match) -> str:
    """An invalid byte (decoded by ``surrogateescape``) -> U+FFFD, NUL, ``\\xff`` spelled out."""
    return "\ufffd\\u0000\\\\x%02x" % (ord(m.group()) - 0xDC00)


def _escape_start(data: bytes, p: int) -> int:
    """The start of the escape sequence that holds the backslash at ``p`` (runs of ``\\\\`` are pairs)."""
    run = p
    while run > 0 and data[run - 1] == _BACKSLASH:
        run -= 1
    return run + ((p - run) & ~1)


def _complete_utf8(data: bytes, end: int) -> int:
    """``end``, moved back before a UTF-8 sequence that the next read completes."""
    for k in range(1, 4):
        if k > end:
            return end
        byte = data[end - k]
        if byte < 0x80:
            return end
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end - k if needed > k else end
    return end


class _NeedsUtf8Repair(Exception):
    """yajl met invalid UTF-8 while the reader was not repairing it: parse again, repairing."""


class _MemberReader:
    """The bytes of ``messages.json`` as ijson reads them: bounded, and made parseable.

    - Stops with :class:`InvalidExportError` past ``limit`` bytes, and turns archive
      read errors (a truncated tar, a bad CRC) into one.
    - Drops a UTF-8 byte order mark.
    - Marks unpaired surrogate escapes (always) and invalid UTF-8 (with ``repair_utf8``)
      as described in the module docstring.
    - Returns growing reads while inside a long string, so yajl's re-lexing of a
      token at every read stays linear overall.

    A read never ends inside an escape or (when repairing) a UTF-8 sequence: such a
    tail is held back for the next read.
    """

    def __init__(self, raw: BinaryIO, limit: int | None, name: str, *, repair_utf8: bool = False) -> None:
        self._raw = raw
        self._limit = limit
        self._name = name
        self.repairing = repair_utf8
        self.bytes_read = 0
        self.invalid_utf8_at: int | None = None
        self._pending = b""  # read from the member, not yet returned from self._pos on
        self._pos = 0
        self._at = 0  # member offset of self._pending[self._pos]
        self._eof = False
        self._started = False
        self._grow = 0

    def _read_raw(self, size: int) -> bytes:
        try:
            data = self._raw.read(size)
        except InvalidExportError:
            raise
        except _ARCHIVE_ERRORS as e:
            raise InvalidExportError(
                self._name, f"damaged archive: {MESSAGES_MEMBER} cannot be read ({e})", f"byte {self.bytes_read}"
            ) from None
        self.bytes_read += len(data)
        if self._limit is not None and self.bytes_read > self._limit:
            raise InvalidExportError(
                self._name, f"{MESSAGES_MEMBER} is larger than the limit of {self._limit} bytes"
            )
        return data

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        base = size if size and size > 0 else _READ
        want = min(base << self._grow, _MAX_READ)
        while True:
            available = len(self._pending) - self._pos
            if available < want and not self._eof:
                data = self._read_raw(max(want - available, base))
                if not data:
                    self._eof = True
                self._pending = self._pending[self._pos :] + data if available else data
                self._pos = 0
                available = len(self._pending)
            if not available:
                return b""
            if not self._started:
                if available < len(_BOM) and not self._eof:
                    want = available + base
                    continue
                self._started = True
                if self._pending.startswith(_BOM, self._pos):
                    self._pos += 3
                    self._at += 3
                    continue
            end = min(available, want)
            buf = self._pending[self._pos : self._pos + end]
            cut = end if self._eof and end == available else self._safe_end(buf)
            if cut == 0:
                want = available + base
                continue
            out = buf[:cut] if cut < end else buf
            at = self._at
            self._pos += cut
            self._at += cut
            out = self._follow_strings(out, at)
            return self._clean(out, at)

    def _safe_end(self, buf: bytes) -> int:
        """Where the returned part of ``buf`` must end: before an escape or UTF-8 sequence it cuts."""
        end = len(buf)
        p = buf.find(b"\\", max(0, end - _ESCAPE_TAIL))
        if p >= 0:
            end = _escape_start(buf, p)
            if end >= 6 and _HIGH_SURROGATE.match(buf, end - 6):  # keep a pair together
                end = _escape_start(buf, end - 6)
        if self.repairing:
            end = _complete_utf8(buf, end)
        return end

    def _follow_strings(self, out: bytes, at: int) -> bytes:
        """Grow the next reads while inside a long string; stop growing where it ends."""
        if self._grow:
            if b'"' in out:
                m = _UNESCAPED_QUOTE.search(out)
                if m is not None:
                    end = m.end()
                    self._pos -= len(out) - end  # give the rest back
                    self._at -= len(out) - end
                    self._grow = 0
                    return out[:end]
            self._grow = min(self._grow + 1, _MAX_GROW)
            return out
        first = out.find(b'"')
        if first < 0:
            inside = len(out) >= _READ // 2 and _STRUCTURAL.fullmatch(out) is None
        elif first > 0 and out[first - 1] == _BACKSLASH:
            inside = _UNESCAPED_QUOTE.search(out) is None
        else:
            inside = False
        if inside:
            self._grow = 1
        return out

    def _clean(self, out: bytes, at: int) -> bytes:
        if self.repairing and not out.isascii():
            try:
                out.decode("utf-8")
            except UnicodeDecodeError as e:
                if self.invalid_utf8_at is None:
                    self.invalid_utf8_at = at + e.start
                text = _ESCAPED_BYTE.sub(_mark_byte, out.decode("utf-8", "surrogateescape"))
                out = text.encode("utf-8")
        if _SURROGATE_HINT.search(out) is not None:
            out = _LONE_SURROGATE.sub(_mark_surrogate, out)
        return out


# -- walking the JSON -------------------------------------------------------------------------

_MESSAGE_PREFIX = "conversations.item.MessageList.item"
_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))
_SCALARS = frozenset(("null", "boolean", "integer", "double", "number", "string"))

# Depth of the containers (1 = the top-level object) whose contents the walker reads.
_TOP, _CONVERSATIONS, _CONVERSATION, _MESSAGE_LIST, _MESSAGE = 1, 2, 3, 4, 5


class _Where:
    """Where the parser is, for error messages."""

    __slots__ = ("conversation", "message", "place")

    def __init__(self, place: str) -> None:
        self.conversation = -1
        self.message = -1
        self.place = place

    def __str__(self) -> str:
        if self.message >= 0:
            return f"conversations[{self.conversation}].MessageList[{self.message}]"
        if self.conversation >= 0:
            return f"conversations[{self.conversation}]"
        return self.place


def _message_items(reader: _MemberReader, name: str) -> Iterator[object]:
    where = _Where("a message")
    with _json_errors(name, where, reader):
        yield from ijson.items(reader, _MESSAGE_PREFIX, use_float=True, buf_size=_READ)


def _parse_messages_json(reader: _MemberReader, name: str, *, build_messages: bool = True) -> Iterator[Record]:
    """Walk ijson's basic events, building only one message or one conversation field at a time.

    With ``build_messages=False`` messages are only counted (``ConversationRecord.messages``)
    and their depth checked: a fast validating scan that leaves building messages to
    :meth:`Extractor.messages`. Basic events carry no prefix, so memory stays constant
    however deep the input is nested (until :data:`MAX_DEPTH` stops it).
    """
    where = _Where("the start of the file")
    with _json_errors(name, where, reader):
        events = ijson.basic_parse(reader, use_float=True, buf_size=_READ)
        event, _ = next(events)
        if event != "start_map":
            raise InvalidExportError(name, f"the top level of {MESSAGES_MEMBER} is not an object", "byte 0")
        user_id = export_date = None
        saw_conversations = False
        conv_index = -1
        where.place = "the top level"
        for event, key in events:
            if event == "end_map":
                break
            event, value = next(events)
            if key == "conversations":
                if event != "start_array":
                    raise InvalidExportError(name, '"conversations" is not a list', "conversations")
                saw_conversations = True
                yield ExportHeader(user_id, export_date)
                where.place = "conversations"
                conv_index = yield from _conversations(events, name, where, conv_index, build_messages)
                where.conversation = where.message = -1
                where.place = "the top level"
            elif key == "userId" or key == "exportDate":
                built = _build(events, event, value, _CONVERSATIONS, name, where)
                if key == "userId":
                    user_id = built if isinstance(built, str) else None
                else:
                    export_date = built if isinstance(built, str) else None
            elif event in _OPEN:
                where.place = f"the top-level key {key!r:.80}"
                _skip(events, _CONVERSATIONS, name, where)
                where.place = "the top level"
        if not saw_conversations:
            raise InvalidExportError(name, f'{MESSAGES_MEMBER} has no "conversations" list')
        where.place = "the end of the file"
        yield ExportHeader(user_id, export_date)
        for _ in events:  # only trailing garbage is left; yajl raises for it
            pass


def _conversations(events, name: str, where: _Where, conv_index: int, build_messages: bool):
    """The items of a ``conversations`` list; returns the last conversation index."""
    for event, value in events:
        if event == "end_array":
            break
        conv_index += 1
        where.conversation, where.message = conv_index, -1
        if event != "start_map":
            data = _build(events, event, value, _CONVERSATION, name, where)
            yield ConversationRecord(conv_index, {"__invalid__": data}, False, 0)
            continue
        conv: dict = {}
        has_list = False
        count = 0
        for event, key in events:
            if event == "end_map":
                break
            event, value = next(events)
            if key == "MessageList":
                has_list = True
                if event == "start_array":
                    count = yield from _messages(events, name, where, conv_index, count, build_messages)
                    where.message = -1
                    continue
            conv[key] = _build(events, event, value, _MESSAGE_LIST, name, where)
        yield ConversationRecord(conv_index, conv, has_list, count)
    return conv_index


def _messages(events, name: str, where: _Where, conv_index: int, count: int, build: bool):
    """The items of a ``MessageList``; returns how many the conversation has so far."""
    for event, value in events:
        if event == "end_array":
            break
        where.message = count
        if build:
            yield MessageRecord(conv_index, count, _build(events, event, value, _MESSAGE, name, where))
        elif event in _OPEN:
            _skip(events, _MESSAGE, name, where)
        count += 1
    return count


def _too_deep(name: str, where: _Where) -> None:
    raise InvalidExportError(name, f"JSON nested deeper than {MAX_DEPTH} levels", str(where))


def _skip(events, depth: int, name: str, where: _Where) -> None:
    """Consume the container just opened at ``depth``, checking how deep it goes."""
    if depth > MAX_DEPTH:
        _too_deep(name, where)
    level = depth
    for event, _ in events:
        if event in _OPEN:
            level += 1
            if level > MAX_DEPTH:
                _too_deep(name, where)
        elif event in _CLOSE:
            level -= 1
            if level < depth:
                return


def _build(events, event: str, value: object, depth: int, name: str, where: _Where) -> object:
    """Build the JSON value that starts with ``event`` (a container opened at ``depth``)."""
    if event not in _OPEN:
        return value
    if depth > MAX_DEPTH:
        _too_deep(name, where)
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    level = depth
    for event, value in events:
        builder.event(event, value)
        if event in _OPEN:
            level += 1
            if level > MAX_DEPTH:
                _too_deep(name, where)
        elif event in _CLOSE:
            level -= 1
            if level < depth:
                break
    return builder.value


_UTF8_ERROR = "invalid bytes in UTF8 string"
_BAD_CHAR = "invalid char in json text"


@contextmanager
def _json_errors(name: str, where: _Where, reader: _MemberReader) -> Iterator[None]:
    """Turn parser errors into one :class:`InvalidExportError` naming the file and place.

    Invalid UTF-8 met while the reader is not repairing asks for a repairing parse.
    """
    try:
        yield
    except StopIteration:
        raise InvalidExportError(name, f"{MESSAGES_MEMBER} ended early (truncated JSON)", str(where)) from None
    except ijson.JSONError as e:
        text = e.args[0] if e.args else ""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        text = str(text).strip()
        if not reader.repairing and (_UTF8_ERROR in text or _BAD_CHAR in text):
            raise _NeedsUtf8Repair from None  # (a bad character may be invalid UTF-8: say so, with its offset)
        first = text.splitlines()[0].strip().rstrip(".") if text else type(e).__name__
        if "premature EOF" in text:
            reason = f"{MESSAGES_MEMBER} ended early (truncated JSON)"
        elif "integer overflow" in first:
            reason = f"invalid JSON ({first}: a whole number beyond 64 bits)"
        elif "lexical error" in first or "parse error" in first:
            reason = f"invalid JSON ({first})"
        else:
            reason = first
        if reader.invalid_utf8_at is not None:
            reason += f"; invalid UTF-8 at byte {reader.invalid_utf8_at}"
        raise InvalidExportError(name, reason, str(where)) from None
    except UnicodeDecodeError as e:
        if not reader.repairing:
            raise _NeedsUtf8Repair from None
        raise InvalidExportError(name, f"invalid UTF-8 ({e.reason})", str(where)) from None
