"""The inbox: a local folder or a bucket prefix, and what the sensor compares between ticks."""

from pathlib import Path

from etl_assets.etl.extract.remote import remote_files, remote_identity
from etl_assets.etl.locations import is_remote

from ..partitions import EXPORT_SUFFIXES


def inbox_files(inbox: Path) -> list[tuple[Path, list[int]]]:
    """Export files in the inbox (a folder or a bucket prefix), with what must stay the same
    between two ticks for one to count as complete: size, mtime (ns), inode and device of a
    file; size, ETag and time of an object (from the one listing, no request per object)."""
    if is_remote(inbox):
        found = [(p, list(identity)) for p, identity in remote_files(inbox)]  # type: ignore[arg-type]
    elif inbox.is_dir():
        found = [(p, identity_now(p)) for p in sorted(inbox.iterdir()) if p.is_file()]
    else:
        return []
    return [(p, identity) for p, identity in found if _is_export_name(p.name)]


def _is_export_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(EXPORT_SUFFIXES)


def identity_now(path: Path) -> list[int]:
    """The file's (or object's) identity as it is now."""
    if is_remote(path):
        return list(remote_identity(path))  # type: ignore[arg-type]
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev]
