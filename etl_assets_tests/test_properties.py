"""Property tests: the content parser and the Transformer on generated input.

- ``parse_content`` on any string and any message type never raises (the parser itself,
  not only its safety net), gives storable text for storable input, never loses a word
  of visible text, and gives plain text back unchanged (stripped).
- The Extractor's byte reader gives the same bytes whatever sizes it is read in (escapes
  and UTF-8 sequences are never cut), and valid UTF-8 when repairing.
- The Transformer, on an export whose messages are arbitrary JSON values (or valid
  messages with arbitrary JSON in any field), never raises, and every message object
  ends up either in ``messages`` or in ``rejected_records`` (with location and reason).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import tempfile
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl_assets.etl.config import ETLConfig
from etl_assets.etl.transform import content as content_module
from etl_assets.etl.transform.content import ParsedContent, parse_content
from etl_assets.etl.extract import MARK, Extractor
from etl_assets.etl.extract.repair import _MemberReader
from etl_assets.etl.transform.transformer import Transformer
from etl_assets.etl.values import storable_text

KNOWN_TYPES = [
    "RichText", "Text", "RichText/Html", "RichText/UriObject", "RichText/Media_GenericFile", "RichText/Media_Video",
    "RichText/Media_AudioMsg", "RichText/Media_CallRecording", "RichText/Media_Card", "RichText/Media_Album",
    "RichText/Contacts", "RichText/Location", "RichText/Files", "RichText/ScheduledCallInvite", "Poll", "Event/Call",
    "ThreadActivity/AddMember", "ThreadActivity/DeleteMember", "ThreadActivity/TopicUpdate",
    "ThreadActivity/PictureUpdate", "ThreadActivity/RoleUpdate", "ThreadActivity/MemberJoined", "Notice", "PopCard",
    "Translation", "Event/BingBot",
]
MESSAGE_TYPES = st.one_of(st.none(), st.sampled_from(KNOWN_TYPES), st.text(max_size=30))

ANY_CHAR = st.characters(blacklist_categories=())  # surrogates and NUL included
MARKUP_PIECES = st.sampled_from(
    ["<", ">", "</", "/>", "&", ";", "&amp;", "&#0;", "&#xD83D;", "&#55357;&#56832;", "&#x110000;", "<b>", "</b>",
     "<a href='", "https://x.example/p?q=1", "<at id=\"8:live:a\">", "</at>", "<quote author=\"8:a\" timestamp=\"9\">",
     "</quote>", "<legacyquote>", "</legacyquote>", "<e_m ts=\"1600000000\" a=\"8:a\" t=\"61\"/>", "<URIObject type=\"",
     "Picture.1\" uri=\"https://api.asm.skype.com/v1/objects/0-x\">", "<OriginalName v=\"a.jpg\"/>", "</URIObject>",
     "<partlist type=\"ended\" callId=\"c\"><part identity=\"8:a\"><name>A</name><duration>1.5</duration></part>",
     "</partlist>", "<addmember><eventtime>1594056032575</eventtime><initiator>8:a</initiator><target>8:b</target>",
     "</addmember>", "<Swift b64=\"", "eyJ0eXBlIjoiYSIsInRpdGxlIjoiXHUwMDAwXHVkODAwIn0=", "\"/>", "{\"initiator\":",
     "\"\\u0000\\ud800\"", "}", "<location latitude=\"1\" longitude=\"2\" address=\"",
     "<contacts><c t=\"s\" s=\"8:x\" f=\"",
     "</contacts>", "\x00", "\ud800", "\n", " ", "<p>", "<br>", "<!--", "-->", "<![CDATA[", "]]>"]
)
CONTENT = st.one_of(
    st.text(alphabet=ANY_CHAR, max_size=200),
    st.lists(st.one_of(MARKUP_PIECES, st.text(alphabet=ANY_CHAR, max_size=5)), max_size=40).map("".join),
)


def strings_of(value: object) -> list[str]:
    """Every string inside a parse result (dataclasses, lists, dicts)."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value):
        return [s for f in dataclasses.fields(value) for s in strings_of(getattr(value, f.name))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings_of(v)]
    if isinstance(value, dict):
        return [s for kv in value.items() for v in kv for s in strings_of(v)]
    return []


# --------------------------------------------------------------------------- parse_content


_CARD = base64.b64encode(
    json.dumps({"attachments": [{"content": {"title": "a\x00b\ud800"}}]}).encode()
).decode()


@settings(max_examples=300, deadline=None)
@given(message_type=MESSAGE_TYPES, content=CONTENT)
@example("ThreadActivity/MemberJoined", '{"initiator":"8:a\\u0000","members":[{"id":"8:b\\ud800"}],"value":"\\u0000"}')
@example("ThreadActivity/AddMember", '{"members": ' + "[" * 5000 + "]" * 5000 + "}")
@example("RichText/Media_Card", f'<URIObject type="SWIFT.1" uri="https://x/o/0-a"><Swift b64="{_CARD}"/></URIObject>')
def test_parse_content_never_raises_and_keeps_storable_text_storable(message_type, content) -> None:
    result = content_module._parse(message_type, content)  # the parser itself, not its safety net
    assert parse_content(message_type, content) == result
    assert result.text == result.text.strip()
    if storable_text(content):
        assert all(storable_text(s) for s in strings_of(result)), result


