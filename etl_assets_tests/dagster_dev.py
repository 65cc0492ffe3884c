"""``dagster dev`` as users start it, for the tests that need the webserver and the daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl_assets.defs.instance import ensure_instance
from etl_assets.etl.config import ETLConfig

from etl_assets_tests.helpers import free_port, stop_process_group


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    """The ``data`` of a GraphQL request to the webserver at ``base``; fails on any error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        document = json.loads(response.read())
    assert "errors" not in document, document["errors"]
    return document["data"]


def dev_environment(config: ETLConfig) -> dict[str, str]:
    """The environment of a ``dagster dev`` for ``config``: its instance, warehouse, inbox, artifacts, run queue, workers."""
    return {
        **os.environ,
        **ensure_instance(config),
        "ETL_DATABASE_URL": str(config.database_url),
        "ETL_SCHEMA": config.schema_name,
        "ETL_INBOX": str(config.inbox_dir),
        "ETL_ARTIFACTS": str(config.artifacts_dir),
        "ETL_CONCURRENT_RUNS": str(config.concurrent_runs),
        "ETL_WORKERS": str(config.workers),
    }


@contextmanager
def dagster_dev(env: dict[str, str], log_path: Path, *, timeout: float = 180) -> Iterator[tuple[str, dict, int]]:
    """Start ``dagster dev`` on the project's definitions; yield its base URL, ``/server_info`` and pid.

    Stopped with SIGINT (as Ctrl-C does) and killed if it does not stop within a minute.
    """
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "etl_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    info = json.loads(get(f"{base}/server_info"))
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(log_path.read_text()[-3000:]) from None
                    time.sleep(1)
            yield base, info, process.pid
        finally:
            stop_process_group(process, signal.SIGINT, 60)


def repository_selector(base: str) -> dict[str, str]:
    """The project's repository, as GraphQL mutations name it."""
    repos = graphql(base, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    repo = repos["repositoriesOrError"]["nodes"][0]
    return {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"]}


def add_partition(base: str, selector: dict[str, str], key: str) -> None:
    added = graphql(
        base,
        """mutation($selector: RepositorySelector!, $key: String!) {
             addDynamicPartition(repositorySelector: $selector, partitionsDefName: "skype_exports", partitionKey: $key) {
               __typename ... on PythonError { message } } }""",
        {"selector": selector, "key": key},
    )
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added
