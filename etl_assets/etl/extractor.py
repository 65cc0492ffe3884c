"""Extractor: open an export in any of its container forms and stream its records.

An export arrives as a ``.tar`` (the Skype download), a ``.tar.gz``/``.tgz``, a
``.zip`` or a bare ``messages.json``, from a path or a binary file object. The
container is recognized by its first bytes, not its name. Members are read by
name straight from the container; nothing is extracted to disk. ``messages.json``
is streamed with ijson's C backend, one conversation header or message at a time,
so memory does not grow with the file or with any one conversation.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import ijson

from .errors import InvalidExportError

MESSAGES_MEMBER = "messages.json"
_CHUNK = 1 << 20


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
        self.container = self._sniff()

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
            yield f

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
            except (OSError, EOFError) as e:
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

    def _tar_member(self, f: BinaryIO, member: str) -> BinaryIO:
        try:
            archive = tarfile.open(fileobj=f, mode="r:*")
            wanted = [m for m in archive.getmembers() if _root_name(m.name) == member]
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidExportError(self.name, f"damaged tar archive ({e})") from None
        if not wanted:
            raise InvalidExportError(self.name, f"the archive has no {member} at its root")
        if len(wanted) > 1:
            raise InvalidExportError(self.name, f"the archive holds {member} {len(wanted)} times")
        info = wanted[0]
        if not info.isfile():
            raise InvalidExportError(self.name, f"{member} in the archive is not a regular file")
        stream = archive.extractfile(info)
        assert stream is not None
        return stream  # type: ignore[return-value]

    def _zip_member(self, f: BinaryIO, member: str) -> BinaryIO:
        try:
            archive = zipfile.ZipFile(f)
            wanted = [n for n in archive.namelist() if _root_name(n) == member]
        except (zipfile.BadZipFile, OSError) as e:
            raise InvalidExportError(self.name, f"damaged zip archive ({e})") from None
        if not wanted:
            raise InvalidExportError(self.name, f"the archive has no {member} at its root")
        if len(wanted) > 1:
            raise InvalidExportError(self.name, f"the archive holds {member} {len(wanted)} times")
        return archive.open(wanted[0])  # type: ignore[return-value]

    def member_names(self) -> list[str]:
        """Names of the container's members (``messages.json`` for a bare file)."""
        if self.container in ("json", "json.gz"):
            return [MESSAGES_MEMBER]
        with self._open_source() as f:
            if self.container == "zip":
                return zipfile.ZipFile(f).namelist()
            with tarfile.open(fileobj=f, mode="r:*") as archive:
                return [m.name for m in archive.getmembers() if m.isfile()]

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
        tmp = directory / f".incoming-{id(self)}"
        with self._open_source() as f, open(tmp, "wb") as out:
            reader = _HashingReader(f)
            shutil.copyfileobj(reader, out, _CHUNK)  # type: ignore[misc]
        sha = reader.digest.hexdigest()
        target = directory / f"{sha}.{_EXTENSIONS[self.container]}"
        if target.exists():
            tmp.unlink()
        else:
            tmp.replace(target)
        return target, sha, reader.bytes_read

    def records(self) -> Iterator[Record]:
        """Stream the header, then each message and conversation as the file has them.

        A conversation's record comes when its object ends (its fields may follow its
        ``MessageList``). Raises :class:`InvalidExportError` for unusable JSON.
        """
        with self.open_member() as stream:
            limited = _LimitedReader(stream, self.max_member_bytes, self.name)
            yield from _parse_messages_json(limited, self.name)

    def scan(self) -> Iterator[ExportHeader | ConversationRecord]:
        """A fast validating pass: the header and each conversation with its message count.

        The header comes when ``conversations`` starts and again at the end of the file.
        """
        with self.open_member() as stream:
            limited = _LimitedReader(stream, self.max_member_bytes, self.name)
            yield from _parse_messages_json(limited, self.name, build_messages=False)  # type: ignore[misc]

    def messages(self) -> Iterator[object]:
        """Every message object in file order, built by ijson's C backend (fastest path).

        Call :meth:`scan` first: it validates the file and gives each conversation's
        message count, which places these messages.
        """
        where = ["a message"]
        with self.open_member() as stream, _json_errors(self.name, where):
            limited = _LimitedReader(stream, self.max_member_bytes, self.name)
            yield from ijson.items(limited, _MESSAGE_PREFIX, use_float=True)

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