@settings(max_examples=100, deadline=None)
@given(message_type=st.text(max_size=20), content=st.one_of(st.none(), st.integers(), st.binary(max_size=50)))
def test_parse_content_takes_any_content_value(message_type, content) -> None:
    """No content is empty text; a number is shown as its digits, with no structure; bytes give stripped text."""
    result = parse_content(message_type, content)
    if content is None:
        assert result == ParsedContent(text="")
    elif isinstance(content, int):
        assert result == ParsedContent(text=str(content))
    assert result.text == result.text.strip()


WORDS = st.lists(st.from_regex(r"[a-z]{2,6}", fullmatch=True), min_size=1, max_size=10, unique=True).map(
    lambda ws: [f"zq{w}9" for w in ws]
)


def _entities(word: str) -> str:
    return "".join(f"&#{ord(c)};" if i % 2 else f"&#x{ord(c):x};" for i, c in enumerate(word))


WRAPS = {
    "plain": "{w}",
    "bold": "<b>{w}</b>",
    "italic unclosed": "<i>{w}",
    "strike": "<s>{w}</s>",
    "underline": "<u>{w}</u>",
    "span": "<span style='color:red'>{w}</span>",
    "font": '<font color="red">{w}</font>',
    "pre": '<pre raw_pre="{{code}}">{w}</pre>',
    "link": '<a href="https://x.example/{w}">{w}</a>',
    "emoticon": '<ss type="smile">{w}</ss>',
    "mention": '<at id="8:live:{w}">{w}</at>',
    "everyone": '<at id="*">{w}</at>',
    "quote": (
        '<quote author="8:live:x" authorname="X" timestamp="1600529710" conversation="8:live:x" messageid="1">'
        "<legacyquote>[1600529710] X: </legacyquote>{w}<legacyquote>\n\n&lt;&lt;&lt; </legacyquote></quote>"
    ),
    "unclosed quote": '<quote author="8:live:x">{w}',
    "entities": "{e}",
    "paragraph": "<p>{w}</p>",
    "div": "<div>{w}</div>",
    "unknown tag": "<attribution>{w}</attribution>",
    "context": '<context id="c">{w}</context>',
    "edited": '<e_m ts="1600000000" a="8:live:x" t="61"/>{w}',
    "stray closer": "</b>{w}</span>",
    "emoji": '<emoji id="smile" alt=":)">{w}</emoji>',
}
JOINERS = st.sampled_from(
    [" ", "\n", "<br>", "<br/>", "&nbsp;", " &amp; ", " &lt;3 ", "<p></p>", "\t", " &quot;", "<hr/>"]
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(), words=WORDS, message_type=st.sampled_from(["RichText", "RichText/Html", "Text", None, "Event/X"])
)
def test_visible_words_are_never_lost(data, words, message_type) -> None:
    parts = []
    for i, word in enumerate(words):
        if i:
            parts.append(data.draw(JOINERS))
        wrap = data.draw(st.sampled_from(sorted(WRAPS)))
        parts.append(WRAPS[wrap].format(w=word, e=_entities(word)))
    content = "".join(parts)
    result = parse_content(message_type, content)
    haystack = "\n".join(strings_of(result))
    for word in words:
        assert word in haystack or (message_type == "Text" and _entities(word) in haystack), (word, content, result)


@settings(max_examples=300, deadline=None)
@given(message_type=MESSAGE_TYPES, content=st.text(alphabet=ANY_CHAR, max_size=300))
def test_plain_text_comes_back_stripped(message_type, content) -> None:
    if "<" in content or "&" in content:
        return
    if content.lstrip().startswith("Edited previous message: "):
        return  # documented: the old edit prefix is dropped
    if (message_type or "").lower().startswith("threadactivity/") and content.lstrip().startswith("{"):
        return  # documented: newer thread activity bodies are JSON
    assert parse_content(message_type, content).text == content.strip()


# --------------------------------------------------------------------------- the Extractor's reader

