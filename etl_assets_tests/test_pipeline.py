"""ETLPipeline and the compat interface: phases, statistics, caching and the memory guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_assets.etl.compat import SkypeETLPipeline, db_config_to_url
from etl_assets.etl.errors import MemoryLimitExceeded
from etl_assets.etl.pipeline import ETLPipeline
from etl_assets.samples import generate_export
from etl_assets_tests.helpers import pipeline_config


def test_run_reports_each_phase(database_url: str, schema: str, small_export, tmp_path: Path) -> None:
    import time

    import psutil

    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    rss_before_mb = psutil.Process().memory_info().rss / 2**20
    started = time.perf_counter()
    result = pipeline.run(small_export.path)
    wall = time.perf_counter() - started
    assert set(result.phases) == {"extract", "transform", "load", "media"}
    extract = result.phases["extract"]
    assert extract.messages_total == extract.messages_processed == small_export.message_records + small_export.rejected
    assert extract.bytes_read == small_export.path.stat().st_size
    # phases are timed, not guessed: extract, transform and load one after another, the media copy beside the load
    assert sum(result.phases[p].duration_seconds for p in ("extract", "transform", "load")) <= wall
    assert result.phases["media"].duration_seconds <= wall
    for stats in result.phases.values():
        # the pipeline runs in this process, so its memory at the start is a lower bound of every phase's peak
        assert stats.peak_rss_mb >= 0.9 * rss_before_mb, (stats.peak_rss_mb, rss_before_mb)
    assert result.summary()["messages"] == small_export.messages
    assert result.summary()["by_type"] == dict(sorted(small_export.by_type.items()))
    assert (tmp_path / "artifacts" / "raw" / f"{result.raw.sha256}.tar").is_file()


def test_transform_is_reused_for_the_same_input_and_code(database_url: str, schema: str, small_export, tmp_path: Path) -> None:
    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    raw, _ = pipeline.extract(small_export.path)
    first, _ = pipeline.transform(raw)
    marker = Path(first.directory) / "messages" / "messages-0-00000.parquet"
    mtime = marker.stat().st_mtime_ns
    second, _ = pipeline.transform(raw)
    assert second == first
    assert marker.stat().st_mtime_ns == mtime


def test_memory_limit_stops_with_a_clear_error(database_url: str, schema: str, small_export, tmp_path: Path) -> None:
    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema, memory_limit_mb=1))
    with pytest.raises(MemoryLimitExceeded, match="memory_limit_mb"):
        pipeline.run(small_export.path)


def test_compat_interface_returns_the_old_summary(database_url: str, schema: str, small_export, tmp_path: Path) -> None:
    result = SkypeETLPipeline(db_config=database_url, output_dir=tmp_path / "out", schema=schema).run_pipeline(
        file_path=str(small_export.path), is_tar=True, user_display_name="Demo Owner"
    )
    assert result["message_count"] == small_export.messages
    assert result["conversations"] == small_export.conversations


def test_db_config_dict_becomes_a_url() -> None:
    url = db_config_to_url({"host": "db", "port": 5433, "dbname": "skype", "user": "etl", "password": "p@ss word"})
    assert url == "postgresql://etl:p%40ss%20word@db:5433/skype"


@pytest.mark.parametrize("warehouse", ["empty", "holding_another_export"])
def test_media_files_are_copied_and_linked_by_docid(
    database_url: str, schema: str, small_export, tmp_path: Path, warehouse: str
) -> None:
    """Paths are resolved by the load on both of its paths: straight into fresh tables, and merged."""
    import psycopg
    from psycopg import sql

    pipeline = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema))
    files = small_export.rows["media_files"]
    if warehouse == "holding_another_export":
        other = generate_export(tmp_path / "other.tar", messages=200, seed=5)
        pipeline.run(other.path)
        files += other.rows["media_files"]
    pipeline.run(small_export.path)
    stored = sorted((tmp_path / "artifacts" / "media").glob("*.1.*"))
    assert len(stored) == files
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT doc_id, media_path, media_status FROM {}.attachments WHERE doc_id IS NOT NULL").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    statuses = {status for _, _, status in rows}
    assert statuses == {"stored", "missing"}  # the generator leaves some media out, as real exports do
    for doc_id, path, status in rows:
        assert (path is None) == (status == "missing"), (doc_id, path, status)
        if status == "stored":
            stored_file = tmp_path / "artifacts" / path
            assert stored_file.is_file() and stored_file.name.startswith(doc_id + ".1.")
            assert stored_file.resolve().is_relative_to((tmp_path / "artifacts" / "media").resolve())
