"""Exports in object storage: any fsspec URL (``s3://``, ``gs://``, ``az://``), read in place.

The archive is streamed with ranged reads, never downloaded whole: the tar walk reads the
headers block by block, the scan and each transform worker read ``messages.json`` (each
its own range), the media copy reads each file. Credentials and endpoints are the
provider's standard ones (for S3 the ``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included);
the provider's client retries transient errors with backoff.

An object's identity is its size, ETag (or content hash) and modification time: a later
read that finds another one fails, as a local file replaced after it was hashed does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from upath import UPath

from ..locations import is_remote

BLOCK_BYTES = 4 << 20
"""Bytes per ranged read: few requests for sequential reads, little memory per open file."""


def open_remote(path: UPath) -> BinaryIO:
    """The object, readable and seekable, fetched in ranges of :data:`BLOCK_BYTES` as read."""
    return path.fs.open(path.path, "rb", block_size=BLOCK_BYTES, cache_type="readahead")


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading: a local file, or the object in ranged reads."""
    return open_remote(path) if is_remote(path) else open(path, "rb")  # type: ignore[arg-type]


def remote_identity(path: UPath) -> tuple[int, ...]:
    """Size, a number from the ETag (or content hash), and the modification time in ns."""
    return identity_of(path.fs.info(path.path))


def identity_of(info: dict) -> tuple[int, ...]:
    """The identity of an object from its listing or ``info`` entry (no request of its own)."""
    tag = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "content_md5", "crc32c") if info.get(k)), "")
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified")
    stamp = int(modified.timestamp() * 1e9) if hasattr(modified, "timestamp") else int(float(modified or 0) * 1e9)
    return int(info.get("size") or 0), int(hashlib.sha256(tag.encode()).hexdigest()[:15], 16), stamp


def remote_files(folder: UPath) -> list[tuple[UPath, tuple[int, ...]]]:
    """The objects directly under ``folder`` with their identities, from its listing alone."""
    try:
        entries = folder.fs.ls(folder.path, detail=True, refresh=True)
    except FileNotFoundError:  # nothing under the prefix (yet)
        return []
    return sorted(
        (
            (UPath(f"{folder.protocol}://{entry['name']}", **folder.storage_options), identity_of(entry))
            for entry in entries
            if entry.get("type") == "file"
        ),
        key=lambda pair: pair[0].name,
    )
