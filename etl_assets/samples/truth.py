"""What a correct load of a generated export must find, as the generator decided it.

Every figure here is counted by the generator while it writes, from its own choices (which
chat, which sender, which markup), never by reading the export back with the project's
parsers: a test that compares a load with this truth compares two independent accounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple


class MessageDigest(NamedTuple):
    """One distinct message as the generator wrote it: its final copy (highest version).

    ``sent_ms``: ``originalarrivaltime`` in whole UTC milliseconds. ``sender``: the sender's
    canonical id, whichever form ``from`` had. ``text``: what a person reads, for plain-text
    messages only (None for markup, whose rendering the digest does not predict).
    ``edited``/``deleted``: the generator gave it an edit (``edittime`` or an ``<e_m>``
    marker) / a deletion (``deletetime``, or an edit that left nothing). ``children``: rows
    per child table (reactions, mentions, quotes, links, attachments, calls, ...), zeros left out.
    """

    conversation_id: str
    message_id: str
    sent_ms: int
    sender: str
    message_type: str
    text: str | None
    edited: bool
    deleted: bool
    children: dict[str, int]


@dataclass
class ExportTruth:
    """What a correct ETL must find in the generated export.

    ``message_records`` counts usable message objects, duplicates included; the injected
    unusable ones are only in ``rejected`` (objects in the file = message_records + rejected).
    ``messages``, ``by_type`` and ``rows`` are over the final (highest version) record of each
    distinct (conversationid, id). ``rows["media_files"]`` counts ``media/<docid>.1.<ext>`` files.
    ``tables`` holds the row count of every warehouse table after loading this export alone
    into an empty warehouse (people, memberships, links, translations, message_sources,
    exports included). ``media_members`` counts every member under ``media/`` (files,
    manifests, previews). ``digest_path`` is the per-message digest (JSON lines), when asked for.
    """

    path: Path
    user_id: str
    export_date: str
    conversations: int
    conversation_kinds: dict[str, int]
    message_records: int
    messages: int
    by_type: dict[str, int]
    rows: dict[str, int]
    heavy_conversation_id: str | None
    heavy_messages: int
    rejected: int
    tables: dict[str, int] = field(default_factory=dict)
    media_members: int = 0
    digest_path: Path | None = None

    def to_json(self) -> dict:
        """Plain JSON-able dict (paths as strings), for the CLI and for comparisons."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["digest_path"] = str(self.digest_path) if self.digest_path else None
        return d

    def digest(self) -> Iterator[MessageDigest]:
        """The per-message digest, read back line by line (flat memory for big exports)."""
        if self.digest_path is None:
            raise ValueError("generated without a digest: pass digest=<path> to generate_export")
        with open(self.digest_path, encoding="utf-8") as fh:
            for line in fh:
                yield MessageDigest(*json.loads(line))
