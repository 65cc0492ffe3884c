"""Rows of the warehouse tables from raw export records, written to table sinks.

Lenient by design: every field is optional, every shape only "usually". A record
that cannot be used at all is written to ``rejected_records`` verbatim with its
location and reason; everything else becomes rows.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from ..extract import ConversationRecord, MessageRecord
from ..values import (
    conversation_kind,
    escaped_json,
    json_value,
    normalize_person_id,
    parse_bool,
    parse_epoch_ms,
    parse_int,
    parse_iso_time,
    storable_text,
    to_json,
)
from .content import ParsedContent, parse_content
from .markup.tree import _EDIT_PREFIX
from .sink import TableSink


class RejectedRecord(Exception):
    """Raised for one unusable record; caught and written to ``rejected_records``."""


class RowWriter:
    """Turns records into rows of the table sinks.

    People and memberships are gathered in memory (bounded by the number of people)
    and written by :meth:`flush_people`, which a caller runs at every checkpoint.
    """

    def __init__(self, sinks: dict[str, TableSink], export_sha256: str) -> None:
        self.sinks = sinks
        self.sha = export_sha256
        self.owner_id: str | None = None
        self.has_media = False
        self.people: dict[str, str | None] = {}
        self.memberships: dict[tuple[str, str], tuple[str | None, str]] = {}

    # -- people and memberships -------------------------------------------------

    def person(self, person_id: str | None, name: object = None) -> None:
        if person_id is None:
            return
        clean = name.strip() if isinstance(name, str) and storable_text(name) else None
        if clean or person_id not in self.people:
            self.people[person_id] = clean or self.people.get(person_id)

    def member(self, conversation_id: str, person_id: str | None, source: str, role: str | None = None) -> None:
        if person_id is None:
            return
        key = (conversation_id, person_id)
        old = self.memberships.get(key)
        self.memberships[key] = (role or (old[0] if old else None), old[1] if old else source)
        self.person(person_id)

    def flush_people(self) -> None:
        """Write the people and memberships seen so far and forget them."""
        if self.owner_id:
            self.person(self.owner_id)
        people = self.sinks["people"]
        for person_id, name in self.people.items():
            people.add((person_id, name, person_id == self.owner_id))
        memberships = self.sinks["memberships"]
        for (cid, pid), (role, source) in self.memberships.items():
            memberships.add((cid, pid, role, source))
        self.people = {}
        self.memberships = {}

    def reject(self, location: str, reason: str, raw: object) -> None:
        self.sinks["rejected_records"].add((self.sha, location, reason, escaped_json(raw)))

    # -- conversations ----------------------------------------------------------

    def conversation(self, record: ConversationRecord) -> None:
        data = record.data
        location = f"conversations[{record.index}]"
        cid = data.get("id")
        if "__invalid__" in data or not isinstance(cid, str) or not cid.strip() or not storable_text(cid):
            self.reject(location, "conversation without a usable id", data.get("__invalid__", data))
            return
        props = data.get("properties") if isinstance(data.get("properties"), dict) else None
        thread = data.get("threadProperties") if isinstance(data.get("threadProperties"), dict) else None
        kind = conversation_kind(cid)
        display_name = _text(data.get("displayName"))
        topic = _text(thread.get("topic")) if thread else None
        self.sinks["conversations"].add(
            (
                cid,
                kind,
                display_name,
                topic,
                parse_int(data.get("version")),
                parse_bool(props.get("conversationblocked")) if props else None,
                _text(props.get("conversationstatus")) if props else None,
                parse_iso_time(props.get("lastimreceivedtime")) if props else None,
                _text(props.get("consumptionhorizon")) if props else None,
                parse_int(thread.get("membercount")) if thread else None,
                _text(thread.get("picture")) if thread else None,
                _text(thread.get("description")) if thread else None,
                parse_bool(thread.get("joiningEnabled")) if thread else None,
                _json_column(props),
                _json_column(thread),
            )
        )
        if thread:
            for person_id, role in _members(thread.get("members")):
                self.member(cid, person_id, "members", role)
        if kind == "one_to_one":
            other = normalize_person_id(cid)
            self.person(other, display_name)
            self.member(cid, other, "one_to_one")
            if self.owner_id:
                self.member(cid, self.owner_id, "one_to_one")

    # -- messages -----------------------------------------------------------------

    def message(self, record: MessageRecord, by_type: Counter) -> None:
        data = record.data
        if data.__class__ is dict and data.keys() <= _PLAIN_KEYS and self._plain_message(data, by_type):
            return
        try:
            self._message(record, by_type)
        except RejectedRecord as e:
            self.reject(record.location, str(e), record.data)

    def _plain_message(self, data: dict, by_type: Counter) -> bool:
        """The row of a plain text message (most of them), or ``False`` to take the general path.

        Gives exactly the row :meth:`_message` gives (``test_rows.py`` checks it on arbitrary
        messages): text without markup, entities or links, no properties, no children.
        """
        get = data.get
        raw_id, cid, message_type, content = get("id"), get("conversationid"), get("messagetype"), get("content")
        if (
            raw_id.__class__ is not str or cid.__class__ is not str or content.__class__ is not str
            or (message_type != "RichText" and message_type != "Text")
            or get("properties") is not None or get("amsreferences") is not None
            or "<" in content or "&" in content or "://" in content or _EDIT_PREFIX in content
        ):
            return False
        mid = raw_id.strip()
        sent_at = parse_iso_time(get("originalarrivaltime"))
        if not mid or not cid.strip() or sent_at is None or not storable_text(f"{mid}{cid}{content}"):
            return False
        version = parse_int(get("version"))
        if version is None:
            version = parse_int(mid) or 0
        sender_id = normalize_person_id(get("from"))
        sender_name = _text(get("displayName"))
        self.person(sender_id, sender_name)
        self.sinks["messages"].add(
            (cid, mid, sent_at, sender_id, sender_name, message_type, content, content.strip(), None, None, version,
             False, None, None)
        )
        by_type[message_type] += 1
        return True

    def _message(self, record: MessageRecord, by_type: Counter) -> None:
        data = record.data
        if not isinstance(data, dict):
            raise RejectedRecord(f"a message must be a JSON object, not {_json_type(data)}")
        raw_id = data.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise RejectedRecord("message without an id" if raw_id is None else f"message id is {_json_type(raw_id)}")
        mid = str(raw_id).strip()
        cid = data.get("conversationid")
        if not mid or not isinstance(cid, str) or not cid.strip():
            raise RejectedRecord("message without an id or conversationid")
        sent_at = parse_iso_time(data.get("originalarrivaltime"))
        if sent_at is None:
            raise RejectedRecord(f"unparseable originalarrivaltime {data.get('originalarrivaltime')!r:.60}")
        message_type = data.get("messagetype")
        if message_type is not None and not isinstance(message_type, str):
            raise RejectedRecord(f"messagetype is {_json_type(message_type)}")
        message_type = message_type or ""
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            raise RejectedRecord(f"content is {_json_type(content)}")
        props_raw = data.get("properties")
        props = props_raw if isinstance(props_raw, dict) else {}
        props_json = _json_column(props_raw)
        if not storable_text(f"{mid}{cid}{message_type}{content or ''}{props_json or ''}"):
            raise RejectedRecord("text with a NUL character or an unpaired surrogate")
        version = parse_int(data.get("version"))
        if version is None:
            version = parse_int(mid) or 0
        sender_id = normalize_person_id(data.get("from"))
        sender_name = _text(data.get("displayName"))
        self.person(sender_id, sender_name)

        parsed = parse_content(message_type, content)

        edited_at = parse_epoch_ms(props.get("edittime")) or parsed.edited_at
        deleted_at = parse_epoch_ms(props.get("deletetime"))
        if deleted_at is None and parsed.deleted:
            deleted_at = parsed.edited_at or sent_at
        amsrefs = data.get("amsreferences")

        self.sinks["messages"].add(
            (
                cid,
                mid,
                sent_at,
                sender_id,
                sender_name,
                message_type,
                content,
                parsed.text,
                edited_at,
                deleted_at,
                version,
                parse_bool(props.get("isserversidegenerated")) is True,
                props_json,
                _json_column(amsrefs if isinstance(amsrefs, list) else None),
            )
        )
        by_type[message_type] += 1
        self._children(cid, mid, version, sent_at, props, parsed)
        if message_type in ("Translation", "TranslationSettings"):
            self._translation((cid, mid), version, message_type, content)

    def _children(self, cid: str, mid: str, version: int, sent_at, props: dict, parsed: ParsedContent) -> None:
        sinks = self.sinks
        key = (cid, mid)
        for i, m in enumerate(parsed.mentions):
            person_id = m.person_id if m.person_id == "*" else normalize_person_id(m.person_id)
            sinks["mentions"].add((*key, i, person_id or m.person_id, m.name, version))
        for i, q in enumerate(parsed.quotes):
            author = normalize_person_id(q.author_id)
            self.person(author, q.author_name)
            sinks["quotes"].add(
                (*key, i, author, q.author_name, q.quoted_at, q.conversation_id, q.message_id, q.text, version)
            )
        for i, link in enumerate(parsed.links):
            sinks["links"].add((*key, i, link.url, link.text, version))
        album_id = _text(props.get("albumId"))
        for i, a in enumerate(parsed.attachments):
            # "pending": the load finds the docid's file (or marks it "missing") and publishes the copy's outcome
            media_status = "pending" if self.has_media and a.doc_id else None
            sinks["attachments"].add(
                (
                    *key, i, a.kind, a.uri_type, a.original_name, a.size_bytes, a.width, a.height,
                    a.duration_seconds, a.doc_id, a.uri, a.thumbnail_uri, album_id, _json_column(a.extra),
                    None, media_status, None, version,
                )
            )
        if parsed.call is not None or "callLog" in props or "call-log" in props:
            self._call(key, version, props, parsed)
        if parsed.thread_event is not None:
            e = parsed.thread_event
            targets = [normalize_person_id(t) or t for t in e.targets]
            initiator = normalize_person_id(e.initiator)
            self.person(initiator)
            for target in targets:
                self.person(target)
                if e.event_type in ("member_added", "member_joined"):
                    self.member(cid, target, "event")
            sinks["thread_events"].add(
                (*key, e.event_type, e.event_at, initiator, to_json(targets), e.value, e.role, version)
            )
        if parsed.poll is not None:
            p = parsed.poll
            sinks["polls"].add((*key, p.question, to_json(p.options), p.multiple_votes, p.expires_at, version))
        if parsed.location is not None:
            loc = parsed.location
            sinks["locations"].add((*key, loc.latitude, loc.longitude, loc.address, loc.url, version))
        for i, c in enumerate(parsed.contacts):
            sinks["contact_cards"].add((*key, i, normalize_person_id(c.person_id), c.name, version))
        self._reactions(key, version, props.get("emotions"))
        self._url_previews(key, version, props.get("urlpreviews"))

    def _translation(self, key: tuple[str, str], version: int, kind: str, content: str | None) -> None:
        """``Translation`` / ``TranslationSettings`` content is JSON: keep its useful fields and all of it."""
        document = json_value(content)
        data = document.get("data") if isinstance(document, dict) else None
        data = data if isinstance(data, dict) else {}
        self.sinks["translations"].add(
            (
                *key,
                kind,
                _text(data.get("translation")) or _text(data.get("text")),
                _text(data.get("sourceLanguage")),
                _text(data.get("targetLanguage")),
                _text(data.get("newTranslationState")) or _text(data.get("state")),
                _json_column(document) if document is not None else None,
                version,
            )
        )

    def _call(self, key: tuple[str, str], version: int, props: dict, parsed: ParsedContent) -> None:
        log_raw = props.get("callLog", props.get("call-log"))
        log = json_value(log_raw)
        log = log if isinstance(log, dict) else {}
        call = parsed.call
        durations = [p.duration_seconds for p in call.participants if p.duration_seconds is not None] if call else []
        self.sinks["calls"].add(
            (
                *key,
                (call.call_id if call else None) or _text(log.get("callId")),
                (call.state if call else None) or _text(log.get("callState")),
                max(durations) if durations else None,
                _text(log.get("callDirection")),
                _text(log.get("callType")),
                _json_column(log or None),
                version,
            )
        )
        if call:
            for i, p in enumerate(call.participants):
                person_id = normalize_person_id(p.person_id)
                self.person(person_id, p.name)
                self.sinks["call_participants"].add((*key, i, person_id, p.name, p.duration_seconds, version))

    def _reactions(self, key: tuple[str, str], version: int, emotions: object) -> None:
        emotions = json_value(emotions)
        if not isinstance(emotions, list):
            return
        seen: set[tuple[str, str]] = set()
        for emotion in emotions:
            if not isinstance(emotion, dict) or not isinstance(emotion.get("key"), str):
                continue
            for user in emotion.get("users") or ():
                if not isinstance(user, dict):
                    continue
                person_id = normalize_person_id(user.get("mri"))
                if person_id is None or (emotion["key"], person_id) in seen:
                    continue
                seen.add((emotion["key"], person_id))
                self.person(person_id)
                self.sinks["reactions"].add(
                    (*key, emotion["key"], person_id, parse_epoch_ms(user.get("time")), version)
                )

    def _url_previews(self, key: tuple[str, str], version: int, previews: object) -> None:
        previews = json_value(previews)
        if not isinstance(previews, list):
            return
        for i, preview in enumerate(previews):
            value = preview.get("value") if isinstance(preview, dict) else None
            if isinstance(value, str):
                value = json_value(value)
            if not isinstance(value, dict):
                continue
            self.sinks["url_previews"].add(
                (
                    *key, i,
                    _text(value.get("url")) or _text(value.get("target_url")),
                    _text(value.get("title")),
                    _text(value.get("description")),
                    _text(value.get("site")),
                    _text(value.get("thumbnail")) or _text(value.get("thumbnail_url")),
                    version,
                )
            )


def _text(value: object) -> str | None:
    """A non-empty storable string, else ``None``."""
    if isinstance(value, str) and value and storable_text(value):
        return value
    return None


def _json_column(value: object) -> str | None:
    """JSON text for a ``jsonb`` column; non-storable text is escaped so nothing is lost."""
    if value is None:
        return None
    text = to_json(value)
    if text is None:
        return None
    if "\\u0000" in text:
        text = text.replace("\\u0000", "\\\\u0000")
    if not storable_text(text):
        text = _LONE_SURROGATE.sub(lambda m: "\\\\u%04x" % ord(m.group()), text)
    return text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEYS = frozenset(
    ("id", "displayName", "originalarrivaltime", "messagetype", "version", "content", "conversationid", "from",
     "properties", "amsreferences")
)
"""The fields of a plain text message; one with any other field takes the general path."""


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _members(members: object) -> list[tuple[str | None, str | None]]:
    """Member ids and roles from ``threadProperties.members`` in any of its shapes."""
    if isinstance(members, str):
        try:
            members = json.loads(members)
        except (ValueError, RecursionError):
            members = [m for m in members.replace(";", ",").split(",") if m.strip()]
    if not isinstance(members, list):
        return []
    out: list[tuple[str | None, str | None]] = []
    for m in members:
        if isinstance(m, str):
            out.append((normalize_person_id(m), None))
        elif isinstance(m, dict):
            mri = m.get("MemberMri") or m.get("id") or m.get("mri")
            role = m.get("Role") or m.get("role")
            out.append((normalize_person_id(mri), role if isinstance(role, str) else None))
    return out
