"""The search syntax, parsed into terms before any SQL is built.

Like Skyperious: ``word`` (every word must match), ``"exact phrase"``, ``-word`` or
``-"phrase"`` to exclude, and filters ``from:NAME``, ``chat:NAME``, ``date:2021``,
``date:2021-03``, ``date:2021-03-05``, ``date:2021-03..2021-06`` (open ends allowed:
``date:2021..``), ``type:call``. Filter values may be quoted (``from:"Ana Lima"``) and
negated (``-type:call``). Repeating a filter means any of its values; different filters
must all hold. A query that cannot be read raises :class:`QuerySyntaxError`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from .errors import ReadInputError


class QuerySyntaxError(ReadInputError):
    """The search query cannot be read; the message says where and why."""


FILTERS = ("from", "chat", "date", "type")

MESSAGE_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: name -> (exact message types, message type prefixes)
    "text": (("RichText", "Text", "RichText/Html"), ()),
    "call": (("Event/Call",), ()),
    "file": (("RichText/Media_GenericFile", "RichText/Files"), ()),
    "picture": (("RichText/UriObject",), ()),
    "video": (("RichText/Media_Video",), ()),
    "audio": (("RichText/Media_AudioMsg",), ()),
    "recording": (("RichText/Media_CallRecording",), ()),
    "media": (("RichText/UriObject", "RichText/Media_Video", "RichText/Media_AudioMsg", "RichText/Media_GenericFile",
               "RichText/Files", "RichText/Media_Album", "RichText/Media_CallRecording"), ()),
    "album": (("RichText/Media_Album",), ()),
    "card": (("RichText/Media_Card",), ()),
    "moji": (("RichText/Media_FlikMsg",), ()),
    "contact": (("RichText/Contacts",), ()),
    "location": (("RichText/Location",), ()),
    "poll": (("Poll",), ()),
    "translation": (("Translation", "TranslationSettings"), ()),
    "event": ((), ("ThreadActivity/",)),
}
"""What ``type:`` accepts, mapped to the ``messages.message_type`` values that exist in exports."""
_TYPE_ALIASES = {"photo": "picture", "image": "picture", "voice": "audio", "chat": "text", "message": "text",
                 "member": "event", "contacts": "contact", "files": "file", "pictures": "picture", "calls": "call"}


@dataclass(frozen=True)
class Term:
    """One part of a query. ``kind``: word, phrase, from, chat, date or type."""

    kind: str
    value: str
    negated: bool = False
    start: date | None = None
    end: date | None = None
    """For ``date:``: first day included and first day after the range (``None``: open)."""


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...]

    def of(self, kind: str, negated: bool = False) -> list[Term]:
        return [t for t in self.terms if t.kind == kind and t.negated == negated]

    @property
    def text_terms(self) -> list[Term]:
        """Words and phrases that must match: the ones a snippet highlights."""
        return [t for t in self.terms if t.kind in ("word", "phrase") and not t.negated]


def parse_query(text: str) -> Query:
    """Terms of ``text`` in order; at least one term, every filter value readable."""
    terms: list[Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        match = re.match(r"([A-Za-z]+):", text[i:])
        key = match.group(1).lower() if match else None
        if key in FILTERS:
            i += len(match.group(0))
            if i < n and text[i] == '"':
                value, i = _quoted(text, i)
            else:
                value, i = _bare(text, i)
            if not value.strip():
                raise QuerySyntaxError(f"search: {key}: needs a value (at position {start + 1})")
            terms.append(_filter(key, value.strip(), negated))
        elif i < n and text[i] == '"':
            value, i = _quoted(text, i)
            if any(ch.isalnum() for ch in value):
                terms.append(Term("phrase", value.strip(), negated))
        else:
            value, i = _bare(text, i)
            if any(ch.isalnum() for ch in value):
                terms.append(Term("word", value, negated))
    if not terms:
        raise QuerySyntaxError("search: nothing to search for (give words, \"a phrase\" or a filter such as from:NAME)")
    return Query(text, tuple(terms))


def _quoted(text: str, i: int) -> tuple[str, int]:
    end = text.find('"', i + 1)
    if end < 0:
        raise QuerySyntaxError(f'search: a quote opened at position {i + 1} is not closed')
    return text[i + 1 : end], end + 1


def _bare(text: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(text) and not text[j].isspace():
        if text[j] == '"':
            raise QuerySyntaxError(f"search: a quote in the middle of a word at position {j + 1}")
        j += 1
    return text[i:j], j


def _filter(key: str, value: str, negated: bool) -> Term:
    if key == "type":
        name = _TYPE_ALIASES.get(value.lower(), value.lower())
        if name not in MESSAGE_TYPES:
            raise QuerySyntaxError(f"search: type:{value} is not a type ({', '.join(sorted(MESSAGE_TYPES))})")
        return Term("type", name, negated)
    if key == "date":
        first, after = _date_range(value)
        return Term("date", value, negated, first, after)
    return Term(key, value, negated)


def _date_range(value: str) -> tuple[date | None, date | None]:
    """``2021``, ``2021-03``, ``2021-03-05`` or ``A..B`` (either end may be left out)."""
    if ".." in value:
        left, _, right = value.partition("..")
        if not left and not right:
            raise QuerySyntaxError("search: date:.. needs at least one end (date:2021.. or date:..2021-06)")
        first = _period(left)[0] if left else None
        after = _period(right)[1] if right else None
        if first and after and first >= after:
            raise QuerySyntaxError(f"search: date:{value} ends before it starts")
        return first, after
    return _period(value)


def _period(value: str) -> tuple[date, date]:
    """First day of a year, month or day and the first day after it."""
    try:
        if re.fullmatch(r"\d{4}", value):
            y = int(value)
            return date(y, 1, 1), date(y + 1, 1, 1)
        if re.fullmatch(r"\d{4}-\d{1,2}", value):
            y, m = map(int, value.split("-"))
            return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1]) + timedelta(days=1)
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", value):
            day = date(*map(int, value.split("-")))
            return day, day + timedelta(days=1)
    except (ValueError, OverflowError):
        pass
    raise QuerySyntaxError(f"search: date:{value} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or FROM..TO)")
