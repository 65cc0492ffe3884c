"""The Transformer alone: Parquet tables from a generated export, checked against its truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_assets.etl.config import ETLConfig
from etl_assets.etl import schema as s
from etl_assets.etl.extract import Extractor
from etl_assets.etl.transform.transformer import Transformer
from etl_assets.etl.values import normalize_person_id, parse_iso_time


def read_tables(out: Path) -> dict[str, pa.Table]:
    """Every table's part files as one Arrow table."""
    tables = {}
    for t in s.TRANSFORMED_TABLES:
        parts = [pq.read_table(p) for p in sorted((out / t.name).glob("*.parquet"))]
        tables[t.name] = pa.concat_tables(parts) if parts else t.arrow_schema().empty_table()
    return tables


def _transform(small_export, out: Path, workers: int):
    transformer = Transformer(out, export_sha256="f" * 64, config=ETLConfig(batch_size=128, workers=workers), min_messages_per_worker=100)
    return transformer.run(Extractor(small_export.path)), read_tables(out)


@pytest.fixture(scope="module")
def transformed(small_export, tmp_path_factory):
    return _transform(small_export, tmp_path_factory.mktemp("transformed"), workers=2)


def test_parallel_and_single_process_write_the_same_rows(small_export, transformed, tmp_path: Path) -> None:
    _, parallel = transformed
    _, single = _transform(small_export, tmp_path, workers=1)
    assert list((tmp_path / "messages").glob("*.parquet")) and len(list((tmp_path / "messages").iterdir())) == 1
    def rows(table: pa.Table) -> list[str]:
        return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())

    for name in single:
        if name in ("people", "memberships"):  # each part lists whom it saw; the load merges them
            key = {t.name: t for t in s.TRANSFORMED_TABLES}[name].primary_key
            distinct = lambda t: {tuple(r[k] for k in key) for r in t.to_pylist()}  # noqa: E731
            assert distinct(parallel[name]) == distinct(single[name]), name
        else:
            assert rows(parallel[name]) == rows(single[name]), name


def test_every_table_has_a_parquet_file_with_the_declared_schema_and_the_rows_of_the_truth(transformed, small_export) -> None:
    """Parquet holds every copy of a message; the copies a load keeps (each message's highest
    version, and its child rows) are what the generator counted."""
    result, tables = transformed
    final: dict[tuple[str, str], int] = {}
    for m in tables["messages"].to_pylist():
        key = (m["conversation_id"], m["message_id"])
        final[key] = max(final.get(key, m["version"]), m["version"])
    for table in s.TRANSFORMED_TABLES:
        parquet = tables[table.name]
        assert parquet.schema.equals(table.arrow_schema())
        assert parquet.num_rows == result.rows[table.name]  # the transform's report matches its files
        rows = parquet.to_pylist()
        if table.name == "messages":
            assert len(rows) == small_export.message_records
            assert len(final) == small_export.tables["messages"]
        elif table.name in ("people", "memberships"):  # each share lists whom it saw; the load merges them
            assert len({tuple(r[k] for k in table.primary_key) for r in rows}) == small_export.tables[table.name]
        elif "message_id" in parquet.column_names and "version" in parquet.column_names:
            kept = [r for r in rows if final[(r["conversation_id"], r["message_id"])] == r["version"]]
            assert len(kept) == small_export.tables[table.name], table.name
        else:
            assert len(rows) == small_export.tables[table.name], table.name


def test_distinct_messages_and_final_types_match_the_truth(transformed, small_export) -> None:
    _, tables = transformed
    messages = tables["messages"].to_pylist()
    final: dict[tuple[str, str], dict] = {}
    for m in messages:
        key = (m["conversation_id"], m["message_id"])
        if key not in final or m["version"] > final[key]["version"]:
            final[key] = m
    assert len(final) == small_export.messages
    assert Counter(m["message_type"] for m in final.values()) == Counter(small_export.by_type)


def test_unusable_records_are_rejected_with_location_and_reason(transformed, small_export) -> None:
    result, tables = transformed
    rejected = tables["rejected_records"].to_pylist()
    assert result.rejected == small_export.rejected == len(rejected)
    for row in rejected:
        assert row["location"].startswith("conversations[")
        assert row["reason"]
        assert row["raw"]


def test_conversation_kinds_follow_id_prefixes(transformed, small_export) -> None:
    _, tables = transformed
    conversations = tables["conversations"].to_pylist()
    assert len({c["conversation_id"] for c in conversations}) == small_export.conversations
    assert Counter(c["kind"] for c in conversations) == Counter(small_export.conversation_kinds)


def test_sent_at_is_utc_for_every_fraction_length() -> None:
    for text, micros in [
        ("2020-09-19T14:01:50Z", 0),
        ("2020-09-19T14:01:50.5Z", 500000),
        ("2020-09-19T14:01:50.53Z", 530000),
        ("2020-09-19T14:01:50.609Z", 609000),
        ("2020-09-19T14:01:50.6091Z", 609100),
        ("2020-09-19T14:01:50.60912Z", 609120),
        ("2020-09-19T14:01:50.609123Z", 609123),
        ("2020-09-19T14:01:50.6091234Z", 609123),
    ]:
        parsed = parse_iso_time(text)
        assert parsed is not None and parsed.utcoffset().total_seconds() == 0
        assert (parsed.second, parsed.microsecond) == (50, micros)
    assert parse_iso_time("not-a-time") is None


def test_person_ids_are_normalized() -> None:
    assert normalize_person_id("live:bob") == "8:live:bob"
    assert normalize_person_id("8:live:bob") == "8:live:bob"
    assert normalize_person_id("https://x.gateway.messenger.live.com/v1/users/ME/contacts/8:live:bob") == "8:live:bob"
    assert normalize_person_id("28:concierge") == "28:concierge"
    assert normalize_person_id("guest:abc") == "guest:abc"
    assert normalize_person_id("") is None


def test_senders_exist_in_people_and_owner_is_marked(transformed, small_export) -> None:
    _, tables = transformed
    people = {p["person_id"]: p for p in tables["people"].to_pylist()}
    assert people[small_export.user_id if small_export.user_id.startswith("8:") else "8:" + small_export.user_id]["is_owner"]
    senders = {m["sender_id"] for m in tables["messages"].to_pylist() if m["sender_id"]}
    assert senders <= set(people)


def test_row_groups_bound_memory(transformed) -> None:
    result, _ = transformed
    files = sorted((Path(result.out_dir) / "messages").glob("*.parquet"))
    assert len(files) == 2  # one part per worker
    metadata = pq.ParquetFile(files[0]).metadata
    assert metadata.num_row_groups > 1
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= 128
