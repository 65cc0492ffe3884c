"""Message content makers: the markup, JSON bodies and properties of every message type.

One place decides what a message says, so the counts of derived rows (mentions, quotes,
attachments, calls, ...) are taken where the content is made and cannot drift from it.
"""

from __future__ import annotations

import base64
import bisect
from datetime import datetime, timezone
from typing import Any, Callable

from .vocabulary import (
    TICKS,
    TICKS_PER_MS,
    UNKNOWN_TYPE,
    _COMPACT,
    _EMOTICONS,
    _LINKS,
    _NOTICE,
    _NOTICE_URLS,
    _PHRASES,
    _PLACES,
    _PLAIN,
    _POPCARD,
    _REACTIONS,
    _TEXT_EMOS,
    _TOPICS,
    _VARIANT_RECIPES,
    _readable,
)

from .people import _Conv, _Person


class _ContentMaker:
    """Mixin of the generator: the content of each message type, as real exports write it.

    Each maker returns (messagetype, content, properties, amsreferences) and counts the rows a
    correct transform must derive from it."""

    def _iso(self, t: int, digits: int) -> str:
        """ISO UTC with exactly ``digits`` fraction digits (0..7), as exports vary."""
        sec, frac = divmod(t, TICKS)
        day, sod = divmod(sec, 86400)
        d = self.day_cache.get(day)
        if d is None:
            d = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%d")
            self.day_cache[day] = d
        h, rem = divmod(sod, 3600)
        m, s = divmod(rem, 60)
        if digits:
            return f"{d}T{h:02d}:{m:02d}:{s:02d}.{frac:07d}"[: 20 + digits] + "Z"
        return f"{d}T{h:02d}:{m:02d}:{s:02d}Z"

    def _pick(self, seq: Any) -> Any:
        return seq[int(self.r() * len(seq))]

    def _participant(self, conv: _Conv) -> _Person:
        return self._pick(conv.others) if conv.others else self.owner

    def _text(self) -> str:
        r = self.r
        if r() < 0.3:
            return _PHRASES[int(r() * len(_PHRASES))] + " " + _PHRASES[int(r() * len(_PHRASES))]
        return _PHRASES[int(r() * len(_PHRASES))]

    def _e_m(self, ms: int, author: str) -> str:
        return f'<e_m ts="{ms // 1000}" ts_ms="{ms}" a="{author}" t="61"/>'


    def _variant_table(self) -> tuple[list[float], list[str]]:
        items = (("rt:format", 3), ("rt:link", 2.5), ("rt:link_plain", 1.5), ("rt:ss", 3), ("rt:textemo", 1), ("rt:mention", 2),
                 ("rt:mention_all", 0.3), ("rt:quote_epoch", 1), ("rt:quote_hms", 0.5), ("rt:quote_dmy", 0.5),
                 ("rt:entities", 1), ("rt:script", 1), ("rt:pre", 0.3), ("rt:edit_marker", 1.5),
                 ("rt:edited_prefix", 0.3), ("rt:deleted", 0.8), ("rt:deleted_em", 0.1), ("rt:img", 0.3))
        cum, acc = [], 0.0
        for _, w in items:
            acc += w
            cum.append(acc)
        return [c / acc for c in cum], [n for n, _ in items]

    def _type_builders(self) -> dict[str, Callable[[_Conv, _Person, int], tuple]]:
        b: dict[str, Callable[[_Conv, _Person, int], tuple]] = {
            "RichText": self._m_richtext, "Text": self._m_text, "RichText/Html": self._m_html,
            "RichText/UriObject": lambda c, s, ms: self._m_uri(c, s, ms, "picture"),
            "RichText/Media_GenericFile": lambda c, s, ms: self._m_uri(c, s, ms, "file"),
            "RichText/Media_Video": lambda c, s, ms: self._m_uri(c, s, ms, "video"),
            "RichText/Media_AudioMsg": lambda c, s, ms: self._m_uri(c, s, ms, "audio"),
            "RichText/Media_CallRecording": self._m_recording, "RichText/Media_FlikMsg": self._m_flik,
            "RichText/Media_Card": self._m_card, "RichText/Media_Album": self._m_album,
            "album_photo": self._m_album_photo, "RichText/Contacts": self._m_contacts,
            "RichText/Location": self._m_location, "RichText/Files": self._m_files,
            "RichText/ScheduledCallInvite": self._m_scheduled, "Poll": self._m_poll, "Event/Call": self._m_call,
            "Notice": self._m_notice,
            "PopCard": lambda c, s, ms: ("PopCard", _POPCARD, None, None),
            "InviteFreeRelationshipChanged/Initialized": lambda c, s, ms: (
                "InviteFreeRelationshipChanged/Initialized",
                f"Hi {s.name.split()[0]}, I&apos;d like to add you as a contact.", None, None),
            "Translation": self._m_translation, "TranslationSettings": self._m_translation_settings,
            "Event/BingBot": lambda c, s, ms: ("Event/BingBot",
                                               '<bing-response><text>Here is what I found</text></bing-response>', None, None),
            UNKNOWN_TYPE: lambda c, s, ms: (UNKNOWN_TYPE, '<sparkle v="2">A message type from the future</sparkle>', None, None),
            "ThreadActivity/E2EEHandshakeInvite": lambda c, s, ms: ("ThreadActivity/E2EEHandshakeInvite", self._blob(), None, None),
            "EndToEndEncryption/Message": lambda c, s, ms: ("EndToEndEncryption/Message", self._blob(), None, None),
            "ThreadActivity/MemberJoined": self._m_member_joined,
        }
        for t in ("AddMember", "DeleteMember", "TopicUpdate", "PictureUpdate", "HistoryDisclosedUpdate",
                  "JoiningEnabledUpdate", "RoleUpdate"):
            b["ThreadActivity/" + t] = (lambda name: lambda c, s, ms: self._m_thread(c, s, ms, name))(t)
        for name in _VARIANT_RECIPES:
            if name.startswith("rt:"):
                b[name] = (lambda v: lambda c, s, ms: self._m_variant(c, s, ms, v))(name)
            else:
                b[name] = (lambda v: lambda c, s, ms: self._m_call(c, s, ms, v))(name)
        return b

    def _m_text(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        if conv.id == "48:calllogs":
            peer = self._participant(conv)
            body = {"callId": f"{ms}", "callDirection": self._pick(("incoming", "outgoing")),
                    "callState": self._pick(("accepted", "missed", "declined")),
                    "originatorParticipant": {"id": peer.mri}, "targetParticipant": {"id": self.user_id}}
            return "Text", _COMPACT(body), None, None
        self._plain = self._pick(_PLAIN)
        return "Text", self._plain, None, None

    def _m_richtext(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        r = self.r
        if conv.id == "48:mentions":
            return self._m_variant(conv, s, ms, "rt:mention")
        if r() < 0.8:
            text = self._text()
            self._plain = _readable(text)
            return "RichText", text, None, None
        cum, names = self._rt_variants
        return self._m_variant(conv, s, ms, names[bisect.bisect(cum, r())])

    def _m_variant(self, conv: _Conv, s: _Person, ms: int, v: str) -> tuple:
        rows = self.rows
        text = self._text()
        props: dict[str, Any] | None = None
        if v == "rt:format":
            content = f"<b>{text}</b> <i>really</i> <s>maybe</s> <u>now</u><br>second line\nthird line"
        elif v in ("rt:link", "rt:link_plain"):
            links = self.rng.sample(_LINKS, 1 + (self.r() < 0.2))
            content = text + "".join(f' <a href="{url}">{url}</a>' for url, _, _ in links)
            rows["links"] += len(links)
            if v == "rt:link":
                previews = []
                for url, title, site in links:
                    raw = url.replace("&amp;", "&")
                    previews.append({"key": raw, "value": {
                        "url": raw, "target_url": raw, "title": title, "description": "Preview text", "site": site,
                        "thumbnail": {"url": f"https://{site}/thumb.jpg", "width": 300, "height": 200}}})
                props = {"urlpreviews": _COMPACT(previews)}
                rows["url_previews"] += len(previews)
        elif v == "rt:ss":
            kind, txt = self._pick(_EMOTICONS)
            content = f'{text} <ss type="{kind}">{txt}</ss>'
        elif v == "rt:textemo":
            content = f"(1f440_eyes) {text} {self._pick(_TEXT_EMOS)}"
        elif v == "rt:mention":
            p = self._participant(conv)
            if not p.mri.startswith("8:"):
                p = self.owner
            k = 1 + (self.r() < 0.2)
            content = " ".join(f'<at id="{p.mri}">{p.name}</at>' for _ in range(k)) + " " + text
            rows["mentions"] += k
        elif v == "rt:mention_all":
            content = f'<at id="*">all</at> {text}'
            rows["mentions"] += 1
        elif v in ("rt:quote_epoch", "rt:quote_hms", "rt:quote_dmy"):
            content = self._quote(conv, ms, v, text)
            rows["quotes"] += 1
        elif v == "rt:entities":
            content = "Tom &amp; Jerry &lt;3 it&apos;s &quot;fine&quot; &#128512; &#x1F44D;"
        elif v == "rt:script":
            content = "Привет 👋 こんにちは 你好 مرحبا שלום नमस्ते Γειά 🇺🇦🏳️‍🌈"
        elif v == "rt:pre":
            content = '<pre raw_pre="{code}">for i in range(3):\n    print(i &lt; 2)</pre>'
        elif v == "rt:edit_marker":
            edit = ms + 1000 + int(self.r() * 3_600_000)
            content = text + self._e_m(edit, s.mri)
            props = {"edittime": str(edit)}
            self._edited = True
        elif v == "rt:edited_prefix":
            content = "Edited previous message: " + text
        elif v == "rt:deleted":
            content = ""
            props = {"deletetime": str(ms + 5000 + int(self.r() * 86_400_000))}
            self._deleted = True
        elif v == "rt:deleted_em":
            content = self._e_m(ms + 60_000, s.mri)
            self._edited = self._deleted = True  # an edit that left nothing: a deletion
        elif v == "rt:img":
            content = f'{text} <img src="https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_demo.png" alt="image"/>'
            rows["attachments"] += 1  # an inline image is an attachment
        elif v in ("rt:emotions_list", "rt:emotions_str"):
            content = text
            props = {"emotions": self._emotions(conv, ms, as_string=v == "rt:emotions_str")}
        elif v == "rt:forward":
            content = text
            props = {"forwardMetadata": _COMPACT({"isForwarded": True, "originalMessageId": str(ms - 86_400_000)})}
        elif v == "rt:starred":
            content = text
            props = {"starred": "true"}
        else:
            content = text
        return "RichText", content, props, None

    def _quote(self, conv: _Conv, ms: int, form: str, reply: str) -> str:
        p = self._participant(conv) if self.r() < 0.8 else self.owner
        self.people_seen.add(p.mri)
        qms = ms - 60_000 - int(self.r() * 86_400_000)
        qs = qms // 1000
        when = datetime.fromtimestamp(qs, timezone.utc)
        if form == "rt:quote_epoch":
            prefix = f"[{qs}] {p.name}: "
        elif form == "rt:quote_hms":
            prefix = f"[{when:%H:%M:%S}] {p.name}: "
        else:
            prefix = f"[{when:%d/%m/%Y %H:%M:%S}] {p.name}: "
        return (f'<quote author="{p.mri}" authorname="{p.name}" timestamp="{qs}" conversation="{conv.id}" '
                f'messageid="{qms}" cuid="{self.rng.getrandbits(60)}"><legacyquote>{prefix}</legacyquote>'
                f'{self._text()}<legacyquote>\n\n&lt;&lt;&lt; </legacyquote></quote>{reply}')

    def _emotions(self, conv: _Conv, ms: int, as_string: bool) -> Any:
        """Reactions: one row per (message, key, user); users are distinct within a key."""
        people = [self.owner] + conv.others
        keys = self.rng.sample(_REACTIONS, 1 + (self.r() < 0.3))
        out = []
        for key in keys:
            users = self.rng.sample(people, min(len(people), 1 + int(self.r() * 3)))
            self.people_seen.update(u.mri for u in users)
            out.append({"key": key, "users": [{"mri": u.mri, "time": ms + 1000 * (i + 1), "value": str(ms + 1000 * (i + 1))}
                                              for i, u in enumerate(users)]})
            self.rows["reactions"] += len(users)
        return _COMPACT(out) if as_string else out

    def _m_contacts(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        k = 1 + (self.r() < 0.3)
        people = [self._participant(conv) for _ in range(k)]
        self.rows["contact_cards"] += k
        return ("RichText/Contacts",
                "<contacts>" + "".join(f'<c t="s" s="{p.mri}" f="{p.name}"/>' for p in people) + "</contacts>", None, None)

    def _m_location(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        address, lat, lon = self._pick(_PLACES)
        self.rows["locations"] += 1
        return ("RichText/Location",
                f'<location isUserLocation="0" latitude="{lat}" longitude="{lon}" timeStamp="{ms}" '
                f'address="{address}"><a href="https://www.bing.com/maps/search?cp={lat / 1e6}~{lon / 1e6}&amp;lvl=15">'
                f'{address}</a></location>', None, None)

    def _m_poll(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["polls"] += 1
        return ("Poll", f'<URIObject type="Poll" title="Where next?" expirationTimeMs="{ms + 604_800_000}" '
                        'optionsEncoded="Telegram|WhatsApp|Slack" allowMultipleVotes="true">Where next?</URIObject>',
                None, None)

    def _m_call(self, conv: _Conv, s: _Person, ms: int, variant: str | None = None) -> tuple:
        r = self.r
        if variant is None:
            roll = r()
            state = "started" if roll < 0.35 else "ended" if roll < 0.8 else "missed"
            log_key = ("callLog", "call-log")[r() < 0.5] if r() < 0.4 else None
        else:
            state = variant.split(":")[1].split("_")[0]
            log_key = variant.split("_", 1)[1] if "_" in variant else None
        people = [s] + [p for p in ([self.owner] + conv.others) if p.mri != s.mri]
        if state == "ended":
            parts = people[: max(2, min(len(people), 1 + int(r() * 4)))]
            dur = f"{1 + r() * 3600:.2f}"
            body = "".join(f'<part identity="{p.mri}"><name>{p.name}</name><duration>{dur}</duration></part>' for p in parts)
        else:
            parts = people[:1]
            body = "".join(f'<part identity="{p.mri}"><name>{p.name}</name></part>' for p in parts)
        call_id = f"{ms}{self.rng.getrandbits(20)}"
        self.rows["calls"] += 1
        self.rows["call_participants"] += len(parts)
        self.people_seen.update(p.mri for p in parts)
        props = None
        if log_key:
            target = parts[-1].mri if len(parts) > 1 else (conv.others[0].mri if conv.others else self.user_id)
            log = {"startTime": self._iso(ms * TICKS_PER_MS, 3),
                   "endTime": self._iso((ms + 60_000) * TICKS_PER_MS, 3), "callDirection": "outgoing",
                   "callType": "twoParty" if len(people) <= 2 else "multiParty",
                   "callState": "missed" if state == "missed" else "accepted", "originator": s.mri, "target": target,
                   "participants": [p.mri for p in parts], "callId": call_id}
            props = {log_key: _COMPACT(log)}
        return "Event/Call", f'<partlist type="{state}" alt="" callId="{call_id}">{body}</partlist>', props, None

    def _m_thread(self, conv: _Conv, s: _Person, ms: int, what: str) -> tuple:
        self.rows["thread_events"] += 1
        tag = what.lower()
        head = f"<{tag}><eventtime>{ms}</eventtime><initiator>{s.mri}</initiator>"
        self.people_seen.add(s.mri)
        if what == "AddMember":
            k = 1 + (self.r() < 0.2)
            added = [self._participant(conv).mri for _ in range(k)]
            self.people_seen.update(added)
            self.memberships_seen.update((conv.id, m) for m in added)
            body = "".join(f"<target>{m}</target>" for m in added)
        elif what == "DeleteMember":
            removed = s.mri if self.r() < 0.4 else self._participant(conv).mri
            self.people_seen.add(removed)
            body = f"<target>{removed}</target>"
        elif what == "TopicUpdate":
            body = f"<value>{self._pick(_TOPICS)}</value>"
        elif what == "PictureUpdate":
            body = f"<value>URL@https://api.asm.skype.com/v1/objects/0-neu-d6-{self._hex(128)}/views/avatar_fullsize</value>"
        elif what == "RoleUpdate":
            changed = self._participant(conv).mri
            self.people_seen.add(changed)
            body = f"<target><id>{changed}</id><role>{self._pick(('admin', 'user'))}</role></target>"
        else:
            body = f"<value>{self._pick(('true', 'false'))}</value>"
        return "ThreadActivity/" + what, f"{head}{body}</{tag}>", None, None

    def _m_member_joined(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["thread_events"] += 1
        joined = self._participant(conv).mri
        self.people_seen.update((s.mri, joined))
        self.memberships_seen.add((conv.id, joined))
        return ("ThreadActivity/MemberJoined",
                _COMPACT({"initiator": s.mri, "members": [{"id": joined}]}), None, None)

    def _m_notice(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["links"] += _NOTICE_URLS  # bare URLs in a body shown as text
        return "Notice", _NOTICE, None, None

    def _m_html(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        return "RichText/Html", f"<p>{self._text()} <b>ok</b></p>", None, None

    def _m_translation(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        return "Translation", _COMPACT({"type": 2, "data": {"translation": "Good morning!", "sourceLanguage": "de",
                                                            "targetLanguage": "en", "messageId": str(ms - 1000)}}), None, None

    def _m_translation_settings(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        return "TranslationSettings", _COMPACT({"type": 1, "data": {"newTranslationState": "Pending",
                                                                    "languages": ["de", "en"]}}), None, None

    def _blob(self) -> str:
        return base64.b64encode(self.rng.getrandbits(384).to_bytes(48, "big")).decode()
