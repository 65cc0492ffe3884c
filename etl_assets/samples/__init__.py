"""Deterministic, seeded generator of realistic Skype exports.

The ``demo`` command, the tests and the benchmarks need exports that look like real
ones (every quirk the Skype export format page lists) and whose correct ETL result is known
up front. ``generate_export`` writes such an export and returns an ``ExportTruth`` with
the numbers a correct load must reproduce. The generator is test equipment, not part of
the pipeline: it imports nothing from ``etl_assets.etl``, so its truth never comes from
the code it checks. ``skype-etl sample`` is its command line.

Messages are streamed to disk one record at a time, so memory stays flat even for
millions of messages; only per-conversation plans and one byte per attachment are
kept. The same arguments always give byte-identical ``messages.json``.
"""

from .generator import generate_export
from .truth import ExportTruth, MessageDigest
from .vocabulary import CHILD_TABLES, MESSAGE_TYPES, ROW_KEYS, UNKNOWN_TYPE

__all__ = ["CHILD_TABLES", "ExportTruth", "MessageDigest", "generate_export", "ROW_KEYS", "MESSAGE_TYPES", "UNKNOWN_TYPE"]
