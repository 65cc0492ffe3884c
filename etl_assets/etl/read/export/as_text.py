"""Plain text: one file per conversation, ``[YYYY-MM-DD HH:MM] Sender: text``.

Lines after a message's first are indented by four spaces, so every line that starts
without indentation starts a message: easy to read, grep and count.
"""

from __future__ import annotations

from ..warehouse import Conversation, Span
from .describe import extra_lines, reactions_line
from .files import safe_name
from .formats import Attached, OneFilePerConversation, Written
from .rows import Message

INDENT = "    "


def text_lines(text: str) -> list[str]:
    """A message text as lines (any newline convention); none for an empty text."""
    if not text:
        return []
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class TextWriter(OneFilePerConversation):
    def open_conversation(self, conversation: Conversation, span: Span) -> None:
        name = self.context.files.claim(safe_name(conversation.name, conversation.conversation_id) + ".txt")
        self._fh = open(self.context.folder / name, "w", encoding="utf-8", newline="\n")
        self._written = Written(conversation, span, [name])

    def write(self, message: Message, attached: list[Attached]) -> None:
        assert self._fh is not None
        lines = text_lines(message.text) + extra_lines(message, self.context.names)
        reactions = reactions_line(message, self.context.names)
        if reactions:
            lines.append(reactions)
        if message.edited_at is not None:
            lines.append(f"(edited {message.edited_at:%Y-%m-%d %H:%M})")
        first = lines[0] if lines else f"({message.message_type})"
        out = [f"[{message.sent_at:%Y-%m-%d %H:%M}] {_one_line(message.sender_name)}: {first}"]
        out.extend(INDENT + line for line in lines[1:])
        self._fh.write("\n".join(out) + "\n")



def _one_line(text: str) -> str:
    return " ".join(text.split()) or "?"
