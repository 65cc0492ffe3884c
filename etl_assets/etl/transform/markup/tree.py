"""Lexing Skype's XML-ish markup into a lenient element tree, with HTML entities decoded.

Malformed input never raises: unclosed tags close at the end, stray closing tags are text,
nesting deeper than ``_MAX_DEPTH`` is flattened.
"""

from __future__ import annotations

import re
from html.entities import html5 as _HTML5

# --------------------------------------------------------------------------- lexing

_TAG_RE = re.compile(
    r"<(?:(/?)([A-Za-z][\w:.\-]*)((?:\"[^\"<]*\"|'[^'<]*'|[^<>\"'])*|[^<>]*)>"
    r"|(!\[CDATA\[|!--)|[!?][^<>]*>)",
)
_ATTR_RE = re.compile(r"""([^\s=/<>"']+)(?:\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^\s"'>]+)))?""")
_SINGLE_ENTITY = r"&(?:#[xX]([0-9a-fA-F]{1,8})|#([0-9]{1,10})|([A-Za-z][A-Za-z0-9]{0,31}));"
_SINGLE_ENTITY_RE = re.compile(_SINGLE_ENTITY)
_ENTITY_RE = re.compile(
    r"&#(?:[xX]([dD][89abAB][0-9a-fA-F]{2})|(5[5-6][0-9]{3}));&#(?:[xX]([dD][c-fC-F][0-9a-fA-F]{2})|(5[6-7][0-9]{3}));|"
    + _SINGLE_ENTITY
)
_WS_RE = re.compile(r"[ \t\r\n\f\v]+")
_HTML_LINES_RE = re.compile(r"[ \t]*\n[ \t]*")
_MANY_NL_RE = re.compile(r"\n{3,}")
_URL_RE = re.compile(r"\bhttps?://[^\s<>\"'\u00a0\u3000]+", re.I)
_OBJECT_ID_RE = re.compile(r"/objects/([^/?#\s]+)")
_SKYPE_URL_RE = re.compile(r"^\s*https?://(?:[\w-]+\.)*(?:skype\.com|skype\.net|skypeassets\.com)(?:[:/?#]|$)", re.I)
_BOILERPLATE_RE = re.compile(r"^To view this\b[^:\n]*:\s*(?:https?://\S*)?\s*", re.I)
_LQ_PREFIX_RE = re.compile(
    r"^\s*\[(?:\d{9,13}|\d{1,2}:\d{2}(?::\d{2})?"
    r"|\d{1,4}[./-]\d{1,2}[./-]\d{1,4},?\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)\]"
    r"(?:[ \t]*[^\n:\[\]]{1,200}:)?[ \t]*"
)
_LQ_SUFFIX_RE = re.compile(r"\s*<<<\s*$")
_E_M_TEXT_RE = re.compile(r"<e_m\b[^<>]*>?", re.I)
_ANY_TAG_RE = re.compile(r"<[A-Za-z/!?][^<>]*>")

_EDIT_PREFIX = "Edited previous message: "
_MAX_DEPTH = 150
_NO_ATTRS: dict[str, str] = {}

_VOID = frozenset(
    "br hr img e_m meta input wbr link source col area base embed param track originalname filesize swift".split()
)
_BLOCK = frozenset(
    "p div li ul ol dl dt dd tr table thead tbody tfoot h1 h2 h3 h4 h5 h6 blockquote pre hr "
    "section article header footer nav aside figure figcaption address".split()
)
_INLINE = frozenset(
    "b i s u em strong span font code del ins strike sub sup small big mark a at ss "
    "abbr cite q tt kbd var label c_i".split()
)
_CAPTION_TAGS = frozenset(
    "b i s u em strong span font code del ins strike sub sup small big mark a at ss br p div pre emoji".split()
)
_THREAD_TYPES = {
    "addmember": "member_added",
    "deletemember": "member_removed",
    "topicupdate": "topic_changed",
    "pictureupdate": "picture_changed",
    "roleupdate": "role_changed",
    "historydisclosedupdate": "history_disclosed_changed",
    "joiningenabledupdate": "joining_enabled_changed",
}
_THREAD_KEYS = frozenset(("eventtime", "initiator"))
_KIND_BY_MESSAGE_TYPE = {
    "richtext/media_genericfile": "file",
    "richtext/media_video": "video",
    "richtext/media_audiomsg": "voice_message",
    "richtext/media_callrecording": "call_recording",
    "richtext/media_flikmsg": "moji",
    "richtext/media_card": "card",
    "richtext/media_album": "album",
    "richtext/scheduledcallinvite": "scheduled_call",
}


