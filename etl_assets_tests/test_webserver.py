"""Smoke test of the product as users run it: ``dagster dev`` on a PostgreSQL-backed instance.

Starts the webserver and daemon, reads ``/server_info``, adds a partition and launches the
export job through GraphQL, and waits for the run to succeed; a real browser then reads the
UI after a run of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from etl_assets.defs.instance import ensure_instance
from etl_assets.defs.partitions import partition_key_for
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.warehouse.queries import Warehouse

from etl_assets_tests.helpers import config_for_test, drop_schema, free_port

pytestmark = pytest.mark.slow


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        document = json.loads(response.read())
    assert "errors" not in document, document["errors"]
    return document["data"]


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory, database_url: str):
    tmp_path = tmp_path_factory.mktemp("dagster_dev")
    schema = f"ui_{uuid.uuid4().hex[:8]}"
    config = config_for_test(tmp_path, database_url, schema)
    env = {
        **os.environ,
        **ensure_instance(config),
        "ETL_DATABASE_URL": database_url,
        "ETL_SCHEMA": schema,
        "ETL_INBOX": str(config.inbox_dir),
        "ETL_ARTIFACTS": str(config.artifacts_dir),
    }
    port = free_port()
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "etl_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                info = json.loads(_get(f"{base}/server_info"))
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "dagster_dev.log").read_text()[-3000:])
                time.sleep(1)
        yield base, info, config, schema
    finally:
        drop_schema(database_url, schema)
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _run_export(base: str, path: Path) -> str:
    """Add the export's partition and launch the export job for it through GraphQL; the run's final status."""
    repos = _graphql(base, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    repo = repos["repositoriesOrError"]["nodes"][0]
    selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"]}

    key = partition_key_for(path.name, content_fingerprint(path).digest)
    added = _graphql(
        base,
        """mutation($selector: RepositorySelector!, $key: String!) {
             addDynamicPartition(repositorySelector: $selector, partitionsDefName: "skype_exports", partitionKey: $key) {
               __typename ... on PythonError { message } } }""",
        {"selector": selector, "key": key},
    )
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added

    launched = _graphql(
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
        status = _graphql(base, '{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    return status


def test_webserver_runs_an_export_launched_through_graphql(dagster_dev, database_url: str, small_export) -> None:
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
