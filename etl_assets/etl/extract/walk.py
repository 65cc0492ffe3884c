"""Walking ``messages.json``: conversations and messages from ijson events, with their locations.

The validating scan skips message bodies without building them; deep nesting and truncated
or invalid JSON become one clear error naming the file and the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ijson

from ..errors import InvalidExportError
from .records import (
    MAX_DEPTH,
    MESSAGES_MEMBER,
    ConversationRecord,
    ExportHeader,
    MessageRecord,
    Record,
)
from .repair import _READ, _MemberReader, _NeedsUtf8Repair
from .split import RANGE_PREFIX, SplitFinder

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


def _message_items(reader: _MemberReader, name: str, *, in_range: bool = False) -> Iterator[object]:
    """Every message from the reader's position on; ``in_range``: the reader starts at a split point."""
    where = _Where("a message")
    with _json_errors(name, where, reader):
        source = _Prefixed(RANGE_PREFIX, reader) if in_range else reader
        yield from ijson.items(source, _MESSAGE_PREFIX, use_float=True, buf_size=_READ)


class _Prefixed:
    """A reader that returns ``prefix`` first, then what ``reader`` returns."""

    def __init__(self, prefix: bytes, reader: _MemberReader) -> None:
        self._prefix = prefix
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson's probe for bytes or text: it must not take the prefix
            return b""
        if self._prefix:
            head, self._prefix = self._prefix, b""
            return head + self._reader.read(size)
        return self._reader.read(size)


def _parse_messages_json(
    reader: _MemberReader, name: str, *, build_messages: bool = True, splitter: SplitFinder | None = None
) -> Iterator[Record]:
    """Walk ijson's basic events, building only one message or one conversation field at a time.

    With ``build_messages=False`` messages are only counted (``ConversationRecord.messages``)
    and their depth checked: a fast validating scan that leaves building messages to
    :meth:`Extractor.messages`; a ``splitter`` then also finds the split points (``split``). Basic events carry no prefix, so memory stays constant
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
                conv_index = yield from _conversations(events, name, where, conv_index, build_messages, splitter)
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


def _conversations(events, name: str, where: _Where, conv_index: int, build_messages: bool, splitter):
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
                    count = yield from _messages(events, name, where, conv_index, count, build_messages, splitter)
                    where.message = -1
                    continue
            conv[key] = _build(events, event, value, _MESSAGE_LIST, name, where)
        yield ConversationRecord(conv_index, conv, has_list, count)
    return conv_index


def _messages(events, name: str, where: _Where, conv_index: int, count: int, build: bool, splitter):
    """The items of a ``MessageList``; returns how many the conversation has so far."""
    for event, value in events:
        if event == "end_array":
            break
        where.message = count
        if build:
            yield MessageRecord(conv_index, count, _build(events, event, value, _MESSAGE, name, where))
        elif splitter is not None and splitter.due():
            splitter.begin()
            splitter.found(conv_index, count, _build(events, event, value, _MESSAGE, name, where))
        elif event in _OPEN:
            _skip(events, _MESSAGE, name, where)
        count += 1
        if splitter is not None:
            splitter.seen += 1
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
