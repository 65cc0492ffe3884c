"""Plain words for what a message holds besides its text: calls, member events, files, polls.

Shared by the text and HTML formats, so both say the same thing about the same row.
"""

from __future__ import annotations

from .rows import Message

REACTION_EMOJI = {
    "like": "👍", "heart": "❤️", "laugh": "😆", "surprised": "😮", "sad": "😢", "angry": "😠",
    "yes": "✔️", "cwl": "😂", "kiss": "😘", "cool": "😎", "wink": "😉", "smile": "🙂", "clap": "👏",
}

_EVENT_VERBS = {
    "member_added": "added",
    "member_removed": "removed",
    "member_joined": "joined",
    "member_left": "left",
    "topic_changed": "changed the topic to",
    "picture_changed": "changed the group picture",
    "role_changed": "changed the role of",
    "joining_enabled_changed": "set joining by link to",
    "history_disclosed_changed": "set history shown to new members to",
}


def person(names: dict[str, str], person_id: str | None, fallback: str | None = None) -> str:
    """A person's display name, else the name given on the row, else the id."""
    if person_id and names.get(person_id):
        return names[person_id]
    return fallback or person_id or "someone"


def duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``4 min 05 s`` or ``12 s``."""
    if seconds is None:
        return ""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{s} s"


def call_line(message: Message, names: dict[str, str]) -> str | None:
    call = message.single("calls")
    if call is None:
        return None
    parts = [f"Call {call.get('state') or ''}".strip()]
    if call.get("duration_seconds"):
        parts.append(duration(call["duration_seconds"]))
    people = [person(names, p.get("person_id"), p.get("name")) for p in message.child("call_participants")]
    if people:
        parts.append("with " + ", ".join(people))
    return ", ".join(parts)


def event_line(message: Message, names: dict[str, str]) -> str | None:
    event = message.single("thread_events")
    if event is None:
        return None
    who = person(names, event.get("initiator"))
    verb = _EVENT_VERBS.get(event.get("event_type") or "", (event.get("event_type") or "changed").replace("_", " "))
    targets = [person(names, t) for t in (event.get("targets") or []) if isinstance(t, str)]
    kind = event.get("event_type")
    if kind in ("member_joined", "member_left") and targets in ([who], []):
        return f"{who} {verb}"
    pieces = [who, verb]
    if targets:
        pieces.append(", ".join(targets))
    if kind == "role_changed" and event.get("role"):
        pieces.append(f"to {event['role']}")
    elif event.get("value") and kind != "picture_changed":
        pieces.append(str(event["value"]))
    return " ".join(pieces)


def attachment_label(attachment: dict) -> str:
    name = attachment.get("original_name") or attachment.get("kind") or "file"
    size = attachment.get("size_bytes")
    return f"{name} ({human_bytes(size)})" if size else str(name)


def human_bytes(size: int | None) -> str:
    if not size:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def extra_lines(message: Message, names: dict[str, str]) -> list[str]:
    """One line per thing besides the text: call, event, poll, location, contacts, files, translation."""
    lines: list[str] = []
    for line in (call_line(message, names), event_line(message, names)):
        if line:
            lines.append(f"({line})")
    poll = message.single("polls")
    if poll:
        options = " / ".join(str(o) for o in (poll.get("options") or []))
        lines.append(f"(poll: {poll.get('question') or ''}{' — ' + options if options else ''})")
    location = message.single("locations")
    if location:
        where = location.get("address") or f"{location.get('latitude')}, {location.get('longitude')}"
        lines.append(f"(location: {where})")
    for card in message.child("contact_cards"):
        lines.append(f"(contact: {person(names, card.get('person_id'), card.get('name'))})")
    for attachment in message.child("attachments"):
        if attachment.get("original_name") or attachment.get("kind") in ("photo", "file", "video", "audio", "voice_message", "call_recording"):
            lines.append(f"({attachment.get('kind')}: {attachment_label(attachment)})")
    translation = message.single("translations")
    if translation and translation.get("text"):
        lines.append(
            f"(translation {translation.get('source_language') or '?'}→{translation.get('target_language') or '?'}: "
            f"{translation['text']})"
        )
    if message.deleted_at is not None:
        lines.append("(deleted)")
    return lines


def reactions_line(message: Message, names: dict[str, str]) -> str | None:
    """``👍 2 (Ana, Ben)  ❤️ 1 (Cy)``."""
    grouped: dict[str, list[str]] = {}
    for r in message.child("reactions"):
        grouped.setdefault(r.get("reaction") or "?", []).append(person(names, r.get("person_id")))
    if not grouped:
        return None
    return "  ".join(
        f"{REACTION_EMOJI.get(key, key)} {len(who)} ({', '.join(who)})" for key, who in grouped.items()
    )
