"""Smoke test of the product as users run it: ``dagster dev`` on a PostgreSQL-backed instance.

Starts the webserver and daemon, reads ``/server_info``, adds a partition and launches the
export job through GraphQL, and waits for the run to succeed; a real browser then reads the
UI after a run of its own.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from etl_assets.defs.partitions import partition_key_for
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.warehouse.queries import Warehouse

from etl_assets_tests.dagster_dev import add_partition, dev_environment, graphql, repository_selector
from etl_assets_tests.dagster_dev import dagster_dev as start_dagster_dev
from etl_assets_tests.helpers import config_for_test, drop_schema

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory, database_url: str):
    tmp_path = tmp_path_factory.mktemp("dagster_dev")
    schema = f"ui_{uuid.uuid4().hex[:8]}"
    config = config_for_test(tmp_path, database_url, schema)
    try:
        with start_dagster_dev(dev_environment(config), tmp_path / "dagster_dev.log") as (base, info, _):
            yield base, info, config, schema
    finally:
        drop_schema(database_url, schema)


def _run_export(base: str, path: Path) -> str:
    """Add the export's partition and launch the export job for it through GraphQL; the run's final status."""
    selector = repository_selector(base)
    key = partition_key_for(path.name, content_fingerprint(path).digest)
    add_partition(base, selector, key)

    launched = graphql(
        base,
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
             ... on RunConfigValidationInvalid { errors { message } } } }""",
        {
            "params": {
                "selector": {**selector, "jobName": "load_skype_export"},
                "runConfigData": {"ops": {"raw_export": {"config": {"path": str(path)}}}},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]},
            }
        },
    )
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["launchRun"]["run"]["runId"]

    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        status = graphql(base, '{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    return status


def test_webserver_runs_an_export_launched_throughgraphql(dagster_dev, database_url: str, small_export) -> None:
    base, info, settings, schema = dagster_dev
    assert "dagster_webserver_version" in info
    assert _run_export(base, small_export.path) == "SUCCESS"
    assert Warehouse(database_url, schema).table_counts()["messages"] == small_export.messages


def test_the_ui_shows_lineage_partitions_columns_and_phase_statistics(
    dagster_dev, database_url: str, tmp_path: Path
) -> None:
    """A real browser on the real UI, after a run this test launches itself (of its own export).

    Every text looked for is one the page shows only when the data is there: the assets
    upstream or downstream of the page's own, the partition, the row count, the statistics;
    never the page's own asset name."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (CI installs it): apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    from etl_assets.samples import generate_export

    base, _, _, schema = dagster_dev
    own = generate_export(tmp_path / "8_live_ui_export.tar", messages=300, seed=14)
    assert _run_export(base, own.path) == "SUCCESS"
    rows = Warehouse(database_url, schema).table_counts()["messages"]  # with the other test's export, if it ran
    key = partition_key_for(own.path.name, content_fingerprint(own.path).digest)
    pages = {
        "/assets/raw_export?view=lineage&lineageScope=upstream": ["skype_export"],
        "/assets/raw_export?view=lineage&lineageScope=downstream": ["transformed_export", "export_media"],
        "/assets/raw_export?view=partitions": [key],
        "/assets/skype/messages": ["Row count", f"{rows:,}", "content_text", "sender_id"],
        "/assets/transformed_export?view=events": ["transform/messages_per_second", "transform/peak_rss_mb"],
        "/assets/skype/exports?view=events": ["export/messages_per_second"],
        "/assets/skype/attachments?view=lineage&lineageScope=upstream": ["transformed_export", "export_media"],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        try:
            for path, expected in pages.items():
                page.goto(base + path, wait_until="networkidle")
                for text in expected:
                    page.get_by_text(text, exact=False).first.wait_for(timeout=30_000)
        finally:
            browser.close()
