"""Tests of the sample-export generator.

Every other test and the benchmarks trust ``ExportTruth``, so here the generated files are
read back with the standard library only and every truth number is recomputed
independently. The quirk tests pin the realism the ETL is tested against.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from etl_assets import samples
from etl_assets.samples import vocabulary

generate_export = samples.generate_export

ALL_TYPES = {
    "RichText", "Text", "RichText/Html", "RichText/UriObject", "RichText/Media_GenericFile", "RichText/Media_Video",
    "RichText/Media_AudioMsg", "RichText/Media_CallRecording", "RichText/Media_FlikMsg", "RichText/Media_Card",
    "RichText/Media_Album", "RichText/Contacts", "RichText/Location", "RichText/Files",
    "RichText/ScheduledCallInvite", "Poll", "Event/Call", "ThreadActivity/AddMember", "ThreadActivity/DeleteMember",
    "ThreadActivity/TopicUpdate", "ThreadActivity/PictureUpdate", "ThreadActivity/HistoryDisclosedUpdate",
    "ThreadActivity/JoiningEnabledUpdate", "ThreadActivity/RoleUpdate", "ThreadActivity/E2EEHandshakeInvite",
    "Notice", "PopCard", "InviteFreeRelationshipChanged/Initialized", "Translation", "TranslationSettings",
    "Event/BingBot",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,7}))?Z$")
DOCID = re.compile(r"^0-neu-d6-[0-9a-f]{32}$")


# ----------------------------------------------------------------- reading back


def read_export(path: Path) -> tuple[dict, list[str], dict[str, bytes]]:
    """messages.json, the archive member names and the media members, with the stdlib only."""
    name = path.name
    if name.endswith(".json"):
        return json.loads(path.read_bytes()), ["messages.json"], {}
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            doc = json.loads(zf.read("messages.json"))
            media = {n: zf.read(n) for n in names if n.startswith("media/")}
        return doc, names, media
    with tarfile.open(path) as tf:
        names = tf.getnames()
        doc = json.load(tf.extractfile("messages.json"))
        media = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.name.startswith("media/")}
    return doc, names, media


def is_usable(rec: dict) -> bool:
    """The same rules the ETL applies: string id, parseable time, no NUL in text."""
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        return False
    if not isinstance(rec.get("originalarrivaltime"), str) or not ISO.match(rec["originalarrivaltime"]):
        return False
    return "\x00" not in (rec.get("content") or "")


def analyse(doc: dict) -> dict[str, Any]:
    """Recount what the truth claims, straight from the file."""
    groups: dict[tuple[str, str], list[dict]] = {}
    bad: list[dict] = []
    usable = 0
    for conv in doc["conversations"]:
        for rec in conv.get("MessageList") or []:
            assert rec["conversationid"] == conv["id"]
            if not is_usable(rec):
                bad.append(rec)
                continue
            usable += 1
            groups.setdefault((rec["conversationid"], rec["id"]), []).append(rec)
    finals = {k: max(v, key=lambda r: r["version"]) for k, v in groups.items()}
    return {"groups": groups, "finals": finals, "bad": bad, "usable": usable}


def props_of(rec: dict) -> dict:
    return rec.get("properties") or {}


def derive_rows(finals: dict[tuple[str, str], dict], media_names: list[str]) -> dict[str, int]:
    """Row counts by the documented rules, computed by regex from final versions."""
    rows = Counter()
    for rec in finals.values():
        t, c, p = rec["messagetype"], rec["content"] or "", props_of(rec)
        emotions = p.get("emotions")
        if isinstance(emotions, str):
            emotions = json.loads(emotions)
        rows["reactions"] += sum(len(e["users"]) for e in emotions or [])
        rows["mentions"] += c.count("<at ")
        rows["quotes"] += c.count("<quote ")
        if t in ("RichText/UriObject", "RichText/ScheduledCallInvite") or t.startswith("RichText/Media_"):
            rows["attachments"] += c.count("<URIObject")
        if t == "RichText/Files":
            rows["attachments"] += len(re.findall(r"<file[\s>]", c))
        if t == "RichText":
            rows["attachments"] += c.count("<img ")
            rows["links"] += c.count("<a href=")
        if t == "Notice":
            rows["links"] += len(re.findall(r"https?://", c))
        rows["translations"] += t in ("Translation", "TranslationSettings")
        if t == "Event/Call":
            rows["calls"] += 1
            rows["call_participants"] += c.count("<part ")
        if t.startswith("ThreadActivity/") and not t.startswith("ThreadActivity/E2EEHandshake"):
            rows["thread_events"] += 1
        rows["polls"] += t == "Poll"
        rows["locations"] += t == "RichText/Location"
        if t == "RichText/Contacts":
            rows["contact_cards"] += len(re.findall(r"<c\s", c))
        if p.get("urlpreviews"):
            rows["url_previews"] += len(json.loads(p["urlpreviews"]))
    rows["media_files"] = sum(1 for n in media_names if re.match(r"^media/[^/]+\.1\.\w+$", n))
    return {k: rows.get(k, 0) for k in samples.ROW_KEYS + ("links", "translations")}


def derive_people(doc: dict, records: list[dict]) -> tuple[set[str], set[tuple[str, str]]]:
    """People and memberships by the documented rules, from the file: the owner, members, the
    other person of a 1:1 chat, senders, reactors, quote authors, call participants and the
    people thread events name; members added or joining by events."""
    canon = lambda mri: mri.rsplit("/contacts/", 1)[-1] if re.match(r"^(\d+|guest):", mri.rsplit("/contacts/", 1)[-1]) else "8:" + mri  # noqa: E731
    people = {doc["userId"]}
    members: set[tuple[str, str]] = set()
    for conv in doc["conversations"]:
        cid = conv["id"]
        thread = conv.get("threadProperties") or {}
        raw = thread.get("members")
        listed = json.loads(raw) if isinstance(raw, str) else raw or []
        for m in listed:
            mri = m["MemberMri"] if isinstance(m, dict) else m
            people.add(mri)
            members.add((cid, mri))
        if not cid.startswith(("19:", "28:", "48:")):
            people.update((canon(cid), doc["userId"]))
            members.update(((cid, canon(cid)), (cid, doc["userId"])))
    for rec in records:
        c, p = rec["content"] or "", props_of(rec)
        people.add(canon(rec["from"].rsplit("/contacts/", 1)[-1]))
        emotions = p.get("emotions")
        for e in (json.loads(emotions) if isinstance(emotions, str) else emotions) or []:
            people.update(u["mri"] for u in e["users"])
        people.update(re.findall(r'<quote author="([^"]+)"', c))
        people.update(re.findall(r'<part identity="([^"]+)"', c))
        t = rec["messagetype"]
        if t.startswith("ThreadActivity/") and not t.endswith("E2EEHandshakeInvite"):
            if t.endswith("MemberJoined"):
                body = json.loads(c)
                named, added = [body["initiator"]], [m["id"] for m in body["members"]]
            else:
                named = re.findall(r"<initiator>([^<]+)</initiator>", c) + re.findall(r"<target>(?:<id>)?([^<]+)<", c)
                added = re.findall(r"<target>([^<]+)</target>", c) if t.endswith("AddMember") else []
            people.update(named + added)
            members.update((rec["conversationid"], m) for m in added)
    return people, members


def time_key(iso: str) -> tuple[str, str]:
    """Sortable form of an arrival time whatever its number of fraction digits."""
    return iso[:19], (ISO.match(iso).group(1) or "").ljust(7, "0")


def kind_of(cid: str) -> str:
    for prefix, kind in (("19:", "group"), ("28:", "bot"), ("48:", "special")):
        if cid.startswith(prefix):
            return kind
    return "one_to_one"


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def export2k(tmp_path_factory: pytest.TempPathFactory) -> tuple[samples.ExportTruth, dict, list[str], dict]:
    path = tmp_path_factory.mktemp("s") / "8_live_sample_export.tar"
    truth = generate_export(path, messages=2000, seed=11, bad_records=5)
    doc, names, media = read_export(path)
    return truth, doc, names, media


@pytest.fixture(scope="module", params=[0, 1, 7])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[samples.ExportTruth, dict, dict]:
    path = tmp_path_factory.mktemp("q") / "small.tar"
    truth = generate_export(path, messages=200, seed=request.param)
    doc, _, _ = read_export(path)
    return truth, doc, analyse(doc)


# ------------------------------------------------------------------------ truth


def test_truth_matches_file(export2k) -> None:
    truth, doc, names, media = export2k
    a = analyse(doc)
    assert truth.messages == 2000 == len(a["finals"])
    assert truth.message_records == a["usable"]
    assert truth.message_records > truth.messages  # duplicates on top
    assert truth.rejected == 5 == len(a["bad"])
    assert truth.by_type == dict(Counter(r["messagetype"] for r in a["finals"].values()))
    assert truth.conversations == len(doc["conversations"]) == len({c["id"] for c in doc["conversations"]})
    assert truth.conversation_kinds == {k: Counter(kind_of(c["id"]) for c in doc["conversations"]).get(k, 0)
                                        for k in ("one_to_one", "group", "bot", "special")}
    assert truth.user_id == doc["userId"]
    assert truth.export_date == doc["exportDate"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", doc["exportDate"])
    assert truth.to_json()["path"] == str(truth.path)
    json.dumps(truth.to_json())


def test_rows_match_file(export2k) -> None:
    truth, doc, names, media = export2k
    a = analyse(doc)
    assert set(truth.rows) == set(samples.ROW_KEYS)
    derived = derive_rows(a["finals"], names)
    assert truth.rows == {k: derived[k] for k in samples.ROW_KEYS}
    assert all(truth.rows[k] > 0 for k in samples.ROW_KEYS), truth.rows
    assert {k: truth.tables[k] for k in ("links", "translations")} == {k: derived[k] for k in ("links", "translations")}
    assert truth.tables["links"] > 0 and truth.tables["translations"] > 0


def test_every_table_figure_matches_file(export2k) -> None:
    truth, doc, names, media = export2k
    a = analyse(doc)
    usable = [r for records in a["groups"].values() for r in records]
    people, members = derive_people(doc, usable)
    derived = derive_rows(a["finals"], names)
    assert truth.tables == {
        "conversations": len(doc["conversations"]), "people": len(people), "memberships": len(members),
        "messages": len(a["finals"]), **{k: derived[k] for k in samples.CHILD_TABLES},
        "message_sources": len(a["finals"]), "rejected_records": len(a["bad"]), "exports": 1,
    }


def test_digest_matches_file(tmp_path: Path) -> None:
    """Each digest line is the final copy of one distinct message, as it is in the file."""
    truth = generate_export(tmp_path / "d.json", messages=3000, seed=9, bad_records=2, digest=tmp_path / "d.jsonl")
    doc = json.loads(truth.path.read_bytes())
    finals = analyse(doc)["finals"]
    digest = list(truth.digest())
    assert len(digest) == len({(d.conversation_id, d.message_id) for d in digest}) == len(finals) == 3000
    owner_forms = {doc["userId"], doc["userId"][2:], f"{vocabulary.URL_FROM_PREFIX}{doc['userId']}"}
    for d in digest:
        rec = finals[(d.conversation_id, d.message_id)]
        assert d.message_type == rec["messagetype"]
        iso = rec["originalarrivaltime"]
        assert iso.startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(d.sent_ms // 1000)))
        assert (ISO.match(iso).group(1) or "").ljust(3, "0")[:3] == f"{d.sent_ms % 1000:03d}"
        assert rec["from"] == d.sender or (d.sender == doc["userId"] and rec["from"] in owner_forms)
        if d.text is not None:
            assert rec["content"].split("<e_m ")[0].replace("&apos;", "'").replace("&amp;", "&") == d.text
        p = props_of(rec)
        assert d.deleted == ("deletetime" in p or (rec["content"] or "").startswith("<e_m "))
        assert d.edited == ("edittime" in p or "<e_m " in (rec["content"] or ""))
        assert d.children == {k: n for k, n in derive_rows({0: rec}, []).items() if n and k != "media_files"}
    assert sum(d.text is not None for d in digest) > 2000
    assert sum(d.edited for d in digest) > 10 and sum(d.deleted for d in digest) > 0


def test_type_shares_near_real(export2k) -> None:
    truth = export2k[0]
    share = {t: n / truth.messages for t, n in truth.by_type.items()}
    assert 0.80 < share["RichText"] < 0.92
    assert 0.03 < share["RichText/UriObject"] < 0.09
    assert 0.015 < share["ThreadActivity/AddMember"] < 0.07
    assert share["ThreadActivity/DeleteMember"] < 0.03


def test_media_folder(export2k) -> None:
    truth, doc, names, media = export2k
    a = analyse(doc)
    referenced: set[str] = set()
    for rec in a["finals"].values():
        for docid in rec.get("amsreferences") or []:
            assert DOCID.match(docid)
            assert f'doc_id="{docid}"' in rec["content"]
            referenced.add(docid)
    files = {n.split("/")[1].split(".")[0]: n for n in names if re.match(r"^media/[^/]+\.1\.\w+$", n)}
    manifests = {n.split("/")[1][:-5] for n in names if n.startswith("media/") and n.endswith(".json")}
    assert set(files) <= manifests <= referenced
    assert 0.45 < len(files) / len(referenced) < 0.85  # old media expired
    for docid in list(files)[:20]:
        manifest = json.loads(media[f"media/{docid}.json"])
        assert manifest["filename"].rsplit(".", 1)[1] == files[docid].rsplit(".", 1)[1]
        assert manifest["contents"]["1"]["type"]
    assert any(n.endswith(".2.jpg") for n in names)
    assert "endpoints.json" in names
    assert truth.media_members == sum(n.startswith("media/") for n in names)


def test_no_media(tmp_path: Path) -> None:
    truth = generate_export(tmp_path / "x.tar", messages=300, media=False)
    _, names, _ = read_export(truth.path)
    assert not any(n.startswith("media/") for n in names)
    assert truth.rows["media_files"] == 0


# ------------------------------------------------------------- formats, determinism


@pytest.mark.parametrize("name,archive", [("a.tar", None), ("a.tar.gz", None), ("a.tgz", None), ("a.zip", None),
                                          ("a.json", None), ("export.bin", "zip"), ("export.data", "tar")])
def test_archive_formats(tmp_path: Path, name: str, archive: str | None) -> None:
    truth = generate_export(tmp_path / name, messages=150, seed=3, archive=archive)
    path = truth.path
    if archive == "zip" or name.endswith(".zip"):
        assert zipfile.is_zipfile(path)
        with zipfile.ZipFile(path) as zf:
            doc = json.loads(zf.read("messages.json"))
            assert "messages.json" in zf.namelist()
    elif name.endswith(".json"):
        doc = json.loads(path.read_bytes())
    else:
        with tarfile.open(path) as tf:
            assert tf.getnames()[0] == "messages.json"
            doc = json.load(tf.extractfile("messages.json"))
    assert len(analyse(doc)["finals"]) == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # temp file removed


def test_unknown_suffix_needs_archive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_export(tmp_path / "x.rar", messages=10)


def test_deterministic(tmp_path: Path) -> None:
    a = generate_export(tmp_path / "a.json", messages=1500, seed=5, bad_records=3)
    b = generate_export(tmp_path / "b.json", messages=1500, seed=5, bad_records=3)
    c = generate_export(tmp_path / "c.json", messages=1500, seed=6, bad_records=3)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    assert {**a.to_json(), "path": ""} == {**b.to_json(), "path": ""}
    for suffix in ("tar", "tar.gz"):
        x = generate_export(tmp_path / f"x.{suffix}", messages=300, seed=5)
        y = generate_export(tmp_path / f"y.{suffix}", messages=300, seed=5)
        assert x.path.read_bytes() == y.path.read_bytes()


@pytest.mark.parametrize("n", [0, 1, 7, 99, 100, 101, 1234])
def test_exact_message_count(tmp_path: Path, n: int) -> None:
    truth = generate_export(tmp_path / "x.json", messages=n, seed=n)
    a = analyse(json.loads(truth.path.read_bytes()))
    assert truth.messages == n == len(a["finals"])
    assert sum(truth.by_type.values()) == n


@pytest.mark.parametrize("heavy_share", [0.3, 0.0])
def test_every_type_from_100_messages(tmp_path: Path, heavy_share: float) -> None:
    for seed in (0, 1, 2):
        truth = generate_export(tmp_path / "x.json", messages=100, seed=seed, heavy_share=heavy_share)
        assert ALL_TYPES <= set(truth.by_type), ALL_TYPES - set(truth.by_type)
        assert set(truth.by_type) - ALL_TYPES  # something unknown too


def test_owner_and_dates(tmp_path: Path) -> None:
    from datetime import datetime

    truth = generate_export(tmp_path / "x.json", messages=300, owner="live:olduser",
                            start=datetime(2015, 1, 1), end=datetime(2016, 6, 1, 12, 30))
    doc = json.loads(truth.path.read_bytes())
    assert doc["userId"] == "live:olduser" and doc["exportDate"] == "2016-06-01T12:30"
    for rec in analyse(doc)["finals"].values():
        assert "2014-12-31" < rec["originalarrivaltime"] < "2016-06-02"


# ----------------------------------------------------------------------- quirks


def _finals(small) -> list[dict]:
    return list(small[2]["finals"].values())


def test_quirk_types(small) -> None:
    truth, doc, a = small
    assert ALL_TYPES <= set(truth.by_type)
    unknown = set(truth.by_type) - ALL_TYPES
    assert any(t.startswith("EndToEndEncryption/") for t in unknown)
    assert unknown - {t for t in unknown if t.startswith(("EndToEndEncryption/", "ThreadActivity/"))}


def test_quirk_conversations(small) -> None:
    truth, doc, a = small
    convs = doc["conversations"]
    ids = [c["id"] for c in convs]

    def has(pred) -> bool:
        return any(pred(i) for i in ids)

    assert has(lambda i: i.startswith("8:live:.cid."))
    assert has(lambda i: i.startswith("8:live:") and not i.startswith("8:live:.cid."))
    assert has(lambda i: i.startswith("8:") and not i.startswith("8:live:"))
    assert has(lambda i: i.startswith("live:"))
    assert has(lambda i: i.startswith("4:+1555"))
    assert has(lambda i: i.startswith("guest:"))
    for suffix in ("@thread.skype", "@thread.v2", "@p2p.thread.skype", "@cast.skype"):
        assert has(lambda i: i.startswith("19:") and i.endswith(suffix)), suffix
    for special in ("28:concierge", "48:calllogs", "48:notes", "48:notifications", "48:mentions", "48:drafts"):
        assert special in ids
    assert any(c["displayName"] is None and kind_of(c["id"]) == "one_to_one" for c in convs)
    assert any(isinstance(c["version"], float) for c in convs)
    assert any(isinstance(c["version"], int) for c in convs)
    assert any("MessageList" not in c for c in convs)
    assert any("MessageList" in c and c["MessageList"] is None for c in convs)
    assert any(c.get("MessageList") == [] for c in convs)
    shapes = set()
    for c in convs:
        tp = c["threadProperties"]
        if kind_of(c["id"]) == "one_to_one":
            assert tp is None
        if kind_of(c["id"]) != "group":
            continue
        assert tp["membercount"] and tp["topic"] is not None
        m = tp["members"]
        if m is None:
            shapes.add("null")
        elif isinstance(m, str):
            assert all(isinstance(x, str) for x in json.loads(m))
            shapes.add("string")
        elif all(isinstance(x, dict) and "MemberMri" in x for x in m):
            shapes.add("objects")
        elif all(isinstance(x, str) for x in m):
            shapes.add("list")
    assert shapes == {"null", "string", "objects", "list"}
    statuses = {(c["properties"] or {}).get("conversationstatus") for c in convs}
    assert None in statuses and statuses - {None}
    assert any((c["properties"] or {}).get("consumptionhorizon", "").count(";") == 2
               for c in convs if (c["properties"] or {}).get("consumptionhorizon"))


def test_quirk_times_ids_and_senders(small) -> None:
    truth, doc, a = small
    records = [r for rs in a["groups"].values() for r in rs]
    digits = {len(ISO.match(r["originalarrivaltime"]).group(1) or "") for r in records}
    assert digits == set(range(8))
    ids = [r["id"] for r in records]
    assert sum(i.isdigit() and len(i) == 13 for i in ids) > 0.9 * len(ids)
    assert any(not i.isdigit() for i in ids)
    assert any(i.isdigit() and int(i) >= 2**64 for i in ids)
    assert any(isinstance(r["version"], float) for r in records)
    owner = doc["userId"]
    bare = owner[2:]
    froms = {r["from"] for r in records}
    assert owner in froms and bare in froms
    assert any(f.startswith("https://") and f.endswith("/contacts/" + owner) for f in froms)
    owner_names = {r["displayName"] for r in records if r["from"] in (owner, bare) or r["from"].endswith("/" + owner)}
    assert owner_names == {None, ""}


def test_quirk_ordering(small) -> None:
    truth, doc, a = small
    down = up = 0
    for c in doc["conversations"]:
        times = [time_key(r["originalarrivaltime"]) for r in c.get("MessageList") or [] if is_usable(r)]
        for newer, older in zip(times, times[1:]):
            down += newer > older
            up += newer < older
    assert up >= 1  # a few out-of-order neighbours
    assert down > 10 * up  # but newest first


def test_quirk_duplicates(small) -> None:
    truth, doc, a = small
    dups = [rs for rs in a["groups"].values() if len(rs) > 1]
    assert dups
    final_first = final_last = server_copy = type_change = False
    for rs in dups:
        top = max(r["version"] for r in rs)
        assert sum(r["version"] == top for r in rs) == 1
        final_first |= rs[0]["version"] == top
        final_last |= rs[-1]["version"] == top
        for r in rs:
            if props_of(r).get("isserversidegenerated") == "True":
                assert r["content"] == "" and r["version"] < top
                server_copy = True
        type_change |= len({r["messagetype"] for r in rs}) > 1
    assert final_first and final_last and server_copy and type_change


def test_quirk_markup(small) -> None:
    finals = _finals(small)
    contents = [r["content"] or "" for r in finals]
    blob = "\x01".join(contents)
    for snippet in ("<b>", "<i>", "<s>", "<u>", '<pre raw_pre="{code}">', "<a href=", "<br>", "\n", '<ss type="',
                    "(1f440_eyes)", '<at id="8:', '<at id="*">all</at>', "<quote ", "&amp;", "&lt;", "&apos;",
                    "&#128512;", 't="61"/>', "Edited previous message: ", "<legacyquote>"):
        assert snippet in blob, snippet
    assert re.search(r"<legacyquote>\[\d{9,11}\] [^<]+: </legacyquote>", blob)
    assert re.search(r"<legacyquote>\[\d\d:\d\d:\d\d\] ", blob)
    assert re.search(r"<legacyquote>\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\] ", blob)
    assert re.search(r"[\U0001F300-\U0001FAFF]", blob) and re.search(r"[\u0400-\u04ff]", blob)
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", blob) and re.search(r"[\u0600-\u06ff]", blob)
    assert any(r["content"] == "" and props_of(r).get("deletetime", "").isdigit() for r in finals)
    assert any(re.fullmatch(r"<e_m [^>]*/>", r["content"] or "") for r in finals)


def test_quirk_properties(small) -> None:
    truth, doc, a = small
    finals = _finals(small)
    records = [r for rs in a["groups"].values() for r in rs]
    keys = Counter(k for r in records for k in props_of(r))
    for k in ("edittime", "deletetime", "emotions", "urlpreviews", "isserversidegenerated", "albumId",
              "forwardMetadata", "starred", "callLog", "call-log"):
        assert keys[k], k
    emotions = [props_of(r)["emotions"] for r in finals if "emotions" in props_of(r)]
    assert any(isinstance(e, list) for e in emotions) and any(isinstance(e, str) for e in emotions)
    for e in emotions:
        for item in json.loads(e) if isinstance(e, str) else e:
            assert item["key"] and all({"mri", "time", "value"} <= set(u) for u in item["users"])
    for r in finals:
        p = props_of(r)
        if "urlpreviews" in p:
            assert all({"url", "title"} <= set(x["value"]) for x in json.loads(p["urlpreviews"]))
        if "forwardMetadata" in p:
            assert json.loads(p["forwardMetadata"])["isForwarded"] is True
        for k in ("callLog", "call-log"):
            if k in p:
                assert r["messagetype"] == "Event/Call"
                assert {"startTime", "endTime", "callDirection", "callType", "callState", "originator", "target",
                        "participants"} <= set(json.loads(p[k]))
        for k in ("edittime", "deletetime"):
            if k in p:
                assert p[k].isdigit()
    assert sum(r["properties"] is None for r in finals) > 0.8 * len(finals)


def test_quirk_type_contents(small) -> None:
    finals = _finals(small)
    by = {}
    for r in finals:
        by.setdefault(r["messagetype"], []).append(r)
    states = {re.search(r'<partlist type="(\w+)"', r["content"]).group(1) for r in by["Event/Call"]}
    assert states == {"started", "ended", "missed"}
    assert any("<duration>" in r["content"] for r in by["Event/Call"])
    for r in by["RichText/UriObject"]:
        assert r["amsreferences"] and f'doc_id="{r["amsreferences"][0]}"' in r["content"]
    card = re.search(r'<Swift b64="([^"]+)"/>', by["RichText/Media_Card"][0]["content"]).group(1)
    assert json.loads(base64.b64decode(card))["type"] == "message/card"
    assert "Video.2/CallRecording.1" in by["RichText/Media_CallRecording"][0]["content"]
    assert re.search(r'<RecordingContent [^>]*duration="\d+:\d\d:\d\d\.\d\d"', by["RichText/Media_CallRecording"][0]["content"])
    loc = by["RichText/Location"][0]["content"]
    assert re.search(r'latitude="-?\d+" longitude="-?\d+"', loc)
    assert '<c t="s" s="' in by["RichText/Contacts"][0]["content"]
    assert '<file size="' in by["RichText/Files"][0]["content"]
    assert 'subject="' in by["RichText/ScheduledCallInvite"][0]["content"]
    assert 'optionsEncoded="' in by["Poll"][0]["content"]
    assert "<value>URL@https://" in by["ThreadActivity/PictureUpdate"][0]["content"]
    assert re.search(r"<role>(admin|user)</role>", by["ThreadActivity/RoleUpdate"][0]["content"])
    for t in ("Notice", "PopCard"):
        assert isinstance(json.loads(by[t][0]["content"]), list)
    for t in ("Translation", "TranslationSettings"):
        assert isinstance(json.loads(by[t][0]["content"]), dict)
    adds = [r["content"] for r in by["ThreadActivity/AddMember"]]
    assert all(re.search(r"<eventtime>\d{13}</eventtime><initiator>[^<]+</initiator><target>", c) for c in adds)
    assert any(props_of(r).get("albumId") for r in by["RichText/UriObject"])


def test_heavy_conversation(export2k, tmp_path: Path) -> None:
    truth, doc, _, _ = export2k
    a = analyse(doc)
    in_heavy = sum(1 for (cid, _) in a["finals"] if cid == truth.heavy_conversation_id)
    assert truth.heavy_conversation_id.startswith("19:")
    assert truth.heavy_messages == in_heavy == round(0.3 * 2000)
    half = generate_export(tmp_path / "h.json", messages=1000, heavy_share=0.5)
    assert half.heavy_messages == 500
    none = generate_export(tmp_path / "n.json", messages=1000, heavy_share=0)
    assert none.heavy_conversation_id is None and none.heavy_messages == 0


def test_bad_records(export2k) -> None:
    truth, doc, _, _ = export2k
    bad = analyse(doc)["bad"]
    assert any("id" not in r for r in bad)
    assert any(r.get("originalarrivaltime") == "not-a-time" for r in bad)
    assert any(isinstance(r.get("id"), list) for r in bad)
    assert any(isinstance(r.get("id"), dict) for r in bad)
    assert any("\x00" in (r.get("content") or "") for r in bad)
    total = sum(len(c.get("MessageList") or []) for c in doc["conversations"])
    assert total == truth.message_records + truth.rejected


def test_cli(tmp_path: Path) -> None:
    """``skype-etl sample`` is the generator's command line, with all of its options."""
    out = tmp_path / "cli.zip"
    done = subprocess.run(
        [sys.executable, "-m", "etl_assets.cli", "sample", str(out), "--messages", "250", "--seed", "4", "--no-media",
         "--heavy-share", "0.2", "--bad-records", "2", "--owner", "8:live:.cid.0123abcd", "--digest", str(tmp_path / "d.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["messages"] == 250 and printed["rejected"] == 2 and printed["heavy_messages"] == 50
    assert printed["path"] == str(out) and printed["user_id"] == "8:live:.cid.0123abcd"
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 250
    with zipfile.ZipFile(out) as zf:
        assert not any(n.startswith("media/") for n in zf.namelist())
    assert {**printed, "path": "", "digest_path": ""} == {
        **generate_export(tmp_path / "again.zip", messages=250, seed=4, media=False, heavy_share=0.2, bad_records=2,
                          owner="8:live:.cid.0123abcd").to_json(), "path": "", "digest_path": ""}
    with_media = subprocess.run([sys.executable, "-m", "etl_assets.cli", "sample", str(tmp_path / "m.tar"), "--messages", "250",
                                 "--archive", "tar"], capture_output=True, text=True, timeout=120)
    assert with_media.returncode == 0, with_media.stderr
    assert json.loads(with_media.stdout)["rows"]["media_files"] > 0


def test_memory_stays_flat(tmp_path: Path) -> None:
    """Run in a child so the peak RSS belongs to the generator alone."""
    code = (
        "import sys, psutil\n"
        "from etl_assets.samples import generate_export\n"
        "base = psutil.Process().memory_info().rss\n"
        "generate_export(sys.argv[1], messages=int(sys.argv[2]), seed=2)\n"
        "# VmHWM, unlike ru_maxrss, does not inherit the parent's peak across fork and exec\n"
        "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(hwm * 1024 - base)\n"
    )
    def growth(n: int, name: str) -> int:
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path / name), str(n)],
                             capture_output=True, text=True, timeout=60, check=True)
        return int(res.stdout.strip())

    small_growth = growth(10_000, "small.tar")
    big_growth = growth(200_000, "big.tar")
    assert big_growth < 100 * 2**20
    assert big_growth - small_growth < 30 * 2**20
