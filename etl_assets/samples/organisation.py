"""Many exports of one organisation: accounts exported twice, group chats shared between accounts.

A backfill's tests and benchmark need a batch that overlaps the way a company's exports do:
a person's later export repeats most of the earlier one and edits a few of its messages, and
colleagues sit in the same group chats. Each account's export is ``generate_export``'s; its
earlier export (``earlier_document``) lacks the newest messages of every conversation and holds
older versions of some others; and every account's export also carries the busiest group chat
of the account before it, record for record, as a member of that chat would export it.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .generator import generate_export

#: In a later export of the same account, this share of each conversation's messages is new ...
LATER_NEW_SHARE = 0.10
#: ... and this share of the others was edited since the earlier one.
LATER_EDITED_SHARE = 0.02
#: How long before the later export the earlier one was taken.
EARLIER_BY = timedelta(days=90)


def earlier_document(document: dict[str, Any], *, new_share: float = LATER_NEW_SHARE,
                     edited_share: float = LATER_EDITED_SHARE) -> dict[str, Any]:
    """The export of ``document``'s account taken ``EARLIER_BY`` before it (changes ``document`` in place).

    Every conversation loses its newest ``new_share`` of messages; ``edited_share`` of the
    rest get the text and the lower ``version`` they had before their edit.
    """
    step = max(1, round(1 / edited_share)) if edited_share > 0 else 0
    for conversation in document.get("conversations") or []:
        if not isinstance(conversation, dict) or not isinstance(conversation.get("MessageList"), list):
            continue
        messages = sorted(conversation["MessageList"], key=lambda m: str(m.get("originalarrivaltime")) if isinstance(m, dict) else "")
        keep = messages[: len(messages) - int(len(messages) * new_share)]
        for index, message in enumerate(keep):
            if step and index % step == step - 1 and isinstance(message, dict) and isinstance(message.get("content"), str):
                keep[index] = {**message, "content": message["content"] + " (draft)", "version": _older(message.get("version"))}
        conversation["MessageList"] = keep
    try:
        taken = datetime.strptime(str(document.get("exportDate")), "%Y-%m-%dT%H:%M")
        document["exportDate"] = (taken - EARLIER_BY).strftime("%Y-%m-%dT%H:%M")
    except ValueError:
        pass
    return document


def _older(version: Any) -> Any:
    """A version that sorts before ``version`` (numbers and numeric strings)."""
    try:
        older = int(version) - 1000
    except (TypeError, ValueError):
        return 0
    return str(older) if isinstance(version, str) else older


def rewrite_messages(source: Path, target: Path, document: dict[str, Any]) -> Path:
    """Copy the tar ``source`` to ``target`` with ``document`` as its ``messages.json``; media as they are."""
    partial = target.with_name(f".{target.name}.partial")
    with tarfile.open(source) as src, tarfile.open(partial, "w") as dst:
        for member in src:
            if member.name.removeprefix("./") == "messages.json":
                body = json.dumps(document, ensure_ascii=False).encode()
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            dst.members.clear()
    partial.replace(target)
    return target


def _messages_json(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as archive:
        member = archive.extractfile("messages.json")
        assert member is not None
        return json.load(member)


def _busiest_group(document: dict[str, Any]) -> dict[str, Any] | None:
    groups = [c for c in document.get("conversations") or []
              if isinstance(c, dict) and str(c.get("id", "")).startswith("19:") and isinstance(c.get("MessageList"), list)]
    return max(groups, key=lambda c: len(c["MessageList"]), default=None)


def generate_organisation(folder: str | Path, *, exports: int, messages: int, seed: int = 0,
                          media: bool = True) -> list[Path]:
    """Write ``exports`` tar exports into ``folder``: ``ceil(exports / 2)`` accounts, each exported
    twice (the last one once when ``exports`` is odd), of about ``messages`` messages each.

    Names are ``account<NNN>_<earlier|later>.tar``; the list is in the order a person would
    have received them (every earlier export first, then every later one).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    accounts = math.ceil(exports / 2)
    earlier: list[Path] = []
    later: list[Path] = []
    with tempfile.TemporaryDirectory(dir=out, prefix=".organisation.") as scratch:
        documents, sources = [], []
        for account in range(accounts):
            source = Path(scratch) / f"account{account:03d}.tar"
            generate_export(source, messages=messages, seed=seed * 100_003 + account, media=media)
            sources.append(source)
            documents.append(_messages_json(source))
        shared = [json.loads(json.dumps(_busiest_group(document))) for document in documents]  # copies: taken as loaded
        for account, (source, document) in enumerate(zip(sources, documents)):
            colleague = shared[account - 1] if accounts > 1 else None
            if colleague is not None:
                document["conversations"].append(colleague)
            name = f"account{account:03d}"
            later.append(rewrite_messages(source, out / f"{name}_later.tar", document))
            if len(earlier) + len(later) < exports:
                earlier.append(rewrite_messages(source, out / f"{name}_earlier.tar", earlier_document(document)))
    return earlier + later
