"""Rendering an element tree to readable text; element handlers register in ``HANDLERS`` (see ``elements.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .model import (
    Attachment,
    Call,
    ContactCard,
    Link,
    Location,
    Mention,
    Poll,
    Quote,
    ThreadEvent,
)
from .tree import _BLOCK, _INLINE, _THREAD_KEYS, _URL_RE, _El

# --------------------------------------------------------------------------- rendering


THREAD_EVENT = "#thread-event"
"""The handler of thread events, for elements of unknown names that hold their fields."""
HANDLERS: dict[str, Callable[[_El, _Ctx, list[str]], None]] = {}
"""Element name -> handler; filled by ``elements.py`` when it is imported (``content.py`` does)."""


class _Ctx:
    """What one render pass collects besides text."""

    __slots__ = (
        "mtype", "html", "thread", "mentions", "quotes", "links", "emoticons", "attachments",
        "call", "thread_event", "poll", "location", "contacts", "edited_at", "saw_edit", "link_depth",
    )

    def __init__(self, mtype: str, html: bool) -> None:
        self.mtype = mtype
        self.html = html
        self.thread = mtype.startswith("threadactivity/")
        self.mentions: list[Mention] = []
        self.quotes: list[Quote] = []
        self.links: list[Link] = []
        self.emoticons: list[str] = []
        self.attachments: list[Attachment] = []
        self.call: Call | None = None
        self.thread_event: ThreadEvent | None = None
        self.poll: Poll | None = None
        self.location: Location | None = None
        self.contacts: list[ContactCard] = []
        self.edited_at: datetime | None = None
        self.saw_edit = False
        self.link_depth = 0


def _render(el: _El, ctx: _Ctx, out: list[str]) -> None:
    for child in el.children:
        if child.__class__ is str:
            out.append(child)
            if ctx.link_depth == 0 and "://" in child:
                _add_bare_links(child, ctx.links)
        else:
            _node(child, ctx, out)


def _node(el: _El, ctx: _Ctx, out: list[str]) -> None:
    tag = el.tag
    handler = HANDLERS.get(tag)
    if handler is not None:
        handler(el, ctx, out)
    elif tag in _BLOCK:
        _soft_break(out)
        _render(el, ctx, out)
        _soft_break(out)
    elif ctx.thread and any(c.__class__ is _El and c.tag in _THREAD_KEYS for c in el.children):
        HANDLERS[THREAD_EVENT](el, ctx, out)  # an unknown tag holding event fields
    elif el.children:
        if tag in _INLINE:
            _render(el, ctx, out)
        else:
            _soft_break(out)
            _render(el, ctx, out)
            _soft_break(out)


def _soft_break(out: list[str]) -> None:
    """End the current line unless it is already ended; spaces right before it are dropped."""
    while out:
        last = out[-1]
        if last.isspace() and "\n" not in last:
            out.pop()
            continue
        if last.rstrip(" \t")[-1:] != "\n":
            out.append("\n")
        return


def _render_to_str(el: _El, ctx: _Ctx) -> str:
    buf: list[str] = []
    _render(el, ctx, buf)
    return "".join(buf)


def _plain(el: _El) -> str:
    """All text below an element, markup ignored."""
    parts: list[str] = []
    stack = [iter(el.children)]
    while stack:
        for child in stack[-1]:
            if child.__class__ is str:
                parts.append(child)
            else:
                stack.append(iter(child.children))
                break
        else:
            stack.pop()
    return "".join(parts)


def _descendants(el: _El):
    stack = list(reversed(el.children))
    while stack:
        node = stack.pop()
        if node.__class__ is _El:
            yield node
            stack.extend(reversed(node.children))


def _child(el: _El, tag: str) -> _El | None:
    for c in el.children:
        if c.__class__ is _El and c.tag == tag:
            return c
    return None


def _add_bare_links(text: str, links: list[Link]) -> None:
    for m in _URL_RE.finditer(text):
        url = _trim_url(m.group(0))
        if len(url) > 8 and not any(link.url == url for link in links):
            links.append(Link(url=url, text=url))


def _trim_url(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets that follow a bare URL."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*":
            url = url[:-1]
        elif last in ")]}" and url.count(last) > url.count({")": "(", "]": "[", "}": "{"}[last]):
            url = url[:-1]
        else:
            return url
    return url


