"""Fidelity in PostgreSQL: structured rows field by field, later exports, shared group chats."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.pipeline import ETLPipeline
from etl_assets_tests.helpers import pipeline_config


def _message(mid: str, conversation: str, sender: str, mtype: str, content: str, *, name=None, props=None, version=None, at=None) -> dict:
    return {
        "id": mid,
        "conversationid": conversation,
        "originalarrivaltime": at or f"2020-09-13T12:{int(mid) % 60:02d}:40.123Z",
        "messagetype": mtype,
        "version": version if version is not None else int(mid),
        "from": sender,
        "displayName": name,
        "content": content,
        "properties": props,
        "amsreferences": None,
    }


def _export(path: Path, owner: str, conversations: list[dict]) -> Path:
    path.write_text(json.dumps({"userId": owner, "exportDate": "2025-04-30T18:02", "conversations": conversations}))
    return path


def _rows(database_url: str, schema: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql.SQL(query).format(s=sql.Identifier(schema)), params).fetchall()


GROUP = "19:b1c2d3@thread.skype"


@pytest.fixture
def loaded(database_url: str, schema: str, tmp_path: Path):
    """One export with one message of each structured kind, loaded."""
    messages = [
        _message("1600000000001", GROUP, "8:live:ann", "RichText",
                 '<quote author="8:live:bob" authorname="Bob" timestamp="1600000000" messageid="1599999999999">'
                 "<legacyquote>[1600000000] Bob: </legacyquote>Are you coming?<legacyquote>\n\n&lt;&lt;&lt; </legacyquote>"
                 '</quote>Yes, <at id="8:live:bob">Bob</at>! See <a href="https://example.org/x">the map</a>',
                 name="Ann", props={"emotions": [{"key": "heart", "users": [{"mri": "8:live:bob", "time": 1600000005000}]}]}),
        _message("1600000000002", GROUP, "8:live:bob", "Event/Call",
                 '<partlist type="ended" alt="" callId="call-7"><part identity="8:live:ann"><name>Ann</name>'
                 "<duration>84.82</duration></part><part identity=\"8:live:bob\"><name>Bob</name><duration>80.5</duration></part></partlist>",
                 name="Bob", props={"call-log": json.dumps({"callDirection": "outgoing", "callType": "audio", "callState": "ended"})}),
        _message("1600000000003", GROUP, "8:live:ann", "ThreadActivity/DeleteMember",
                 "<deletemember><eventtime>1600000003000</eventtime><initiator>8:live:cat</initiator>"
                 "<target>8:live:cat</target></deletemember>"),
        _message("1600000000004", GROUP, "8:live:ann", "RichText/Location",
                 '<location latitude="52520008" longitude="13404954" address="Berlin"><a href="https://maps/x">Berlin</a></location>',
                 name="Ann"),
        _message("1600000000005", GROUP, "8:live:bob", "Poll",
                 '<URIObject type="Poll" title="Where next?" expirationTimeMs="1740844380000" '
                 'optionsEncoded="Telegram|WhatsApp|Slack" allowMultipleVotes="true">Where next?</URIObject>', name="Bob"),
        _message("1600000000006", GROUP, "8:live:ann", "Sparkle/Hologram", '{"future": true}', name="Ann"),
        _message("1600000000007", GROUP, "8:live:bob", "Translation",
                 '{"type":2,"data":{"translation":"Good morning!","sourceLanguage":"de","targetLanguage":"en"}}'),
    ]
    conversations = [
        {"id": GROUP, "displayName": "Trip", "threadProperties": {"topic": "Trip", "members": '["8:live:ann","8:live:bob"]'},
         "MessageList": list(reversed(messages))},
        {"id": "8:live:bob", "displayName": None, "MessageList": None},
    ]
    path = _export(tmp_path / "export.json", "8:live:ann", conversations)
    ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema)).run(path)
    return lambda query, *params: _rows(database_url, schema, query, *params)


def test_reply_mention_link_and_reaction(loaded) -> None:
    [(text,)] = loaded("SELECT content_text FROM {s}.messages WHERE message_id = '1600000000001'")
    assert text == "Yes, @Bob! See the map"
    assert loaded("SELECT author_id, author_name, quoted_at, quoted_message_id, text FROM {s}.quotes") == [
        ("8:live:bob", "Bob", datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC), "1599999999999", "Are you coming?")
    ]
    assert loaded("SELECT person_id, name FROM {s}.mentions") == [("8:live:bob", "Bob")]
    assert loaded("SELECT url, text FROM {s}.links") == [("https://example.org/x", "the map")]
    assert loaded("SELECT reaction, person_id, reacted_at FROM {s}.reactions") == [
        ("heart", "8:live:bob", datetime(2020, 9, 13, 12, 26, 45, tzinfo=UTC))
    ]


def test_call_with_participants_and_log(loaded) -> None:
    assert loaded("SELECT call_id, state, duration_seconds, direction, call_type FROM {s}.calls") == [
        ("call-7", "ended", 84.82, "outgoing", "audio")
    ]
    assert loaded("SELECT person_id, name, duration_seconds FROM {s}.call_participants ORDER BY position") == [
        ("8:live:ann", "Ann", 84.82),
        ("8:live:bob", "Bob", 80.5),
    ]


def test_member_left_location_poll_and_unknown_type(loaded) -> None:
    assert loaded("SELECT event_type, initiator, targets, event_at FROM {s}.thread_events") == [
        ("member_left", "8:live:cat", ["8:live:cat"], datetime(2020, 9, 13, 12, 26, 43, tzinfo=UTC))
    ]
    assert loaded("SELECT latitude, longitude, address FROM {s}.locations") == [(52.520008, 13.404954, "Berlin")]
    assert loaded("SELECT question, options, multiple_votes FROM {s}.polls") == [
        ("Where next?", ["Telegram", "WhatsApp", "Slack"], True)
    ]
    assert loaded("SELECT content_raw FROM {s}.messages WHERE message_type = 'Sparkle/Hologram'") == [('{"future": true}',)]
    assert loaded("SELECT kind, text, source_language, target_language FROM {s}.translations") == [
        ("Translation", "Good morning!", "de", "en")
    ]


def test_conversations_people_and_memberships(loaded) -> None:
    assert loaded("SELECT conversation_id, kind, display_name FROM {s}.conversations ORDER BY 1") == [
        ("19:b1c2d3@thread.skype", "group", "Trip"),
        ("8:live:bob", "one_to_one", "Bob"),  # no displayName and no messages: named after the other person
    ]
    assert loaded("SELECT person_id FROM {s}.memberships WHERE conversation_id = %s ORDER BY 1", GROUP) == [
        ("8:live:ann",), ("8:live:bob",)
    ]
    assert loaded("SELECT person_id, is_owner FROM {s}.people WHERE is_owner") == [("8:live:ann", True)]


def test_full_text_search(loaded) -> None:
    assert loaded(
        "SELECT message_id FROM {s}.messages WHERE content_tsv @@ websearch_to_tsquery('simple', 'map coming')"
    ) == []  # "coming" is in the quoted part, not in the reply
    assert loaded("SELECT message_id FROM {s}.messages WHERE content_tsv @@ websearch_to_tsquery('simple', 'see map')") == [
        ("1600000000001",)
    ]


def _generated_messages(path: Path) -> dict:
    with tarfile.open(path) as archive:
        return json.load(archive.extractfile("messages.json"))


def test_a_later_export_adds_exactly_the_new_messages(database_url: str, schema: str, small_export, tmp_path: Path) -> None:
    """An earlier export holds the messages sent before a cutoff; the later one adds exactly the
    others. Which messages those are comes from the generator's digest (every copy of a
    message has its time), not from the project's time parser."""
    later = _generated_messages(small_export.path)
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    cutoff_ms = int(cutoff.timestamp() * 1000)
    sent_ms = {(d.conversation_id, d.message_id): d.sent_ms for d in small_export.digest()}
    earlier = json.loads(json.dumps(later))
    for conversation in earlier["conversations"]:
        if isinstance(conversation.get("MessageList"), list):
            conversation["MessageList"] = [  # records of messages sent before the cutoff; the unusable ones go
                m for m in conversation["MessageList"]
                if sent_ms.get((m.get("conversationid"), m.get("id") if isinstance(m.get("id"), str) else None), cutoff_ms)
                < cutoff_ms
            ]
    in_earlier = {key for key, ms in sent_ms.items() if ms < cutoff_ms}
    new_pairs = set(sent_ms) - in_earlier

    earlier_path, later_path = tmp_path / "earlier.json", tmp_path / "later.json"
    earlier_path.write_text(json.dumps(earlier))
    later_path.write_text(json.dumps(later))
    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    first = pipeline.run(earlier_path)
    second = pipeline.run(later_path)
    assert 0 < len(new_pairs) < len(sent_ms) == small_export.messages
    assert first.load.messages == len(in_earlier)
    assert second.load.rows_changed["messages"] == len(new_pairs)
    stored = set(_rows(database_url, schema, "SELECT conversation_id, message_id FROM {s}.messages"))
    assert stored == set(sent_ms)
    in_both = _rows(database_url, schema, "SELECT conversation_id, message_id FROM {s}.message_sources GROUP BY 1, 2 HAVING count(*) = 2")
    assert set(in_both) == in_earlier


