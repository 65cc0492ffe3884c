"""``new_export_sensor`` on a real inbox folder and a real Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from etl_assets.defs.partitions import skype_exports
from etl_assets.defs.resources import PipelineSettings
from etl_assets.defs.sensors import new_export_sensor
from etl_assets.etl.samples import generate_export


def _tick(instance: dg.DagsterInstance, inbox: Path, cursor: str | None) -> dg.SensorResult:
    settings = PipelineSettings(artifacts_dir=str(inbox.parent / "artifacts"), inbox_dir=str(inbox))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"pipeline_settings": settings})
    result = new_export_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_new_file_same_file_growing_file_and_changed_content(tmp_path: Path, small_export) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with dg.instance_for_test() as instance:
        target = inbox / "8_live_someone_export.tar"
        shutil.copy(small_export.path, target)

        first = _tick(instance, inbox, None)
        assert first.run_requests == []  # seen once: may still be growing

        second = _tick(instance, inbox, first.cursor)
        assert len(second.run_requests) == 1
        request = second.run_requests[0]
        assert request.partition_key.startswith("8_live_someone_export-")
        assert request.run_config["ops"]["raw_export"]["config"]["path"] == str(target)
        added = second.dynamic_partitions_requests[0]
        assert added.partitions_def_name == skype_exports.name
        assert list(added.partition_keys) == [request.partition_key]

        third = _tick(instance, inbox, second.cursor)
        assert third.run_requests == [] and third.dynamic_partitions_requests == []

        copy = inbox / "same_content_other_name.tar"
        shutil.copy(target, copy)
        cursor = _tick(instance, inbox, third.cursor).cursor
        again = _tick(instance, inbox, cursor)
        assert again.run_requests == []  # same content under another name starts nothing

        growing = inbox / "8_live_growing_export.tar"
        data = generate_export(tmp_path / "other.tar", messages=300, seed=99).path.read_bytes()
        growing.write_bytes(data[: len(data) // 2])
        half = _tick(instance, inbox, again.cursor)
        assert half.run_requests == []
        with open(growing, "ab") as f:
            f.write(data[len(data) // 2 :])
        grew = _tick(instance, inbox, half.cursor)
        assert grew.run_requests == []  # grew since the last tick: not yet
        done = _tick(instance, inbox, grew.cursor)
        assert [r.partition_key.rsplit("-", 1)[0] for r in done.run_requests] == ["8_live_growing_export"]

        target.write_bytes(small_export.path.read_bytes() + b"\0" * 1024)  # changed content: a new partition
        cursor = _tick(instance, inbox, done.cursor).cursor
        changed = _tick(instance, inbox, cursor)
        assert len(changed.run_requests) == 1
        assert changed.run_requests[0].partition_key != request.partition_key


def test_non_export_files_are_ignored(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("hello")
    (inbox / ".hidden.tar").write_bytes(b"x")
    with dg.instance_for_test() as instance:
        first = _tick(instance, inbox, None)
        assert _tick(instance, inbox, first.cursor).run_requests == []
