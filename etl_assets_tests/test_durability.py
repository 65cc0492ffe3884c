"""Checkpoints that survive a power cut, and disk errors (ENOSPC, EIO) at the fault points.

A power cut cannot be staged in a test; what makes checkpoints survive one can be
observed: the load runs as a real process with ``ETL_FSYNC_LOG``, and every fsync it
made (under the path its descriptor really had) and every rename is checked in order.
Disk errors are raised at named points by ``ETL_FAIL_AT`` in a real ``skype-etl load``;
a re-run must then end with the same tables as a clean load.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from etl_assets.etl.extract import Extractor
from etl_assets.etl.media.copy import REPORTS_DIR
from etl_assets.samples import ExportTruth, generate_export
from etl_assets.etl.transform.transformer import TRANSFORM_VERSION

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import drop_schema, run_cli

ENV = {"ETL_CHUNK_MESSAGES": "150", "ETL_WORKERS": "1"}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> ExportTruth:
    return generate_export(tmp_path_factory.mktemp("durable") / "8_live_durable_export.tar", messages=900, seed=31, bad_records=2)


@pytest.fixture(scope="module")
def reference(export: ExportTruth, database_url: str, tmp_path_factory: pytest.TempPathFactory):
    schema = f"dref_{uuid.uuid4().hex[:8]}"
    done = run_cli("load", str(export.path), "--database-url", database_url, "--schema", schema,
                   home=tmp_path_factory.mktemp("dref_home"), env=ENV)
    assert done.returncode == 0, done.stderr
    yield table_checksums(database_url, schema)
    drop_schema(database_url, schema)


def _events(log: Path, work: str, final: str) -> list[tuple[str, ...]]:
    """The recorded syncs and renames, with the transform's work directory shown under its final name."""
    return [tuple(field.replace(work, final) for field in line.split("\t")) for line in log.read_text().splitlines()]


def _first(events: list[tuple[str, ...]], event: tuple[str, ...], after: int = -1) -> int:
    for i in range(after + 1, len(events)):
        if events[i] == event:
            return i
    raise AssertionError(f"{event} not recorded after event {after}")


def test_every_marker_and_the_manifest_are_written_after_their_data_is_on_disk(
    export: ExportTruth, database_url: str, schema: str, tmp_path: Path
) -> None:
    log = tmp_path / "fsync.log"
    home = tmp_path / "home"
    done = run_cli("load", str(export.path), "--database-url", database_url, "--schema", schema, "--json",
                   home=home, env={**ENV, "ETL_FSYNC_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    sha = json.loads(done.stdout)["exports"][0]["sha256"]
    out_dir = (home / "artifacts" / "transformed" / sha / TRANSFORM_VERSION).resolve()
    work = str(out_dir) + ".partial"
    events = _events(log, work, str(out_dir))
    markers = sorted((out_dir / "_parts").glob("*.json"))
    assert len(markers) >= 4  # the scan and several chunks
    for marker in markers:
        data = sorted(out_dir.glob(f"*/{marker.stem}.parquet"))
        assert data, marker
        renamed = next(
            i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(marker) and Path(e[1]).parent == marker.parent
        )
        tmp = events[renamed][1]
        for path in data:
            assert _first(events, ("fsync", str(path))) < renamed, path  # the data reached the disk first
            assert _first(events, ("fsync", str(path.parent))) < renamed, path.parent  # and its directory entry
        assert _first(events, ("fsync", tmp)) < renamed  # the marker's own content before its name
        _first(events, ("fsync", str(marker.parent)), after=renamed)  # the new name itself
    manifest = out_dir / "_manifest.json"
    renamed = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(manifest))
    last_marker = max(i for i, e in enumerate(events) if e[0] == "rename" and e[2].startswith(str(out_dir / "_parts")))
    assert last_marker < renamed
    assert _first(events, ("fsync", events[renamed][1])) < renamed
    _first(events, ("fsync", str(out_dir)), after=renamed)
    raw = [tuple(line.split("\t")) for line in log.read_text().splitlines()]
    published = _first(raw, ("rename", work, str(out_dir)))
    assert published > renamed
    _first(raw, ("fsync", str(out_dir.parent)), after=published)  # the complete dataset's name is durable
    report = (home / "artifacts" / REPORTS_DIR / f"{sha}.json").resolve()
    assert report.is_file()
    report_renamed = next(i for i, e in enumerate(raw) if e[0] == "rename" and e[2] == str(report))
    synced = max(i for i, e in enumerate(raw) if e[0] == "syncfs")
    assert synced < report_renamed  # every media file it calls stored reached the disk first


def test_the_raw_copy_is_on_disk_before_its_content_addressed_name(
    export: ExportTruth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "fsync.log"
    monkeypatch.setenv("ETL_FSYNC_LOG", str(log))
    stored, sha, _ = Extractor(export.path).copy_to(tmp_path / "raw")
    events = [tuple(line.split("\t")) for line in log.read_text().splitlines()]
    renamed = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(stored.absolute()))
    assert _first(events, ("fsync", events[renamed][1])) < renamed
    _first(events, ("fsync", str(stored.parent.absolute())), after=renamed)
    assert stored.name.startswith(sha) and not list(stored.parent.glob(".incoming-*"))


@pytest.mark.parametrize(
    "fault, message",
    [
        ("media.chunk_written:3:ENOSPC", "No space left on device"),
        ("transform.chunk_written:2:EIO", "Input/output error"),
        ("load.part_committed:2:EIO", "Input/output error"),
        ("load.committed:ENOSPC", "No space left on device"),
    ],
)
def test_disk_error_at_a_fault_point_then_rerun_equals_a_clean_load(
    fault: str, message: str, export: ExportTruth, reference: dict, database_url: str, schema: str, tmp_path: Path
) -> None:
    args = ("load", str(export.path), "--database-url", database_url, "--schema", schema, "--json")
    home = tmp_path / "home"
    failed = run_cli(*args, home=home, env={**ENV, "ETL_FAIL_AT": fault})
    assert failed.returncode == 1, (failed.returncode, failed.stderr[-2000:])
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and f"injected at {fault.split(':')[0]}" in lines[0], failed.stderr
    rerun = run_cli(*args, home=home, env=ENV)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert table_checksums(database_url, schema) == reference
    media = home / "artifacts" / "media"
    assert not list(media.glob(".*.part"))  # no partial media file left behind
    if fault.startswith("load.committed"):
        assert json.loads(rerun.stdout)["exports"][0]["already_loaded"]