def test_exports_of_two_accounts_merge_a_shared_group_chat(database_url: str, schema: str, tmp_path: Path) -> None:
    shared = _message("1600000000020", GROUP, "8:live:bob", "RichText", "hello both", name="Bob")
    ann = _export(tmp_path / "ann.json", "8:live:ann", [
        {"id": GROUP, "displayName": "Trip", "MessageList": [shared, _message("1600000000021", GROUP, "8:live:ann", "RichText", "from ann")]},
    ])
    bob = _export(tmp_path / "bob.json", "live:bob", [
        {"id": GROUP, "displayName": "Trip", "MessageList": [_message("1600000000022", GROUP, "live:bob", "RichText", "from bob"), shared]},
    ])
    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    pipeline.run(ann)
    pipeline.run(bob)
    assert _rows(database_url, schema, "SELECT count(*) FROM {s}.conversations") == [(1,)]
    assert _rows(database_url, schema, "SELECT count(*) FROM {s}.messages") == [(3,)]
    assert _rows(database_url, schema, "SELECT person_id FROM {s}.people WHERE is_owner ORDER BY 1") == [
        ("8:live:ann",), ("8:live:bob",)
    ]
    assert _rows(
        database_url, schema,
        "SELECT count(*) FROM {s}.message_sources WHERE message_id = '1600000000020'",
    ) == [(2,)]


