"""The structure found in a message's markup: mentions, quotes, links, attachments, calls, events, polls, locations, cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Mention:
    """``<at id="8:live:x">Name</at>``; ``person_id`` is ``"*"`` for everyone."""

    person_id: str
    name: str


@dataclass(slots=True)
class Quote:
    """A quoted message inside a reply; ``text`` is the quoted text without legacy prefixes."""

    author_id: str | None = None
    author_name: str | None = None
    quoted_at: datetime | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    text: str = ""


@dataclass(slots=True)
class Link:
    """An ``<a href>`` or a bare http(s) URL in the text."""

    url: str
    text: str


@dataclass(slots=True)
class Attachment:
    """A shared object: photo, file, video, audio, voice_message, call_recording, moji,
    card, album, scheduled_call or other."""

    kind: str
    uri_type: str | None = None
    original_name: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    doc_id: str | None = None
    uri: str | None = None
    thumbnail_uri: str | None = None
    extra: dict | None = None


@dataclass(slots=True)
class CallParticipant:
    """One ``<part>`` of a call's ``<partlist>``."""

    person_id: str | None = None
    name: str | None = None
    duration_seconds: float | None = None


@dataclass(slots=True)
class Call:
    """An ``Event/Call`` message; ``state`` is the partlist ``type`` as given."""

    call_id: str | None = None
    state: str | None = None
    participants: list[CallParticipant] = field(default_factory=list)


@dataclass(slots=True)
class ThreadEvent:
    """A group change from a ``ThreadActivity/*`` message."""

    event_type: str
    event_at: datetime | None = None
    initiator: str | None = None
    targets: list[str] = field(default_factory=list)
    value: str | None = None
    role: str | None = None


@dataclass(slots=True)
class Poll:
    """A ``Poll`` message."""

    question: str | None = None
    options: list[str] = field(default_factory=list)
    multiple_votes: bool | None = None
    expires_at: datetime | None = None


@dataclass(slots=True)
class Location:
    """A shared location, in decimal degrees."""

    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    url: str | None = None


@dataclass(slots=True)
class ContactCard:
    """One shared contact from ``RichText/Contacts``."""

    person_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class ParsedContent:
    """What a message says (``text``) and the structure found in its markup."""

    text: str = ""
    mentions: list[Mention] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    emoticons: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    call: Call | None = None
    thread_event: ThreadEvent | None = None
    poll: Poll | None = None
    location: Location | None = None
    contacts: list[ContactCard] = field(default_factory=list)
    edited_at: datetime | None = None
    deleted: bool = False


