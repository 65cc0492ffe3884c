"""``new_export_sensor`` on a real inbox folder and a real Dagster instance."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from etl_assets.defs.partitions import PUBLISHED, partition_key_for, skype_exports
from etl_assets.defs.resources import PipelineSettings
from etl_assets.defs.warehouse.assets import table_key
from etl_assets.etl.schema import EXPORTS
from etl_assets.defs.exports.sensors import new_export_sensor
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.samples import generate_export


def _tick(instance: dg.DagsterInstance, inbox: Path, cursor: str | None) -> dg.SensorResult:
    settings = PipelineSettings(artifacts=str(inbox.parent / "artifacts"), inbox=str(inbox))
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


def _bytes_read_by_this_process() -> int:
    """Bytes this process has read through system calls so far (Linux ``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_many_and_huge_files_at_once_are_taken_in_over_ticks_within_the_read_budget(tmp_path: Path, small_export) -> None:
    """30 MiB-sized exports and a 4 GiB one arrive together; no tick reads more than its budget."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    head = small_export.path.read_bytes()
    for i in range(30):  # distinct content: a real export followed by 3 MiB of this file's own bytes
        (inbox / f"8_live_user{i:02d}_export.tar").write_bytes(head + os.urandom(3 << 20))
    huge = inbox / "8_live_huge_export.tar"
    shutil.copy(small_export.path, huge)
    os.truncate(huge, 4 << 30)  # sparse: 4 GiB that a whole-file hash would have to read
    budget = 8 << 20
    settings = PipelineSettings(artifacts=str(tmp_path / "artifacts"), inbox=str(inbox), sensor_bytes_per_tick=budget)
    requested: dict[str, str] = {}
    cursor = None
    ticks = 0
    with dg.instance_for_test() as instance:
        while len(requested) < 31:
            ticks += 1
            assert ticks <= 12, f"only {len(requested)} of 31 exports requested after {ticks - 1} ticks"
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"pipeline_settings": settings})
            before = _bytes_read_by_this_process()
            result = new_export_sensor(context)
            read = _bytes_read_by_this_process() - before
            assert read <= budget + (256 << 10), f"tick {ticks} read {read} bytes"  # + the instance's own storage
            assert len(result.run_requests) <= budget // (2 << 20)
            for request in result.run_requests:
                path = request.run_config["ops"]["raw_export"]["config"]["path"]
                assert path not in requested.values()
                requested[request.partition_key] = path
            cursor = result.cursor
    assert sorted(requested.values()) == sorted(str(p) for p in inbox.iterdir())
    assert requested[partition_key_for(huge.name, content_fingerprint(huge).digest)] == str(huge)
    assert ticks >= 1 + 31 * 2 // 8  # the first tick only looks; then 4 files a tick


def test_an_export_already_published_through_dagster_starts_no_run(tmp_path: Path, small_export) -> None:
    """``dev`` after ``demo``: the demo's export, already in the inbox and loaded, is not loaded again."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    loaded, fresh = inbox / "8_live_demo_export.tar", inbox / "8_live_other_export.tar"
    shutil.copy(small_export.path, loaded)
    fresh.write_bytes(small_export.path.read_bytes() + b"\0" * 1024)
    assert table_key(EXPORTS) == PUBLISHED  # the table the load materializes last
    with dg.instance_for_test() as instance:
        key = partition_key_for(loaded.name, content_fingerprint(loaded).digest)
        instance.add_dynamic_partitions(skype_exports.name, [key])
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PUBLISHED, partition=key))
        second = _tick(instance, inbox, _tick(instance, inbox, None).cursor)
        assert [r.partition_key.rsplit("-", 1)[0] for r in second.run_requests] == ["8_live_other_export"]
        assert key not in second.dynamic_partitions_requests[0].partition_keys
        assert _tick(instance, inbox, second.cursor).run_requests == []


def test_an_export_whose_partition_a_backfill_added_starts_no_second_run(tmp_path: Path, small_export) -> None:
    """Exports put in the inbox and backfilled at once: the backfill runs them, the sensor does not."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    backfilled, fresh = inbox / "8_live_backfilled_export.tar", inbox / "8_live_other_export.tar"
    shutil.copy(small_export.path, backfilled)
    fresh.write_bytes(small_export.path.read_bytes() + b"\0" * 1024)
    with dg.instance_for_test() as instance:
        key = partition_key_for(backfilled.name, content_fingerprint(backfilled).digest)
        instance.add_dynamic_partitions(skype_exports.name, [key])  # not materialized: the backfill is queued
        second = _tick(instance, inbox, _tick(instance, inbox, None).cursor)
        assert [r.partition_key.rsplit("-", 1)[0] for r in second.run_requests] == ["8_live_other_export"]
