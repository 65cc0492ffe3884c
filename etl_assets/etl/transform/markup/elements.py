"""One handler per element Skype writes (``<at>``, ``<quote>``, ``<URIObject>``, ``<partlist>``, ...).

Each adds the readable text of its element to the output and the structure it carries to
the context; all register themselves in ``render.HANDLERS``. About 500 lines on purpose:
the handlers share one rendering context and one set of attribute helpers, and a reader
looking up how Skype writes one element finds every element here.
"""

from __future__ import annotations

import base64
import json

from ...values import (
    escape_unstorable,
    parse_bool,
    parse_degrees,
    parse_duration,
    parse_epoch,
    parse_epoch_auto,
    parse_float,
    parse_int,
    parse_when,
    storable_text,
)
from .model import (
    Attachment,
    Call,
    CallParticipant,
    ContactCard,
    Link,
    Location,
    Mention,
    Poll,
    Quote,
    ThreadEvent,
)
from .render import (
    HANDLERS,
    THREAD_EVENT,
    _child,
    _Ctx,
    _descendants,
    _node,
    _plain,
    _render,
    _render_to_str,
    _soft_break,
)
from .tree import (
    _BOILERPLATE_RE,
    _CAPTION_TAGS,
    _KIND_BY_MESSAGE_TYPE,
    _LQ_PREFIX_RE,
    _LQ_SUFFIX_RE,
    _OBJECT_ID_RE,
    _SKYPE_URL_RE,
    _THREAD_TYPES,
    _El,
)

# --------------------------------------------------------------------------- element handlers


def _h_br(el: _El, ctx: _Ctx, out: list[str]) -> None:
    out.append("\n")


def _h_at(el: _El, ctx: _Ctx, out: list[str]) -> None:
    person_id = el.attrs.get("id")
    name = _render_to_str(el, ctx).strip()
    if name.startswith("@"):
        name = name[1:].lstrip()
    if not name:
        name = "all" if person_id == "*" else (person_id or "").strip()
    if name:
        out.append("@" + name)
    if person_id:
        ctx.mentions.append(Mention(person_id=person_id, name=name))


def _h_a(el: _El, ctx: _Ctx, out: list[str]) -> None:
    href = (el.attrs.get("href") or "").strip()
    ctx.link_depth += 1
    inner = _render_to_str(el, ctx)
    ctx.link_depth -= 1
    if inner.strip():
        out.append(inner)
        shown = inner.strip()
    else:
        if href:
            out.append(href)
        shown = href
    if href:
        ctx.links.append(Link(url=href, text=shown))


def _h_ss(el: _El, ctx: _Ctx, out: list[str]) -> None:
    kind = (el.attrs.get("type") or "").strip()
    inner = _render_to_str(el, ctx)
    if inner:
        out.append(inner)
    elif kind:
        out.append(f"({kind})")
    label = kind or inner.strip()
    if label:
        ctx.emoticons.append(label)


def _h_emoji(el: _El, ctx: _Ctx, out: list[str]) -> None:
    alt = el.attrs.get("alt") or ""
    inner = _render_to_str(el, ctx)
    shown = inner or alt
    if shown:
        out.append(shown)


