"""Split points: where messages begin at about every 1/64 of ``messages.json``, found by the validating scan.

With them each transform worker parses only its own contiguous range of the file instead of
every worker parsing all of it: a worker seeks to its point and feeds the parser
:data:`RANGE_PREFIX` first, which puts the bytes that follow at the depth of a message list.

A point is kept only when it is certain. The scan builds the message it picked, then looks
for it in the bytes it has just read: the pattern of the message's first field must occur
exactly once there, after a ``,`` or ``[``, and the JSON decoded from that place must equal
the message. Inside a JSON string a quote is always escaped, so a string cannot imitate it;
a message repeated byte for byte next to itself makes the pattern occur twice, and the
scan tries the next message instead. Where no point can be certain (bytes changed by the
UTF-8 repair, a first field that is not a plain string or number), there is none, and the
workers fall back to each parsing the whole file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .repair import _MemberReader

SLICES = 64
"""The scan looks for a point after every 1/64 of the file, so any worker count gets even ranges."""

TRIES = 32
"""Messages tried per point: past this many uncertain ones (an unusual first field), the next point is looked for."""

RANGE_PREFIX = b'{"conversations":[{"MessageList":['
"""Fed before a range's bytes: its first message then sits where a message list's items do."""

_DECODER = json.JSONDecoder()
_SPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class SplitPoint:
    """A message that starts a range: its index in file order, its place, its byte offset in
    ``messages.json``, and a digest of its value, by which the workers check that their ranges meet."""

    index: int
    conversation: int
    position: int
    offset: int
    digest: str = ""

    def to_list(self) -> list[int | str]:
        return [self.index, self.conversation, self.position, self.offset, self.digest]

    def is_message(self, message: object) -> bool:
        """Whether ``message`` (as a worker parsed it) is this point's message."""
        return message_digest(message) == self.digest


def message_digest(message: object) -> str:
    """A short digest of a message's value (the same whichever ijson builder built it)."""
    text = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class SplitFinder:
    """Used by the scan: says when a message should be built to become a point, and locates it."""

    def __init__(self, reader: _MemberReader, size: int, points: list[SplitPoint]) -> None:
        self._reader = reader
        self._targets = [size * k // SLICES for k in range(1, SLICES)]
        self._next = 0
        self._tries = 0
        self.points = points
        self.points.clear()  # a scan restarted to repair UTF-8 finds them again
        self.seen = 0
        """Messages the scan has passed so far (the next one's index in file order)."""

    def due(self) -> bool:
        """Whether the message starting now should be built and located (the next target offset is passed)."""
        return self._next < len(self._targets) and self._reader.position >= self._targets[self._next]

    def begin(self) -> None:
        self._reader.record()

    def found(self, conversation: int, position: int, message: object) -> None:
        """Locate ``message`` (just built) in the bytes read since :meth:`begin`; keep it if certain."""
        chunks = self._reader.stop_recording()
        offset = _locate(chunks, message)
        if offset is None:
            self._tries += 1
            if self._tries < TRIES:
                return  # the next message is tried
        else:
            self.points.append(SplitPoint(self.seen, conversation, position, offset, message_digest(message)))
        self._tries = 0
        while self._next < len(self._targets) and self._targets[self._next] <= self._reader.position:
            self._next += 1


def _locate(chunks: list[tuple[int, bytes, bool]], message: object) -> int | None:
    """The byte offset where ``message`` begins in ``chunks`` (offset, bytes, changed), if it is certain."""
    if not chunks or any(changed for _, _, changed in chunks) or not isinstance(message, dict) or not message:
        return None
    for (at, data, _), (next_at, _, _) in zip(chunks, chunks[1:]):
        if at + len(data) != next_at:
            return None
    key, value = next(iter(message.items()))
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    pattern = re.compile(
        rb"\{[ \t\r\n]*" + re.escape(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        + rb"[ \t\r\n]*:[ \t\r\n]*" + re.escape(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    )
    region = b"".join(data for _, data, _ in chunks)
    starts = [m.start() for m in pattern.finditer(region)]
    if len(starts) != 1:
        return None
    start = starts[0]
    before = region[:start].rstrip(_SPACE)
    if not before or before[-1:] not in (b",", b"["):
        return None
    try:
        decoded, _ = _DECODER.raw_decode(region[start:].decode("utf-8", "ignore"))
    except ValueError:
        return None
    return chunks[0][0] + start if decoded == message else None
