"""JSON: one file per conversation, the CSV fields plus every child row, written as it streams.

The file is one object, ``{"conversation": {...}, "time_zone": ..., "messages": [...]}``;
messages are appended one by one, so the writer holds one message at a time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO, Any

from ..warehouse import Conversation, Span
from .files import safe_name
from .formats import Attached, Context, Written
from .rows import CHILD_TABLES, Message

_SINGLE_KEYS = {"calls": "call", "thread_events": "thread_event", "polls": "poll", "locations": "location", "translations": "translation"}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def message_object(message: Message, conversation_name: str, attached: list[Attached]) -> dict:
    """The JSON form of one message: flat fields first, then the child rows by table."""
    out: dict[str, Any] = {
        "conversation_id": message.conversation_id,
        "conversation": conversation_name,
        "message_id": message.message_id,
        "sent_at": message.sent_at,
        "sender_id": message.sender_id,
        "sender_name": message.sender_name,
        "message_type": message.message_type,
        "text": message.text,
        "edited_at": message.edited_at,
        "deleted_at": message.deleted_at,
        "attachments": [_attachment(a) for a in attached],
    }
    for name, _, single in CHILD_TABLES:
        if name == "attachments":
            continue
        rows = message.child(name)
        if single:
            out[_SINGLE_KEYS[name]] = rows[0] if rows else None
        else:
            out[name] = rows
    return out


def _attachment(a: Attached) -> dict:
    row = {k: v for k, v in a.row.items() if k != "media_path"}
    row["file"] = a.file.relative if a.file else None
    row["preview_file"] = a.preview.relative if a.preview else None
    return row


class JsonWriter:
    def __init__(self, context: Context) -> None:
        self.context = context
        self._fh: IO[str] | None = None
        self._written: Written | None = None
        self._first = True

    def open_conversation(self, conversation: Conversation, span: Span) -> None:
        name = self.context.files.claim(safe_name(conversation.name, conversation.conversation_id) + ".json")
        self._fh = open(self.context.folder / name, "w", encoding="utf-8", newline="\n")
        head = {
            "conversation": {
                "conversation_id": conversation.conversation_id,
                "name": conversation.name,
                "kind": conversation.kind,
                "members": list(conversation.members),
                "messages": span.messages,
                "calls": span.calls,
                "messages_with_files": span.with_files,
                "first_message_at": span.first,
                "last_message_at": span.last,
            },
            "time_zone": self.context.zone.name,
        }
        text = json.dumps(head, ensure_ascii=False, default=_default, indent=1)
        self._fh.write(text[: text.rfind("}")].rstrip() + ',\n "messages": [')
        self._first = True
        self._written = Written(conversation, span, [name])

    def write(self, message: Message, attached: list[Attached]) -> None:
        assert self._fh is not None and self._written is not None
        obj = message_object(message, self._written.conversation.name, attached)
        self._fh.write(("\n  " if self._first else ",\n  ") + json.dumps(obj, ensure_ascii=False, default=_default))
        self._first = False

    def close_conversation(self) -> Written:
        assert self._fh is not None and self._written is not None
        self._fh.write("\n ]\n}\n")
        self._fh.close()
        self._fh = None
        return self._written

    def finish(self, written: list[Written]) -> None:
        pass
