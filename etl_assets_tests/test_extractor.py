"""The Extractor alone: containers, streaming records, hashing, and whole-file errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from etl_assets.etl.errors import InvalidExportError
from etl_assets.etl.extract import ConversationRecord, ExportHeader, Extractor, MessageRecord
from etl_assets.samples import generate_export


def _messages_json(tmp_path: Path, small_export) -> bytes:
    with tarfile.open(small_export.path) as archive:
        return archive.extractfile("messages.json").read()


def test_every_container_streams_the_same_records(tmp_path: Path) -> None:
    """One export (the same seed, so the same messages.json) in each container: the records
    streamed from each are the same records in the same order, and match the truth."""
    streams = {}
    for archive in ("tar", "tar.gz", "zip", "json"):
        truth = generate_export(tmp_path / f"export.{archive}", messages=300, seed=3, archive=archive)
        streams[archive] = [(type(r).__name__, repr(r)) for r in Extractor(truth.path).records()]
    reference = streams.pop("json")
    for archive, records in streams.items():
        assert records == reference, archive
    records = list(Extractor(tmp_path / "export.tar").records())
    messages = [r for r in records if isinstance(r, MessageRecord)]
    conversations = [r for r in records if isinstance(r, ConversationRecord)]
    headers = [r for r in records if isinstance(r, ExportHeader)]
    assert len(messages) == truth.message_records
    assert len(conversations) == truth.conversations
    assert headers[-1].user_id == truth.user_id
    assert headers[-1].export_date == truth.export_date
    assert len({(m.data["conversationid"], str(m.data["id"])) for m in messages}) == truth.messages


def test_reads_from_a_file_object_and_hashes_the_stored_bytes(small_export) -> None:
    data = small_export.path.read_bytes()
    extractor = Extractor(io.BytesIO(data), name="upload.tar")
    sha, size = extractor.sha256()
    assert sha == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    messages = sum(r.messages for r in extractor.scan() if isinstance(r, ConversationRecord))
    assert messages == small_export.message_records + small_export.rejected
    assert extractor.container == "tar"


def test_container_is_recognized_by_content_not_name(tmp_path: Path, small_export) -> None:
    renamed = tmp_path / "export.bin"
    shutil.copy(small_export.path, renamed)
    assert Extractor(renamed).container == "tar"


def test_copy_to_is_content_addressed(tmp_path: Path, small_export) -> None:
    stored, sha, size = Extractor(small_export.path).copy_to(tmp_path / "raw")
    assert stored.name == f"{sha}.tar"
    assert stored.read_bytes() == small_export.path.read_bytes()
    again, sha2, _ = Extractor(small_export.path).copy_to(tmp_path / "raw")
    assert (again, sha2) == (stored, sha)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [stored.name]


def test_conversation_fields_after_message_list_are_kept(tmp_path: Path) -> None:
    doc = {
        "userId": "8:live:me",
        "exportDate": "2025-04-30T18:02",
        "conversations": [
            {"MessageList": [{"id": "1", "conversationid": "8:live:x"}], "id": "8:live:x", "displayName": "X"}
        ],
    }
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(doc))
    records = list(Extractor(path).records())
    conv = next(r for r in records if isinstance(r, ConversationRecord))
    assert conv.data == {"id": "8:live:x", "displayName": "X"}
    assert conv.has_message_list


def _tar_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "export.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


BAD_INPUTS = {
    "not an archive": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 600), "not a Skype export"),
    "empty file": (lambda p: p.write_bytes(b""), "the file is empty"),
    "truncated JSON": (
        lambda p: p.write_text('{"userId": "8:live:me", "conversations": [{"id": "8:live:x", "MessageList": [{"id": "1"'),
        "truncated JSON",
    ),
    "top level is a list": (lambda p: p.write_text('[{"conversations": []}]'), "not an object"),
    "no conversations": (lambda p: p.write_text('{"userId": "8:live:me", "exportDate": "2025-01-01T00:00"}'), 'no "conversations"'),
    "conversations not a list": (lambda p: p.write_text('{"conversations": {"a": 1}}'), "not a list"),
    "invalid JSON": (lambda p: p.write_text('{"conversations": [}'), "invalid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_one_clear_error(tmp_path: Path, case: str) -> None:
    write, expected = BAD_INPUTS[case]
    path = tmp_path / "messages.json"
    write(path)
    with pytest.raises(InvalidExportError) as error:
        list(Extractor(path).records())
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_archive_without_messages_json(tmp_path: Path) -> None:
    path = _tar_with(tmp_path, {"endpoints.json": b"{}"})
    with pytest.raises(InvalidExportError, match="no messages.json"):
        list(Extractor(path).records())


def test_archive_with_two_messages_json(tmp_path: Path) -> None:
    doc = b'{"conversations": []}'
    path = _tar_with(tmp_path, {"messages.json": doc, "./messages.json": doc})
    with pytest.raises(InvalidExportError, match="2 times"):
        list(Extractor(path).records())


def test_truncated_gzip_and_zip(tmp_path: Path, small_export) -> None:
    data = gzip.compress(small_export.path.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidExportError):
        list(Extractor(cut).records())
    broken_zip = tmp_path / "broken.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("messages.json", b'{"conversations": []}' * 100)
    broken_zip.write_bytes(buffer.getvalue()[:40])
    with pytest.raises(InvalidExportError):
        list(Extractor(broken_zip).records())


def test_member_size_limit(tmp_path: Path, small_export) -> None:
    with pytest.raises(InvalidExportError, match="larger than the limit"):
        list(Extractor(small_export.path, max_member_bytes=10_000).records())
