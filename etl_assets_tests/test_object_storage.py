"""Exports read from object storage: a real S3 API server (moto, in server mode) on 127.0.0.1.

The server starts and stops inside the test session; buckets and objects are made through
the S3 API, and ``skype-etl load s3://...`` finds the endpoint and credentials in the
standard ``AWS_*`` variables, as it would for AWS or MinIO.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql

from etl_assets_tests.helpers import free_port, published_exports, run_cli

SECRET = "s3-test-secret-key"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """The environment that points S3 clients at a private moto server."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "s3-test-key",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        server.stop()


def _client(env: dict[str, str]):
    return boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"],
    )


def _moto_process(port: int, **env: str) -> subprocess.Popen:
    """An S3 server of its own in another process (one a test can stop, as an outage would)."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _accepts(port):
        assert server.poll() is None and time.monotonic() < deadline, "the S3 server did not start"
        time.sleep(0.2)
    return server


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _files_at_least(root: Path, size: int) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size >= size]


def test_an_export_in_a_bucket_loads_in_place_with_its_media(
    s3: dict[str, str], database_url: str, schema: str, small_export, tmp_path: Path
) -> None:
    client = _client(s3)
    client.create_bucket(Bucket="archive")
    client.upload_file(str(small_export.path), "archive", "inbox/alice.tar")
    home = tmp_path / "home"

    done = run_cli(
        "load", "--json", "s3://archive/inbox/alice.tar", "--database-url", database_url, "--schema", schema,
        home=home, env=s3,
    )
    assert done.returncode == 0, done.stderr
    export = json.loads(done.stdout)["exports"][0]
    assert export["sha256"] == hashlib.sha256(small_export.path.read_bytes()).hexdigest()
    assert export["messages"] == small_export.messages
    assert export["rejected"] == small_export.rejected
    assert export["media"]["stored"] == export["media"]["files"] > 0
    with psycopg.connect(database_url) as conn:
        messages = conn.execute(sql.SQL("SELECT count(*) FROM {}.messages").format(sql.Identifier(schema))).fetchone()[0]
        stored = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.attachments WHERE media_status = 'stored'").format(sql.Identifier(schema))
        ).fetchone()[0]
    assert messages == small_export.messages
    assert stored > 0
    # streamed: nothing under ETL_HOME is as large as the archive (no downloaded or raw copy)
    assert _files_at_least(home, small_export.path.stat().st_size) == []

    again = run_cli(
        "load", "--json", "s3://archive/inbox/alice.tar", "--database-url", database_url, "--schema", schema,
        home=home, env=s3,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["exports"][0]["already_loaded"] is True


@pytest.mark.parametrize(
    "url, expected",
    [
        ("s3://archive-missing/alice.tar", "not found"),
        ("s3://archive/inbox/nobody.tar", "not found"),
    ],
)
def test_a_missing_object_exits_2_with_one_line_naming_the_url(
    s3: dict[str, str], database_url: str, schema: str, tmp_path: Path, url: str, expected: str
) -> None:
    client = _client(s3)
    if "archive-missing" not in url:
        client.create_bucket(Bucket="archive")
    done = run_cli("load", url, "--database-url", database_url, "--schema", schema, home=tmp_path / "home", env=s3)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and expected in lines[0], lines
    assert SECRET not in done.stderr + done.stdout


def test_an_unreachable_endpoint_exits_2_naming_the_url_without_the_secret(
    s3: dict[str, str], database_url: str, schema: str, tmp_path: Path
) -> None:
    env = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "2"}
    url = "s3://archive/inbox/alice.tar"
    done = run_cli("load", url, "--database-url", database_url, "--schema", schema, home=tmp_path / "home",
                   env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "cannot be reached" in lines[0], lines
    assert SECRET not in done.stderr + done.stdout


def test_refused_credentials_exit_2_naming_the_url_without_the_secret(
    s3: dict[str, str], database_url: str, schema: str, tmp_path: Path
) -> None:
    """A second server that checks credentials (moto's own switch), which knows no key at all."""
    port = free_port()
    server = _moto_process(port, INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        url = "s3://archive/inbox/alice.tar"
        done = run_cli("load", url, "--database-url", database_url, "--schema", schema, home=tmp_path / "home",
                       env={**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "permission denied" in lines[0], lines
    assert SECRET not in done.stderr + done.stdout


@pytest.fixture
def s3_here(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The S3 settings in this process too (the sensor and in-process runs read objects here)."""
    import s3fs

    for name, value in s3.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3
    s3fs.S3FileSystem.clear_instance_cache()


def _tick(instance, inbox: str, artifacts: Path, cursor: str | None):
    import dagster as dg

    from etl_assets.defs.exports.sensors import new_export_sensor
    from etl_assets.defs.resources import PipelineSettings

    settings = PipelineSettings(artifacts=str(artifacts), inbox=inbox)
    result = new_export_sensor(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"pipeline_settings": settings})
    )
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_sensor_on_a_bucket_prefix_starts_one_run_per_complete_new_content(
    s3_here: dict[str, str], small_export, tmp_path: Path
) -> None:
    import dagster as dg

    from etl_assets.samples import generate_export

    client = _client(s3_here)
    client.create_bucket(Bucket="uploads")
    inbox, artifacts = "s3://uploads/inbox", tmp_path / "artifacts"
    with dg.instance_for_test() as instance:
        # an upload in progress (a multipart upload not completed) is not an object yet
        started = client.create_multipart_upload(Bucket="uploads", Key="inbox/bob.tar")
        client.upload_part(Bucket="uploads", Key="inbox/bob.tar", UploadId=started["UploadId"], PartNumber=1,
                           Body=small_export.path.read_bytes()[: 1 << 20])
        cursor = None
        for _ in range(2):
            tick = _tick(instance, inbox, artifacts, cursor)
            assert tick.run_requests == [] and tick.dynamic_partitions_requests == []
            cursor = tick.cursor

        client.upload_file(str(small_export.path), "uploads", "inbox/alice.tar")
        client.put_object(Bucket="uploads", Key="inbox/notes.txt", Body=b"not an export")
        first = _tick(instance, inbox, artifacts, cursor)
        assert first.run_requests == []  # seen once
        second = _tick(instance, inbox, artifacts, first.cursor)
        assert len(second.run_requests) == 1
        request = second.run_requests[0]
        assert request.run_config["ops"]["raw_export"]["config"]["path"] == "s3://uploads/inbox/alice.tar"
        assert list(second.dynamic_partitions_requests[0].partition_keys) == [request.partition_key]
        third = _tick(instance, inbox, artifacts, second.cursor)
        assert third.run_requests == []  # the same object again: nothing

        other = generate_export(tmp_path / "other.tar", messages=300, seed=99)
        client.upload_file(str(other.path), "uploads", "inbox/alice.tar")  # changed content, same name
        changed = _tick(instance, inbox, artifacts, third.cursor)
        changed = _tick(instance, inbox, artifacts, changed.cursor) if not changed.run_requests else changed
        assert len(changed.run_requests) == 1
        assert changed.run_requests[0].partition_key != request.partition_key


@pytest.mark.parametrize("raw_copy", [True, False])
def test_a_dagster_run_loads_an_export_from_a_bucket(
    s3_here: dict[str, str], database_url: str, schema: str, small_export, tmp_path: Path, raw_copy: bool
) -> None:
    import dagster as dg

    from etl_assets.materialize import materialize_export
    from etl_assets_tests.helpers import config_for_test

    client = _client(s3_here)
    client.create_bucket(Bucket="runs")
    client.upload_file(str(small_export.path), "runs", "inbox/alice.tar")
    config = config_for_test(tmp_path, database_url, schema, inbox="s3://runs/inbox", raw_copy=raw_copy)
    with dg.instance_for_test() as instance:
        _, result = materialize_export(config, instance, "s3://runs/inbox/alice.tar")
    assert result.success
    with psycopg.connect(database_url) as conn:
        messages = conn.execute(sql.SQL("SELECT count(*) FROM {}.messages").format(sql.Identifier(schema))).fetchone()[0]
    assert messages == small_export.messages
    large = _files_at_least(tmp_path / "home", small_export.path.stat().st_size)
    # the raw store keeps its one content-addressed copy; without it nothing as large is written
    assert [p.parent.name for p in large] == (["raw"] if raw_copy else [])


def test_an_outage_in_the_middle_of_a_load_fails_it_cleanly_and_the_rerun_ends_equal_to_a_clean_load(
    s3: dict[str, str], database_url: str, schema: str, tmp_path: Path
) -> None:
    from etl_assets.samples import generate_export
    from etl_assets_tests.conftest import table_checksums
    from etl_assets_tests.helpers import drop_schema

    export = generate_export(tmp_path / "download.tar", messages=3000, seed=31)
    port = free_port()
    env = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "2"}

    def bucket_with_the_export() -> None:
        client = _client(env)
        client.create_bucket(Bucket="archive")
        client.put_object(Bucket="archive", Key="download.tar", Body=export.path.read_bytes())

    url = "s3://archive/download.tar"
    home = tmp_path / "home"
    args = ["load", url, "--database-url", database_url, "--schema", schema, "--json"]
    server = _moto_process(port)
    try:
        bucket_with_the_export()
        full_env = {**os.environ, **env, "ETL_HOME": str(home), "ETL_PAUSE_AT": "transform.scan_marked:5",
                    "ETL_WORKERS": "2"}
        full_env.pop("ETL_DATABASE_URL", None)
        proc = subprocess.Popen([sys.executable, "-m", "etl_assets.cli", *args], env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(home.glob("artifacts/transformed/*/*.partial/_parts/conversations.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.1)
    finally:
        server.terminate()  # the outage: the store goes away while the load is paused after its scan
        server.wait(timeout=30)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and url in lines[0], lines
    assert published_exports(database_url, schema) == 0

    server = _moto_process(port)  # back (empty: the same bytes are put again)
    try:
        bucket_with_the_export()
        again = run_cli(*args, home=home, env=env)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert again.returncode == 0, again.stderr
    reloaded = json.loads(again.stdout)["exports"][0]
    assert reloaded["messages"] == export.messages
    assert reloaded["resumed"]["transform_parts"] >= 1  # the scan done before the outage is kept

    clean = f"{schema}_c"
    try:
        done = run_cli("load", str(export.path), "--database-url", database_url, "--schema", clean,
                       home=tmp_path / "clean_home")
        assert done.returncode == 0, done.stderr
        assert table_checksums(database_url, schema) == table_checksums(database_url, clean)
    finally:
        drop_schema(database_url, clean)
