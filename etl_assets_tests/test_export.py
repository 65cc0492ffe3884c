"""``skype-etl export`` against a real warehouse loaded from a generated export with media.

Every check compares the files with what an independent SQL query gives for the same
conditions (PostgreSQL's own time zone rules for dates and zones).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.pipeline import ETLPipeline
from etl_assets_tests.helpers import pipeline_config
from etl_assets.etl.read.export import ExportRequest, run_export
from etl_assets.etl.read.export import as_html
from etl_assets.samples import generate_export

from .helpers import drop_schema, run_cli

HOSTILE_TEXT = "<script>alert(1)</script>"
HOSTILE_SENDER = '<img src=x onerror="alert(2)">'
MULTILINE_TEXT = 'first line, with "quotes"\r\nsecond line\n\n    fourth; indented'
CONTROL_TEXT = "bell \x07 and escape \x1b[31mred\x1b[0m"


@dataclass(frozen=True)
class Warehouse:
    url: str
    schema: str
    home: Path
    artifacts: Path
    hostile_conversation: str
    hostile_message: str

    def rows(self, query: str, params: dict | tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            return conn.execute(query, params).fetchall()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--database-url", self.url, "--schema", self.schema, home=self.home)


def _insert_test_rows(url: str, schema: str, artifacts: Path) -> tuple[str, str]:
    """Messages no generator writes: markup and script as text, CRLF lines, control characters,
    a javascript: link, and attachments with hostile and clashing file names."""
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cid = conn.execute(
            "SELECT conversation_id FROM messages GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        base = conn.execute("SELECT max(sent_at) FROM messages WHERE conversation_id = %s", (cid,)).fetchone()[0]
        insert = (
            "INSERT INTO messages (conversation_id, message_id, sent_at, sender_id, sender_name, message_type, "
            "content_raw, content_text, version, server_generated) "
            "VALUES (%s, %s, %s + %s * interval '1 minute', %s, %s, 'RichText', %s, %s, 1, false)"
        )
        conn.execute(insert, (cid, "9000000000001", base, 1, "8:live:hostile", HOSTILE_SENDER, HOSTILE_TEXT, HOSTILE_TEXT))
        conn.execute(insert, (cid, "9000000000002", base, 2, "8:live:hostile", HOSTILE_SENDER, MULTILINE_TEXT, MULTILINE_TEXT))
        conn.execute(insert, (cid, "9000000000003", base, 3, "8:live:hostile", HOSTILE_SENDER, CONTROL_TEXT, CONTROL_TEXT))
        conn.execute(insert, (cid, "9000000000004", base, 4, "8:live:hostile", HOSTILE_SENDER, "click me", "click me"))
        conn.execute(
            "INSERT INTO links (conversation_id, message_id, position, url, text) "
            "VALUES (%s, '9000000000004', 0, 'javascript:alert(3)', 'click me')",
            (cid,),
        )
        stored = conn.execute(
            "SELECT media_path FROM attachments WHERE media_status = 'stored' AND kind = 'photo' "
            "ORDER BY media_path LIMIT 2"
        ).fetchall()
        assert len(stored) == 2, "the generated export must have stored pictures"
        # Files of their own (a file already placed keeps its first name): one with a path in its
        # name, two whose names differ only in case, and one that points outside the store.
        for i, letter in enumerate("abc"):
            shutil.copyfile(artifacts / stored[i % 2][0], artifacts / "media" / f"hostile-{letter}.1.png")
        attachment = (
            "INSERT INTO attachments (conversation_id, message_id, position, kind, original_name, media_path, "
            "media_status) VALUES (%s, '9000000000001', %s, 'photo', %s, %s, 'stored')"
        )
        conn.execute(attachment, (cid, 0, "../../escape.png", "media/hostile-a.1.png"))
        conn.execute(attachment, (cid, 1, "same.png", "media/hostile-b.1.png"))
        conn.execute(attachment, (cid, 2, "SAME.png", "media/hostile-c.1.png"))
        conn.execute(attachment, (cid, 3, "passwd", "media/../../../../etc/passwd"))
    return cid, "9000000000001"


@pytest.fixture(scope="module")
def warehouse(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """A warehouse loaded by the real pipeline from a generated export with media, plus a few hostile rows."""
    root = tmp_path_factory.mktemp("read")
    home = root / "home"
    artifacts = home / "artifacts"
    schema = f"rd_{uuid.uuid4().hex[:10]}"
    truth = generate_export(root / "8_live_reader_export.tar", messages=1500, seed=23)
    ETLPipeline(pipeline_config(database_url, artifacts, schema)).run(truth.path)
    cid, mid = _insert_test_rows(database_url, schema, artifacts)
    try:
        yield Warehouse(database_url, schema, home, artifacts, cid, mid)
    finally:
        drop_schema(database_url, schema)


def _expected_messages(w: Warehouse, where: str = "TRUE", params: dict | None = None) -> dict[str, list[tuple]]:
    """conversation_id -> [(message_id, text, sent_at)] in time order, straight from SQL."""
    rows = w.rows(
        "SELECT m.conversation_id, m.message_id, coalesce(m.content_text, ''), m.sent_at FROM messages m "
        "LEFT JOIN people p ON p.person_id = m.sender_id "
        f"WHERE {where} ORDER BY m.conversation_id, m.sent_at, m.message_id",
        params or {},
    )
    out: dict[str, list[tuple]] = {}
    for cid, mid, text, sent_at in rows:
        out.setdefault(cid, []).append((mid, text, sent_at))
    return out


def _read_csv_folder(folder: Path) -> dict[str, list[dict]]:
    """conversation_id -> rows of its CSV file; a file must hold exactly one conversation."""
    out: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == (
                "conversation_id", "conversation", "message_id", "sent_at", "sender_id", "sender_name",
                "message_type", "text", "edited_at", "deleted_at", "attachments",
            )
            rows = list(reader)
        ids = {r["conversation_id"] for r in rows}
        assert len(ids) == 1, path
        (cid,) = ids
        assert cid not in out, f"two files for {cid}"
        out[cid] = rows
    return out


def _export(w: Warehouse, out: Path, *args: str) -> dict:
    done = w.cli("export", str(out), *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.strip().splitlines()) == 1
    return json.loads(done.stdout)


def test_csv_of_every_conversation_holds_exactly_its_messages(warehouse: Warehouse, tmp_path: Path) -> None:
    summary = _export(warehouse, tmp_path / "out", "--format", "csv", "--tz", "UTC")
    got = _read_csv_folder(tmp_path / "out")
    expected = _expected_messages(warehouse)
    assert set(got) == set(expected)
    for cid, rows in got.items():
        assert [(r["message_id"], r["text"]) for r in rows] == [(mid, text) for mid, text, _ in expected[cid]]
        assert [datetime.fromisoformat(r["sent_at"]) for r in rows] == [at for _, _, at in expected[cid]]
        assert all(r["sent_at"].endswith("+00:00") for r in rows)
    assert summary["messages"] == sum(len(v) for v in expected.values())
    assert summary["conversations"] == len(expected)
    hostile = {r["message_id"]: r for r in got[warehouse.hostile_conversation]}
    assert hostile["9000000000001"]["text"] == HOSTILE_TEXT
    assert hostile["9000000000002"]["text"] == MULTILINE_TEXT


def test_csv_attachments_name_the_media_files_placed_safely(warehouse: Warehouse, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(warehouse, out, "--format", "csv")
    media = out / "media"
    placed = {p.name for p in media.iterdir()}
    stored = warehouse.rows(
        "SELECT a.conversation_id, a.message_id, a.media_path FROM attachments a "
        "WHERE a.media_status = 'stored' ORDER BY 1, 2, a.position"
    )
    got = _read_csv_folder(out)
    by_message = {(cid, r["message_id"]): r["attachments"] for cid, rows in got.items() for r in rows}
    for cid, mid, media_path in stored:
        names = [n for n in by_message[(cid, mid)].split(";") if n]
        assert names, (cid, mid)
        if "/../" in media_path:
            continue
        source = (warehouse.artifacts / media_path).read_bytes()
        assert any((media / n).is_file() and (media / n).read_bytes() == source for n in names), (cid, mid, names)
    # Nothing escapes the folder, names that clash in letter case are told apart, /etc/passwd is not copied.
    for p in media.rglob("*"):
        assert p.resolve().is_relative_to(media.resolve()) and p.parent == media
    assert "escape.png" in placed and not (tmp_path / "escape.png").exists()
    assert {"same.png", "SAME (2).png"} <= placed
    assert "passwd" not in placed
    hostile = by_message[(warehouse.hostile_conversation, warehouse.hostile_message)].split(";")
    assert hostile == ["escape.png", "same.png", "SAME (2).png", "passwd"]


def test_csv_bom_only_when_asked(warehouse: Warehouse, tmp_path: Path) -> None:
    _export(warehouse, tmp_path / "plain", "--format", "csv")
    _export(warehouse, tmp_path / "bom", "--format", "csv", "--bom")
    plain = sorted((tmp_path / "plain").glob("*.csv"))
    bom = sorted((tmp_path / "bom").glob("*.csv"))
    assert plain and [p.name for p in plain] == [p.name for p in bom]
    assert all(not p.read_bytes().startswith(b"\xef\xbb\xbf") for p in plain)
    assert all(p.read_bytes().startswith(b"\xef\xbb\xbfconversation_id,") for p in bom)
    assert all(b.read_bytes()[3:] == p.read_bytes() for p, b in zip(plain, bom))
    assert b"\r\n" in plain[0].read_bytes()  # RFC 4180 line ends


def _txt_blocks(path: Path) -> list[list[str]]:
    """Lines grouped by message: a line without indentation starts a message."""
    blocks: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        if line.startswith("    "):
            blocks[-1].append(line[4:])
        else:
            blocks.append([line])
    return blocks


def test_txt_has_one_block_per_message_with_its_lines(warehouse: Warehouse, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(warehouse, out, "--format", "txt", "--tz", "Asia/Kolkata")
    files = sorted(out.glob("*.txt"))
    rows = warehouse.rows(
        "SELECT m.conversation_id, coalesce(m.content_text, ''), "
        "to_char(m.sent_at AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI'), "
        "coalesce(nullif(m.sender_name, ''), nullif(p.display_name, ''), m.sender_id) "
        "FROM messages m LEFT JOIN people p ON p.person_id = m.sender_id ORDER BY m.conversation_id, m.sent_at, m.message_id"
    )
    expected: dict[str, list[tuple[str, str, str]]] = {}
    for cid, text, at, sender in rows:
        expected.setdefault(cid, []).append((text, at, sender))
    assert len(files) == len(expected)
    header = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d)\] (.*?): (.*)$")
    unmatched = dict(expected)
    multiline = 0
    for path in files:
        blocks = _txt_blocks(path)
        candidates = [cid for cid, msgs in unmatched.items() if len(msgs) == len(blocks)]
        matched = None
        for cid in candidates:
            msgs = unmatched[cid]
            if all(header.match(b[0]) and header.match(b[0]).group(1) == at for b, (_, at, _) in zip(blocks, msgs)):
                matched = cid
                break
        assert matched is not None, path
        for block, (text, at, sender) in zip(blocks, unmatched.pop(matched)):
            m = header.match(block[0])
            assert m and m.group(1) == at and m.group(2) == " ".join(sender.split())
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if text else []
            if lines:
                assert [m.group(3)] + block[1:len(lines)] == lines
                multiline += len(lines) > 1
    assert not unmatched
    assert multiline >= 2  # the generated multi-line messages and the CRLF one


def _zone_offsets_match(rows: list[dict], zone: str) -> None:
    tz = ZoneInfo(zone)
    for r in rows:
        local = datetime.fromisoformat(r["sent_at"])
        assert local.utcoffset() == local.astimezone(tz).utcoffset(), r["sent_at"]


def test_times_are_in_the_requested_zone(warehouse: Warehouse, tmp_path: Path) -> None:
    zone = "America/New_York"
    _export(warehouse, tmp_path / "out", "--format", "csv", "--tz", zone)
    got = _read_csv_folder(tmp_path / "out")
    wall = dict(
        ((cid, mid), text)
        for cid, mid, text in warehouse.rows(
            "SELECT conversation_id, message_id, to_char(sent_at AT TIME ZONE %s, 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM messages",
            (zone,),
        )
    )
    offsets = set()
    for cid, rows in got.items():
        _zone_offsets_match(rows, zone)
        for r in rows:
            assert r["sent_at"][:19] == wall[(cid, r["message_id"])]
            offsets.add(r["sent_at"][-6:])
    assert offsets == {"-05:00", "-04:00"}  # winter and summer time over the years


def test_json_validates_and_round_trips_to_the_rows(warehouse: Warehouse, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(warehouse, out, "--format", "json", "--tz", "Europe/Berlin")
    expected = _expected_messages(warehouse)
    reactions = warehouse.rows("SELECT conversation_id, message_id, reaction, person_id, reacted_at FROM reactions")
    attachments = warehouse.rows("SELECT conversation_id, message_id, count(*) FROM attachments GROUP BY 1, 2")
    quotes = warehouse.rows("SELECT conversation_id, message_id, position, text FROM quotes")
    calls = warehouse.rows("SELECT conversation_id, message_id, state, duration_seconds FROM calls")
    counts = {
        cid: (calls, files)
        for cid, calls, files in warehouse.rows(
            "SELECT m.conversation_id, count(c.message_id), count(*) FILTER (WHERE m.message_id IN "
            "(SELECT a.message_id FROM attachments a WHERE a.conversation_id = m.conversation_id)) "
            "FROM messages m LEFT JOIN calls c USING (conversation_id, message_id) GROUP BY 1"
        )
    }
    seen: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert set(document) == {"conversation", "time_zone", "messages"}
        assert document["time_zone"] == "Europe/Berlin"
        cid = document["conversation"]["conversation_id"]
        assert document["conversation"]["messages"] == len(document["messages"])
        head = document["conversation"]
        assert (head["calls"], head["messages_with_files"]) == counts[cid]
        assert {m["conversation_id"] for m in document["messages"]} == {cid}
        seen[cid] = document["messages"]
        assert json.loads(json.dumps(document, ensure_ascii=False)) == document
    assert set(seen) == set(expected)
    by_key = {(m["conversation_id"], m["message_id"]): m for msgs in seen.values() for m in msgs}
    for cid, msgs in expected.items():
        assert [(m["message_id"], m["text"]) for m in seen[cid]] == [(mid, text) for mid, text, _ in msgs]
        assert [datetime.fromisoformat(m["sent_at"]) for m in seen[cid]] == [at for _, _, at in msgs]
    got_reactions = {
        (cid, mid, r["reaction"], r["person_id"], datetime.fromisoformat(r["reacted_at"]) if r["reacted_at"] else None)
        for (cid, mid), m in by_key.items() for r in m["reactions"]
    }
    assert got_reactions == set(reactions) and reactions
    assert {k: len(m["attachments"]) for k, m in by_key.items() if m["attachments"]} == {
        (cid, mid): n for cid, mid, n in attachments
    }
    assert {(k[0], k[1], q["position"], q["text"]) for k, m in by_key.items() for q in m["quotes"]} == set(quotes)
    assert {(k[0], k[1], m["call"]["state"], m["call"]["duration_seconds"]) for k, m in by_key.items() if m["call"]} == set(calls)
    for m in by_key.values():
        for a in m["attachments"]:
            assert "media_path" not in a
            if a["file"]:
                assert (out / a["file"]).is_file()


FILTER_CASES = [
    # (export options, SQL condition on m = messages, p = people) with %(x)s parameters
    (("--since", "2020-01-01", "--tz", "Asia/Tokyo"), "m.sent_at >= ('2020-01-01'::timestamp AT TIME ZONE 'Asia/Tokyo')"),
    (("--until", "2019-06-30", "--tz", "Asia/Tokyo"), "m.sent_at < ('2019-07-01'::timestamp AT TIME ZONE 'Asia/Tokyo')"),
    (
        ("--since", "2018-03-01", "--until", "2021-10-31", "--tz", "America/Los_Angeles"),
        "m.sent_at >= ('2018-03-01'::timestamp AT TIME ZONE 'America/Los_Angeles') "
        "AND m.sent_at < ('2021-11-01'::timestamp AT TIME ZONE 'America/Los_Angeles')",
    ),
    (
        ("--since", "2019-05-05T10:30", "--until", "2022-01-01T00:00", "--tz", "UTC"),
        "m.sent_at >= '2019-05-05 10:30+00' AND m.sent_at <= '2022-01-01 00:00+00'",
    ),
]


@pytest.mark.parametrize(("options", "condition"), FILTER_CASES)
def test_date_filters_give_the_rows_sql_gives(warehouse: Warehouse, tmp_path: Path, options, condition) -> None:
    _export(warehouse, tmp_path / "out", "--format", "csv", *options)
    got = {cid: [r["message_id"] for r in rows] for cid, rows in _read_csv_folder(tmp_path / "out").items()}
    expected = {cid: [mid for mid, _, _ in msgs] for cid, msgs in _expected_messages(warehouse, condition).items()}
    assert got == expected
    assert 0 < sum(map(len, got.values())) < sum(map(len, _expected_messages(warehouse).values()))


def test_conversation_and_sender_filters_give_the_rows_sql_gives(warehouse: Warehouse, tmp_path: Path) -> None:
    (cid_a, name_a), (cid_b, _) = warehouse.rows(
        "SELECT c.conversation_id, c.display_name FROM conversations c JOIN messages m USING (conversation_id) "
        "WHERE c.display_name <> '' GROUP BY 1, 2 HAVING (SELECT count(*) FROM conversations x "
        "WHERE lower(x.display_name) = lower(c.display_name)) = 1 ORDER BY count(*) DESC LIMIT 2"
    )
    (sender_id, sender_name), = warehouse.rows(
        "SELECT m.sender_id, p.display_name FROM messages m JOIN people p ON p.person_id = m.sender_id "
        "WHERE m.conversation_id = %s AND p.display_name <> '' GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1",
        (cid_a,),
    )
    cases = [
        (("--conversation", name_a.upper(), "--conversation", cid_b), "m.conversation_id IN (%(a)s, %(b)s)"),
        (("--from", sender_name), "(m.sender_id = %(s)s OR lower(p.display_name) = lower(%(n)s) OR lower(m.sender_name) = lower(%(n)s))"),
        (("--from", sender_id, "--conversation", cid_a), "m.sender_id = %(s)s AND m.conversation_id = %(a)s"),
    ]
    for i, (options, condition) in enumerate(cases):
        out = tmp_path / f"out{i}"
        _export(warehouse, out, "--format", "csv", *options)
        got = {cid: [r["message_id"] for r in rows] for cid, rows in _read_csv_folder(out).items()}
        params = {"a": cid_a, "b": cid_b, "s": sender_id, "n": sender_name}
        expected = {cid: [mid for mid, _, _ in msgs] for cid, msgs in _expected_messages(warehouse, condition, params).items()}
        assert got == expected and got, options


def test_html_pages_escape_everything_and_link_only_inside_or_to_the_web(warehouse: Warehouse, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(warehouse, out, "--format", "html")
    pages = sorted((out / "conversations").glob("*.html"))
    expected = _expected_messages(warehouse)
    assert len(pages) == len(expected)
    ids: set[str] = set()
    for page in [out / "index.html", *pages]:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower()
        collector = _Links()
        collector.feed(text)
        ids |= collector.message_ids
        for tag, attribute, value, rel in collector.links:
            scheme = urlsplit(value).scheme.lower()
            if scheme:
                assert tag == "a" and attribute == "href" and scheme in ("http", "https", "mailto"), value
                assert "noreferrer" in rel
            else:
                target = (page.parent / unquote(value.split("#")[0])).resolve()
                assert target.is_file() and target.is_relative_to(out.resolve()), value
        assert "javascript:" not in text
    assert ids == {f"m-{mid}" for msgs in expected.values() for mid, _, _ in msgs}
    hostile = next(p for p in pages if "9000000000001" in p.read_text(encoding="utf-8")).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in hostile


class _Links(HTMLParser):
    """Every URL a page refers to, and the ids of its messages."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str, str]] = []
        self.message_ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for attribute in ("href", "src", "srcset", "poster", "data", "action"):
            if a.get(attribute) is not None:
                self.links.append((tag, attribute, a[attribute], a.get("rel") or ""))
        if tag == "div" and "msg" in (a.get("class") or "").split() and a.get("id"):
            self.message_ids.add(a["id"])


