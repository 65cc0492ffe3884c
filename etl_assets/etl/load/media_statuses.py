"""Media statuses of an export's attachments, set in its publishing transaction.

The transform leaves every attachment with a docid ``pending`` when the archive has media
files; here each gets its file (``media_path``, from the export's ``media_files.parquet``) and
the media copy's outcome (``stored``, ``skipped``, ``damaged``), or ``missing`` when the
archive has no file for its docid. Attachments of a docid another export stored share its file
(``share_stored_media``), so the order of the loads does not change them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from .. import schema as s
from .binary_copy import copy_batches, parquet_batches

MediaOutcome = dict[str, dict[str, str]]
"""``{"skipped": {path: reason}, "damaged": {...}}``: every file not stored, with the reason."""


def settle_media_statuses(
    cur: psycopg.Cursor, attachments: sql.Composed, parquet_dir: Path, media_outcome: Callable[[], MediaOutcome | None]
) -> None:
    """Attachments ``pending`` their media copy get their file and its outcome, in the publishing transaction.

    ``attachments`` is the export's staged table, or the warehouse table during a first load.
    Each gets ``media_path`` from the export's list of media files (a docid without a file is
    ``missing``). The copy has finished by now (a copy running beside the load is waited for
    here; its outcome lists every file not stored), so ``stored`` is published only for files
    renamed into place complete.
    """
    _resolve_media_paths(cur, attachments, parquet_dir / s.MEDIA_FILES_PART)
    outcome = media_outcome()
    if outcome is None:
        return
    paths, statuses, notes = [], [], []
    for status, files in outcome.items():
        for path, note in files.items():
            paths.append(path)
            statuses.append(status)
            notes.append(note)
    if paths:
        cur.execute(
            sql.SQL(
                "UPDATE {} a SET media_status = o.status, media_note = o.note "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS o(path, status, note) "
                "WHERE a.media_status = 'pending' AND a.media_path = o.path"
            ).format(attachments),
            (paths, statuses, notes),
        )
    cur.execute(sql.SQL("UPDATE {} SET media_status = 'stored' WHERE media_status = 'pending'").format(attachments))


def _resolve_media_paths(cur: psycopg.Cursor, attachments: sql.Composed, media_files: Path) -> None:
    """Set each ``pending`` attachment's ``media_path`` to its docid's preferred file; no file: ``missing``."""
    if not media_files.exists():
        return
    cur.execute(
        "CREATE TEMP TABLE media_files (doc_id text, path text, preference bigint) ON COMMIT DROP"
    )
    columns = s.MEDIA_FILE_COLUMNS
    copy_batches(cur, sql.Identifier("media_files"), columns, parquet_batches([media_files], [c.name for c in columns]))
    # both just filled: without statistics the planner joins them by nested loop (minutes at 100,000 files)
    cur.execute(sql.SQL("ANALYZE media_files; ANALYZE {}").format(attachments))
    cur.execute(
        sql.SQL(
            "UPDATE {} a SET media_path = f.path FROM ("
            "SELECT DISTINCT ON (doc_id) doc_id, path FROM media_files ORDER BY doc_id, preference"
            ") f WHERE a.media_status = 'pending' AND a.media_path IS NULL AND a.doc_id = f.doc_id"
        ).format(attachments)
    )
    cur.execute(
        sql.SQL(
            "UPDATE {} SET media_status = 'missing' WHERE media_status = 'pending' AND media_path IS NULL"
        ).format(attachments)
    )


def share_stored_media(cur: psycopg.Cursor, attachments: sql.Composed, staged: sql.Composed) -> None:
    """Every attachment of a docid this export names points at the same stored file, whichever export stored it.

    A message in two exports (a group chat both accounts exported) keeps the attachment rows of
    the export that published it first; only one of the archives may hold the file. Once any
    export has stored a docid's file, every attachment of that docid is ``stored`` at the first
    such path (by name), so the outcome does not depend on the order of the loads. ``staged``
    is this export's attachments (its staging table, or the warehouse table in a first load).
    """
    cur.execute(
        sql.SQL(
            "WITH stored AS (SELECT DISTINCT ON (doc_id) doc_id, media_path FROM ("
            "SELECT doc_id, media_path FROM {staged} WHERE media_status = 'stored' AND doc_id IS NOT NULL "
            "UNION ALL SELECT doc_id, media_path FROM {att} WHERE media_status = 'stored' "
            "AND doc_id IN (SELECT doc_id FROM {staged})) s ORDER BY doc_id, media_path) "
            "UPDATE {att} a SET media_path = f.media_path, media_status = 'stored', media_note = NULL FROM stored f "
            "WHERE a.doc_id = f.doc_id AND (a.media_status IS DISTINCT FROM 'stored' OR a.media_path IS DISTINCT FROM f.media_path)"
        ).format(att=attachments, staged=staged)
    )
