"""Deterministic, seeded generator of realistic Skype exports.

The ``demo`` command, the tests and the benchmarks need exports that look like real
ones (every quirk the Skype export format page lists) and whose correct ETL result is known
up front. ``generate_export`` writes such an export and returns an ``ExportTruth`` with
the numbers a correct load must reproduce.

Messages are streamed to disk one record at a time, so memory stays flat even for
millions of messages; only per-conversation plans and one byte per attachment are
kept. The same arguments always give byte-identical ``messages.json``.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import gzip
import hashlib
import json
import math
import os
import random
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterator

from .values import conversation_kind

__all__ = ["ExportTruth", "generate_export", "main", "ROW_KEYS", "MESSAGE_TYPES", "UNKNOWN_TYPE"]

DEFAULT_START = datetime(2012, 1, 1, tzinfo=timezone.utc)
DEFAULT_END = datetime(2025, 4, 30, 18, 2, tzinfo=timezone.utc)

TICKS = 10_000_000  # 100 ns ticks per second: originalarrivaltime has up to 7 fraction digits
TICKS_PER_MS = 10_000

ROW_KEYS = (
    "reactions",
    "mentions",
    "quotes",
    "attachments",
    "calls",
    "call_participants",
    "thread_events",
    "polls",
    "locations",
    "contact_cards",
    "url_previews",
    "media_files",
)

UNKNOWN_TYPE = "Sparkle/Hologram"
URL_FROM_PREFIX = "https://azscus1-client-s.gateway.messenger.live.com/v1/users/ME/contacts/"
MEMBER_SHAPES = ("string", "list", "objects", "null")
BAD_KINDS = ("no_id", "bad_time", "id_list", "nul", "id_object")

# (messagetype, share in percent, where it can appear). RichText takes what is left.
_TYPE_TABLE: tuple[tuple[str, float, str], ...] = (
    ("RichText/UriObject", 5.7, "any"),
    ("ThreadActivity/AddMember", 3.8, "group"),
    ("ThreadActivity/DeleteMember", 1.1, "group"),
    ("RichText/Media_GenericFile", 0.45, "any"),
    ("Event/Call", 0.5, "any"),
    ("Text", 0.35, "any"),
    ("ThreadActivity/TopicUpdate", 0.12, "group"),
    ("RichText/Media_Video", 0.12, "any"),
    ("RichText/Media_AudioMsg", 0.1, "any"),
    ("RichText/Html", 0.05, "any"),
    ("RichText/Media_CallRecording", 0.02, "any"),
    ("RichText/Media_FlikMsg", 0.04, "any"),
    ("RichText/Media_Card", 0.05, "any"),
    ("RichText/Media_Album", 0.04, "any"),
    ("RichText/Contacts", 0.03, "any"),
    ("RichText/Location", 0.03, "any"),
    ("RichText/Files", 0.03, "any"),
    ("RichText/ScheduledCallInvite", 0.02, "any"),
    ("Poll", 0.02, "group"),
    ("ThreadActivity/PictureUpdate", 0.04, "group"),
    ("ThreadActivity/HistoryDisclosedUpdate", 0.04, "group"),
    ("ThreadActivity/JoiningEnabledUpdate", 0.02, "group"),
    ("ThreadActivity/RoleUpdate", 0.03, "group"),
    ("ThreadActivity/MemberJoined", 0.01, "group"),
    ("ThreadActivity/E2EEHandshakeInvite", 0.01, "one_to_one"),
    ("EndToEndEncryption/Message", 0.01, "one_to_one"),
    ("Notice", 0.03, "any"),
    ("PopCard", 0.03, "any"),
    ("InviteFreeRelationshipChanged/Initialized", 0.03, "one_to_one"),
    ("Translation", 0.02, "any"),
    ("TranslationSettings", 0.01, "any"),
    ("Event/BingBot", 0.01, "any"),
    (UNKNOWN_TYPE, 0.01, "any"),
)
MESSAGE_TYPES: tuple[str, ...] = ("RichText",) + tuple(t for t, _, _ in _TYPE_TABLE)

_SPECIAL_TABLES: dict[str, tuple[tuple[str, float], ...]] = {
    "bot": (("RichText/Html", 8.0), ("PopCard", 4.0), ("Event/BingBot", 3.0), ("Text", 3.0), ("RichText/Media_Card", 2.0)),
    "48:calllogs": (("Text", 75.0), ("Event/Call", 25.0)),
    "48:notes": (("RichText/UriObject", 8.0), ("Text", 2.0)),
    "48:drafts": (("Text", 5.0),),
    "48:notifications": (("Notice", 40.0), ("PopCard", 30.0)),
    "48:mentions": (),
}

# Variants forced at least once per export (when there is room), beyond one of each type.
_VARIANT_RECIPES: tuple[str, ...] = (
    "rt:format", "rt:pre", "rt:link", "rt:ss", "rt:textemo", "rt:mention", "rt:mention_all",
    "rt:quote_epoch", "rt:quote_hms", "rt:quote_dmy", "rt:entities", "rt:script", "rt:edit_marker",
    "rt:edited_prefix", "rt:deleted", "rt:deleted_em", "rt:emotions_list", "rt:emotions_str",
    "rt:forward", "rt:starred", "call:started", "call:ended_callLog", "call:ended_call-log", "call:missed",
)
_DIM_FEATURES: tuple[tuple[str, str], ...] = (
    tuple(("frac", str(k)) for k in range(8))
    + (("from", "url"), ("from", "bare"), ("from", "url"), ("from", "bare"))
    + (("dup", "edit_final_first"), ("dup", "edit_final_last"), ("dup", "server_before"),
       ("dup", "server_after"), ("dup", "type_change"))
    + (("order", "swap"), ("order", "swap"), ("idform", "nonnumeric"), ("idform", "long"))
    + (("version", "float"), ("version", "float"))
)

_FIRST = ("Anna", "Ben", "Chloé", "Dmitri", "Emma", "Farah", "Giulia", "Hiro", "Ines", "Jonas", "Kai", "Lena",
          "Mateo", "Nadia", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Viktor", "Wen", "Yara",
          "Zoë", "Дмитрий", "Алёна", "李", "美咲", "أحمد", "יעל", "राहुल", "Σοφία", "Łukasz", "Ngọc")
_LAST = ("Ahmed", "Berg", "Costa", "Dubois", "Eriksson", "Fischer", "García", "Hansen", "Ivanova", "Jensen",
         "Kowalski", "Lindqvist", "Müller", "Nakamura", "O'Neil", "Petrov", "Rossi", "Silva", "Tanaka",
         "Umarov", "Virtanen", "Wong", "Иванов", "王", "佐藤", "الفارسي", "כהן", "शर्मा", "Παππάς", "Nguyễn")
_HANDLES = ("sunny", "bluefox", "k.mueller", "danny_b", "moonwalker", "pixel", "traveller", "jo.lee", "mkx",
            "river", "tango", "nightowl", "skipper", "zed", "maple", "orbit", "quill", "nova")
_TOPICS = ("Book club", "Trip planning ✈️", "Family", "Team standup", "Football Sundays", "Project Phoenix",
           "Flat 4B", "Климат-клуб", "読書会", "Board games & pizza", "Release 2.0", "Gym buddies 💪")

_PHRASES: tuple[str, ...] = (
    "Hey, are you around?", "Sounds good 👍", "I'll call you later", "Running 5 min late, sorry!",
    "Did you see the game last night?", "Ok", "lol", "Thanks!", "See you tomorrow at 10",
    "Can you send me the file again?", "Happy birthday!! 🎉🎂", "Tom &amp; Jerry marathon tonight?",
    "it&apos;s fine, don&apos;t worry", "Привет! Как дела?", "Спасибо, всё отлично",
    "Guten Morgen! Wie geht&apos;s?", "¿Dónde estás?", "Ça va ? On se voit à 18h", "今日は何時に会いますか？",
    "好的，明天见", "안녕하세요!", "مرحبا، كيف حالك؟", "שלום, מה שלומך?", "नमस्ते, आप कैसे हैं?", "Καλημέρα!",
    "Zażółć gęślą jaźń", "Ok 😂😂", "❤️", "👀", "brb", "Let me check and get back to you",
    "The meeting moved to Thursday", "Where should we go for lunch?", "Pizza 🍕 or sushi 🍣?",
    "I pushed the fix, can you review?", "Good night 🌙", "Morning ☕", "Yes", "No worries",
    "haha that&apos;s hilarious", "What time does the train leave?", "I&apos;m at the station",
    "Just landed ✈️", "Call me when you&apos;re free", "Sure, why not", "Can&apos;t make it today 😕",
    "Congrats on the new job!", "Did you get my email?", "The wifi password is on the fridge",
    "Miss you guys", "Let&apos;s do it next week then", "Is it raining there?", "Almost done",
    "Check your inbox", "Who&apos;s bringing the snacks?", "on my way", "kk", "Hmm, not sure about that",
)
_PLAIN: tuple[str, ...] = ("ok", "see you soon", "I'll be there in 5", "thanks", "call me", "yes", "no",
                           "Happy new year", "where are you", "good night")
_EMOTICONS = (('smile', ':)'), ('laugh', ':D'), ('heart', '(heart)'), ('hi', '(wave)'), ('like', '(y)'),
              ('cry', ';('), ('wink', ';)'))
_TEXT_EMOS = ("(1f440_eyes)", "(partypopper)", "(sparkles)", "(penguinkiss)", "(1f602_facewithtearsofjoy)")
_REACTIONS = ("like", "heart", "laugh", "surprised", "sad", "angry", "yes", "cwl")
_PLACES = (("Alexanderplatz, Berlin", 52521918, 13413215), ("Praça do Comércio, Lisboa", 38707751, -9136592),
           ("Shibuya Crossing, Tokyo", 35659482, 139700574), ("Times Square, New York", 40758896, -73985130),
           ("Красная площадь, Москва", 55753930, 37620795), ("Opera House, Sydney", -33856784, 151215297))
_LINKS = (("https://en.wikipedia.org/wiki/Skype", "Skype - Wikipedia", "en.wikipedia.org"),
          ("https://github.com/skype-export/tools?tab=readme&amp;lang=en", "skype-export/tools", "github.com"),
          ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&amp;t=42", "A classic", "www.youtube.com"),
          ("https://news.ycombinator.com/item?id=43000000", "Skype is shutting down", "news.ycombinator.com"))
_FILE_KINDS = ("picture", "file", "video", "audio", "recording")
_FILE_EXT = {"picture": ("jpg", "png"), "file": ("pdf", "docx", "zip", "txt", "xlsx"), "video": ("mp4",),
             "audio": ("m4a",), "recording": ("mp4",)}
_MIME = {"jpg": "image/jpeg", "png": "image/png", "pdf": "application/pdf", "zip": "application/zip",
         "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "txt": "text/plain",
         "mp4": "video/mp4", "m4a": "audio/mp4"}
_FAKE_HEAD = {"jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-1.4\n",
              "zip": b"PK\x05\x06" + b"\x00" * 18, "mp4": b"\x00\x00\x00\x18ftypmp42", "m4a": b"\x00\x00\x00\x18ftypM4A "}

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _card_b64(subtitle: str) -> str:
    """A Swift card as real Media_Card messages carry it: base64 of a JSON card."""
    card = {"type": "message/card", "attachments": [{"contentType": "application/vnd.microsoft.card.flex", "content": {
        "shareable": True, "subtitle": subtitle, "images": [{"alt": "gif", "url": "https://media.giphy.com/media/x/giphy.gif",
                                                            "tap": {"type": "showImage"}, "type": "image/gif",
                                                            "stillUrl": "https://media.giphy.com/media/x/still.jpg", "frames": 0}],
        "aspect": "498:280", "dimensions": {"width": 498, "height": 280}}}]}
    return base64.b64encode(_COMPACT(card).encode()).decode()


_CARDS = tuple(_card_b64(s) for s in ("Happy Friday!", "Congrats 🎉", "Good morning"))
_POPCARD = _COMPACT([{"clientVersion": "8.60,", "contentType": "application/vnd.microsoft.card.popup", "cardType": 1,
                      "quietCard": True, "campaignGuid": "meetnow-control", "language": "en",
                      "validUntilTimestamp": "2020-07-03T23:36:12.0087172Z",
                      "content": {"title": "Meet Now in one click", "text": "Your friends don't need to sign up.",
                                  "buttons": [{"actionUri": "skype:?action=meetnow", "title": "Try it"}]}}])
_NOTICE = _COMPACT([{"@type": "http://schema.skype.com/Notice", "title": "Skype is changing",
                     "text": "Sign in to Microsoft Teams (free) with your Skype account.",
                     "buttons": [{"title": "Learn more", "url": "https://go.skype.com/teams"}]}])


@dataclass
class ExportTruth:
    """What a correct ETL must find in the generated export.

    ``message_records`` counts usable message objects, duplicates included; the injected
    unusable ones are only in ``rejected`` (objects in the file = message_records + rejected).
    ``messages``, ``by_type`` and ``rows`` are over the final (highest version) record of each
    distinct (conversationid, id). ``rows["media_files"]`` counts ``media/<docid>.1.<ext>`` files.
    """

    path: Path
    user_id: str
    export_date: str
    conversations: int
    conversation_kinds: dict[str, int]
    message_records: int
    messages: int
    by_type: dict[str, int]
    rows: dict[str, int]
    heavy_conversation_id: str | None
    heavy_messages: int
    rejected: int

    def to_json(self) -> dict:
        """Plain JSON-able dict (path as a string), for the CLI and for comparisons."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class _Person:
    mri: str
    name: str
    from_: str