class _LimitedReader:
    """A ``read()``-only stream that stops with a clear error past ``limit`` bytes."""

    def __init__(self, raw: BinaryIO, limit: int | None, name: str) -> None:
        self._raw = raw
        self._limit = limit
        self._name = name
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        if self._limit is not None and self.bytes_read > self._limit:
            raise InvalidExportError(
                self._name, f"{MESSAGES_MEMBER} is larger than the limit of {self._limit} bytes"
            )
        return data


_MESSAGE_PREFIX = "conversations.item.MessageList.item"


def _parse_messages_json(stream: BinaryIO, name: str, *, build_messages: bool = True) -> Iterator[Record]:
    """Walk ijson events, building only one message or one conversation field at a time.

    With ``build_messages=False`` messages are only counted (``ConversationRecord.messages``):
    a fast validating scan that leaves building messages to :meth:`Extractor.messages`.
    """
    events = ijson.parse(stream, use_float=True)
    conv_index = -1
    msg_index = -1
    conv: dict = {}
    has_list = False
    user_id = export_date = None
    saw_conversations = False
    where = ["the start of the file"]
    with _json_errors(name, where):
        prefix, event, value = next(events)
        if event != "start_map":
            raise InvalidExportError(name, f"the top level of {MESSAGES_MEMBER} is not an object", "byte 0")
        for prefix, event, value in events:
            if prefix == _MESSAGE_PREFIX:
                if event == "start_map" or event == "start_array" or event in _SCALARS:
                    msg_index += 1
                    if build_messages:
                        where[0] = f"conversations[{conv_index}].MessageList[{msg_index}]"
                        yield MessageRecord(conv_index, msg_index, _build(events, event, value))
                continue
            if prefix == "conversations.item":
                if event == "start_map":
                    conv_index += 1
                    msg_index = -1
                    conv = {}
                    has_list = False
                    where[0] = f"conversations[{conv_index}]"
                elif event == "map_key":
                    _, event2, value2 = next(events)
                    if value == "MessageList":
                        has_list = True
                        if event2 == "start_array":
                            continue
                    conv[value] = _build(events, event2, value2)
                elif event == "end_map":
                    yield ConversationRecord(conv_index, conv, has_list, msg_index + 1)
                elif event in _SCALARS or event == "start_array":
                    conv_index += 1
                    where[0] = f"conversations[{conv_index}]"
                    yield ConversationRecord(conv_index, {"__invalid__": _build(events, event, value)}, False, 0)
                continue
            if prefix == "" and event == "map_key":
                _, event2, value2 = next(events)
                if value == "conversations":
                    if event2 != "start_array":
                        raise InvalidExportError(name, '"conversations" is not a list', "conversations")
                    saw_conversations = True
                    yield ExportHeader(user_id, export_date)
                    continue
                built = _build(events, event2, value2)
                if value == "userId":
                    user_id = built if isinstance(built, str) else None
                elif value == "exportDate":
                    export_date = built if isinstance(built, str) else None
            elif prefix == "" and event == "end_map":
                if not saw_conversations:
                    raise InvalidExportError(name, f'{MESSAGES_MEMBER} has no "conversations" list')
                yield ExportHeader(user_id, export_date)
                where[0] = "the end of the file"


@contextmanager
def _json_errors(name: str, where: list[str]) -> Iterator[None]:
    """Turn parser errors into one :class:`InvalidExportError` naming the file and place."""
    try:
        yield
    except StopIteration:
        raise InvalidExportError(name, f"{MESSAGES_MEMBER} ended early (truncated JSON)", where[0]) from None
    except ijson.JSONError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, ijson.IncompleteJSONError) and "premature EOF" in str(e):
            reason = f"{MESSAGES_MEMBER} ended early (truncated JSON)"
        elif "lexical error" in reason or "parse error" in reason:
            reason = f"invalid JSON ({reason})"
        raise InvalidExportError(name, reason, where[0]) from None
    except UnicodeDecodeError as e:
        raise InvalidExportError(name, f"invalid UTF-8 ({e.reason})", where[0]) from None


_SCALARS = frozenset(("null", "boolean", "integer", "double", "number", "string"))


def _build(events: Iterator[tuple[str, str, object]], event: str, value: object) -> object:
    """Build the JSON value that starts with ``event`` from the following events."""
    if event in _SCALARS:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for _, event, value in events:
        builder.event(event, value)
        if event == "start_map" or event == "start_array":
            depth += 1
        elif event == "end_map" or event == "end_array":
            depth -= 1
            if depth == 0:
                break
    return builder.value
