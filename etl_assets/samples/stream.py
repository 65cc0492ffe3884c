"""Streaming messages.json: conversations, messages newest first, duplicates and bad records.

Records are encoded and written in batches as they are made, so memory stays flat for
millions of messages; the order of random draws fixes the bytes for a given seed.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from .vocabulary import (
    _readable,
    TICKS_PER_MS,
    _COMPACT,
    _ENCODE,
    _PLAIN,
)
from .people import _Conv, _Person


class _Streamer:
    """Mixin of the generator: messages.json written one record at a time."""

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
            if members is not None:
                self.people_seen.update(mris)
                self.memberships_seen.update((conv.id, m) for m in mris)
            thread.update(conv.extra_thread)
        if conv.kind == "one_to_one":  # the chat's id names the other person; both are its members
            peer = conv.others[0].mri
            self.people_seen.update((peer, self.user_id))
            self.memberships_seen.update(((conv.id, peer), (conv.id, self.user_id)))
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
        rows = self.rows
        digest = self.digest_fh
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
            self._plain = None
            self._edited = self._deleted = False
            counted = tuple(rows.values())
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
                        self._plain = _readable(content)
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
            self.people_seen.add(sender.mri)
            if mtype in ("Translation", "TranslationSettings"):
                rows["translations"] += 1
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
            if digest is not None:
                children = {k: n - c for (k, n), c in zip(rows.items(), counted) if n != c}
                digest.write(_COMPACT([cid, mid, ms, sender.mri, mtype, self._plain, self._edited, self._deleted,
                                       children]) + "\n")
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
        self._edited = True
        rec["version"] = float(edit) if as_float else edit
        if rec["messagetype"] == "RichText" and rec["content"] and "<e_m " not in rec["content"]:
            rec["content"] = rec["content"] + self._e_m(edit, sender.mri)
        return [rec, older] if dup in ("edit_final_first", "type_change") else [older, rec]
