"""Media copy within limits, honest attachment statuses, and archives with huge member counts.

Archives are built by each test from a generated export: a sparse 1 GiB member, a
compressed member that expands past a limit, a zip member with a bad CRC, and a
``.tar.gz`` of 300,000 empty members.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etl_assets.etl.pipeline import ETLPipeline
from etl_assets.samples import generate_export

from etl_assets_tests.conftest import table_checksums
from etl_assets_tests.helpers import drop_schema, run_cli, pipeline_config

GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture(scope="module")
def media_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The members of a generated export with media (name -> bytes), in archive order."""
    path = generate_export(tmp_path_factory.mktemp("media") / "8_live_media.tar", messages=400, seed=3).path
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def _media_names(members: dict[str, bytes]) -> list[str]:
    """Content files (``.1.``) that messages link to, in archive order."""
    doc = members["messages.json"]
    return [
        n for n in members
        if n.startswith("media/") and ".1." in n and n.split("/")[1].split(".")[0].encode() in doc
    ]


def _write_tar(path: Path, members: dict[str, bytes], special: dict[str, tuple[tarfile.TarInfo, bytes]] | None = None) -> Path:
    """A tar (``.tar.gz`` by suffix) of ``members``; ``special`` replaces a member's header and data."""
    special = special or {}
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            if name in special:
                info, raw = special[name]
                archive.addfile(info, io.BytesIO(raw))
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _sparse_member(name: str, real_size: int) -> tuple[tarfile.TarInfo, bytes]:
    """A GNU sparse (PAX 1.0) member: ``real_size`` bytes of which only the last one is stored."""
    sparse_map = f"1\n{real_size - 1}\n1\n".encode().ljust(512, b"\0")
    info = tarfile.TarInfo(f"media/GNUSparseFile.0/{name.split('/')[-1]}")
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(real_size),
    }
    raw = sparse_map + b"x"
    info.size = len(raw)
    return info, raw


def _attachments(database_url: str, schema: str) -> dict[str, tuple[str | None, str | None]]:
    """media_path -> (media_status, media_note) of every attachment with a media file."""
    with psycopg.connect(database_url) as conn:
        has_note = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = 'attachments' "
            "AND column_name = 'media_note'",
            (schema,),
        ).fetchone()
        rows = conn.execute(
            sql.SQL(
                "SELECT DISTINCT media_path, media_status, {} FROM {}.attachments WHERE media_path IS NOT NULL"
            ).format(sql.SQL("media_note" if has_note else "NULL"), sql.Identifier(schema))
        ).fetchall()
    return {path: (status, note) for path, status, note in rows}


def _assert_statuses_match_the_store(statuses: dict, artifacts: Path, members: dict[str, bytes]) -> None:
    """``stored`` only where the file holds the member's bytes; no partial file anywhere."""
    for path, (status, note) in statuses.items():
        target = artifacts / path
        if status == "stored":
            assert target.read_bytes() == members[path], path
        else:
            assert status in ("skipped", "damaged") and note, (path, status)
            assert not target.exists(), f"{path} is {status} but a file is there"
    assert not [p for p in (artifacts / "media").iterdir() if p.name.startswith(".")], "temporary files left"


def test_sparse_gigabyte_member_is_skipped_without_writing_it(
    database_url: str, schema: str, media_export: dict[str, bytes], tmp_path: Path
) -> None:
    victim = _media_names(media_export)[0]
    path = _write_tar(tmp_path / "sparse.tar", media_export, {victim: _sparse_member(victim, GIB)})
    assert path.stat().st_size < 2 * MIB  # a small archive that expands to more than a gigabyte
    artifacts = tmp_path / "artifacts"
    result = ETLPipeline(pipeline_config(database_url, artifacts, schema)).run(path)
    written = sum(p.stat().st_size for p in (artifacts / "media").iterdir())
    assert written < 2 * MIB
    statuses = _attachments(database_url, schema)
    status, note = statuses[victim]
    assert status == "skipped"
    assert victim in note and f"per-file limit of {512 * MIB} bytes" in note
    _assert_statuses_match_the_store(statuses, artifacts, media_export)
    assert sum(1 for s, _ in statuses.values() if s == "stored") == len(statuses) - 1
    assert result.media is not None and result.media.counts()["skipped"] == 1


