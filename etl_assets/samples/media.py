"""Media of a generated export: attachment messages, docids, file names, manifests, file bodies.

Real exports keep about two thirds of the files their messages point at; which ones survive
is derived from the docid, so it needs no memory per attachment.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from .vocabulary import (
    TICKS_PER_MS,
    _CARDS,
    _COMPACT,
    _FAKE_HEAD,
    _FILE_EXT,
    _FILE_KINDS,
    _MIME,
)
from .people import _Conv, _Person


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


    # -------------------------------------------------- attachment messages
    # Each returns (messagetype, content, properties, amsreferences), like the content makers.

    def _uri(self, otype: str, docid: str, name: str, size: int, extra: str = "", tail: str = "") -> str:
        base = f"https://api.asm.skype.com/v1/objects/{docid}"
        return (f'<URIObject type="{otype}" uri="{base}" url_thumbnail="{base}/views/imgt1" doc_id="{docid}"{extra}>'
                f'To view this shared item, go to: <a href="https://login.skype.com/login/sso?go=xmmfallback&amp;docid={docid}">'
                f'https://login.skype.com/login/sso?go=xmmfallback&amp;docid={docid}</a>'
                f'<OriginalName v="{name}"></OriginalName><FileSize v="{size}"></FileSize>{tail}</URIObject>')

    def _m_uri(self, conv: _Conv, s: _Person, ms: int, kind: str) -> tuple:
        docid, name = self._new_media(kind)
        size = 1000 + int(self.r() * 5_000_000)
        self.rows["attachments"] += 1
        if kind == "picture":
            w, h = self._pick(((1024, 768), (600, 1350), (4032, 3024)))
            return ("RichText/UriObject", self._uri("Picture.1", docid, name, size, f' width="{w}" height="{h}"',
                                                    f'<meta type="photo" originalName="{name}"/>'), None, [docid])
        if kind == "file":
            return "RichText/Media_GenericFile", self._uri("File.1", docid, name, size), None, [docid]
        if kind == "video":
            return "RichText/Media_Video", self._uri("Video.1/Message.1", docid, name, size), None, [docid]
        return ("RichText/Media_AudioMsg", self._uri("Audio.1/Message.1", docid, name, size, "",
                                                     "<Title>Voice message</Title>"), None, [docid])

    def _m_album_photo(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        mtype, content, _, refs = self._m_uri(conv, s, ms, "picture")
        album = conv.album_id or f"{ms}"
        return mtype, content, {"albumId": album}, refs

    def _m_album(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        conv.album_id = f"{self.rng.getrandbits(63)}"
        conv.album_left = 2 + int(self.r() * 3)
        self.rows["attachments"] += 1
        count = conv.album_left + 1
        return ("RichText/Media_Album",
                f'<URIObject type="Picture.1/Album.1" albumId="{conv.album_id}" itemCount="{count}">'
                f'<Title>Album</Title>{count} photos</URIObject>', None, None)

    def _m_recording(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        docid, name = self._new_media("recording")
        self.rows["attachments"] += 1
        secs = 5 + int(self.r() * 3000)
        base = f"https://api.asm.skype.com/v1/objects/{docid}"
        content = (f'<URIObject type="Video.2/CallRecording.1" url_thumbnail="{base}/views/thumbnail" uri="{base}" '
                   f'doc_id="{docid}" version="1.0"><RecordingStatus status="Success" code="200"><amsErrorResult/>'
                   f'</RecordingStatus><SessionEndReason value="CallEnded"/><Title>Video</Title>'
                   f'<a href="https://login.skype.com/login/sso?go=webclient.xmm&amp;am={docid}">Play</a>'
                   f'<OriginalName v="{name}"/><RecordingInitiatorId value="{s.mri}"/>'
                   f'<Identifiers><Id type="callId" value="{self._hex(64)}"/><Id type="AMSDocumentID" value="{docid}"/></Identifiers>'
                   f'<RecordingContent timestamp="{self._iso(ms * TICKS_PER_MS, 7)}" '
                   f'duration="{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}.{int(self.r() * 100):02d}">'
                   f'<item type="video" uri="{base}"/></RecordingContent></URIObject>')
        return "RichText/Media_CallRecording", content, None, [docid]

    def _m_flik(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["attachments"] += 1
        item = self._hex(64)
        base = f"https://static-asm.secure.skypeassets.com/pes/v1/items/{item}"
        return ("RichText/Media_FlikMsg",
                f'<URIObject type="Video.1/Flik.1" uri="{base}" url_thumbnail="{base}/views/thumbnail">'
                f'<Title>Moji</Title><a href="https://go.skype.com/mojis">Mojis</a></URIObject>', None, None)

    def _m_card(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["attachments"] += 1
        return ("RichText/Media_Card",
                '<URIObject type="SWIFT.1" url_thumbnail="https://urlp.asm.skype.com/v1/url/content?url=https://'
                'neu1-urlp.secure.skypeassets.com/static/card-128x128.png">To view this card, go to: '
                '<a href="https://go.skype.com/cards.unsupported">https://go.skype.com/cards.unsupported</a>'
                f'<Title></Title><Swift b64="{self._pick(_CARDS)}"/></URIObject>', None, None)

    def _m_files(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        k = 1 + int(self.r() * 3)
        self.rows["attachments"] += k
        files = "".join(f'<file size="{1000 + i * 777}" index="{i}" tid="{ms}" url="https://files.example/{ms}/{i}">'
                        f"notes_{i}.txt</file>" for i in range(k))
        return "RichText/Files", f'<files alt="(file sent)">{files}</files>', None, None

    def _m_scheduled(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["attachments"] += 1
        at = ms + 86_400_000
        return ("RichText/ScheduledCallInvite",
                f'<URIObject type="ScheduledCall.1" uri="https://join.skype.com/{self._hex(48)}" '
                f'subject="Weekly sync" startTime="{at}" endTime="{at + 1_800_000}">'
                f'<Title>Weekly sync</Title>{self._iso(at * TICKS_PER_MS, 3)}</URIObject>', None, None)

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