def _h_img(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    alt = a.get("alt") or ""
    marker = (a.get("itemtype", "") + " " + a.get("class", "")).lower()
    if "emoji" in marker or "emoticon" in marker:
        if alt:
            out.append(alt)
        return
    src = (a.get("src") or "").strip()
    if src:
        ctx.attachments.append(
            Attachment(
                kind="photo",
                uri=src,
                width=parse_int(a.get("width")),
                height=parse_int(a.get("height")),
                extra={"alt": alt} if alt else None,
            )
        )


def _h_e_m(el: _El, ctx: _Ctx, out: list[str]) -> None:
    ctx.saw_edit = True
    a = el.attrs
    when = parse_epoch(a.get("ts_ms"), 1000) or parse_epoch_auto(a.get("ts"))
    if when is not None and (ctx.edited_at is None or when > ctx.edited_at):
        ctx.edited_at = when
    if el.children:
        _render(el, ctx, out)


def _h_legacyquote(el: _El, ctx: _Ctx, out: list[str]) -> None:
    if not el.closed:
        _render(el, ctx, out)


def _h_quote(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    sub = _Ctx(ctx.mtype, ctx.html)
    buf: list[str] = []
    _render(el, sub, buf)
    ctx.quotes.append(
        Quote(
            author_id=_opt(a.get("author")),
            author_name=_opt(a.get("authorname")),
            quoted_at=parse_epoch_auto(a.get("timestamp")),
            conversation_id=_opt(a.get("conversation")),
            message_id=_opt(a.get("messageid")),
            text=_clean_quote("".join(buf)),
        )
    )
    # A quote inside this one renders no text here (it is a closed quote): keep it as a quote too.
    ctx.quotes.extend(sub.quotes)
    if not el.closed:
        out.extend(buf)
    elif out and not out[-1][-1].isspace():
        out.append("\n")


def _clean_quote(text: str) -> str:
    """Quoted text without a legacy "[time] Name: " prefix or trailing "<<<" left outside <legacyquote>."""
    text = _LQ_PREFIX_RE.sub("", text, count=1)
    text = _LQ_SUFFIX_RE.sub("", text)
    return text.strip()


def _h_partlist(el: _El, ctx: _Ctx, out: list[str]) -> None:
    participants = []
    for part in _descendants(el):
        if part.tag != "part":
            continue
        name_el = _child(part, "name")
        duration_el = _child(part, "duration")
        participants.append(
            CallParticipant(
                person_id=_opt(part.attrs.get("identity")),
                name=_opt(_plain(name_el).strip()) if name_el is not None else None,
                duration_seconds=parse_float(_plain(duration_el)) if duration_el is not None else None,
            )
        )
    a = el.attrs
    ctx.call = Call(call_id=_opt(a.get("callid")), state=_opt(a.get("type")), participants=participants)


def _h_thread(el: _El, ctx: _Ctx, out: list[str]) -> None:
    event_at = initiator = value = role = None
    targets: list[str] = []
    detailed: list[str] = []
    for c in el.children:
        if c.__class__ is not _El:
            continue
        tag = c.tag
        if tag == "eventtime":
            event_at = parse_epoch(_plain(c), 1000)
        elif tag == "initiator":
            initiator = _opt(_plain(c).strip()) or _opt(c.attrs.get("name"))
        elif tag == "value":
            value = _plain(c).strip()
        elif tag == "target":
            id_el = _child(c, "id")
            target = _plain(id_el if id_el is not None else c).strip()
            if target and target not in targets:
                targets.append(target)
            role_el = _child(c, "role")
            if role_el is not None and role is None:
                role = _opt(_plain(role_el).strip())
        elif tag == "detailedtargetinfo":
            id_el = _child(c, "id")
            if id_el is not None and _plain(id_el).strip():
                detailed.append(_plain(id_el).strip())
        elif tag == "role" and role is None:
            role = _opt(_plain(c).strip())
    if not targets:
        targets = list(dict.fromkeys(detailed))
    event_type = _THREAD_TYPES.get(el.tag, "other")
    if event_type == "member_removed" and initiator and targets == [initiator]:
        event_type = "member_left"
    if event_type == "picture_changed" and value and value[:4].upper() == "URL@":
        value = value[4:]
    if ctx.thread_event is None:
        ctx.thread_event = ThreadEvent(
            event_type=event_type, event_at=event_at, initiator=initiator, targets=targets,
            value=value, role=role,
        )
    if event_type == "topic_changed" and value:
        out.append(value)


def _h_contacts(el: _El, ctx: _Ctx, out: list[str]) -> None:
    names = []
    for c in _descendants(el):
        if c.tag != "c":
            continue
        card = ContactCard(person_id=_opt(c.attrs.get("s")), name=_opt(c.attrs.get("f")) or _opt(_plain(c).strip()))
        ctx.contacts.append(card)
        shown = card.name or card.person_id
        if shown:
            names.append(shown)
    if names:
        _soft_break(out)
        out.append(", ".join(names))


def _h_location(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    url = None
    link_text = ""
    for d in _descendants(el):
        if d.tag == "a":
            url = _opt(d.attrs.get("href"))
            link_text = _plain(d).strip()
            break
    address = _opt(a.get("address"))
    ctx.location = Location(
        latitude=parse_degrees(a.get("latitude"), 90.0),
        longitude=parse_degrees(a.get("longitude"), 180.0),
        address=address,
        url=url,
    )
    shown = address or link_text or _plain(el).strip()
    if shown:
        _soft_break(out)
        out.append(shown)


def _h_files(el: _El, ctx: _Ctx, out: list[str]) -> None:
    names = []
    for f in _descendants(el):
        if f.tag != "file":
            continue
        a = f.attrs
        name = _plain(f).strip()
        index = a.get("index")
        extra: dict = {}
        if index is not None:
            extra["index"] = parse_int(index) if parse_int(index) is not None else index
        if a.get("tid"):
            extra["tid"] = a["tid"]
        ctx.attachments.append(
            Attachment(
                kind="file",
                original_name=name or None,
                size_bytes=parse_int(a.get("size")),
                uri=_opt(a.get("url")),
                extra=extra or None,
            )
        )
        if name:
            names.append(name)
    if names:
        _soft_break(out)
        out.append(", ".join(names))


def _h_uriobject(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    uri_type = (a.get("type") or "").strip()
    if uri_type.lower() == "poll" or (not uri_type and ctx.mtype == "poll"):
        _poll(el, ctx, out)
        return
    uri = _opt(a.get("uri"))
    original_name = size = title = description = b64 = call_id = None
    meta_name = None
    duration = parse_duration(a.get("duration"))
    if duration is None and a.get("durationms"):
        ms = parse_float(a.get("durationms"))
        duration = ms / 1000 if ms is not None else None
    for d in _descendants(el):
        tag = d.tag
        da = d.attrs
        if tag == "originalname":
            original_name = original_name or _opt((da.get("v") or "").strip())
        elif tag == "filesize":
            size = size if size is not None else parse_int(da.get("v"))
        elif tag == "meta":
            meta_name = meta_name or _opt((da.get("originalname") or "").strip())
        elif tag == "swift":
            b64 = b64 or da.get("b64")
        elif tag == "title":
            title = title or _opt(_plain(d).strip())
        elif tag == "description":
            description = description or _opt(_plain(d).strip())
        elif tag == "id" and (da.get("type") or "").lower() == "callid":
            call_id = call_id or _opt(da.get("value"))
        if duration is None and "duration" in da:
            duration = parse_duration(da["duration"])
    extra: dict = {}
    card_text = None
    if b64:
        card = _decode_card(b64)
        if card is not None:
            extra["card"] = card
            card_text = _card_text(card)
        else:
            extra["swift_b64"] = b64
    if title:
        extra["title"] = title
    if description:
        extra["description"] = description
    if call_id:
        extra["call_id"] = call_id
    subject = _opt((a.get("subject") or "").strip())
    if subject:
        extra["subject"] = subject
    for key, value in a.items():
        if "time" in key and value:
            extra[key] = value
            when = parse_when(value)
            if when is not None and "scheduled_at" not in extra and ctx.mtype == "richtext/scheduledcallinvite":
                extra["scheduled_at"] = when.isoformat()
    doc_id = _opt((a.get("doc_id") or "").strip())
    if doc_id is None and uri:
        m = _OBJECT_ID_RE.search(uri)
        doc_id = m.group(1) if m else None
    name = original_name or meta_name
    ctx.attachments.append(
        Attachment(
            kind=_kind(uri_type, ctx.mtype),
            uri_type=uri_type or None,
            original_name=name,
            size_bytes=size,
            width=parse_int(a.get("width")),
            height=parse_int(a.get("height")),
            duration_seconds=duration,
            doc_id=doc_id,
            uri=uri,
            thumbnail_uri=_opt(a.get("url_thumbnail")),
            extra=extra or None,
        )
    )
    shown = _caption(el, ctx, uri) or name or title or card_text or subject
    if shown:
        _soft_break(out)
        out.append(shown)
        _soft_break(out)


def _caption(el: _El, ctx: _Ctx, uri: str | None) -> str:
    """Human text inside a URIObject, without the "To view this ..., go to: <a>" boilerplate."""
    buf: list[str] = []
    kids = el.children
    skip_link = False
    for i, child in enumerate(kids):
        if child.__class__ is str:
            if child.rstrip().endswith(":") and _next_is_link(kids, i):
                skip_link = True
                continue
            buf.append(child)
            continue
        if child.tag == "a":
            href = child.attrs.get("href") or ""
            if skip_link or _SKYPE_URL_RE.match(href) or (uri and href.strip() == uri):
                skip_link = False
                continue
        elif child.tag not in _CAPTION_TAGS:
            continue
        _node(child, ctx, buf)
    text = "".join(buf).strip()
    if text[:12].lower() == "to view this":
        text = _BOILERPLATE_RE.sub("", text, count=1).strip()
    return text


def _next_is_link(kids: list, i: int) -> bool:
    for nxt in kids[i + 1 :]:
        if nxt.__class__ is str:
            if nxt.strip():
                return False
            continue
        return nxt.tag == "a"
    return False


def _poll(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    question = _opt((a.get("title") or "").strip()) or _opt(_plain(el).strip())
    options = [o.strip() for o in (a.get("optionsencoded") or "").split("|") if o.strip()]
    ctx.poll = Poll(
        question=question,
        options=options,
        multiple_votes=parse_bool(a.get("allowmultiplevotes")),
        expires_at=parse_epoch(a.get("expirationtimems"), 1000),
    )
    if question:
        _soft_break(out)
        out.append(question)


def _kind(uri_type: str, mtype: str) -> str:
    if mtype == "richtext/media_album":
        return "album"
    if mtype == "richtext/scheduledcallinvite":
        return "scheduled_call"
    t = uri_type.lower()
    if t.startswith("picture"):
        return "photo"
    if "callrecording" in t:
        return "call_recording"
    if "flik" in t:
        return "moji"
    if t.startswith("video"):
        return "video"
    if t.startswith("audio"):
        return "voice_message" if "/message" in t else "audio"
    if t.startswith("file"):
        return "file"
    if t.startswith("swift"):
        return "card"
    return _KIND_BY_MESSAGE_TYPE.get(mtype, "other")


def _decode_card(b64: str) -> object | None:
    """Swift card JSON from lenient base64 (missing padding, URL-safe alphabet, whitespace)."""
    s = "".join(b64.split()).replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s)
        return _storable(json.loads(raw.decode("utf-8", "replace")))
    except Exception:
        return None


def _storable(value: object) -> object:
    """JSON decoded from inside ``content`` with NUL and unpaired surrogates spelled out
    (``\\u0000``), so no text taken from it is one PostgreSQL cannot store."""
    if isinstance(value, str):
        return value if storable_text(value) else escape_unstorable(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _card_text(card: object) -> str | None:
    if not isinstance(card, dict):
        return None
    attachments = card.get("attachments")
    for att in attachments if isinstance(attachments, list) else ():
        content = att.get("content") if isinstance(att, dict) else None
        if isinstance(content, dict):
            for key in ("title", "subtitle", "text"):
                value = content.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return None


HANDLERS.update({  # registration: render.py dispatches on this table and imports no handler

    "br": _h_br,
    "at": _h_at,
    "a": _h_a,
    "ss": _h_ss,
    "emoji": _h_emoji,
    "img": _h_img,
    "e_m": _h_e_m,
    "legacyquote": _h_legacyquote,
    "quote": _h_quote,
    "partlist": _h_partlist,
    "contacts": _h_contacts,
    "location": _h_location,
    "files": _h_files,
    "uriobject": _h_uriobject,
    **{tag: _h_thread for tag in _THREAD_TYPES},
    THREAD_EVENT: _h_thread,
})


# --------------------------------------------------------------------------- values


def _opt(value: str | None) -> str | None:
    return value if value else None