def test_expanded_bytes_count_against_the_per_file_and_total_limits(
    database_url: str, schema: str, media_export: dict[str, bytes], tmp_path: Path
) -> None:
    names = _media_names(media_export)
    members = dict(media_export)
    members[names[0]] = b"\0" * (4 * MIB)  # a few KB compressed, 4 MiB written
    path = _write_tar(tmp_path / "big.tar.gz", members)
    assert path.stat().st_size < MIB
    sizes = [len(members[n]) for n in names[1:]]
    total = sum(sizes[: len(sizes) // 2])  # room for about half of the other files
    artifacts = tmp_path / "artifacts"
    pipeline = ETLPipeline(pipeline_config(database_url, artifacts, schema, media_max_file_bytes=MIB, media_max_total_bytes=total))
    result = pipeline.run(path)
    statuses = _attachments(database_url, schema)
    status, note = statuses[names[0]]
    assert status == "skipped" and f"per-file limit of {MIB} bytes" in note
    over_total = [p for p, (s, n) in statuses.items() if s == "skipped" and "total limit" in n]
    assert over_total and result.media is not None
    assert result.media.counts()["skipped"] == len(result.media.skipped) >= len(over_total) + 1
    copied = sum(p.stat().st_size for p in (artifacts / "media").iterdir() if p.is_file())
    assert copied <= total
    _assert_statuses_match_the_store(statuses, artifacts, members)

    before = table_checksums(database_url, schema)  # a re-run decides the same, and changes nothing
    again = pipeline.run(path)
    assert again.load.already_loaded and again.media.counts() == result.media.counts()
    assert table_checksums(database_url, schema) == before


def _damaged_zip(path: Path, members: dict[str, bytes], victim: str) -> Path:
    """A zip (media stored uncompressed) whose ``victim`` member has one byte changed: a bad CRC."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            kind = zipfile.ZIP_STORED if name.startswith("media/") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(victim)
        name_length = len(info.filename.encode())
    raw = bytearray(path.read_bytes())
    extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    data_at = info.header_offset + 30 + name_length + extra_length
    raw[data_at + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def test_damaged_zip_member_is_recorded_and_a_rerun_equals_a_clean_load(
    database_url: str, schema: str, media_export: dict[str, bytes], tmp_path: Path
) -> None:
    names = _media_names(media_export)
    victim = names[len(names) // 2]
    path = _damaged_zip(tmp_path / "8_live_damaged.zip", media_export, victim)
    with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile, match="CRC"):
        archive.read(victim)

    def load(schema_name: str, home: Path) -> dict:
        done = run_cli(
            "load", str(path), "--database-url", database_url, "--schema", schema_name, "--json",
            home=home, env={"ETL_ARTIFACTS": str(home / "artifacts")},
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = load(schema, tmp_path / "home")
    assert first["exports"][0]["media"] == {"files": len([n for n in media_export if n.startswith("media/")]),
                                            "stored": first["exports"][0]["media"]["files"] - 1,
                                            "skipped": 0, "damaged": 1}
    artifacts = tmp_path / "home" / "artifacts"
    statuses = _attachments(database_url, schema)
    status, note = statuses[victim]
    assert status == "damaged" and victim in note and "CRC" in note
    _assert_statuses_match_the_store(statuses, artifacts, media_export)
    after_first = table_checksums(database_url, schema)

    again = load(schema, tmp_path / "home")
    assert again["exports"][0]["media"]["damaged"] == 1
    assert table_checksums(database_url, schema) == after_first

    clean_schema = f"{schema}_clean"
    try:
        load(clean_schema, tmp_path / "clean_home")
        assert table_checksums(database_url, clean_schema) == after_first
    finally:
        drop_schema(database_url, clean_schema)


def test_default_total_limit_leaves_a_margin_of_the_disk_free(tmp_path: Path) -> None:
    import shutil

    from etl_assets.etl.media.copy import DEFAULT_MAX_FILE_BYTES, media_limits

    limits = media_limits(tmp_path)
    usage = shutil.disk_usage(tmp_path)
    assert limits.max_file_bytes == DEFAULT_MAX_FILE_BYTES == 512 * MIB
    assert 0 <= limits.max_total_bytes <= usage.free - GIB
    assert media_limits(tmp_path, 10, 20) == type(limits)(10, 20)


def test_settings_carry_the_media_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from etl_assets.defs.resources import resources_from_config
    from etl_assets.etl.config import load_config

    monkeypatch.setenv("ETL_MEDIA_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("ETL_MEDIA_MAX_TOTAL_BYTES", "5000")
    config = load_config()
    assert (config.media_max_file_bytes, config.media_max_total_bytes) == (1000, 5000)
    pipeline_settings = resources_from_config(config)["pipeline_settings"]
    assert (pipeline_settings.media_max_file_bytes, pipeline_settings.media_max_total_bytes) == (1000, 5000)


# -- huge member counts ------------------------------------------------------------------

JUNK_MEMBERS = 300_000

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    from etl_assets.etl.extract import containers
    from etl_assets.etl.pipeline import ETLPipeline
    from etl_assets_tests.helpers import pipeline_config
    started = time.perf_counter()
    result = ETLPipeline(pipeline_config(sys.argv[1], sys.argv[2], sys.argv[3]), copy_raw=False).run(sys.argv[4])
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "walks": containers.archive_walks(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "messages": result.load.messages,
    }))
    """
)


def _junk_tar_gz(path: Path, messages_json: bytes, junk: int) -> Path:
    """``messages.json`` and ``junk`` empty members, written header by header (fast)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("messages.json")
        info.size = len(messages_json)
        gz.write(info.tobuf(tarfile.GNU_FORMAT))
        gz.write(messages_json + b"\0" * (-len(messages_json) % 512))
        for i in range(junk):
            gz.write(tarfile.TarInfo(f"notes/{i:06d}.txt").tobuf(tarfile.GNU_FORMAT))
        gz.write(b"\0" * 1024)
    return path


def _measure(database_url: str, schema: str, artifacts: Path, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, database_url, str(artifacts), schema, str(path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_archive_of_300000_members_is_walked_once_in_bounded_memory(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    doc = generate_export(tmp_path / "messages.json", messages=300, seed=2, media=False).path.read_bytes()
    huge = _junk_tar_gz(tmp_path / "8_live_huge.tar.gz", doc, JUNK_MEMBERS)
    normal = _junk_tar_gz(tmp_path / "8_live_normal.tar.gz", doc, 0)
    assert huge.stat().st_size < 4 * MIB
    baseline = _measure(database_url, f"{schema}_n", tmp_path / "a_normal", normal)
    drop_schema(database_url, f"{schema}_n")
    measured = _measure(database_url, schema, tmp_path / "a_huge", huge)
    assert measured["messages"] == baseline["messages"] > 0
    # one walk of 300,000 headers takes about 5 s; five walks keeping every header took 54 s and 216 MB
    assert measured["seconds"] < baseline["seconds"] + 25, (measured, baseline)
    assert measured["peak_mb"] < baseline["peak_mb"] + 40, (measured, baseline)
    assert measured["walks"] == 1, measured  # extractor, media index, media count and media copy share one walk


def test_crash_in_the_middle_of_a_file_then_rerun_equals_a_clean_load(
    database_url: str, schema: str, media_export: dict[str, bytes], tmp_path: Path
) -> None:
    members = dict(media_export)
    big = _media_names(members)[1]
    members[big] = bytes(range(256)) * (3 * MIB // 256)  # three chunks: the crash comes after the first
    path = _write_tar(tmp_path / "8_live_crash.tar", members)
    home = tmp_path / "home"
    args = ("load", str(path), "--database-url", database_url, "--schema", schema, "--json")
    env = {"ETL_ARTIFACTS": str(home / "artifacts")}
    chunks_before_big = 1 + sum(1 for n in list(members)[: list(members).index(big)] if n.startswith("media/"))
    crashed = run_cli(*args, home=home, env={**env, "ETL_CRASH_AT": f"media.chunk_written:{chunks_before_big}"})
    assert crashed.returncode == -9, crashed.stderr
    media = home / "artifacts" / "media"
    assert not (media / big.split("/")[1]).exists()  # the half-written file has no final name
    assert [p.name for p in media.iterdir() if p.name.startswith(".")]  # only its temporary file
    done = run_cli(*args, home=home, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exports"][0]["media"]["stored"] == json.loads(done.stdout)["exports"][0]["media"]["files"]
    statuses = _attachments(database_url, schema)
    assert statuses[big][0] == "stored"
    _assert_statuses_match_the_store(statuses, home / "artifacts", members)
    after = table_checksums(database_url, schema)
    clean_schema = f"{schema}_clean"
    try:
        clean = run_cli("load", str(path), "--database-url", database_url, "--schema", clean_schema,
                        home=tmp_path / "clean", env={"ETL_ARTIFACTS": str(tmp_path / "clean" / "artifacts")})
        assert clean.returncode == 0, clean.stderr
        assert table_checksums(database_url, clean_schema) == after
    finally:
        drop_schema(database_url, clean_schema)
