"""Extract: open an export in any container, find its members once, stream its records."""

from .containers import ARCHIVE_ERRORS, FileIdentity, MediaEntry, MemberIndex, archive_walks, file_identity, sniff_container
from .extractor import Extractor, MediaSource
from .split import SplitPoint
from .records import MARK, MAX_DEPTH, MESSAGES_MEMBER, ConversationRecord, ExportHeader, MessageRecord, Record

__all__ = [
    "ARCHIVE_ERRORS", "MARK", "MAX_DEPTH", "MESSAGES_MEMBER", "ConversationRecord", "ExportHeader", "Extractor",
    "FileIdentity", "MediaEntry", "MediaSource", "MemberIndex", "MessageRecord", "Record", "SplitPoint", "archive_walks", "file_identity",
    "sniff_container",
]