PIECES = st.sampled_from(
    [b"a", b" ", b'"', b"\\", b"\\\\", b'\\"', b"\\ud83d", b"\\ude00", b"\\uDBFF\\uDFFF", b"\\u0041", b"\\n",
     b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xff", b"\xed\xa0\x80", b"\xe2\x82", b"\xef\xbb\xbf"]
)


def _read_all(data: bytes, size: int, repair: bool) -> bytes:
    reader = _MemberReader(io.BytesIO(data), None, "test", repair_utf8=repair)
    parts = []
    while chunk := reader.read(size):
        parts.append(chunk)
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(PIECES, max_size=80).map(b"".join), size=st.integers(1, 40), repair=st.booleans())
def test_reader_output_does_not_depend_on_read_sizes(data, size, repair) -> None:
    whole = _read_all(data, 1 << 16, repair)
    assert _read_all(data, size, repair) == whole
    if repair:
        whole.decode("utf-8")  # invalid bytes are marked, never passed on
    clean = b"\\u" not in data and data.isascii()
    if clean:
        assert whole == data


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.sampled_from(["\U0001F600", "\U0001F44D", "\U0010FFFF", "a"]), min_size=1, max_size=30),
       size=st.integers(1, 30))
def test_reader_keeps_escaped_surrogate_pairs(pairs, size) -> None:
    text = "".join(pairs)
    data = json.dumps([text]).encode()  # ASCII: pairs written as \ud83d\ude00 escapes
    out = _read_all(data, size, repair=False)
    assert out == data and json.loads(out) == [text]
    lone = json.dumps([text + "\ud800", "\udc00" + text]).encode()
    marked = json.loads(_read_all(lone, size, repair=False))
    assert marked[0].startswith(text) and MARK in marked[0] and MARK in marked[1]


# --------------------------------------------------------------------------- the Transformer

INT64 = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)  # yajl rejects larger ones (whole file)
SCALARS = st.one_of(
    st.none(), st.booleans(), INT64, st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=ANY_CHAR, max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(alphabet=ANY_CHAR, max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2020-09-19T14:01:50.609Z", "2020-09-19T14:01:50.6091234Z", "2020-09-19T14:01:50Z",
                     "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2020-02-30T00:00:00Z", ""]),
)
PROPERTIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "edittime": st.one_of(INT64.map(str), JSON),
            "deletetime": st.one_of(INT64.map(str), JSON),
            "emotions": st.one_of(
                JSON, JSON.map(json.dumps), st.just('[{"key":"like","users":[{"mri":"8:a","time":1}]}]')
            ),
            "urlpreviews": st.one_of(JSON, JSON.map(json.dumps)),
            "callLog": st.one_of(JSON, JSON.map(json.dumps)),
            "isserversidegenerated": st.one_of(st.just("True"), JSON),
            "albumId": JSON,
        },
    ),
)
MOSTLY_VALID = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(alphabet=ANY_CHAR, min_size=1, max_size=20), INT64, JSON),
        "conversationid": st.one_of(st.just("8:live:bob"), st.just("19:g@thread.skype"), JSON),
        "originalarrivaltime": st.one_of(TIMES, JSON),
    },
    optional={
        "messagetype": st.one_of(st.sampled_from(KNOWN_TYPES), JSON),
        "content": st.one_of(CONTENT, JSON),
        "from": st.one_of(st.text(alphabet=ANY_CHAR, max_size=20), JSON),
        "displayName": JSON,
        "version": st.one_of(INT64, st.floats(allow_nan=False, allow_infinity=False), JSON),
        "properties": PROPERTIES,
        "amsreferences": JSON,
    },
)
MESSAGES = st.lists(st.one_of(JSON, MOSTLY_VALID, MOSTLY_VALID), max_size=8)
CONVERSATION_FIELDS = st.fixed_dictionaries(
    {"id": st.one_of(st.just("8:live:bob"), st.just("19:g@thread.skype"), st.text(alphabet=ANY_CHAR, max_size=10))},
    optional={
        "displayName": JSON,
        "version": st.one_of(INT64, JSON),
        "properties": JSON,
        "threadProperties": st.one_of(
            JSON, st.fixed_dictionaries({}, optional={"members": st.one_of(JSON, JSON.map(json.dumps)), "topic": JSON})
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conversations=st.lists(st.tuples(CONVERSATION_FIELDS, MESSAGES), min_size=1, max_size=3))
def test_transformer_puts_every_message_in_messages_or_rejected(conversations) -> None:
    doc = {
        "userId": "8:live:me",
        "exportDate": "2025-01-01T00:00",
        "conversations": [{**fields, "MessageList": messages} for fields, messages in conversations],
    }
    total = sum(len(messages) for _, messages in conversations)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "messages.json"
        path.write_text(json.dumps(doc, ensure_ascii=True))
        out = Path(d) / "out"
        Transformer(out, export_sha256="0" * 64, config=ETLConfig(workers=1)).run(Extractor(path))
        rows = _rows(out, "messages")
        rejected = _rows(out, "rejected_records")
    rejected_messages = [r for r in rejected if ".MessageList[" in r["location"]]
    assert len(rows) + len(rejected_messages) == total
    for r in rejected:
        assert r["location"].startswith("conversations[") and r["reason"] and r["raw"]
    for r in rows:
        assert all(storable_text(v) for v in r.values() if isinstance(v, str)), r


def _rows(out: Path, table: str) -> list[dict]:
    rows: list[dict] = []
    for part in sorted((out / table).glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows
