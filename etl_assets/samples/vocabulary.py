"""The vocabulary of generated exports: names, phrases, type shares and media kinds.

Kept apart from the code that uses it so the writers read as logic, and so the tables of
message types and their shares (what makes an export look real) are in one place.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

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

CHILD_TABLES = ROW_KEYS[:-1] + ("links", "translations")
"""Tables with rows per message; the generator counts each one's rows per message as it writes them."""

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
_NOTICE_URLS = 2  # the @type and the button: a notice is shown as text, so both are links


def _readable(text: str) -> str:
    """What a person reads of a phrase: the only entities the phrases use, decoded."""
    return text.replace("&apos;", "'").replace("&amp;", "&")
