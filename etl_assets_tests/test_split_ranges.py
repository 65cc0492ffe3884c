"""Contiguous ranges: each transform worker parses only its part of messages.json, and the parts meet exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl_assets.etl.config import ETLConfig
from etl_assets.etl.extract import Extractor, SplitPoint
from etl_assets.etl.extract.repair import _MemberReader
from etl_assets.etl.transform import transformer as transformer_module
from etl_assets.etl.transform.transformer import Transformer, _ranges, transform_share
from etl_assets.samples import generate_export

from .test_transformer import read_tables


def _points(path: Path) -> list[SplitPoint]:
    points: list[SplitPoint] = []
    for _ in Extractor(path).scan(points):
        pass
    return points


@pytest.mark.parametrize("archive", ["tar", "json", "zip"])
def test_every_split_point_starts_exactly_the_messages_from_its_index_on(tmp_path: Path, archive: str) -> None:
    truth = generate_export(tmp_path / f"export.{archive}", messages=3000, seed=5, bad_records=3)
    everything = list(Extractor(truth.path).messages())
    points = _points(truth.path)
    size = Extractor(truth.path).messages_size() or 0
    assert len(points) >= min(60, size // (64 << 10)) > 5, "a point after every 1/64 of the file, or every read"
    assert [p.index for p in points] == sorted({p.index for p in points})
    for point in points[:: max(1, len(points) // 8)]:
        from_point = list(Extractor(truth.path).messages(point))
        assert from_point == everything[point.index :], point


def test_a_range_reads_only_its_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = generate_export(tmp_path / "export.tar", messages=3000, seed=6)
    points = _points(truth.path)
    point = points[len(points) // 2]
    read: list[int] = []
    original = _MemberReader.read

    def counting(self: _MemberReader, size: int = -1) -> bytes:
        data = original(self, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(_MemberReader, "read", counting)
    size = Extractor(truth.path).messages_size()
    assert size is not None
    for _ in Extractor(truth.path).messages(point):
        pass
    assert sum(read) == size - point.offset


def _messages_json(path: Path, messages: list[dict]) -> Path:
    conversation = {"id": "19:room@thread.skype", "displayName": "Room", "MessageList": messages}
    path.write_text(json.dumps({"userId": "8:live:me", "exportDate": "2025-04-30T18:02", "conversations": [conversation]}))
    return path


def _message(i: int, text: str = "hello") -> dict:
    return {
        "id": str(1_600_000_000_000 + i), "originalarrivaltime": "2021-01-01T00:00:00.000Z", "messagetype": "RichText",
        "content": text, "conversationid": "19:room@thread.skype", "from": "8:live:someone",
    }


def test_identical_adjacent_copies_never_become_a_split_point(tmp_path: Path) -> None:
    """A message repeated byte for byte could be found at the wrong copy: such places are passed by."""
    same = _message(1, "x" * 200)
    messages = [same] * 4000 + [_message(i) for i in range(2, 4002)]
    path = _messages_json(tmp_path / "messages.json", messages)
    points = _points(path)
    assert points and all(p.index >= 4000 for p in points)
    everything = list(Extractor(path).messages())
    for point in points[:3]:
        assert list(Extractor(path).messages(point)) == everything[point.index :]


def test_ranges_that_do_not_meet_are_redone_round_robin(tmp_path: Path, small_export) -> None:
    """A split point that is wrong (here: made wrong) is noticed by the workers; the rows stay right."""
    expected_dir = tmp_path / "expected"
    Transformer(expected_dir, export_sha256="f" * 64, config=ETLConfig(batch_size=128, workers=1)).run(
        Extractor(small_export.path)
    )
    work = tmp_path / "work"
    transformer = Transformer(work, export_sha256="f" * 64, config=ETLConfig(batch_size=128, workers=2),
                              min_messages_per_worker=100)
    scan, _ = transformer.scan(Extractor(small_export.path))
    assert scan.splits, "the small export has split points"
    marker = work / "_parts" / "conversations.json"
    saved = json.loads(marker.read_text())
    saved["splits"] = [[p[0] + 1, *p[1:]] for p in saved["splits"]]  # every point one message off
    marker.write_text(json.dumps(saved))
    transformer.run(Extractor(small_export.path))
    got, expected = read_tables(work), read_tables(expected_dir)
    key = lambda table: sorted((r["conversation_id"], r["message_id"], r["version"]) for r in table.to_pylist())  # noqa: E731
    assert key(got["messages"]) == key(expected["messages"])


def test_ranges_are_even_and_start_at_the_first_message() -> None:
    points = [SplitPoint(i * 100, 0, i * 100, i * 1000, "") for i in range(1, 64)]
    ranges = _ranges(points, 64_000, 2)
    assert ranges is not None and [r.index for r in ranges] == [0, 3200]
    assert [r.offset for r in _ranges(points, 64_000, 4)] == [0, 16_000, 32_000, 48_000]
    assert _ranges([], 64_000, 2) is None and _ranges(points, 64_000, 1) is None


def test_two_workers_transform_contiguous_ranges(small_export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shares = []
    original = transformer_module.Transformer._run_shares

    def keep(self, given, extractor):
        shares.extend(given)
        return original(self, given, extractor)

    monkeypatch.setattr(transformer_module.Transformer, "_run_shares", keep)
    Transformer(tmp_path, export_sha256="f" * 64, config=ETLConfig(batch_size=128, workers=2),
                min_messages_per_worker=100).run(Extractor(small_export.path))
    assert [s.contiguous for s in shares] == [True, True]
    assert shares[0].start.index == 0 and shares[1].start.index == shares[0].end > 0
    assert transform_share is transformer_module.transform_share


def test_messages_that_cannot_be_located_cost_a_bounded_number_of_tries(tmp_path: Path, monkeypatch) -> None:
    """A first field written with escapes is never found: the scan gives up after a few messages per point."""
    from etl_assets.etl.extract import split

    built = []
    original = split.SplitFinder.found

    def counting(self, conversation, position, message):
        built.append(position)
        return original(self, conversation, position, message)

    monkeypatch.setattr(split.SplitFinder, "found", counting)
    messages = [{"\u00efd": str(i), **_message(i)} for i in range(6000)]  # first key spelled with an escape
    path = tmp_path / "messages.json"
    path.write_text(json.dumps({"conversations": [{"id": "19:room@thread.skype", "MessageList": messages}]}))
    assert _points(path) == []
    assert len(built) <= split.SLICES * split.TRIES
    assert len(built) < len(messages) / 2