@dataclass
class _Conv:
    id: str
    kind: str
    display_name: str | None
    mode: str = "list"  # list | empty | null | missing
    weight: float = 1.0
    others: list[_Person] = field(default_factory=list)
    shape: str = "string"
    float_version: bool = False
    extra_thread: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    start_t: int = 0
    end_t: int = 0
    features: dict[int, dict[str, str]] = field(default_factory=dict)
    bad: dict[int, list[str]] = field(default_factory=dict)
    album_left: int = 0
    album_id: str = ""


def _infer_archive(path: Path) -> str:
    """Archive kind from the file name, so callers rarely have to say it."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".tar"):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".json"):
        return "json"
    raise ValueError(f"cannot infer the archive kind from {path.name!r}; pass archive=")


def _ticks(dt: datetime) -> int:
    """Whole-second 100 ns ticks since the epoch; naive datetimes are UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * TICKS


class _Generator:
    """Plans one export and streams it. One instance per ``generate_export`` call."""

    def __init__(self, *, messages: int, seed: int, heavy_share: float, bad_records: int, owner: str | None,
                 start: datetime, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.r = self.rng.random
        self.seed = seed
        self.n_messages = messages
        self.heavy_share = min(max(heavy_share, 0.0), 1.0)
        self.n_bad = bad_records
        self.start_t = _ticks(start)
        self.end_t = max(_ticks(end), self.start_t + TICKS)
        self.export_date = datetime.fromtimestamp(self.end_t // TICKS, timezone.utc).strftime("%Y-%m-%dT%H:%M")
        self.user_id = owner or f"8:live:.cid.{self.rng.getrandbits(64):016x}"
        bare = self.user_id[2:] if self.user_id.startswith("8:") else self.user_id
        self.owner_bare = bare
        self.owner_canonical = self.user_id
        self.owner_url = URL_FROM_PREFIX + "8:" + bare
        self.owner_name = self._name()
        self.owner = _Person(self.user_id, self.owner_name, self.user_id)
        self.day_cache: dict[int, str] = {}
        self.by_type: dict[str, int] = {}
        self.rows: dict[str, int] = dict.fromkeys(ROW_KEYS, 0)
        self.records = 0
        self.media_kinds = bytearray()
        self.used_ids: set[str] = set()
        self.heavy: _Conv | None = None
        self._rt_variants = self._variant_table()
        self._builders = self._type_builders()
        self.convs = self._plan_conversations()
        self._allocate()
        self._tables = self._kind_tables()
        self._place_features()
        self._place_bad_records()

    # ----------------------------------------------------------------- planning

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _name(self) -> str:
        return f"{self.rng.choice(_FIRST)} {self.rng.choice(_LAST)}"

    def _unique(self, make: Callable[[], str]) -> str:
        """Ids must not collide: conversations are keyed by id."""
        while True:
            v = make()
            if v not in self.used_ids:
                self.used_ids.add(v)
                return v

    def _person(self, form: str | None = None) -> _Person:
        """A contact in one of the id forms seen in real exports."""
        rng = self.rng
        form = form or rng.choices(("cid", "live", "legacy"), (50, 30, 20))[0]
        name = self._name()
        if form == "cid":
            mri = self._unique(lambda: "8:live:.cid." + self._hex(64))
        elif form == "live":
            mri = self._unique(lambda: f"8:live:{rng.choice(_HANDLES)}{rng.randrange(1, 9999)}")
        else:
            mri = self._unique(lambda: f"8:{rng.choice(_HANDLES).replace('.', '_')}{rng.randrange(10, 99999)}")
        return _Person(mri, name, mri)

    def _one_to_one(self, form: str) -> _Conv:
        """A 1:1 chat; its id is the other person's id in one of the known forms."""
        rng = self.rng
        if form == "phone":
            mri = self._unique(lambda: f"4:+1555{rng.randrange(10**6, 10**7)}")
            peer = _Person(mri, mri[2:], mri)
            cid = mri
        elif form == "guest":
            mri = self._unique(lambda: f"guest:{rng.choice(_HANDLES)}_{self._hex(24)}")
            peer = _Person(mri, "Guest " + rng.choice(_FIRST), mri)
            cid = mri
        elif form == "prefixless":
            peer = self._person("cid")
            cid = peer.mri[2:]
        else:
            peer = self._person(form)
            cid = peer.mri
        name = None if rng.random() < 0.6 or form == "legacy" or form == "cid" and rng.random() < 0.5 else peer.name
        return _Conv(cid, "one_to_one", name, others=[peer], weight=rng.paretovariate(1.1))

    def _group(self, suffix: str, members: int, shape: str) -> _Conv:
        """A group thread with members, topic and the optional thread properties."""
        rng = self.rng
        if suffix == "p2p.thread.skype":
            body = base64.b64encode(rng.getrandbits(240).to_bytes(30, "big")).decode().replace("/", "_")
            cid = self._unique(lambda: f"19:{body}@{suffix}")
        else:
            cid = self._unique(lambda: f"19:{self._hex(128)}@{suffix}")
        others = [self._person() for _ in range(members)]
        topic = rng.choice(_TOPICS)
        extra: dict[str, Any] = {}
        if rng.random() < 0.4:
            extra["picture"] = f"URL@https://api.asm.skype.com/v1/objects/0-neu-d6-{self._hex(128)}/views/avatar_fullsize"
        if rng.random() < 0.3:
            extra["description"] = "Anything goes &amp; nothing is off-topic"
        if rng.random() < 0.3:
            extra["joiningEnabled"] = rng.choice(("true", "false"))
        display = topic if rng.random() < 0.8 else ", ".join(p.name for p in others[:3])
        return _Conv(cid, "group", display, others=others, shape=shape, extra_thread=extra,
                     weight=rng.paretovariate(1.1))

    def _plan_conversations(self) -> list[_Conv]:
        """Every kind and MessageList shape once, then more chats as the export grows."""
        rng = self.rng
        convs: list[_Conv] = [self._one_to_one(f) for f in ("cid", "live", "legacy", "prefixless", "phone", "guest")]
        heavy = self._group("thread.skype", 30, "string")
        main_group = self._group("thread.v2", 6, "list")
        convs += [heavy, main_group, self._group("p2p.thread.skype", 3, "objects"),
                  self._group("cast.skype", 4, "null")]
        if self.heavy_share > 0:
            self.heavy = heavy
        self.main_group = main_group
        convs.append(_Conv("28:concierge", "bot", "Skype Concierge", weight=0.3,
                           others=[_Person("28:concierge", "Skype Concierge", "28:concierge")]))
        for sid in ("48:calllogs", "48:notes", "48:notifications", "48:mentions", "48:drafts"):
            convs.append(_Conv(sid, "special", None, weight=0.3))
        self._by_id = {c.id: c for c in convs}
        self._by_id["48:drafts"].mode = "missing"
        self._by_id["48:mentions"].mode = "null"
        empty = self._one_to_one("cid")
        empty.mode = "empty"
        convs.append(empty)
        extra = min(1200, self.n_messages // 300)
        for i in range(extra):
            roll = rng.random()
            if roll < 0.6:
                c = self._one_to_one(rng.choices(("cid", "live", "legacy", "prefixless", "phone", "guest"),
                                                 (40, 25, 20, 8, 4, 3))[0])
            elif roll < 0.97:
                suffix = rng.choices(("thread.skype", "thread.v2", "p2p.thread.skype", "cast.skype"), (55, 30, 10, 5))[0]
                c = self._group(suffix, rng.randrange(2, 12), MEMBER_SHAPES[i % 4])
            else:
                bot = self._unique(lambda: f"28:{self._hex(32)}")
                c = _Conv(bot, "bot", rng.choice(("Copilot", "Bing", "Survey Bot")), weight=0.3,
                          others=[_Person(bot, "Bot", bot)])
            m = rng.random()
            if m < 0.01:
                c.mode = "missing"
            elif m < 0.02:
                c.mode = "null"
            elif m < 0.04:
                c.mode = "empty"
            convs.append(c)
        for c in convs:
            c.float_version = rng.random() < 0.3
            if c.kind == "special":
                c.others = [self._person() for _ in range(3)]
        rng.shuffle(convs)
        return convs

    def _allocate(self) -> None:
        """Split the distinct messages over the chats: exact total, skewed like real use."""
        total = self.n_messages
        heavy_n = round(total * self.heavy_share) if self.heavy else 0
        if self.heavy:
            self.heavy.n = heavy_n
        rest = total - heavy_n
        pool = [c for c in self.convs if c.mode == "list" and c is not self.heavy]
        if not pool:
            if self.heavy:
                self.heavy.n += rest
            return
        reserve = min(20, rest // 4) if self.main_group in pool else 0
        self.main_group.n += reserve
        rest -= reserve
        if rest >= len(pool):
            for c in pool:
                c.n += 1
            rest -= len(pool)
            weights = [min(c.weight, 200.0) for c in pool]
            wsum = sum(weights)
            shares = [w / wsum * rest for w in weights]
            floors = [int(s) for s in shares]
            left = rest - sum(floors)
            order = sorted(range(len(pool)), key=lambda i: (floors[i] - shares[i], i))
            for i in order[:left]:
                floors[i] += 1
            for c, k in zip(pool, floors):
                c.n += k
        else:
            weights = [min(c.weight, 200.0) for c in pool]
            for c in self.rng.choices(pool, weights, k=rest):
                c.n += 1
        span = self.end_t - self.start_t
        for c in self.convs:
            if c is self.heavy or span < TICKS * 86400:
                c.start_t, c.end_t = self.start_t, self.end_t
                continue
            length = int(span * (0.05 + 0.95 * self.rng.random() ** 0.5))
            c.start_t = self.start_t + int((span - length) * self.rng.random())
            c.end_t = c.start_t + length

    def _kind_tables(self) -> dict[str, tuple[float, list[str], list[float]]]:
        """Weighted type tables per chat kind; group-only types are boosted so the export-wide
        shares stay near the real ones even though only part of the messages are in groups."""
        in_groups = sum(c.n for c in self.convs if c.kind == "group")
        in_chats = sum(c.n for c in self.convs if c.kind in ("group", "one_to_one")) or 1
        group_boost = min(max(in_chats / max(in_groups, 1), 1.0), 4.0)
        one_boost = min(max(in_chats / max(in_chats - in_groups, 1), 1.0), 4.0)
        tables: dict[str, tuple[float, list[str], list[float]]] = {}
        for kind in ("group", "one_to_one"):
            items = []
            for t, w, scope in _TYPE_TABLE:
                if scope == "any":
                    items.append((t, w))
                elif scope == kind:
                    items.append((t, w * (group_boost if kind == "group" else one_boost)))
            tables[kind] = self._table(items)
        for key, items in _SPECIAL_TABLES.items():
            tables[key] = self._table(list(items))
        return tables

    @staticmethod
    def _table(items: list[tuple[str, float]]) -> tuple[float, list[str], list[float]]:
        other = sum(w for _, w in items)
        cum: list[float] = []
        acc = 0.0
        for _, w in items:
            acc += w / 100.0
            cum.append(acc)
        return max(0.0, 1.0 - other / 100.0), [t for t, _ in items], cum

    def _place_features(self) -> None:
        """Pin every type and quirk to a concrete message slot, so even small exports have them all."""
        rng = self.rng
        chats = [c for c in self.convs if c.kind in ("group", "one_to_one") and c.mode == "list" and c.n > 0]
        groups = [c for c in chats if c.kind == "group"]
        ones = [c for c in chats if c.kind == "one_to_one"]
        bots = [c for c in self.convs if c.kind == "bot" and c.n > 0]

        def place(pool: list[_Conv], dim: str, value: str, pair: str | None = None) -> bool:
            cands = [c for c in pool if sum(1 for f in c.features.values() if dim in f) < c.n - (1 if pair else 0)]
            if not cands:
                return False
            conv = cands[rng.randrange(len(cands))]
            limit = conv.n - (1 if pair else 0)
            for _ in range(50):
                i = rng.randrange(limit)
                if dim not in conv.features.get(i, {}) and (not pair or dim not in conv.features.get(i + 1, {})):
                    break
            else:
                free = [i for i in range(limit) if dim not in conv.features.get(i, {})
                        and (not pair or dim not in conv.features.get(i + 1, {}))]
                if not free:
                    return False
                i = free[0]
            conv.features.setdefault(i, {})[dim] = value
            if pair:
                conv.features.setdefault(i + 1, {})[dim] = pair
            return True

        scope = {t: s for t, _, s in _TYPE_TABLE}
        recipes = sorted(MESSAGE_TYPES, key=lambda t: scope.get(t) != "group")
        for t in recipes + list(_VARIANT_RECIPES):
            s = scope.get(t, "any")
            pool = groups if s == "group" else ones if s == "one_to_one" else chats
            if t == "Event/BingBot" and bots:
                pool = bots
            if t == "RichText/Media_Album":
                place(pool, "recipe", t, pair="album_photo") or place(chats, "recipe", t, pair="album_photo")
            elif not place(pool, "recipe", t) and pool is not chats:
                place(chats, "recipe", t)
        for dim, value in _DIM_FEATURES:
            place([c for c in chats if c.n >= 2] if dim == "order" else chats, dim, value,
                  pair="next" if dim == "order" else None)

    def _place_bad_records(self) -> None:
        """Spread the unusable records over chats that have messages."""
        pool = [c for c in self.convs if c.mode in ("list", "empty")]
        with_msgs = [c for c in pool if c.n > 0] or pool
        for k in range(self.n_bad):
            c = with_msgs[self.rng.randrange(len(with_msgs))]
            pos = self.rng.randrange(c.n) if c.n else 0
            c.bad.setdefault(pos, []).append(BAD_KINDS[k % len(BAD_KINDS)])

    # ------------------------------------------------------------------ helpers

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

    def _text(self) -> str:
        r = self.r
        if r() < 0.3:
            return _PHRASES[int(r() * len(_PHRASES))] + " " + _PHRASES[int(r() * len(_PHRASES))]
        return _PHRASES[int(r() * len(_PHRASES))]

    def _e_m(self, ms: int, author: str) -> str:
        return f'<e_m ts="{ms // 1000}" ts_ms="{ms}" a="{author}" t="61"/>'

    # ------------------------------------------------------------ content makers
    # Each maker returns (messagetype, content, properties, amsreferences) and counts its rows.

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
            "Notice": lambda c, s, ms: ("Notice", _NOTICE, None, None),
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
        return "Text", self._pick(_PLAIN), None, None

    def _m_richtext(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        r = self.r
        if conv.id == "48:mentions":
            return self._m_variant(conv, s, ms, "rt:mention")
        if r() < 0.8:
            return "RichText", self._text(), None, None
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
        elif v == "rt:edited_prefix":
            content = "Edited previous message: " + text
        elif v == "rt:deleted":
            content = ""
            props = {"deletetime": str(ms + 5000 + int(self.r() * 86_400_000))}
        elif v == "rt:deleted_em":
            content = self._e_m(ms + 60_000, s.mri)
        elif v == "rt:img":
            content = f'{text} <img src="https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_demo.png" alt="image"/>'
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
            out.append({"key": key, "users": [{"mri": u.mri, "time": ms + 1000 * (i + 1), "value": str(ms + 1000 * (i + 1))}
                                              for i, u in enumerate(users)]})
            self.rows["reactions"] += len(users)
        return _COMPACT(out) if as_string else out

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
        if what == "AddMember":
            k = 1 + (self.r() < 0.2)
            body = "".join(f"<target>{self._participant(conv).mri}</target>" for _ in range(k))
        elif what == "DeleteMember":
            body = f"<target>{s.mri if self.r() < 0.4 else self._participant(conv).mri}</target>"
        elif what == "TopicUpdate":
            body = f"<value>{self._pick(_TOPICS)}</value>"
        elif what == "PictureUpdate":
            body = f"<value>URL@https://api.asm.skype.com/v1/objects/0-neu-d6-{self._hex(128)}/views/avatar_fullsize</value>"
        elif what == "RoleUpdate":
            body = f"<target><id>{self._participant(conv).mri}</id><role>{self._pick(('admin', 'user'))}</role></target>"
        else:
            body = f"<value>{self._pick(('true', 'false'))}</value>"
        return "ThreadActivity/" + what, f"{head}{body}</{tag}>", None, None

    def _m_member_joined(self, conv: _Conv, s: _Person, ms: int) -> tuple:
        self.rows["thread_events"] += 1
        return ("ThreadActivity/MemberJoined",
                _COMPACT({"initiator": s.mri, "members": [{"id": self._participant(conv).mri}]}), None, None)

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

    # ----------------------------------------------------------------- streaming

    def _decorate(self, conv: _Conv, props: dict | None, ms: int) -> dict | None:
        """Occasional reactions, forwards and stars on ordinary messages."""
        roll = self.r()
        props = dict(props) if props else {}
        if roll < 0.8:
            props["emotions"] = self._emotions(conv, ms, as_string=self.r() < 0.3)
        elif roll < 0.9:
            props["forwardMetadata"] = _COMPACT({"isForwarded": True})
        else:
            props["starred"] = "true"
        return props

    def _bad_record(self, conv: _Conv, kind: str, k: int, ms: int) -> dict:
        rec: dict[str, Any] = {"id": f"9{k:018d}", "displayName": None,
                               "originalarrivaltime": self._iso(ms * TICKS_PER_MS, 3), "messagetype": "RichText",
                               "version": ms, "content": "broken record", "conversationid": conv.id,
                               "from": self.user_id, "properties": None, "amsreferences": None}
        if kind == "no_id":
            del rec["id"]
        elif kind == "bad_time":
            rec["originalarrivaltime"] = "not-a-time"
        elif kind == "id_list":
            rec["id"] = [str(ms)]
        elif kind == "id_object":
            rec["id"] = {"value": str(ms)}
        else:
            rec["content"] = "before\u0000after"
        return rec

    def write_messages(self, fh: Any) -> None:
        """Stream the whole messages.json into ``fh`` (text, UTF-8)."""
        enc = _ENCODE
        fh.write(f'{{"userId": {enc(self.user_id)}, "exportDate": {enc(self.export_date)}, "conversations": [\n')
        bad_counter = 0
        for j, conv in enumerate(self.convs):
            if j:
                fh.write(",\n")
            head = self._conversation_head(conv)
            if conv.mode == "missing":
                fh.write(enc(head))
                continue
            if conv.mode == "null":
                head["MessageList"] = None
                fh.write(enc(head))
                continue
            fh.write(enc(head)[:-1] + ', "MessageList": [')
            bad_counter = self._write_conversation(conv, fh, bad_counter)
            fh.write("]}")
        fh.write("\n]}\n")

    def _conversation_head(self, conv: _Conv) -> dict:
        rng = self.rng
        version: int | float = conv.end_t // TICKS_PER_MS + rng.randrange(1000, 10**7)
        if conv.float_version:
            version = float(version)
        last = self._iso(conv.end_t, 3) if conv.n and rng.random() < 0.8 else None
        end_ms = conv.end_t // TICKS_PER_MS
        horizon = f"{end_ms};{end_ms + 12};{rng.getrandbits(62)}" if rng.random() < 0.6 else None
        props = None if rng.random() < 0.05 else {
            "conversationblocked": rng.random() < 0.02, "lastimreceivedtime": last, "consumptionhorizon": horizon,
            "conversationstatus": rng.choice((None, None, None, "Accepted", "AcceptPendingRecipient", "AcceptPendingSender"))}
        thread = None
        if conv.kind == "group":
            mris = [self.user_id] + [p.mri for p in conv.others]
            members: Any
            if conv.shape == "string":
                members = _COMPACT(mris)
            elif conv.shape == "list":
                members = mris
            elif conv.shape == "objects":
                members = [{"MemberMri": m, "Role": "Admin" if i == 0 else "User"} for i, m in enumerate(mris)]
            else:
                members = None
            thread = {"membercount": len(mris), "members": members, "topic": conv.display_name or ""}
            thread.update(conv.extra_thread)
        return {"id": conv.id, "displayName": conv.display_name, "version": version, "properties": props,
                "threadProperties": thread}

    def _write_conversation(self, conv: _Conv, fh: Any, bad_counter: int) -> int:
        """Messages newest first, with edits, server copies, swaps and injected bad records."""
        r = self.r
        enc = _ENCODE
        pick_type = self._tables.get(conv.id) or self._tables.get(conv.kind) or self._tables["bot"]
        p_rich, others, cum = pick_type
        builders = self._builders
        by_type = self.by_type
        features = conv.features
        cid = conv.id
        owner = self.owner
        owner_share = 0.5 if conv.kind == "one_to_one" else 0.25
        if conv.kind == "special" and cid in ("48:notes", "48:drafts"):
            owner_share = 1.0
        peers = conv.others or [owner]
        n_peers = len(peers)
        float_version = conv.float_version
        n = conv.n
        mean_gap = 0.9 * (conv.end_t - conv.start_t) / (n + 1)
        floor_t = self.start_t
        t = conv.end_t - int(mean_gap * r())
        last_id_ms = 10**15
        out: list[str] = []
        sep = "\n"
        held: list[dict] | None = None
        bad = conv.bad
        for i in range(n):
            if bad and i in bad:
                for kind in bad[i]:
                    out.append(sep + enc(self._bad_record(conv, kind, bad_counter, t // TICKS_PER_MS)))
                    sep = ",\n"
                    bad_counter += 1
            f = features.get(i)
            # time, fraction digits, id
            t -= int(mean_gap * -math.log(1.0 - r()))
            if t < floor_t:
                t = floor_t
            roll = r()
            fd = 3 if roll < 0.85 else int(roll * 80) % 8
            if f and "frac" in f:
                fd = int(f["frac"])
            t -= t % (10 ** (7 - fd))
            ms = t // TICKS_PER_MS
            id_ms = ms if ms < last_id_ms else last_id_ms - 1
            last_id_ms = id_ms
            idform = f.get("idform") if f else None
            roll = r()
            if idform == "nonnumeric" or (idform is None and roll < 0.003):
                mid = f"{self._hex(32)}-{id_ms}"
            elif idform == "long" or (idform is None and roll < 0.006):
                mid = f"{id_ms:013d}{self.rng.getrandbits(39) % 10**12:012d}"
            else:
                mid = str(id_ms)
            # sender
            from_form = f.get("from") if f else None
            if from_form or r() < owner_share:
                sender = owner
                roll = r()
                if from_form == "url" or (from_form is None and roll < 0.04):
                    frm = self.owner_url
                elif from_form == "bare" or (from_form is None and roll < 0.1):
                    frm = self.owner_bare
                else:
                    frm = self.owner_canonical
                dn = None if r() < 0.5 else ""
            else:
                sender = peers[int(r() * n_peers)]
                frm = sender.from_
                dn = sender.name
            # type and content
            recipe = f.get("recipe") if f else None
            if recipe:
                mtype, content, props, refs = builders[recipe](conv, sender, id_ms)
            elif conv.album_left:
                conv.album_left -= 1
                mtype, content, props, refs = self._m_album_photo(conv, sender, id_ms)
            else:
                roll = r()
                if roll < p_rich:
                    if roll < p_rich * 0.78 and cid != "48:mentions":
                        mtype, content, props, refs = "RichText", self._text(), None, None
                    else:
                        mtype, content, props, refs = builders["RichText"](conv, sender, id_ms)
                else:
                    k = bisect.bisect(cum, roll - p_rich)
                    mtype = others[k if k < len(others) else -1]
                    mtype, content, props, refs = builders[mtype](conv, sender, id_ms)
                if content and r() < 0.02 and mtype[:8] == "RichText":
                    props = self._decorate(conv, props, id_ms)
            version: int | float = id_ms
            if float_version or (f and "version" in f):
                version = float(id_ms)
            rec = {"id": mid, "displayName": dn, "originalarrivaltime": self._iso(t, fd), "messagetype": mtype,
                   "version": version, "content": content, "conversationid": cid, "from": frm,
                   "properties": props, "amsreferences": refs}
            by_type[mtype] = by_type.get(mtype, 0) + 1
            dup = f.get("dup") if f else None
            if dup is None:
                roll = r()
                if roll < 0.017:
                    dup = ("edit_final_first", "edit_final_last", "server_before", "server_after",
                           "type_change")[int(roll * 294) % 5]
            if dup:
                recs = self._duplicates(rec, dup, sender, id_ms)
            else:
                recs = [rec]
            self.records += len(recs)
            swap = (f.get("order") == "swap") if f else r() < 0.002
            if held is not None:
                for x in recs + held:
                    out.append(sep + enc(x))
                    sep = ",\n"
                held = None
            elif swap and i < n - 1:
                held = recs
            else:
                for x in recs:
                    out.append(sep + enc(x))
                    sep = ",\n"
            if len(out) >= 2048:
                fh.write("".join(out))
                out.clear()
        if held:
            for x in held:
                out.append(sep + enc(x))
                sep = ",\n"
        for pos in sorted(p for p in bad if p >= n):
            for kind in bad[pos]:
                out.append(sep + enc(self._bad_record(conv, kind, bad_counter, t // TICKS_PER_MS)))
                sep = ",\n"
                bad_counter += 1
        if out:
            fh.write("".join(out) + "\n")
        return bad_counter

    def _duplicates(self, rec: dict, dup: str, sender: _Person, id_ms: int) -> list[dict]:
        """Two records for one message: an edit (final has the higher version) or a blank server copy
        (lower version). Only the final record's type and content count in the truth."""
        as_float = isinstance(rec["version"], float)
        if dup.startswith("server"):
            copy = dict(rec)
            copy["content"] = ""
            copy["properties"] = {"isserversidegenerated": "True"}
            copy["amsreferences"] = None
            v = id_ms - 1 - int(self.r() * 5000)
            copy["version"] = float(v) if as_float else v
            return [copy, rec] if dup == "server_before" else [rec, copy]
        older = dict(rec)
        if rec["messagetype"] == "RichText":
            older["content"] = f'{self._text()} <at id="{sender.mri}">{sender.name}</at>'  # the edit removed it
        elif not rec["content"]:
            older["content"] = self._text()
        older["properties"] = None
        if dup == "type_change":
            older["messagetype"] = "Text" if rec["messagetype"] != "Text" else "RichText"
            older["content"] = self._pick(_PLAIN)
        edit = id_ms + 1000 + int(self.r() * 3_600_000)
        props = dict(rec["properties"] or {})
        props["edittime"] = str(edit)
        rec["properties"] = props
        rec["version"] = float(edit) if as_float else edit
        if rec["messagetype"] == "RichText" and rec["content"] and "<e_m " not in rec["content"]:
            rec["content"] = rec["content"] + self._e_m(edit, sender.mri)
        return [rec, older] if dup in ("edit_final_first", "type_change") else [older, rec]

    # ------------------------------------------------------------------- media

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


def _pack(kind: str, out: Path, tmp: Path, gen: _Generator, media: bool, mtime: int) -> int:
    """Put messages.json (and endpoints, media) into the archive; returns the media files written."""
    written = 0
    expiry = gen.export_date + ":00Z"
    extras: list[tuple[str, bytes]] = [("endpoints.json", gen.endpoints_json())]

    def entries() -> Iterator[tuple[str, bytes, bool]]:
        yield from ((n, b, False) for n, b in extras)
        if media:
            yield from gen.media_entries(expiry)

    if kind in ("tar", "tar.gz"):
        with open(out, "wb") as raw:
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=1) if kind == "tar.gz" else None
            try:
                with tarfile.open(fileobj=gz or raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    info = tarfile.TarInfo("messages.json")
                    info.size = tmp.stat().st_size
                    info.mtime = mtime
                    info.mode = 0o644
                    with open(tmp, "rb") as src:
                        tar.addfile(info, src)
                    for name, data, is_file in entries():
                        ti = tarfile.TarInfo(name)
                        ti.size = len(data)
                        ti.mtime = mtime
                        ti.mode = 0o644
                        tar.addfile(ti, BytesIO(data))
                        tar.members.clear()  # TarFile keeps every TarInfo otherwise: memory would grow with media
                        written += is_file
            finally:
                if gz is not None:
                    gz.close()
        return written
    stamp = time.gmtime(mtime)[:6]
    os.utime(tmp, (mtime, mtime))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
        zf.write(tmp, "messages.json")
        for name, data, is_file in entries():
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data)
            written += is_file
    return written


def generate_export(path: str | Path, *, messages: int = 2000, seed: int = 0, archive: str | None = None,
                    heavy_share: float = 0.3, media: bool = True, bad_records: int = 0,
                    owner: str | None = None, start: datetime | None = None,
                    end: datetime | None = None) -> ExportTruth:
    """Write a realistic export to ``path`` and return what a correct ETL must find in it.

    ``messages`` is the exact number of distinct (conversationid, id) pairs; duplicates and
    ``bad_records`` come on top. ``archive`` is "tar", "tar.gz", "zip" or "json" (a bare
    messages.json), inferred from the suffix when omitted.
    """
    if messages < 0 or bad_records < 0:
        raise ValueError("messages and bad_records must be >= 0")
    out = Path(path)
    kind = archive or _infer_archive(out)
    if kind not in ("tar", "tar.gz", "zip", "json"):
        raise ValueError(f"unknown archive kind {kind!r}")
    gen = _Generator(messages=messages, seed=seed, heavy_share=heavy_share, bad_records=bad_records, owner=owner,
                     start=start or DEFAULT_START, end=end or DEFAULT_END)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".messages.json.tmp")
    tmp = Path(tmp_name)
    media_files = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            gen.write_messages(fh)
        if kind == "json":
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        else:
            media_files = _pack(kind, out, tmp, gen, media, gen.end_t // TICKS)
    finally:
        if tmp.exists():
            tmp.unlink()
    rows = dict(gen.rows)
    rows["media_files"] = media_files
    kinds = dict.fromkeys(("one_to_one", "group", "bot", "special"), 0)
    for c in gen.convs:
        kinds[conversation_kind(c.id)] += 1
    return ExportTruth(
        path=out, user_id=gen.user_id, export_date=gen.export_date, conversations=len(gen.convs),
        conversation_kinds=kinds, message_records=gen.records, messages=messages,
        by_type=dict(sorted(gen.by_type.items())), rows=rows,
        heavy_conversation_id=gen.heavy.id if gen.heavy and gen.heavy.n else None,
        heavy_messages=gen.heavy.n if gen.heavy else 0, rejected=bad_records)


def main(argv: list[str] | None = None) -> int:
    """CLI: write an export and print its truth as JSON."""
    p = argparse.ArgumentParser(prog="python -m etl_assets.etl.samples", description=__doc__.splitlines()[0])
    p.add_argument("out_path", type=Path)
    p.add_argument("--messages", type=int, default=2000, help="distinct messages (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--archive", choices=("tar", "tar.gz", "zip", "json"), default=None,
                   help="default: from the file suffix")
    p.add_argument("--no-media", action="store_true", help="no media/ folder in the archive")
    p.add_argument("--heavy-share", type=float, default=0.3, help="share of messages in one big group (0 disables)")
    p.add_argument("--bad-records", type=int, default=0, help="unusable records to inject")
    p.add_argument("--owner", default=None, help="export owner id, e.g. 8:live:.cid.0123abcd")
    a = p.parse_args(argv)
    started = time.perf_counter()
    truth = generate_export(a.out_path, messages=a.messages, seed=a.seed, archive=a.archive, media=not a.no_media,
                            heavy_share=a.heavy_share, bad_records=a.bad_records, owner=a.owner)
    print(json.dumps(truth.to_json(), indent=2, ensure_ascii=False))
    print(f"generated {truth.message_records} records in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
