"""A cheap content fingerprint of an export file: its size and its first and last MiB.

Hashing a whole export can take minutes for tens of gigabytes; the inbox sensor must
decide within one tick which files are new. The fingerprint reads at most 2 MiB per
file and depends only on the content (not the name, inode or times), so a copy of an
export under another name has the same fingerprint. The full sha256 is computed later,
on the same read that copies the file into the raw store.

Limit: two files of the same size whose first and last MiB are equal have the same
fingerprint even if they differ in between.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..locations import location
from .containers import sniff_container
from .remote import open_binary

SAMPLE_BYTES = 1 << 20
_HEAD_FOR_SNIFF = 512


@dataclass(frozen=True)
class Fingerprint:
    """What one look at a file gave: its fingerprint, and what it cost."""

    digest: str  # sha256 hex of the size, the first and the last SAMPLE_BYTES
    size: int
    bytes_read: int
    container: str  # sniffed from the first bytes: tar, gzip, zip, json or unknown


def read_cost(size: int) -> int:
    """Bytes :func:`content_fingerprint` reads for a file of ``size`` bytes."""
    return min(size, 2 * SAMPLE_BYTES)


def content_fingerprint(path: str | Path) -> Fingerprint:
    """Fingerprint ``path`` (a path or an object's URL); raises ``OSError`` if it cannot be read."""
    digest = hashlib.sha256()
    with open_binary(location(path)) as f:
        size = f.seek(0, 2)
        digest.update(f"{size}\n".encode())
        f.seek(0)
        head = f.read(min(size, SAMPLE_BYTES))
        digest.update(head)
        read = len(head)
        tail_start = max(size - SAMPLE_BYTES, read)
        if tail_start < size:
            f.seek(tail_start)
            tail = f.read(size - tail_start)
            digest.update(tail)
            read += len(tail)
    return Fingerprint(digest.hexdigest(), size, read, sniff_container(head[:_HEAD_FOR_SNIFF]))