def test_data_model_doc_is_generated_from_the_schema_and_its_queries_run(loaded) -> None:
    import re

    from etl_assets.etl.warehouse.data_model_doc import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "data-model.md"
    assert doc.read_text() == render(), "run: python -m etl_assets.etl.warehouse.data_model_doc docs/data-model.md"
    queries = re.findall(r"```sql\n(.*?)```", render(), flags=re.S)
    # The examples name a chat, a person and words to search for; here they name the fixture's.
    here = {"'19:...@thread.skype'": f"'{GROUP}'", "'8:live:someone'": "'8:live:ann'", "'birthday party'": "'see map'"}

    def run(query: str) -> list[tuple]:
        for example, value in here.items():
            query = query.replace(example, value)
        return loaded(query.replace("skype.", "{s}.").replace("%", "%%"))

    chat, calls, reactions, search, by_person = (run(q) for q in queries)  # exactly these five examples
    assert len(chat) == 7 and chat[0][1:] == ("Ann", "Yes, @Bob! See the map", "Bob", "Are you coming?", None, None, None)
    assert [row[1:] for row in calls] == [(1, Decimal("0.0"))]  # one ended call of 84.82 s
    assert reactions == [("Bob", "heart", 1)]
    assert [row[1:] for row in search] == [("Ann", "Yes, @Bob! See the map")]
    assert [row[2] for row in by_person] == ["Yes, @Bob! See the map", "", "Berlin", '{"future": true}'] and all(r[5] is None for r in by_person)
