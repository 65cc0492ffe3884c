"""Media of a generated export: docids, file names, manifests and fake file bodies.

Real exports keep about two thirds of the files their messages point at; which ones survive
is derived from the docid, so it needs no memory per attachment.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from .vocabulary import (
    _COMPACT,
    _FAKE_HEAD,
    _FILE_EXT,
    _FILE_KINDS,
    _MIME,
)


class _MediaMaker:
    """Mixin of the generator: attachments' docids and the media files of the archive.

    Only one byte per attachment is kept while messages are written; names, docids and
    file bodies are derived again when the archive is packed."""

    def _docid(self, index: int) -> tuple[str, int]:
        """Docid of attachment ``index`` and its media class; recomputed when packing to keep memory flat."""
        h = hashlib.blake2b(f"{self.seed}/{index}".encode(), digest_size=17).digest()
        return "0-neu-d6-" + h[:16].hex(), h[16] % 12

    def _new_media(self, kind: str) -> tuple[str, str]:
        """Register an attachment: returns its docid and original file name."""
        index = len(self.media_kinds)
        k = _FILE_KINDS.index(kind)
        self.media_kinds.append(k)
        return self._docid(index)[0], _media_name(kind, index)


    def media_entries(self, expiry: str) -> Iterator[tuple[str, bytes, bool]]:
        """(archive name, bytes, is-the-file) for about 2/3 of the attachments; the rest expired."""
        seen: set[int] = set()
        for index, k in enumerate(self.media_kinds):
            docid, cls = self._docid(index)
            if k not in seen:
                seen.add(k)
                cls = 0  # the first of each kind survives, so every kind has a real file
            if cls >= 9:
                continue
            kind = _FILE_KINDS[k]
            name = _media_name(kind, index)
            ext = name.rsplit(".", 1)[1]
            contents: dict[str, Any] = {"1": {"type": _MIME[ext]}}
            preview = kind == "video" and cls % 2 == 0 and cls < 8
            if preview:
                contents["2"] = {"type": "image/jpeg"}
            manifest = {"expiry_date": expiry, "filename": name, "contents": contents}
            yield f"media/{docid}.json", _COMPACT(manifest).encode(), False
            if cls == 8:
                continue  # manifest left, file gone
            yield f"media/{docid}.1.{ext}", _FAKE_HEAD.get(ext, b"") + f"fake {name} {docid}\n".encode(), True
            if preview:
                yield f"media/{docid}.2.jpg", _FAKE_HEAD["jpg"] + b"preview\n", False

    def endpoints_json(self) -> bytes:
        return _COMPACT({"userId": self.user_id, "endpoints": [
            {"id": "{" + f"{self.seed:08x}-0000-4000-8000-000000000001" + "}", "type": "desktop",
             "name": "DESKTOP-SKYPE", "lastSeen": self.export_date}]}).encode()



def _media_name(kind: str, index: int) -> str:
    """Original file name of attachment ``index``: derived, so it need not be stored."""
    exts = _FILE_EXT[kind]
    ext = exts[index % len(exts)]
    stem = {"picture": "IMG_", "file": "document_", "video": "VID_", "audio": "voice_", "recording": "Call_"}[kind]
    return f"{stem}{index:05d}.{ext}"

