"""The byte stream ijson reads: bounded reads, growing buffers in long strings, and UTF-8 repair.

Invalid UTF-8 and unpaired surrogate escapes are replaced by a marked text (see ``records.MARK``);
valid files pay nothing, since the repair starts only when yajl reports a problem.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from ..errors import InvalidExportError
from .containers import _ARCHIVE_ERRORS
from .records import MESSAGES_MEMBER

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

    def __init__(
        self, raw: BinaryIO, limit: int | None, name: str, *, repair_utf8: bool = False, offset: int = 0
    ) -> None:
        """``offset``: where ``raw`` starts in ``messages.json`` (a worker's range): no byte order mark there."""
        self._raw = raw
        self._limit = limit
        self._name = name
        self.repairing = repair_utf8
        self.bytes_read = 0
        self.invalid_utf8_at: int | None = None
        self._pending = b""  # read from the member, not yet returned from self._pos on
        self._pos = 0
        self._at = offset  # member offset of self._pending[self._pos]
        self._eof = False
        self._started = offset > 0
        self._grow = 0
        self._previous: tuple[int, bytes, bool] | None = None
        self._last: tuple[int, bytes, bool] | None = None
        self._recorded: list[tuple[int, bytes, bool]] | None = None

    @property
    def position(self) -> int:
        """Offset in ``messages.json`` of the next byte to return: everything before it was parsed or is being."""
        return self._at

    def record(self) -> None:
        """Keep the last two reads and every read from now on, until :meth:`stop_recording` (split points)."""
        self._recorded = [c for c in (self._previous, self._last) if c is not None]

    def stop_recording(self) -> list[tuple[int, bytes, bool]]:
        """The reads kept since :meth:`record`, as (offset, bytes returned, whether they differ from the file)."""
        recorded, self._recorded = self._recorded or [], None
        return recorded

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
            clean = self._clean(out, at)
            self._previous, self._last = self._last, (at, clean, clean is not out)
            if self._recorded is not None:
                self._recorded.append(self._last)
            return clean

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
            marked = _LONE_SURROGATE.sub(_mark_surrogate, out)
            if marked != out:
                out = marked
        return out


