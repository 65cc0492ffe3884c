"""A backfill of many exports through ``dagster dev``, four runs at a time, equals loading them one by one.

Fifty generated exports of one organisation (25 accounts, each exported twice; every account
shares a group chat with the one before it) are put in the inbox, added as partitions and
backfilled through GraphQL as a user does in the UI. The run queue lets four runs go at once;
the publishing steps share the warehouse. Every table must then equal the tables of loading
the same files one after another, the analytics and the HTML archive must have been refreshed
once, after the batch, and each export's throughput and the batch's must be in the metadata.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from etl_assets.defs.exports.assets import raw_export, transformed_export
from etl_assets.defs.partitions import partition_key_for
from etl_assets.defs.warehouse.assets import skype_tables
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.pipeline import ETLPipeline
from etl_assets.samples.organisation import generate_organisation

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.dagster_dev import add_partition, dagster_dev, dev_environment, graphql, repository_selector
from etl_assets_tests.helpers import config_for_test, pipeline_config, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.long]

EXPORTS = 50
MESSAGES = 150
CONCURRENT_RUNS = 4
SCHEMA = "skype"

_LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
_BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status numCancelable } } }"""
_RUNS = """query($statuses: [RunStatus!]) { runsOrError(filter: {statuses: $statuses}) { ... on Runs { count } } }"""
_MATERIALIZATIONS = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset {
  assetMaterializations { runId timestamp partition metadataEntries { label
    ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } } } } } }"""


def _materializations(base: str, path: list[str]) -> list[dict]:
    found = graphql(base, _MATERIALIZATIONS, {"path": path})["assetOrError"]
    return found.get("assetMaterializations") or []


def _metadata(event: dict) -> dict[str, float]:
    return {e["label"]: e.get("intValue", e.get("floatValue")) for e in event["metadataEntries"]}


def _runs(base: str, *statuses: str) -> int:
    return graphql(base, _RUNS, {"statuses": list(statuses)})["runsOrError"]["count"]


class _PeakRuns(threading.Thread):
    """The most runs seen in progress at once, sampled every two seconds."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.peak, self.done = base, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(2):
            try:
                self.peak = max(self.peak, _runs(self.base, "STARTING", "STARTED"))
            except OSError:
                continue


def test_a_backfill_of_50_exports_4_runs_at_a_time_equals_loading_them_one_after_another(
    tmp_path: Path, own_database: str
) -> None:
    config = config_for_test(tmp_path, own_database, SCHEMA, workers=1, concurrent_runs=CONCURRENT_RUNS)
    exports = generate_organisation(config.inbox_dir, exports=EXPORTS, messages=MESSAGES, seed=5)
    keys = {partition_key_for(p.name, content_fingerprint(p).digest): p for p in exports}
    assert len(keys) == EXPORTS
    log = tmp_path / "dagster_dev.log"
    started = time.time()
    with dagster_dev(dev_environment(config), log) as (base, _, _):
        selector = repository_selector(base)
        for key in keys:
            add_partition(base, selector, key)
        peak = _PeakRuns(base)
        peak.start()
        selection = [{"path": k.path} for k in (raw_export.key, transformed_export.key, *skype_tables.keys)]
        launched = graphql(base, _LAUNCH, {"params": {"assetSelection": selection, "partitionNames": list(keys)}})
        assert launched["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["launchPartitionBackfill"]["backfillId"]

        def finished() -> str | None:
            status = graphql(base, _BACKFILL, {"id": backfill})["partitionBackfillOrError"]["status"]
            return None if status == "REQUESTED" else status

        status = wait_for("the backfill", finished, 1500, log, every=3)
        peak.done.set()
        assert status == "COMPLETED_SUCCESS", status
        assert _runs(base, "SUCCESS") >= EXPORTS and _runs(base, "FAILURE") == 0
        assert 2 <= peak.peak <= CONCURRENT_RUNS, peak.peak  # runs overlapped, never more than the queue allows

        published = {e["partition"]: _metadata(e) for e in _materializations(base, ["skype", "exports"])}
        assert set(published) == set(keys)
        assert all(m["export/messages_per_second"] > 0 for m in published.values())

        # The refresh sensor runs the analytics and the archive once the batch is done, and not before.
        analytics = wait_for("the analytics' refresh", lambda: _materializations(base, ["skype", "analytics"]), 240, log, every=3)
        archive = wait_for("the archive's refresh", lambda: _materializations(base, ["skype", "html_archive"]), 240, log, every=3)
        time.sleep(75)  # two more ticks of the refresh sensor: nothing left to refresh
        analytics = _materializations(base, ["skype", "analytics"])
        archive = _materializations(base, ["skype", "html_archive"])
        assert len(analytics) == 1 and len(archive) == 1, (len(analytics), len(archive))
        last_publish = max(float(e["timestamp"]) for e in _materializations(base, ["skype", "exports"]))
        assert float(analytics[0]["timestamp"]) > last_publish > started * 1000
        batch = _metadata(analytics[0])
        assert batch["batch/exports"] == EXPORTS
        assert batch["batch/messages"] == _rows(own_database, f"SELECT sum(messages) FROM {SCHEMA}.exports")[0][0]
        assert batch["batch/messages_per_second"] > 0

    order = [row[0] for row in _rows(own_database, f"SELECT file_name FROM {SCHEMA}.exports ORDER BY export_id")]
    assert sorted(order) == sorted(p.name for p in exports)
    sequential = ETLPipeline(pipeline_config(own_database, tmp_path / "sequential", "sequential"))
    by_name = {p.name: p for p in exports}
    for name in order:
        sequential.run(by_name[name])
    assert table_checksums(own_database, SCHEMA) == table_checksums(own_database, "sequential")


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()
