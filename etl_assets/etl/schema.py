"""The warehouse tables: one definition used for DDL, Parquet schemas, Dagster metadata and docs.

Every table the Transformer writes and the Loader publishes is declared here once. A
column carries its PostgreSQL type, its Arrow type (for the Parquet datasets between
transform and load) and a sentence of documentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

SCHEMA_VERSION = 1
"""Bumped whenever a table or column changes; part of the transformed dataset's cache key."""

_TS = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "double precision": pa.float64(),
    "timestamptz": _TS,
    "jsonb": pa.string(),
}


@dataclass(frozen=True)
class Column:
    """One column: name, PostgreSQL type, whether it may be NULL, and what it holds."""

    name: str
    pg_type: str
    doc: str
    nullable: bool = True
    default: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.pg_type]


@dataclass(frozen=True)
class Table:
    """A warehouse table and how a load merges into it.

    ``merge`` is one of:
    - ``"conversation"``, ``"person"``, ``"membership"``: upserts that keep the best value;
    - ``"message"``: the message itself, newest ``version`` wins;
    - ``"message_child"``: rows owned by a message, replaced when the message changes
      (their staging rows carry the message ``version`` to pick the winning copy);
    - ``"export"``: rows tied to one export, inserted once.
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    merge: str
    indexes: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def staging_columns(self) -> tuple[Column, ...]:
        """Columns of the Parquet dataset and staging table (children also carry ``version``)."""
        if self.merge == "message_child":
            return self.columns + (_VERSION_FOR_STAGING,)
        return self.columns

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.staging_columns]
        )


_VERSION_FOR_STAGING = Column("version", "bigint", "Version of the message copy the row came from.")

_CID = Column("conversation_id", "text", "Conversation the message belongs to.", nullable=False)
_MID = Column("message_id", "text", "Message id within the conversation.", nullable=False)
_POS = Column("position", "integer", "Order of the item within the message, from 0.", nullable=False)


def _child(
    name: str,
    doc: str,
    *columns: Column,
    positional: bool = True,
    extra_key: tuple[str, ...] = (),
    indexes: tuple[str, ...] = (),
) -> Table:
    """A table of rows owned by one message, keyed by the message plus position or ``extra_key``."""
    keys = (_CID, _MID, _POS) if positional else (_CID, _MID)
    return Table(
        name=name,
        doc=doc,
        columns=keys + columns,
        primary_key=tuple(c.name for c in keys) + extra_key,
        merge="message_child",
        indexes=indexes,
    )


CONVERSATIONS = Table(
    "conversations",
    "One row per conversation (1:1 chat, group, bot or special list), merged across exports.",
    (
        Column("conversation_id", "text", "Skype id, e.g. `8:live:x`, `19:...@thread.skype`.", nullable=False),
        Column("kind", "text", "`one_to_one`, `group`, `bot` or `special`, from the id prefix.", nullable=False),
        Column("display_name", "text", "Name shown in Skype; for a 1:1 chat without one, the other person's name."),
        Column("topic", "text", "Group topic from `threadProperties.topic`."),
        Column("version", "bigint", "Conversation `version` of the newest export seen."),
        Column("blocked", "boolean", "`properties.conversationblocked`."),
        Column("status", "text", "`properties.conversationstatus` (Accepted, AcceptPendingRecipient, ...)."),
        Column("last_message_at", "timestamptz", "`properties.lastimreceivedtime`."),
        Column("consumption_horizon", "text", "`properties.consumptionhorizon`, verbatim."),
        Column("member_count", "integer", "`threadProperties.membercount`."),
        Column("picture_url", "text", "`threadProperties.picture`."),
        Column("description", "text", "`threadProperties.description`."),
        Column("joining_enabled", "boolean", "`threadProperties.joiningEnabled`."),
        Column("properties", "jsonb", "`properties`, verbatim."),
        Column("thread_properties", "jsonb", "`threadProperties`, verbatim."),
    ),
    ("conversation_id",),
    "conversation",
)

PEOPLE = Table(
    "people",
    "Everyone seen as a sender, member, mention, reaction author or call participant.",
    (
        Column("person_id", "text", "Normalized Skype id (`8:live:x`, `28:bot`, `4:+1555...`).", nullable=False),
        Column("display_name", "text", "Best known display name."),
        Column("is_owner", "boolean", "True for the account that made an export.", nullable=False),
    ),
    ("person_id",),
    "person",
)

MEMBERSHIPS = Table(
    "memberships",
    "Who belongs to which conversation, from `threadProperties.members` and member events.",
    (
        Column("conversation_id", "text", "Conversation.", nullable=False),
        Column("person_id", "text", "Member.", nullable=False),
        Column("role", "text", "Role when known (`admin`, `user`)."),
        Column("source", "text", "`members` (thread properties), `event` or `one_to_one`.", nullable=False),
    ),
    ("conversation_id", "person_id"),
    "membership",
)

MESSAGES = Table(
    "messages",
    "One row per message (final version), keyed by conversation and message id.",
    (
        _CID,
        _MID,
        Column("sent_at", "timestamptz", "`originalarrivaltime`, any fraction length.", nullable=False),
        Column("sender_id", "text", "Normalized sender id (`from`, URL form and missing prefix resolved)."),
        Column("sender_name", "text", "`displayName` of the sender; the owner's name when blank."),
        Column("message_type", "text", "`messagetype`, verbatim (`RichText`, `Event/Call`, ...).", nullable=False),
        Column("content_raw", "text", "`content`, verbatim."),
        Column("content_text", "text", "What a person reads: markup removed, entities decoded, quotes split off."),
        Column("edited_at", "timestamptz", "`properties.edittime` or the `<e_m>` edit marker."),
        Column("deleted_at", "timestamptz", "`properties.deletetime`."),
        Column("version", "bigint", "`version`; the highest one wins.", nullable=False),
        Column("server_generated", "boolean", "`properties.isserversidegenerated`.", nullable=False),
        Column("properties", "jsonb", "`properties`, verbatim."),
        Column("ams_references", "jsonb", "`amsreferences`: docids of the media it links to."),
    ),
    ("conversation_id", "message_id"),
    "message",
    indexes=("sent_at", "sender_id", "message_type"),
)

REACTIONS = _child(
    "reactions",
    "Reactions (`properties.emotions`): who reacted with what, when.",
    Column("reaction", "text", "Emotion key (`like`, `heart`, ...).", nullable=False),
    Column("person_id", "text", "Who reacted.", nullable=False),
    Column("reacted_at", "timestamptz", "When."),
    positional=False,
    extra_key=("reaction", "person_id"),
)

MENTIONS = _child(
    "mentions",
    "`<at>` mentions in a message.",
    Column("person_id", "text", "Mentioned id; `*` for everyone.", nullable=False),
    Column("name", "text", "Name as written."),
)

QUOTES = _child(
    "quotes",
    "Replies: the quoted message a reply refers to.",
    Column("author_id", "text", "Author of the quoted message."),
    Column("author_name", "text", "Author name as shown."),
    Column("quoted_at", "timestamptz", "When the quoted message was sent."),
    Column("quoted_conversation_id", "text", "Conversation of the quoted message."),
    Column("quoted_message_id", "text", "Id of the quoted message, when present."),
    Column("text", "text", "The quoted text, readable."),
)

LINKS = _child(
    "links",
    "Links in a message's text.",
    Column("url", "text", "Target URL.", nullable=False),
    Column("text", "text", "Link text."),
)

URL_PREVIEWS = _child(
    "url_previews",
    "Link previews (`properties.urlpreviews`).",
    Column("url", "text", "Previewed URL."),
    Column("title", "text", "Title."),
    Column("description", "text", "Description."),
    Column("site", "text", "Site name."),
    Column("thumbnail_url", "text", "Thumbnail URL."),
)

ATTACHMENTS = _child(
    "attachments",
    "Files, photos, videos, voice messages, recordings, mojis, cards and albums.",
    Column("kind", "text", "photo, file, video, audio, voice_message, call_recording, moji, card, album, ...", nullable=False),
    Column("uri_type", "text", "URIObject `type`, verbatim."),
    Column("original_name", "text", "Original file name."),
    Column("size_bytes", "bigint", "File size."),
    Column("width", "integer", "Width in pixels."),
    Column("height", "integer", "Height in pixels."),
    Column("duration_seconds", "double precision", "Duration of audio, video or recording."),
    Column("doc_id", "text", "Media docid (links to `media/<docid>.*`)."),
    Column("uri", "text", "Object URI."),
    Column("thumbnail_uri", "text", "Thumbnail URI."),
    Column("album_id", "text", "`properties.albumId`."),
    Column("extra", "jsonb", "Type-specific details (card JSON, scheduled call, ...)."),
    Column("media_path", "text", "Path of the media file in the artifact store."),
    Column("media_status", "text", "`stored` or `missing` when the archive has a `media/` folder."),
    indexes=("doc_id",),
)

CALLS = _child(
    "calls",
    "Call events (`Event/Call`) with the call log when present.",
    Column("call_id", "text", "`callId`."),
    Column("state", "text", "`started`, `ended`, `missed`, ..."),
    Column("duration_seconds", "double precision", "Longest participant duration."),
    Column("direction", "text", "`callDirection` from the call log."),
    Column("call_type", "text", "`callType` from the call log."),
    Column("call_log", "jsonb", "`callLog` / `call-log`, verbatim."),
    positional=False,
)

CALL_PARTICIPANTS = _child(
    "call_participants",
    "Participants of a call event.",
    Column("person_id", "text", "Participant."),
    Column("name", "text", "Name as shown."),
    Column("duration_seconds", "double precision", "Time in the call."),
)

THREAD_EVENTS = _child(
    "thread_events",
    "Membership and settings changes in group chats (`ThreadActivity/*`).",
    Column("event_type", "text", "member_added, member_removed, member_left, topic_changed, ...", nullable=False),
    Column("event_at", "timestamptz", "`eventtime`."),
    Column("initiator", "text", "Who made the change."),
    Column("targets", "jsonb", "Who it applies to (list of ids)."),
    Column("value", "text", "New value (topic, picture URL, true/false)."),
    Column("role", "text", "New role for role updates."),
    positional=False,
)

POLLS = _child(
    "polls",
    "Polls.",
    Column("question", "text", "Question."),
    Column("options", "jsonb", "Options (list of text)."),
    Column("multiple_votes", "boolean", "Whether several votes are allowed."),
    Column("expires_at", "timestamptz", "Expiry."),
    positional=False,
)

LOCATIONS = _child(
    "locations",
    "Shared locations.",
    Column("latitude", "double precision", "Decimal degrees."),
    Column("longitude", "double precision", "Decimal degrees."),
    Column("address", "text", "Address."),
    Column("url", "text", "Map link."),
    positional=False,
)

CONTACT_CARDS = _child(
    "contact_cards",
    "Contacts shared in a message.",
    Column("person_id", "text", "Shared contact id."),
    Column("name", "text", "Shared contact name."),
)

MESSAGE_SOURCES = Table(
    "message_sources",
    "Provenance: which export(s) each message came from.",
    (_CID, _MID, Column("export_sha256", "text", "Export archive.", nullable=False)),
    ("conversation_id", "message_id", "export_sha256"),
    "export",
)

REJECTED_RECORDS = Table(
    "rejected_records",
    "Records that could not be loaded, kept verbatim with where and why.",
    (
        Column("export_sha256", "text", "Export archive.", nullable=False),
        Column("location", "text", "Where in messages.json, e.g. `conversations[3].MessageList[17]`.", nullable=False),
        Column("reason", "text", "Why it was rejected.", nullable=False),
        Column("raw", "text", "The record as JSON (escaped where PostgreSQL cannot store it verbatim)."),
    ),
    ("export_sha256", "location"),
    "export",
)

TRANSFORMED_TABLES: tuple[Table, ...] = (
    CONVERSATIONS,
    PEOPLE,
    MEMBERSHIPS,
    MESSAGES,
    MESSAGE_SOURCES,
    REACTIONS,
    MENTIONS,
    QUOTES,
    LINKS,
    URL_PREVIEWS,
    ATTACHMENTS,
    CALLS,
    CALL_PARTICIPANTS,
    THREAD_EVENTS,
    POLLS,
    LOCATIONS,
    CONTACT_CARDS,
    REJECTED_RECORDS,
)
"""Tables written by the Transformer, in publish order (parents before children)."""

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TRANSFORMED_TABLES}

EXPORTS = Table(
    "exports",
    "One row per loaded export archive.",
    (
        Column("sha256", "text", "SHA-256 of the archive file; identifies an export.", nullable=False),
        Column("file_name", "text", "File name as given.", nullable=False),
        Column("user_id", "text", "`userId` of the export owner, normalized."),
        Column("export_date", "timestamptz", "`exportDate` (UTC)."),
        Column("bytes", "bigint", "Archive size in bytes."),
        Column("conversations", "integer", "Conversations in the export."),
        Column("messages", "bigint", "Distinct messages in the export."),
        Column("rejected", "integer", "Records rejected."),
        Column("loaded_at", "timestamptz", "When the export was published.", nullable=False, default="now()"),
    ),
    ("sha256",),
    "bookkeeping",
)

PHASE_STATS = Table(
    "etl_phase_stats",
    "Statistics of each phase of each run, as shown in the Dagster UI.",
    (
        Column("export_sha256", "text", "Export archive.", nullable=False),
        Column("run_id", "text", "Dagster run id, or the CLI's run id.", nullable=False),
        Column("phase", "text", "`extract`, `transform` or `load`.", nullable=False),
        Column("conversations_total", "integer", "Conversations in the export."),
        Column("conversations_processed", "integer", "Conversations handled by the phase."),
        Column("messages_total", "bigint", "Message records in the export."),
        Column("messages_processed", "bigint", "Message records handled by the phase."),
        Column("duration_seconds", "double precision", "Wall time of the phase."),
        Column("messages_per_second", "double precision", "Throughput of the phase."),
        Column("peak_rss_mb", "double precision", "Peak resident memory during the phase."),
        Column("cpu_seconds", "double precision", "CPU time of the phase."),
        Column("bytes_read", "bigint", "Bytes read from the archive."),
        Column("rejected", "integer", "Records rejected in the phase."),
        Column("recorded_at", "timestamptz", "When the row was written.", nullable=False, default="now()"),
    ),
    ("export_sha256", "run_id", "phase"),
    "bookkeeping",
)

BOOKKEEPING_TABLES: tuple[Table, ...] = (EXPORTS, PHASE_STATS)
"""Tables the Loader writes directly, not from Parquet."""

ALL_TABLES: tuple[Table, ...] = BOOKKEEPING_TABLES + TRANSFORMED_TABLES


def create_table_sql(table: Table, schema_sql: str, *, staging_name: str | None = None) -> str:
    """``CREATE TABLE`` for a table; ``schema_sql`` is an already quoted identifier.

    With ``staging_name``, an unlogged staging table of that name with the staging
    columns and no constraints (the merge applies them).
    """
    staging = staging_name is not None
    columns = table.staging_columns if staging else table.columns
    lines = []
    for c in columns:
        null = "" if c.nullable or staging else " NOT NULL"
        default = f" DEFAULT {c.default}" if c.default and not staging else ""
        lines.append(f'    "{c.name}" {c.pg_type}{null}{default}')
    if not staging:
        lines.append(f"    PRIMARY KEY ({', '.join(table.primary_key)})")
    kind = "UNLOGGED TABLE" if staging else "TABLE IF NOT EXISTS"
    name = staging_name or table.name
    return f'CREATE {kind} {schema_sql}."{name}" (\n' + ",\n".join(lines) + "\n)"
