"""The records an export streams: its header, each conversation and each message, as the file has them.
"""

from __future__ import annotations

from dataclasses import dataclass

MESSAGES_MEMBER = "messages.json"
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




Record = ExportHeader | ConversationRecord | MessageRecord

