"""``docs/data-model.md``, rendered from the same table definitions as the DDL.

Run ``python -m etl_assets.etl.warehouse.data_model_doc docs/data-model.md`` after changing
:mod:`schema`; a test fails while the file and the definitions disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import schema as s

_INTRO = """\
# Data model

Every table lives in schema `skype` (setting `ETL_SCHEMA`). This page is generated from
`etl_assets/etl/schema.py`, the one definition that also creates the tables, types the
Parquet files between transform and load, and fills `dagster/column_schema` in the UI.
Schema version: {version}.

Natural keys make loads idempotent: conversations by `conversation_id`, messages by
`(conversation_id, message_id)` (the highest `version` wins), rows that belong to a
message by the message key plus `position`. A message's rows are replaced only when the
message itself changes. `message_sources` records every export a message came from.
"""

_QUERIES = """\
## Example queries

A conversation's history with replies and files:

```sql
SELECT m.sent_at, coalesce(m.sender_name, m.sender_id) AS sender, m.content_text,
       q.author_name AS replying_to, q.text AS quoted,
       a.kind AS file_kind, a.original_name, a.media_path
FROM skype.messages m
LEFT JOIN skype.quotes q USING (conversation_id, message_id)
LEFT JOIN skype.attachments a USING (conversation_id, message_id)
WHERE m.conversation_id = '19:...@thread.skype'
ORDER BY m.sent_at;
```

Calls per month, with the time spent in them:

```sql
SELECT date_trunc('month', m.sent_at) AS month, count(*) AS calls,
       round((sum(c.duration_seconds) / 3600)::numeric, 1) AS hours
FROM skype.calls c JOIN skype.messages m USING (conversation_id, message_id)
WHERE c.state = 'ended'
GROUP BY 1 ORDER BY 1;
```

Who reacted most, and with what:

```sql
SELECT coalesce(p.display_name, r.person_id) AS person, r.reaction, count(*) AS times
FROM skype.reactions r LEFT JOIN skype.people p USING (person_id)
GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20;
```

Full-text search (configuration `simple` by default, language-neutral):

```sql
SELECT sent_at, sender_name, content_text
FROM skype.messages
WHERE content_tsv @@ websearch_to_tsquery('simple', 'birthday party')
ORDER BY sent_at;
```

Who said what, when, in reply to what, with which file, in which call:

```sql
SELECT m.sent_at, m.sender_name, m.content_text, q.text AS in_reply_to,
       a.original_name AS file, c.call_id
FROM skype.messages m
LEFT JOIN skype.quotes q USING (conversation_id, message_id)
LEFT JOIN skype.attachments a USING (conversation_id, message_id)
LEFT JOIN skype.calls c USING (conversation_id, message_id)
WHERE m.sender_id = '8:live:someone'
ORDER BY m.sent_at;
```
"""


def render() -> str:
    """The whole page."""
    parts = [_INTRO.format(version=s.SCHEMA_VERSION)]
    parts.append("## Tables\n\n" + "\n".join(f"- [`{t.name}`](#{t.name}): {t.doc}" for t in s.ALL_TABLES) + "\n")
    for table in s.ALL_TABLES:
        lines = [
            f"### {table.name}",
            "",
            table.doc,
            "",
            f"Primary key: `({', '.join(table.primary_key)})`."
            + (f" Indexed: {', '.join(f'`{c}`' for c in table.indexes)}." if table.indexes else ""),
            "",
            "| column | type | null | meaning |",
            "|---|---|---|---|",
        ]
        for c in table.columns:
            kind = c.pg_type + (" (generated)" if c.generated else "")
            meaning = c.doc.replace("|", "\\|")
            lines.append(f"| `{c.name}` | {kind} | {'yes' if c.nullable else 'no'} | {meaning} |")
        parts.append("\n".join(lines) + "\n")
    parts.append(_QUERIES)
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path("docs/data-model.md")
    target.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
