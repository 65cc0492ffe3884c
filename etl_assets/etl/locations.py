"""Where files are: a local path, or an fsspec URL (``s3://``, ``gs://``, ``az://``) as a ``UPath``.

Settings and command arguments take either; ``pathlib.Path`` would fold ``s3://`` into
``s3:/``, so every place that turns a setting into a path goes through :func:`location`.
"""

from __future__ import annotations

from pathlib import Path

from upath import UPath


def is_url(source: object) -> bool:
    """Whether ``source`` names a remote location (``file://`` is local)."""
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def location(source: str | Path) -> Path:
    """A local path (absolute as given), or a :class:`UPath` for a URL."""
    if isinstance(source, UPath) or is_url(source):
        return UPath(source)
    if isinstance(source, str) and source.startswith("file://"):
        return Path(source.removeprefix("file://"))
    return Path(source)


def is_remote(path: Path) -> bool:
    """Whether ``path`` is in a remote file system (an object store)."""
    return isinstance(path, UPath) and path.protocol not in ("", "file", "local")
