"""File names in the export folder and the media files put into it.

Names come from the archive (original file names, conversation names) and so from other
people: they are reduced to one plain path component, never a path, a hidden file or a
device name, and names that clash (in any letter case) get a number. Media are
hard-linked from the artifact store when it is on the same file system, else copied.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MEDIA_DIR = "media"
PREVIEW_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp")
"""Extensions a video's preview picture (``<docid>.2.<ext>``) has in exports."""
_MAX_NAME_BYTES = 150
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_name(name: str | None, fallback: str) -> str:
    """``name`` as one harmless file name component (``fallback`` when nothing usable is left)."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text).strip().strip(".").strip()
    if not text:
        text = fallback
    if _RESERVED.match(text):
        text = "_" + text
    return _shorten(text)


def _shorten(name: str) -> str:
    """At most ``_MAX_NAME_BYTES`` of UTF-8, keeping a short extension."""
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = name, ""
    budget = _MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
    stem = stem.encode()[:budget].decode(errors="ignore").rstrip(" .") or "file"
    return f"{stem}.{ext}" if ext else stem


class UniqueNames:
    """Hands out names unique in one folder, ignoring letter case (as macOS and Windows do)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, dot, ext = name, "", ""
        candidate, n = name, 1
        while candidate.casefold() in self._taken:
            n += 1
            candidate = _shorten(f"{stem} ({n}){dot}{ext}")
        self._taken.add(candidate.casefold())
        return candidate


@dataclass(frozen=True)
class ExportedFile:
    """A media file placed in the export: its name under ``media/`` and its image size if it is one."""

    name: str
    image_size: tuple[int, int] | None

    @property
    def relative(self) -> str:
        return f"{MEDIA_DIR}/{self.name}"


class MediaExporter:
    """Puts the stored media files that messages refer to into ``<out>/media/``, each once."""

    def __init__(self, out_dir: Path, artifacts: Path | None) -> None:
        self.out_dir = out_dir
        self.media_root = (artifacts / MEDIA_DIR).resolve() if artifacts is not None else None
        self.artifacts = artifacts.resolve() if artifacts is not None else None
        self._names = UniqueNames()
        self._done: dict[Path, ExportedFile | None] = {}
        self.files = 0
        self.bytes = 0

    def source(self, media_path: str | None) -> Path | None:
        """The stored file of an attachment, only if it is a regular file inside the media store."""
        if not media_path or self.artifacts is None or self.media_root is None:
            return None
        candidate = (self.artifacts / media_path).resolve()
        if not candidate.is_relative_to(self.media_root) or candidate == self.media_root:
            return None
        try:
            if not candidate.is_file():
                return None
        except OSError:
            return None
        return candidate

    def preview_of(self, media_path: str | None) -> Path | None:
        """The preview picture the archive keeps next to a video (``<docid>.2.<ext>``), if stored."""
        source = self.source(media_path)
        if source is None or ".1." not in source.name:
            return None
        docid = source.name.split(".1.", 1)[0]
        for ext in PREVIEW_EXTENSIONS:
            found = self.source(f"{MEDIA_DIR}/{docid}.2.{ext}")
            if found is not None:
                return found
        return None

    def add(self, source: Path | None, wanted_name: str | None) -> ExportedFile | None:
        """Place ``source`` under a safe, unique name near ``wanted_name``; the same source once."""
        if source is None:
            return None
        if source in self._done:
            return self._done[source]
        name = self._names.claim(safe_name(wanted_name, fallback=source.name))
        target = self.out_dir / MEDIA_DIR / name
        target.parent.mkdir(exist_ok=True)
        _link_or_copy(source, target)
        exported = ExportedFile(name, image_size(target))
        self._done[source] = exported
        self.files += 1
        self.bytes += target.stat().st_size
        return exported


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no extra disk) when on the same file system, else a copy."""
    try:
        os.link(source, target, follow_symlinks=False)
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    shutil.copyfile(source, target, follow_symlinks=False)


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP file whose header says so, else ``None``.

    Only such files are shown as pictures: a damaged or unknown file is linked instead of
    showing a broken image.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    size = _png(head) or _gif(head) or _webp(head) or _jpeg(head)
    return size if size and size[0] > 0 and size[1] > 0 else None


def _png(b: bytes) -> tuple[int, int] | None:
    if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR" and len(b) >= 24:
        return struct.unpack(">II", b[16:24])
    return None


def _gif(b: bytes) -> tuple[int, int] | None:
    if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
        return struct.unpack("<HH", b[6:10])
    return None


def _webp(b: bytes) -> tuple[int, int] | None:
    if b[:4] != b"RIFF" or b[8:12] != b"WEBP" or len(b) < 30:
        return None
    chunk = b[12:16]
    if chunk == b"VP8 " and b[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(b: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the frame header, which holds the size."""
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", b[i + 2 : i + 4])[0]
        if marker in _SOF:
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return w, h
        if marker in (0xD9, 0xDA) or length < 2:
            return None
        i += 2 + length
    return None
