"""What every format writer does, and what the export hands each of them.

The export reads each conversation once, oldest message first, and hands the writer one
message at a time, with the media files already placed, so a writer never holds more
than one message and never touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from ..warehouse import Conversation, Span
from ..zones import Zone
from .files import ExportedFile, UniqueNames
from .rows import Message


@dataclass(frozen=True)
class Attached:
    """An attachment row with the file the export placed for it (and a video's preview picture)."""

    row: dict
    file: ExportedFile | None
    preview: ExportedFile | None


@dataclass
class Context:
    """Shared by all conversations of one export."""

    folder: Path
    zone: Zone
    names: dict[str, str]
    """Person id -> display name."""
    files: UniqueNames
    """Names already used at the top of the folder."""
    bom: bool = False


@dataclass
class Written:
    """One conversation as written: for the summary and the HTML index."""

    conversation: Conversation
    span: Span
    files: list[str] = field(default_factory=list)


class OneFilePerConversation:
    """A writer of one open file per conversation (text, CSV): closing the file ends the conversation."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self._fh: IO[str] | None = None
        self._written: Written | None = None

    def close_conversation(self) -> Written:
        assert self._fh is not None and self._written is not None
        self._fh.close()
        self._fh = None
        return self._written

    def finish(self, written: list[Written]) -> None:
        """Nothing beyond the conversations' files."""


class Writer(Protocol):
    def open_conversation(self, conversation: Conversation, span: Span) -> None: ...

    def write(self, message: Message, attached: list[Attached]) -> None: ...

    def close_conversation(self) -> Written: ...

    def finish(self, written: list[Written]) -> None: ...


def attachment_names(attached: list[Attached]) -> list[str]:
    """The names a reader finds the files under: in ``media/`` when placed, else the original name."""
    names = []
    for a in attached:
        if a.file is not None:
            names.append(a.file.name)
        elif a.row.get("original_name"):
            names.append(str(a.row["original_name"]))
    return names
