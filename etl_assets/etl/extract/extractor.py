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
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from upath import UPath

from .. import durable
from ..errors import InvalidExportError

_CHUNK = 1 << 20
from .containers import (
    _ARCHIVE_ERRORS,
    _EXTENSIONS,
    _INDEX_CACHE,
    FileIdentity,
    MediaEntry,
    MemberIndex,
    TarEntry,
    _entry_name,
    _entry_size,
    _file_key,
    _is_regular,
    _walk_archive,
    file_identity,
    open_tar_entry,
    open_zip_entry,
    sniff_container,
)
from ..locations import is_remote, location
from .remote import open_binary, remote_identity
from .records import (
    MESSAGES_MEMBER,
    ConversationRecord,
    ExportHeader,
    Record,
)
from .repair import _MemberReader, _NeedsUtf8Repair
from .split import SplitPoint, SplitFinder
from .walk import _message_items, _parse_messages_json


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


class MediaSource:
    """Opens media entries of one open archive; for an uncompressed tar on disk, also says where their bytes lie.

    ``extent`` lets the copy move a member's bytes with ``copy_file_range`` inside the kernel
    instead of reading them through Python (a plain tar stores a regular member contiguously).
    """

    def __init__(self, opener: Callable[[MediaEntry], BinaryIO], fd: int | None = None) -> None:
        self.open = opener
        self._fd = fd

    def extent(self, entry: MediaEntry) -> tuple[int, int] | None:
        """(file descriptor, offset) of the entry's bytes, or ``None`` when they must be read through ``open``."""
        info = entry.info
        if self._fd is None or not isinstance(info, TarEntry) or info.issparse():
            return None
        return self._fd, info.offset_data


def _has_fileno(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


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
        members: MemberIndex | None = None,
    ) -> None:
        """``members``: the archive's index as another process walked it (a transform worker reading
        ``messages.json`` only), so this one does not walk the headers again."""
        if isinstance(source, (str, Path, UPath)):
            self.path: Path | None = location(source)
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
        self._index: MemberIndex | None = members

    # -- opening -----------------------------------------------------------------

    @contextmanager
    def _open_source(self) -> Iterator[BinaryIO]:
        if self._fileobj is not None:
            self._fileobj.seek(0)
            yield self._fileobj
            return
        assert self.path is not None
        try:
            f = open_binary(self.path)
        except FileNotFoundError:
            raise InvalidExportError(self.name, "file not found") from None
        except IsADirectoryError:
            raise InvalidExportError(self.name, "is a directory, not an export file") from None
        except PermissionError:
            raise InvalidExportError(self.name, "permission denied (check the credentials and the permissions)") from None
        except OSError as e:
            raise InvalidExportError(self.name, f"cannot be read ({e.strerror or e})") from None
        except Exception as e:  # noqa: BLE001 - a remote store's client: an unreachable endpoint, bad settings
            if not is_remote(self.path):
                raise
            raise InvalidExportError(self.name, f"cannot be reached ({type(e).__name__}: {e})") from None
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
        if self.path is not None and is_remote(self.path):
            try:
                now: tuple[int, ...] | None = remote_identity(self.path)
            except FileNotFoundError:
                now = None  # deleted since: changed
        else:
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
            key = _file_key(self.path) if self.path is not None and not is_remote(self.path) else None
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
    def open_media(self) -> Iterator[MediaSource]:
        """The media entries' bytes, over one open source (entries in archive order).

        Read errors of one entry (a bad CRC, truncated data) surface as the archive
        library's exceptions (:data:`ARCHIVE_ERRORS`), for the caller to record.
        """
        with self._open_source() as f:
            if self.container == "zip":
                yield MediaSource(lambda entry: open_zip_entry(f, entry.info))  # type: ignore[arg-type]
                return
            try:  # one TarFile for all entries: a .tar.gz is then decompressed once, front to back
                archive = tarfile.open(fileobj=f, mode="r:*")
            except _ARCHIVE_ERRORS as e:
                raise InvalidExportError(self.name, f"damaged tar archive ({e})") from None
            plain = self.container == "tar" and _has_fileno(f)
            yield MediaSource(
                lambda entry: open_tar_entry(f, entry.info, archive),  # type: ignore[arg-type]
                f.fileno() if plain else None,
            )

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

    def scan(self, splits: list[SplitPoint] | None = None) -> Iterator[ExportHeader | ConversationRecord]:
        """A fast validating pass: the header and each conversation with its message count.

        The header comes when ``conversations`` starts and again at the end of the file.
        Checks the nesting depth of every value, so :meth:`messages` may build them.
        ``splits``: filled with the split points found on the way (see ``split``), where the
        size of ``messages.json`` is known.
        """
        size = self.messages_size() if splits is not None else None

        def produce(reader: _MemberReader) -> Iterator[object]:
            splitter = SplitFinder(reader, size, splits) if splits is not None and size else None
            return _parse_messages_json(reader, self.name, build_messages=False, splitter=splitter)

        return self._parsed(produce)  # type: ignore[return-value]

    def messages(self, start: SplitPoint | None = None) -> Iterator[object]:
        """Every message object in file order, built by ijson's C backend (fastest path).

        Call :meth:`scan` first: it validates the file (including its nesting depth) and
        gives each conversation's message count, which places these messages. ``start``:
        begin at that split point instead (its message first), parsing nothing before it.
        """
        in_range = start is not None and start.offset > 0
        return self._parsed(
            lambda reader: _message_items(reader, self.name, in_range=in_range), offset=start.offset if in_range else 0
        )

    def messages_size(self) -> int | None:
        """The size of ``messages.json`` in bytes, where the container says it (not inside gzip)."""
        if self.container == "json":
            if self.path is not None:
                return self.path.stat().st_size
            return None
        if self.container in ("tar", "zip"):
            entry = self._messages_entry(MESSAGES_MEMBER)
            return entry.file_size if isinstance(entry, zipfile.ZipInfo) else entry.size
        return None

    def _parsed(self, produce: Callable[[_MemberReader], Iterator[object]], offset: int = 0) -> Iterator:
        """Items of ``produce`` over ``messages.json`` from byte ``offset``; if yajl meets invalid UTF-8,
        the parse restarts with the UTF-8 repair on and goes on after the items already given."""
        given = 0
        for repair in (False, True):
            with self.open_member() as stream:
                if offset:
                    stream.seek(offset)
                reader = _MemberReader(stream, self.max_member_bytes, self.name, repair_utf8=repair, offset=offset)
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



