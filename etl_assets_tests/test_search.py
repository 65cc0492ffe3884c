"""``skype-etl search``: every operator against an independent SQL query on the same warehouse.

The reference queries are written by hand: ``to_tsvector`` recomputed from ``content_text``
(not the stored column), ``ILIKE`` on names, and PostgreSQL's own zone rules for dates.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from etl_assets.etl.read.query import QuerySyntaxError, parse_query
from etl_assets.etl.read.search import START, STOP, Hit, format_hit

from .helpers import run_cli
from .test_export import HOSTILE_TEXT, Warehouse, warehouse  # noqa: F401 - the shared fixture

ALL = "100000"


def _search(w: Warehouse, query: str, *options: str) -> list[dict]:
    done = w.cli("search", query, "--json", "--limit", ALL, *options)
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)
    assert isinstance(hits, list)
    for hit in hits:
        assert set(hit) == {"conversation_id", "conversation", "message_id", "sent_at", "sender_name", "text", "snippet"}
    return hits


def _keys(hits: list[dict]) -> list[tuple[str, str]]:
    return [(h["conversation_id"], h["message_id"]) for h in hits]


def _expected(w: Warehouse, condition: str, params: dict | None = None) -> list[tuple[str, str]]:
    rows = w.rows(
        "SELECT m.conversation_id, m.message_id FROM messages m "
        "LEFT JOIN people p ON p.person_id = m.sender_id "
        "LEFT JOIN conversations c ON c.conversation_id = m.conversation_id "
        f"WHERE {condition} ORDER BY m.sent_at DESC, m.conversation_id, m.message_id",
        params or {},
    )
    assert rows, f"the reference query finds nothing: {condition}"
    return [tuple(r) for r in rows]


def _tsv(query_function: str = "to_tsquery") -> str:
    return f"to_tsvector('simple', coalesce(m.content_text, '')) @@ {query_function}('simple', %(q)s)"


def test_words_must_all_match(warehouse: Warehouse) -> None:
    one = _search(warehouse, "check")
    assert _keys(one) == _expected(warehouse, _tsv(), {"q": "check"})
    both = _search(warehouse, "you CAN")
    assert _keys(both) == _expected(warehouse, _tsv(), {"q": "you & can"})
    assert 0 < len(both) < len(_search(warehouse, "you"))
    for hit in both:
        assert "you" in hit["text"].lower() and "can" in hit["text"].lower()


def test_exact_phrase(warehouse: Warehouse) -> None:
    hits = _search(warehouse, '"let me check"')
    assert _keys(hits) == _expected(warehouse, _tsv("phraseto_tsquery"), {"q": "let me check"})
    assert all("let me check" in h["text"].lower() for h in hits)
    loose = _search(warehouse, "check me let")
    assert len(loose) >= len(hits)


def test_minus_excludes(warehouse: Warehouse) -> None:
    hits = _search(warehouse, "you -the")
    assert _keys(hits) == _expected(
        warehouse,
        "to_tsvector('simple', coalesce(m.content_text, '')) @@ to_tsquery('simple', 'you') "
        "AND NOT to_tsvector('simple', coalesce(m.content_text, '')) @@ to_tsquery('simple', 'the')",
    )
    assert all("the" not in h["text"].lower().split() for h in hits)
    phrase = _search(warehouse, 'you -"see you"')
    assert _keys(phrase) == _expected(
        warehouse,
        "to_tsvector('simple', coalesce(m.content_text, '')) @@ to_tsquery('simple', 'you') "
        "AND NOT to_tsvector('simple', coalesce(m.content_text, '')) @@ phraseto_tsquery('simple', 'see you')",
    )


def test_from_matches_sender_names_and_ids(warehouse: Warehouse) -> None:
    (name,) = warehouse.rows(
        "SELECT p.display_name FROM messages m JOIN people p ON p.person_id = m.sender_id "
        "WHERE p.display_name ~ '^[A-Za-z]+ ' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    )[0]
    first = name.split()[0]
    hits = _search(warehouse, f"from:{first.lower()}")
    assert _keys(hits) == _expected(
        warehouse,
        "(m.sender_name ILIKE %(p)s OR p.display_name ILIKE %(p)s OR m.sender_id ILIKE %(p)s)",
        {"p": f"%{first}%"},
    )
    quoted = _search(warehouse, f'from:"{name}" you')
    assert _keys(quoted) == _expected(
        warehouse,
        "(m.sender_name ILIKE %(p)s OR p.display_name ILIKE %(p)s OR m.sender_id ILIKE %(p)s) AND " + _tsv(),
        {"p": f"%{name}%", "q": "you"},
    )
    excluded = _search(warehouse, f"you -from:{first}")
    assert _keys(excluded) == _expected(
        warehouse,
        "NOT coalesce(m.sender_name ILIKE %(p)s OR p.display_name ILIKE %(p)s OR m.sender_id ILIKE %(p)s, false) AND "
        + _tsv(),
        {"p": f"%{first}%", "q": "you"},
    )


def test_chat_matches_conversation_names(warehouse: Warehouse) -> None:
    (name,) = warehouse.rows(
        "SELECT c.display_name FROM conversations c JOIN messages m USING (conversation_id) "
        "WHERE c.kind = 'group' AND c.display_name <> '' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    )[0]
    word = name.split()[0]
    hits = _search(warehouse, f"chat:{word.upper()}")
    assert _keys(hits) == _expected(
        warehouse,
        "(c.display_name ILIKE %(c)s OR c.topic ILIKE %(c)s OR m.conversation_id ILIKE %(c)s)",
        {"c": f"%{word}%"},
    )
    assert {h["conversation"] for h in hits} <= {r[0] for r in warehouse.rows("SELECT display_name FROM conversations")}


@pytest.mark.parametrize(
    ("term", "start", "end"),
    [
        ("date:2021", "2021-01-01", "2022-01-01"),
        ("date:2020-02", "2020-02-01", "2020-03-01"),
        ("date:2021-03..2021-06", "2021-03-01", "2021-07-01"),
        ("date:2019..2020", "2019-01-01", "2021-01-01"),
        ("date:..2016-06-30", None, "2016-07-01"),
        ("date:2023-01-15..", "2023-01-15", None),
    ],
)
def test_date_ranges_in_the_requested_zone(warehouse: Warehouse, term: str, start: str | None, end: str | None) -> None:
    zone = "Pacific/Auckland"
    conditions = []
    if start:
        conditions.append("m.sent_at >= (%(start)s::timestamp AT TIME ZONE %(zone)s)")
    if end:
        conditions.append("m.sent_at < (%(end)s::timestamp AT TIME ZONE %(zone)s)")
    hits = _search(warehouse, term, "--tz", zone)
    assert _keys(hits) == _expected(warehouse, " AND ".join(conditions), {"start": start, "end": end, "zone": zone})
    for hit in hits:
        assert datetime.fromisoformat(hit["sent_at"]).utcoffset().total_seconds() in (12 * 3600, 13 * 3600)


@pytest.mark.parametrize(
    ("name", "condition"),
    [
        ("call", "m.message_type = 'Event/Call'"),
        ("picture", "m.message_type = 'RichText/UriObject'"),
        ("file", "m.message_type IN ('RichText/Media_GenericFile', 'RichText/Files')"),
        ("poll", "m.message_type = 'Poll'"),
        ("event", "m.message_type LIKE 'ThreadActivity/%%'"),
        ("video", "m.message_type = 'RichText/Media_Video'"),
    ],
)
def test_types_map_to_message_types(warehouse: Warehouse, name: str, condition: str) -> None:
    assert _keys(_search(warehouse, f"type:{name}")) == _expected(warehouse, condition)


def test_filters_combine_with_and(warehouse: Warehouse) -> None:
    hits = _search(warehouse, "type:picture date:2018..2022 -type:call", "--tz", "UTC")
    assert _keys(hits) == _expected(
        warehouse,
        "m.message_type = 'RichText/UriObject' AND m.sent_at >= '2018-01-01 00:00+00' AND m.sent_at < '2023-01-01 00:00+00'",
    )
    either = _search(warehouse, "type:call type:poll")
    assert _keys(either) == _expected(warehouse, "m.message_type IN ('Event/Call', 'Poll')")


def test_newest_first_and_limit(warehouse: Warehouse) -> None:
    done = warehouse.cli("search", "you", "--json", "--limit", "7")
    hits = json.loads(done.stdout)
    assert _keys(hits) == _expected(warehouse, _tsv(), {"q": "you"})[:7]
    times = [datetime.fromisoformat(h["sent_at"]) for h in hits]
    assert times == sorted(times, reverse=True)


def test_plain_lines_when_not_a_terminal(warehouse: Warehouse) -> None:
    done = warehouse.cli("search", "escape", "--limit", "5", "--tz", "UTC")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = _expected(warehouse, _tsv(), {"q": "escape"})
    assert len(lines) == len(expected) >= 1
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    ((sent_at, conversation, sender),) = warehouse.rows(
        "SELECT to_char(m.sent_at, 'YYYY-MM-DD HH24:MI'), c.display_name, m.sender_name FROM messages m "
        "JOIN conversations c USING (conversation_id) WHERE m.message_id = '9000000000003'"
    )
    assert lines[0].startswith(f"{sent_at}  {conversation}  {sender}: ")
    assert "escape" in lines[0] and "red" in lines[0]
    # PostgreSQL's parser indexes no words in "<script>alert(1)</script>" (it is all tag), so find it by sender.
    script = warehouse.cli("search", "from:onerror", "--limit", "10", "--tz", "UTC").stdout
    assert HOSTILE_TEXT in script and len(script.splitlines()) == 4  # markup in a message is shown as the text it is


def test_terminal_highlights_matches() -> None:
    hit = Hit("c", "Chat", "1", datetime.fromisoformat("2021-03-05T14:22:00+00:00"), "Ana",
              "see you at the party", f"see you at the {START}party{STOP}")
    assert format_hit(hit, color=True).endswith("see you at the \x1b[1;33mparty\x1b[0m")
    assert format_hit(hit, color=False) == "2021-03-05 14:22  Chat  Ana: see you at the party"


def test_snippets_mark_the_match_in_json_only_as_text(warehouse: Warehouse) -> None:
    hits = _search(warehouse, '"let me check"')
    assert hits and all("let me check" in h["snippet"].lower() for h in hits)
    assert all(START not in h["snippet"] and STOP not in h["snippet"] for h in hits)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ('"never closed', "not closed"),
        ("date:2021-13", "not a date"),
        ("date:2022..2021", "ends before"),
        ("type:bogus", "not a type"),
        ("from:", "needs a value"),
        ("   ", "nothing to search"),
        ("- ... !!", "nothing to search"),
        ('wo"rd', "quote"),
    ],
)
def test_a_query_that_does_not_parse_exits_2_with_one_line(warehouse: Warehouse, query: str, says: str) -> None:
    # A query may start with "-": after "--" it is not taken for an option.
    done = run_cli("search", "--database-url", warehouse.url, "--schema", warehouse.schema, "--", query, home=warehouse.home)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert done.stdout == ""
    with pytest.raises(QuerySyntaxError):
        parse_query(query)


def test_sql_in_a_query_is_only_searched_for(warehouse: Warehouse) -> None:
    before = warehouse.rows("SELECT count(*) FROM messages")[0][0]
    for query in ("'; DROP TABLE messages; --", "from:\"x' OR '1'='1\"", "chat:%", "chat:_%_"):
        done = warehouse.cli("search", query, "--json")
        assert done.returncode == 0, done.stderr
    assert warehouse.rows("SELECT count(*) FROM messages")[0][0] == before
    assert json.loads(warehouse.cli("search", "chat:%", "--json").stdout) == []  # % is a character, not a wildcard
    assert json.loads(warehouse.cli("search", "chat:_%_", "--json").stdout) == []


def test_search_uses_the_configuration_the_column_was_built_with(database_url: str, tmp_path) -> None:
    """A warehouse loaded with ETL_TEXT_SEARCH_CONFIG=english stems: "mornings" finds "morning"."""
    import uuid

    from etl_assets.etl.pipeline import ETLPipeline
    from etl_assets.samples import generate_export

    from .helpers import drop_schema, pipeline_config

    schema = f"rd_en_{uuid.uuid4().hex[:8]}"
    truth = generate_export(tmp_path / "8_live_english_export.tar", messages=400, seed=31, media=False)
    ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema, text_search_config="english")).run(truth.path)
    try:
        english = Warehouse(database_url, schema, tmp_path / "home", tmp_path / "artifacts", "", "")
        hits = _search(english, "mornings")
        assert _keys(hits) == _expected(
            english, "to_tsvector('english', coalesce(m.content_text, '')) @@ plainto_tsquery('english', 'mornings')"
        )
        assert all("morning" in h["text"].lower() for h in hits)
        assert not english.rows(
            "SELECT 1 FROM messages WHERE to_tsvector('simple', content_text) @@ plainto_tsquery('simple', 'mornings')"
        )  # with the simple configuration the same search would find nothing
    finally:
        drop_schema(database_url, schema)
