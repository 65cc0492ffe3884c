"""The row builder's plain-text fast path gives exactly the rows of the general path, on any message."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl_assets.etl.extract import MessageRecord
from etl_assets.etl.transform.rows import RejectedRecord, RowWriter


class _Rows:
    """A sink that keeps its rows."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, row: tuple) -> None:
        self.rows.append(row)


def _general(writer: RowWriter, record: MessageRecord, by_type: Counter) -> None:
    """What ``RowWriter.message`` does without the fast path."""
    try:
        writer._message(record, by_type)
    except RejectedRecord as e:
        writer.reject(record.location, str(e), record.data)


def _written(message: object, fast: bool) -> tuple[dict, dict, Counter]:
    sinks: defaultdict[str, _Rows] = defaultdict(_Rows)
    writer = RowWriter(sinks, "ab" * 32)  # type: ignore[arg-type]
    by_type: Counter = Counter()
    record = MessageRecord(3, 7, message)
    if fast:
        writer.message(record, by_type)
    else:
        _general(writer, record, by_type)
    return {name: sink.rows for name, sink in sinks.items() if sink.rows}, writer.people, by_type


_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["hello", "  spaced  ", "a < b", "fish &amp; chips", "see https://example.com", "x\x00y",
                     "\ud800 lone", "Edited previous message: fixed", "<e_m ts=\"1\"></e_m>", ""]),
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), _text)
_valid = {
    "id": st.sampled_from(["1600000000000", " 16 "]),
    "conversationid": st.sampled_from(["8:live:friend", "19:room@thread.skype"]),
    "messagetype": st.sampled_from(["RichText", "Text"]),
    "originalarrivaltime": st.sampled_from(["2021-03-04T05:06:07.123Z", "2021-03-04T05:06:07"]),
    "from": st.sampled_from(["8:live:someone", "live:someone"]),
    "content": _text,
}
_plainish = st.tuples(
    st.fixed_dictionaries(_valid, optional={"version": _scalar, "displayName": _scalar, "properties": st.none()}),
    st.dictionaries(st.sampled_from([*_valid, "properties", "amsreferences"]), _scalar, max_size=1),
).map(lambda pair: {**pair[0], **pair[1]})
"""A plain message, sometimes with one field replaced by any value: both paths then build rows."""
_messages = st.one_of(_plainish, st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(_scalar, st.sampled_from(["1600000000000", " 16 ", ""])),
        "conversationid": st.one_of(_scalar, st.sampled_from(["8:live:friend", "19:room@thread.skype", "  "])),
        "messagetype": st.one_of(_scalar, st.sampled_from(["RichText", "Text", "RichText/Html", "Event/Call"])),
        "content": _text,
        "originalarrivaltime": st.one_of(_scalar, st.sampled_from(["2021-03-04T05:06:07.123Z", "2021-03-04T05:06:07",
                                                                  "2021-13-04T05:06:07Z"])),
        "version": st.one_of(_scalar, st.sampled_from([1614834367123.0, "1614834367123"])),
        "from": st.one_of(_scalar, st.sampled_from(["8:live:someone", "live:someone", "https://x/contacts/8:a"])),
        "displayName": _scalar,
        "properties": st.one_of(st.none(), st.just({}), st.just({"edittime": "1614834367999"})),
        "amsreferences": st.one_of(st.none(), st.just([]), st.just(["0-doc"])),
        "skypeguid": _text,
    },
))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages)
@example({"id": "1", "conversationid": "8:a", "messagetype": "RichText", "content": " hi ",
          "originalarrivaltime": "2021-03-04T05:06:07.123Z", "from": "a", "displayName": "A"})
@example({"id": "1", "conversationid": "8:a", "messagetype": "RichText", "content": "see https://example.com",
          "originalarrivaltime": "2021-03-04T05:06:07.123Z"})
@example({"id": "1", "conversationid": "8:a", "messagetype": "Text", "content": "hi", "version": None,
          "originalarrivaltime": "2021-03-04T05:06:07Z", "properties": None, "amsreferences": None})
def test_fast_path_rows_equal_the_general_rows(message: dict) -> None:
    assert _written(message, fast=True) == _written(message, fast=False)


def test_the_fast_path_takes_plain_messages() -> None:
    """It is used at all: a plain message is written without parsing its content."""
    sinks: defaultdict[str, _Rows] = defaultdict(_Rows)
    writer = RowWriter(sinks, "ab" * 32)  # type: ignore[arg-type]
    plain = {"id": "1", "conversationid": "8:a", "messagetype": "RichText", "content": "hi",
             "originalarrivaltime": "2021-03-04T05:06:07Z"}
    assert writer._plain_message(plain, Counter())
    assert not writer._plain_message({**plain, "content": "<b>hi</b>"}, Counter())
    assert not writer._plain_message({**plain, "properties": {}}, Counter())