def _unescape_entity(m: re.Match) -> str:
    hi_hex, hi_dec, lo_hex, lo_dec, hex_, dec, name = m.groups()
    if hi_hex is None and hi_dec is None:
        return _reference(hex_, dec, name, m.group(0))
    hi = int(hi_hex, 16) if hi_hex is not None else int(hi_dec)
    lo = int(lo_hex, 16) if lo_hex is not None else int(lo_dec)
    if 0xD800 <= hi <= 0xDBFF and 0xDC00 <= lo <= 0xDFFF:
        return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    return _SINGLE_ENTITY_RE.sub(_unescape_single, m.group(0))


def _unescape_single(m: re.Match) -> str:
    return _reference(*m.groups(), m.group(0))


def _reference(hex_: str | None, dec: str | None, name: str | None, raw: str) -> str:
    """One character reference; anything unknown, NUL, a surrogate or out of range stays raw."""
    if name is not None:
        return _HTML5.get(name + ";", raw)
    cp = int(hex_, 16) if hex_ is not None else int(dec)  # type: ignore[arg-type]
    if 0x80 <= cp <= 0x9F:
        try:
            return bytes((cp,)).decode("cp1252")
        except UnicodeDecodeError:
            return chr(cp)
    if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF:
        return chr(cp)
    return raw


def _unescape(s: str) -> str:
    """Decode known entities; unknown or broken ones stay as written."""
    return _ENTITY_RE.sub(_unescape_entity, s) if "&" in s else s


class _El:
    """One element of the lenient parse tree."""

    __slots__ = ("tag", "attrs", "children", "closed")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[_El | str] = []
        self.closed = False


def _parse_attrs(raw: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for m in _ATTR_RE.finditer(raw):
        key = m.group(1).lower()
        if key in attrs:
            continue
        value = m.group(2)
        if value is None:
            value = m.group(3)
            if value is None:
                value = m.group(4) or ""
        attrs[key] = _unescape(value) if "&" in value else value
    return attrs


def _build(s: str, collapse: bool) -> _El:
    """Lenient tree: unknown closers are ignored, unclosed elements end at the input's end."""
    root = _El("", _NO_ATTRS)
    root.closed = True
    stack = [root]
    top = root.children
    pos = skip = 0
    unterminated: set[str] = set()
    for m in _TAG_RE.finditer(s):
        start, end = m.span()
        if start < skip:
            continue
        closing, name, raw, opener = m.groups()
        if name is None:
            if opener is not None:
                term = "-->" if opener == "!--" else "]]>"
                stop = -1 if term in unterminated else s.find(term, end)
                if stop < 0:
                    unterminated.add(term)
                    continue
                if start > pos:
                    _add_text(top, s[pos:start], collapse)
                if term == "]]>" and stop > end:
                    cdata = s[end:stop]
                    top.append(_WS_RE.sub(" ", cdata) if collapse else cdata)
                pos = skip = stop + 3
                continue
            if start > pos:
                _add_text(top, s[pos:start], collapse)
            pos = end
            continue
        if start > pos:
            _add_text(top, s[pos:start], collapse)
        pos = end
        name = name.lower()
        if closing:
            for i in range(len(stack) - 1, 0, -1):
                if stack[i].tag == name:
                    stack[i].closed = True
                    del stack[i:]
                    top = stack[-1].children
                    break
            continue
        if raw:
            selfclosing = raw.rstrip().endswith("/")
            attrs = _parse_attrs(raw) if not raw.isspace() and raw != "/" else _NO_ATTRS
        else:
            selfclosing = False
            attrs = _NO_ATTRS
        el = _El(name, attrs)
        top.append(el)
        if selfclosing or name in _VOID:
            el.closed = True
        elif len(stack) < _MAX_DEPTH:
            stack.append(el)
            top = el.children
    if pos < len(s):
        _add_text(top, s[pos:], collapse)
    return root


def _add_text(top: list, text: str, collapse: bool) -> None:
    if "&" in text:
        text = _ENTITY_RE.sub(_unescape_entity, text)
    if collapse:
        text = _WS_RE.sub(" ", text)
    if text:
        top.append(text)


