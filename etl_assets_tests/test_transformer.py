"""The Transformer alone: Parquet tables from a generated export, checked against its truth."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl_assets.etl import schema as s
from etl_assets.etl.extractor import Extractor
from etl_assets.etl.transformer import Transformer
from etl_assets.etl.values import conversation_kind, normalize_person_id, parse_iso_time


@pytest.fixture(scope="module")
def transformed(small_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("transformed")
    result = Transformer(out, export_sha256="f" * 64, batch_size=128).run(Extractor(small_export.path).records())
    return result, {t.name: pq.read_table(out / f"{t.name}.parquet") for t in s.TRANSFORMED_TABLES}


def test_every_table_has_a_parquet_file_with_the_declared_schema(transformed) -> None:
    result, tables = transformed
    for table in s.TRANSFORMED_TABLES:
        assert tables[table.name].schema.equals(table.arrow_schema())
        assert tables[table.name].num_rows == result.rows[table.name]


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
    for c in conversations:
        assert c["kind"] == conversation_kind(c["conversation_id"])


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
    metadata = pq.ParquetFile(Path(result.out_dir) / "messages.parquet").metadata
    assert metadata.num_row_groups > 1
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= 128