def test_long_conversations_are_split_into_linked_pages(warehouse: Warehouse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(as_html, "PAGE_MESSAGES", 40)
    out = tmp_path / "out"
    run_export(warehouse.url, warehouse.schema, ExportRequest(
        out_dir=out, format="html", conversations=(warehouse.hostile_conversation,), artifacts=warehouse.artifacts,
    ))
    expected = [mid for mid, _, _ in _expected_messages(warehouse)[warehouse.hostile_conversation]]
    assert len(expected) > 80
    first = next(p for p in (out / "conversations").glob("*.html") if not re.search(r"\.\d+\.html$", p.name))
    order: list[str] = []
    page, visited = first, 0
    while page is not None:
        text = page.read_text(encoding="utf-8")
        on_page = re.findall(r'<div class="msg[^"]*" id="m-([^"]+)"', text)
        assert 0 < len(on_page) <= 40
        order += on_page
        visited += 1
        nxt = re.search(r'<a href="([^"]+)" rel="next">', text)
        page = (page.parent / unquote(nxt.group(1))) if nxt else None
        if page is not None:
            assert page.is_file()
            assert re.search(r'rel="prev"', page.read_text(encoding="utf-8"))
    assert order == expected
    assert visited == -(-len(expected) // 40)


BAD_INPUTS = [
    (("--conversation", "no such chat"), "no conversation"),
    (("--since", "2021-02-30"), "--since"),
    (("--until", "yesterday"), "--until"),
    (("--since", "2022-01-01", "--until", "2021-01-01"), "after"),
    (("--tz", "Mars/Olympus_Mons"), "--tz"),
    (("--from", "Nobody Atall"), "--from"),
    (("--schema", "no_such_schema_here"), "no warehouse"),
]


@pytest.mark.parametrize(("options", "says"), BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(warehouse: Warehouse, tmp_path: Path, options, says) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "export", str(out), "--database-url", warehouse.url,
        *(("--schema", warehouse.schema) if "--schema" not in options else ()), *options, home=warehouse.home,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_existing_folders_are_kept_unless_replacing_an_earlier_export(warehouse: Warehouse, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ((), ("--force",)):
        done = warehouse.cli("export", str(mine), "--format", "txt", *extra)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    out = tmp_path / "out"
    _export(warehouse, out, "--format", "txt")
    done = warehouse.cli("export", str(out), "--format", "csv")
    assert done.returncode == 2 and "--force" in done.stderr
    assert list(out.glob("*.csv")) == []
    _export(warehouse, out, "--format", "csv", "--force")
    assert list(out.glob("*.txt")) == [] and list(out.glob("*.csv"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _export(warehouse, empty, "--format", "txt")
    assert list(empty.glob("*.txt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine", "out"]  # no temporary folder left


def test_unwritable_folder_exits_2(warehouse: Warehouse, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/skype-etl-export-test")  # not even root can create folders in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    done = warehouse.cli("export", str(target))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(target) in done.stderr
    assert not target.exists()


def test_summary_is_one_line_on_stdout_and_nothing_else(warehouse: Warehouse, tmp_path: Path) -> None:
    done = warehouse.cli("export", str(tmp_path / "out"), "--format", "txt")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    total = warehouse.rows("SELECT count(*) FROM messages")[0][0]
    assert f"{total} messages" in line and str(tmp_path / "out") in line


def _message_chunks(folder: Path) -> dict[str, str]:
    """Message id -> the HTML of its message boxes, over every conversation page (ids are unique
    per conversation only, so boxes of equal ids in different conversations are joined)."""
    chunks: dict[str, str] = {}
    for page in (folder / "conversations").glob("*.html"):
        text = page.read_text(encoding="utf-8").split("</main>")[0]
        for part in re.split(r'(?=<div class="day">|<div class="msg)', text):
            m = re.match(r'<div class="msg[^"]*" id="m-([^"]+)"', part)
            if m:
                chunks[m.group(1)] = chunks.get(m.group(1), "") + part
    return chunks


def test_html_shows_what_the_child_tables_hold(warehouse: Warehouse, tmp_path: Path) -> None:
    from html import unescape

    def escape(value: str) -> str:  # the chunks are compared unescaped
        return value

    out = tmp_path / "out"
    _export(warehouse, out, "--format", "html")
    chunks = {mid: unescape(chunk) for mid, chunk in _message_chunks(out).items()}
    checks = {
        "quotes": ("SELECT message_id, text FROM quotes WHERE coalesce(text, '') <> ''", lambda v: f"</div>{escape(v)}</blockquote>"),
        "polls": ("SELECT message_id, question FROM polls WHERE question <> ''", lambda v: f"Poll: {escape(v)}<ul>"),
        "locations": ("SELECT message_id, address FROM locations WHERE address <> ''", lambda v: f"📍 {escape(v)}"),
        "translations": ("SELECT message_id, text FROM translations WHERE coalesce(text, '') <> ''", lambda v: escape(v)),
        "contacts": ("SELECT c.message_id, coalesce(nullif(p.display_name, ''), c.name, c.person_id) FROM contact_cards c "
                     "LEFT JOIN people p USING (person_id)", lambda v: f"Contact: {escape(v)}"),
        "calls": ("SELECT message_id, 'Call ' || state FROM calls WHERE state IS NOT NULL", lambda v: escape(v)),
        "events": ("SELECT message_id, '' FROM thread_events", lambda v: '<div class="note">'),
        "edited": ("SELECT message_id, '' FROM messages WHERE edited_at IS NOT NULL", lambda v: ">edited "),
        "deleted": ("SELECT message_id, '' FROM messages WHERE deleted_at IS NOT NULL", lambda v: ">deleted "),
        "files": ("SELECT message_id, original_name FROM attachments WHERE media_status = 'stored' AND original_name <> '' "
                  "AND media_path NOT LIKE '%%..%%'", lambda v: 'href="../media/'),
        "missing": ("SELECT message_id, '' FROM attachments WHERE media_status = 'missing' AND original_name <> ''",
                    lambda v: "not in the archive"),
        "links": ("SELECT message_id, url FROM links WHERE url ~ '^https?://'", lambda v: f'href="{escape(v)}" rel="noreferrer"'),
    }
    for label, (query, expected) in checks.items():
        rows = warehouse.rows(query)
        assert rows, f"the generated export has no {label}"
        for mid, value in rows:
            assert expected(value) in chunks[mid], (label, mid, value)
    reactions = warehouse.rows("SELECT message_id, count(*) FROM reactions GROUP BY 1")
    assert reactions
    for mid, n in reactions:
        boxes = chunks[mid].split('<div class="reactions">')[1:]
        counts = [c for box in boxes for c in re.findall(r'<span title="[^"]*">\S+ (\d+)</span>', box.split("</div>")[0])]
        assert sum(map(int, counts)) == n, mid


def test_progress_bar_only_on_a_terminal(warehouse: Warehouse, tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import sys
    import termios
    import threading

    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "ETL_HOME": str(warehouse.home)}
    env.pop("ETL_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", "export", str(tmp_path / "out"), "--format", "txt",
         "--database-url", warehouse.url, "--schema", warehouse.schema],
        stdout=subprocess.PIPE, stderr=side, env=env,
    )
    os.close(side)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(10)
    terminal = b"".join(received)
    os.close(main)
    assert process.returncode == 0
    assert b" msg" in terminal and b"%" in terminal  # tqdm drew on the terminal
    assert len(stdout.decode().splitlines()) == 1  # stdout (not a terminal) has the summary only


def test_failures_exit_1_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://etl:s3cret-pa55@127.0.0.1:9/nowhere"
    for command in (("export", str(tmp_path / "out")), ("search", "hello")):
        done = run_cli(*command, "--database-url", url, home=tmp_path / "home")
        assert done.returncode == 1, done.stderr
        assert "s3cret-pa55" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
