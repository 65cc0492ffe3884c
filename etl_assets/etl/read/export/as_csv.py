"""CSV: one file per conversation, RFC 4180 through Python's csv module (CRLF, quoted fields).

Times are ISO 8601 with the offset of the requested zone; ``attachments`` lists the files
of a message separated by ``;``. ``--bom`` starts each file with a UTF-8 byte order mark,
which spreadsheet programs need to read UTF-8.
"""

from __future__ import annotations

import csv
from typing import Any

from ..warehouse import Conversation, Span
from .files import safe_name
from .formats import (
    Attached,
    Context,
    OneFilePerConversation,
    Written,
    attachment_names,
)
from .rows import Message

HEADER = (
    "conversation_id", "conversation", "message_id", "sent_at", "sender_id", "sender_name",
    "message_type", "text", "edited_at", "deleted_at", "attachments",
)


class CsvWriter(OneFilePerConversation):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._csv: Any = None

    def open_conversation(self, conversation: Conversation, span: Span) -> None:
        name = self.context.files.claim(safe_name(conversation.name, conversation.conversation_id) + ".csv")
        encoding = "utf-8-sig" if self.context.bom else "utf-8"
        self._fh = open(self.context.folder / name, "w", encoding=encoding, newline="")
        self._csv = csv.writer(self._fh, dialect="excel", lineterminator="\r\n")
        self._csv.writerow(HEADER)
        self._written = Written(conversation, span, [name])

    def write(self, message: Message, attached: list[Attached]) -> None:
        assert self._csv is not None and self._written is not None
        self._csv.writerow((
            message.conversation_id,
            self._written.conversation.name,
            message.message_id,
            message.sent_at.isoformat(),
            message.sender_id or "",
            message.sender_name,
            message.message_type,
            message.text,
            message.edited_at.isoformat() if message.edited_at else "",
            message.deleted_at.isoformat() if message.deleted_at else "",
            ";".join(attachment_names(attached)),
        ))

