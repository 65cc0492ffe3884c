"""The Dagster definitions: they load, and the whole graph materializes an export into PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
from psycopg import sql

from etl_assets.defs.exports.assets import raw_export
from etl_assets.defs.partitions import partition_key_for, skype_exports
from etl_assets.defs.resources import resources_from_config
from etl_assets.definitions import build_definitions
from etl_assets.materialize import materialize_export
from etl_assets.etl import schema as s
from etl_assets.etl.extract import Extractor
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.load.loader import Loader
from etl_assets.etl.warehouse.queries import Warehouse
from etl_assets.samples import generate_export

from etl_assets_tests.helpers import config_for_test


def test_definitions_load_with_the_expected_graph(tmp_path: Path) -> None:
    from etl_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"inbox/skype_export", "raw_export", "transformed_export"} <= keys
    assert {f"skype/{t.name}" for t in s.ALL_TABLES} <= keys
    assert graph.get(dg.AssetKey("raw_export")).parent_keys == {dg.AssetKey(["inbox", "skype_export"])}
    # the load publishes the media copy's outcome as attachment statuses; the copy runs beside it, in its step
    assert graph.get(dg.AssetKey(["skype", "attachments"])).parent_keys == {
        dg.AssetKey("transformed_export"), dg.AssetKey("export_media")
    }
    assert graph.get(dg.AssetKey(["skype", "messages"])).parent_keys == {dg.AssetKey("transformed_export")}
    assert graph.get(dg.AssetKey("export_media")).parent_keys == {dg.AssetKey("raw_export")}
    assert sorted(n.name for n in defs.resolve_job_def("load_skype_export").nodes) == [
        "raw_export", "skype_tables", "transformed_export"
    ]
    assert defs.resolve_sensor_def("new_export_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    meta = graph.get(dg.AssetKey(["skype", "messages"])).metadata
    assert [c.name for c in meta["dagster/column_schema"].columns] == [c.name for c in s.MESSAGES.columns]


def _materialize(config, instance, path: Path) -> tuple[str, dg.ExecuteInProcessResult]:
    return materialize_export(config, instance, path)


def test_whole_graph_materializes_with_counts_equal_to_truth(tmp_path: Path, database_url: str, schema: str, small_export) -> None:
    config = config_for_test(tmp_path, database_url, schema)
    with dg.instance_for_test() as instance:
        key, result = _materialize(config, instance, small_export.path)
        assert result.success
        materializations = {
            m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()
        }
        raw = materializations["raw_export"].materialization.metadata
        assert raw["extract/messages_processed"].value == small_export.message_records + small_export.rejected
        assert "transform/messages_per_second" in materializations["transformed_export"].materialization.metadata
        # every member under media/ the generator put in the archive: files, manifests, previews
        assert materializations["export_media"].materialization.metadata["media/messages_processed"].value == small_export.media_members
        assert small_export.media_members > small_export.rows["media_files"] > 0
        messages = materializations["skype/messages"].materialization.metadata
        assert messages["dagster/row_count"].value == small_export.messages
        assert messages["dagster/table_name"].value == f"{schema}.messages"
        assert "load/duration_seconds" in messages
        stage, publish = messages["load/stage_seconds"].value, messages["load/publish_seconds"].value
        assert stage > 0 and publish > 0 and stage + publish <= messages["load/duration_seconds"].value
        assert messages["published_by"].value == "bulk"  # a first load, into empty tables
        assert materializations["skype/conversations"].materialization.metadata["published_by"].value == "merge"
        for table in s.ALL_TABLES:
            assert f"skype/{table.name}" in materializations
        counts = Warehouse(database_url, schema).table_counts()
        assert counts["messages"] == small_export.messages
        assert counts["conversations"] == small_export.conversations
        for table, expected in small_export.rows.items():
            if table in counts:
                assert counts[table] == expected, table
        assert counts["etl_phase_stats"] == 4  # extract, transform, load, media
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["export_fully_published"].passed
        assert not checks["no_rejected_records"].passed  # the export has unusable records, kept verbatim
        assert checks["no_rejected_records"].severity == dg.AssetCheckSeverity.WARN

        defs = build_definitions(config)
        analytics = dg.AssetKey(["skype", "analytics"])
        assert defs.resolve_asset_graph().get(analytics).automation_condition is not None
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={analytics})
        assert job.execute_in_process(instance=instance).success
        with Loader(database_url, schema).connect() as conn:
            total, conversations = conn.execute(
                sql.SQL("SELECT sum(messages), count(*) FROM {}.conversation_stats").format(sql.Identifier(schema))
            ).fetchone()
        assert (total, conversations) == (small_export.messages, small_export.conversations)
        handle = json.loads((Path(config.handles_url) / "transformed_export" / f"{key}.json").read_text())
        assert handle["type"] == "TransformedHandle"
        assert key.rsplit("-", 1)[1] == content_fingerprint(small_export.path).digest[:12]
        assert handle["value"]["sha256"] == raw["sha256"].value == Extractor(small_export.path).sha256()[0]
        assert raw["fingerprint"].value.startswith(key.rsplit("-", 1)[1])


def test_bad_input_fails_the_raw_asset_with_the_reason(tmp_path: Path, database_url: str, schema: str) -> None:
    config = config_for_test(tmp_path, database_url, schema)
    bad = tmp_path / "broken_export.tar"
    bad.write_text('{"userId": "8:live:me", "conversations": [{"id": ')
    with dg.instance_for_test() as instance:
        _, result = _materialize(config, instance, bad)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert failure.step_key == "raw_export"
        assert "truncated JSON" in failure.step_failure_data.user_failure_data.description
        assert str(bad) in failure.step_failure_data.user_failure_data.description
    Loader(database_url, schema).migrate()
    assert Warehouse(database_url, schema).table_counts()["messages"] == 0


def test_partition_keys_are_stable_and_safe() -> None:
    fingerprint = "0123456789abcdef" * 4
    key = partition_key_for("8_live_Jane Doe's export (2).TAR.gz", fingerprint)
    assert key == "8_live_jane_doe_s_export_2-0123456789ab"
    assert partition_key_for("8_live_Jane Doe's export (2).TAR.gz", fingerprint) == key
    assert partition_key_for("../../etc/passwd", fingerprint) == "passwd-0123456789ab"


def test_a_file_replaced_after_its_partition_was_made_fails_raw_export_naming_both_ids(
    tmp_path: Path, database_url: str, schema: str, small_export
) -> None:
    config = config_for_test(tmp_path, database_url, schema)
    path = tmp_path / "8_live_me_export.tar"
    shutil.copy(small_export.path, path)
    key = partition_key_for(path.name, content_fingerprint(path).digest)  # what the sensor saw
    other = generate_export(tmp_path / "other.tar", messages=200, seed=5)
    shutil.copy(other.path, path)  # then the file was replaced
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(skype_exports.name, [key])
        result = dg.materialize(
            [raw_export],
            partition_key=key,
            instance=instance,
            resources=resources_from_config(config),
            run_config={"ops": {"raw_export": {"config": {"path": str(path)}}}},
            raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        description = failure.step_failure_data.user_failure_data.description
        assert str(path) in description
        assert key.rsplit("-", 1)[1] in description
        assert content_fingerprint(other.path).digest[:12] in description
        assert Extractor(other.path).sha256()[0] in description
        assert not result.get_asset_materialization_events()


def test_a_partition_without_a_path_finds_its_file_in_the_inbox_then_in_the_raw_store(
    tmp_path: Path, database_url: str, schema: str, small_export
) -> None:
    config = config_for_test(tmp_path, database_url, schema)
    config.inbox_dir.mkdir(parents=True)
    path = config.inbox_dir / "8_live_me_export.tar"
    shutil.copy(small_export.path, path)
    (config.inbox_dir / "8_live_me_export.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # same stem, other content
    key = partition_key_for(path.name, content_fingerprint(path).digest)
    sha = Extractor(path).sha256()[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(skype_exports.name, [key])
        for expected in (path.name, f"{sha}.tar"):  # the second time only the raw store has it
            result = dg.materialize(
                [raw_export], partition_key=key, instance=instance, resources=resources_from_config(config)
            )
            assert result.success
            (event,) = result.get_asset_materialization_events()
            assert event.materialization.metadata["file_name"].value == expected
            assert event.materialization.metadata["sha256"].value == sha
            path.unlink(missing_ok=True)


def test_without_a_raw_copy_the_run_reads_the_inbox_file_in_place(
    tmp_path: Path, database_url: str, schema: str, small_export
) -> None:
    config = config_for_test(tmp_path, database_url, schema, raw_copy=False)
    config.inbox_dir.mkdir(parents=True)
    path = config.inbox_dir / small_export.path.name
    shutil.copy(small_export.path, path)
    with dg.instance_for_test() as instance:
        _, result = _materialize(config, instance, path)
        assert result.success
        assert Warehouse(database_url, schema).table_counts()["messages"] == small_export.messages
        raw = config.artifacts_dir / "raw"
        assert not raw.exists() or not any(raw.iterdir())  # nothing copied
        handle = json.loads(next((Path(config.handles_url) / "raw_export").glob("*.json")).read_text())
        assert handle["value"]["path"] == str(path) and handle["value"]["identity"]
