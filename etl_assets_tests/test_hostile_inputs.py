"""Hostile inputs: a corpus of bad files, built here, each loaded with ``skype-etl load`` as a user would.

Every file must end one of two ways, within a bounded time and writing nothing outside
the artifact store (``ETL_HOME``):

- a **whole-file error**: exit code 2, one line on stderr naming the file and the reason,
  and not a single row in the warehouse;
- a **load**: exit code 0, each unusable record in ``rejected_records`` with its location
  and reason, everything else loaded.

What each case must give is decided per the rule "bad input gets a clear error naming
the file, where, and why; per-record problems go to rejected_records; nothing is
half-loaded and nothing is lost":

- the container or the JSON document as a whole is unusable (not an archive, empty,
  truncated, wrong top-level type, ``conversations`` not a list, unsafe or duplicate
  ``messages.json`` member, larger than ``ETL_MAX_MEMBER_BYTES``, nested deeper than
  :data:`extractor.MAX_DEPTH`, raw control characters or invalid UTF-8 between tokens,
  an integer beyond 64 bits, which yajl cannot represent) -> whole-file error;
- one record is unusable (a conversation that is a number, ids of the wrong type, bad
  times, NUL, unpaired surrogates, invalid UTF-8 inside a string) -> rejected_records;
- odd but valid data (SQL-looking text, a 100 MB string, a million conversations,
  a byte order mark, JSON nested deep inside a string, a good messages.json among
  ``..``/absolute/link/device members) -> loaded, verbatim, nothing extracted.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from etl_assets.etl import schema as s
from etl_assets.etl.extract import MAX_DEPTH
from etl_assets.samples import generate_export

TIMEOUT = 60
SQL = "'); DROP TABLE skype.messages; --"
MB = 1 << 20


# --------------------------------------------------------------------------- building blocks


def message(**fields: object) -> dict:
    m = {
        "id": "1600000000000",
        "originalarrivaltime": "2020-09-13T12:26:40.000Z",
        "messagetype": "RichText",
        "conversationid": "8:live:bob",
        "from": "8:live:bob",
        "displayName": "Bob",
        "content": "hello",
        "version": 1600000000000,
        "properties": None,
    }
    m.update(fields)
    return m


GOOD = json.dumps(message(id="good-1", content="still here")).encode()


def encode(value: object) -> bytes:
    """JSON with every non-ASCII character escaped (so surrogates can be written as escapes)."""
    return json.dumps(value, ensure_ascii=True).encode()


def with_raw(msg: dict, placeholder: str, raw: bytes) -> bytes:
    """A message whose string ``placeholder`` is replaced by raw bytes (invalid UTF-8, deep JSON)."""
    return encode(msg).replace(f'"{placeholder}"'.encode(), raw)


def document(messages: list[bytes], conversation: dict | None = None, more: bytes = b"") -> bytes:
    """``messages.json`` with one conversation holding ``messages`` (raw JSON bytes each)."""
    conv = {"id": "8:live:bob", "displayName": "Bob", "version": 1, "properties": None, "threadProperties": None}
    conv.update(conversation or {})
    return (
        b'{"userId": "8:live:me", "exportDate": "2025-01-01T00:00", "conversations": ['
        + encode(conv)[:-1]
        + b', "MessageList": ['
        + b", ".join(messages)
        + b"]}"
        + more
        + b"]}"
    )


def tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


class Spaces(io.RawIOBase):
    """``n`` spaces, produced as they are read (the bomb is never held in memory)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return b" " * size


# --------------------------------------------------------------------------- the corpus


@dataclass
class Case:
    build: Callable[[Path, bytes], Path]
    """Writes the input under a directory (given a real generated messages.json); returns its path."""
    error: str | None = None
    """For a whole-file error: text the reason must contain."""
    check: Callable[[Outcome], None] | None = None
    """For a load: further checks on the outcome."""
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    max_seconds: float = TIMEOUT
    max_rss_mb: float | None = None


CASES: dict[str, Case] = {}


def case(name: str, **kwargs: object) -> Callable:
    def register(build: Callable[[Path, bytes], Path]) -> Callable:
        CASES[name] = Case(build, **kwargs)  # type: ignore[arg-type]
        return build

    return register


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- not an export at all

case("not an archive", error="not a Skype export")(
    lambda d, _: write(d / "photo.tar", b"\x89PNG\r\n\x1a\n" + b"\0" * 600)
)
case("empty file", error="the file is empty")(lambda d, _: write(d / "messages.json", b""))

# -- truncated documents and archives

TRUNCATE_AT = (0.001, 0.05, 0.13, 0.27, 0.38, 0.5, 0.61, 0.74, 0.88, 0.9999)
for fraction in TRUNCATE_AT:
    case(f"truncated JSON at {fraction:.2%}", error="truncated JSON")(
        lambda d, sample, f=fraction: write(d / "messages.json", sample[: max(1, int(len(sample) * f))])
    )


@case("truncated tar", error="damaged")
def _truncated_tar(d: Path, sample: bytes) -> Path:
    whole = tar_with(d / "whole.tar", [(member("messages.json"), sample)]).read_bytes()
    return write(d / "cut.tar", whole[: len(whole) // 2])


@case("truncated tar.gz", error="damaged")
def _truncated_tgz(d: Path, sample: bytes) -> Path:
    whole = gzip.compress(tar_with(d / "whole.tar", [(member("messages.json"), sample)]).read_bytes())
    return write(d / "cut.tar.gz", whole[: len(whole) // 2])


@case("truncated zip", error="damaged zip")
def _truncated_zip(d: Path, sample: bytes) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("messages.json", sample)
    return write(d / "cut.zip", buffer.getvalue()[: len(buffer.getvalue()) // 2])


# -- wrong shapes

for label, text in {"a list": b'[{"conversations": []}]', "a string": b'"conversations"', "a number": b"42",
                    "null": b"null"}.items():
    case(f"top level is {label}", error="top level of messages.json is not an object")(
        lambda d, _, t=text: write(d / "messages.json", t)
    )
case('"conversations" is not a list', error='"conversations" is not a list')(
    lambda d, _: write(d / "messages.json", b'{"userId": "8:live:me", "conversations": {"0": {"id": "8:a"}}}')
)
case("raw control character in a string", error="invalid JSON")(
    lambda d, _: write(d / "messages.json", document([with_raw(message(content="X"), "X", b'"a\x01b"'), GOOD]))
)

case("invalid UTF-8 outside a string", error="invalid UTF-8 at byte 76")(
    lambda d, _: write(d / "messages.json", document([GOOD]).replace(b'"conversations": [', b'"conversations": [\xff'))
)
case("an integer beyond 64 bits", error="a whole number beyond 64 bits")(
    lambda d, _: write(d / "messages.json", document([with_raw(message(version="X"), "X", b"1" + b"0" * 25), GOOD]))
)

# -- nesting

case("100,000 nested arrays at the top level", error="not an object")(
    lambda d, _: write(d / "messages.json", b"[" * 100_000 + b"]" * 100_000)
)
case("100,000 nested arrays in a top-level key", error=f"nested deeper than {MAX_DEPTH} levels")(
    lambda d, _: write(d / "messages.json", b'{"conversations": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
)
case("100,000 nested arrays in a message's properties", error=f"MessageList[0]: JSON nested deeper than {MAX_DEPTH}")(
    lambda d, _: write(
        d / "messages.json", document([with_raw(message(properties="X"), "X", b"[" * 100_000 + b"]" * 100_000), GOOD])
    )
)


def _deep_json_string(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2 and outcome.export["rejected"] == 0


case("100,000 nested arrays inside a JSON string (emotions)", check=_deep_json_string)(
    lambda d, _: write(
        d / "messages.json",
        document([encode(message(properties={"emotions": "[" * 100_000 + "]" * 100_000})), GOOD]),
    )
)


def _deep_members_string(outcome: Outcome) -> None:
    assert outcome.export["conversations"] == 1 and outcome.export["messages"] == 1


case(
    "100,000 nested arrays inside a JSON string (threadProperties.members)",
    check=_deep_members_string,
)(
    lambda d, _: write(
        d / "messages.json",
        document(
            [GOOD], {"id": "19:deep@thread.skype", "threadProperties": {"members": "[" * 100_000 + "]" * 100_000}}
        ),
    )
)

# -- archives with unsafe members


case("tar: messages.json is a symlink", error="not a regular file")(
    lambda d, _: tar_with(d / "x.tar", [(member("messages.json", tarfile.SYMTYPE, linkname="/etc/passwd"), None)])
)
case("tar: messages.json is a hard link", error="not a regular file")(
    lambda d, sample: tar_with(
        d / "x.tar",
        [(member("data.json"), sample), (member("messages.json", tarfile.LNKTYPE, linkname="data.json"), None)],
    )
)
case("tar: messages.json is a device", error="not a regular file")(
    lambda d, _: tar_with(d / "x.tar", [(member("messages.json", tarfile.CHRTYPE, devmajor=1, devminor=3), None)])
)
case("tar: messages.json twice", error="holds messages.json 2 times")(
    lambda d, sample: tar_with(d / "x.tar", [(member("messages.json"), sample), (member("./messages.json"), sample)])
)
case("tar: messages.json only as ../messages.json", error="no messages.json at its root")(
    lambda d, sample: tar_with(d / "x.tar", [(member("../messages.json"), sample)])
)
case("tar: messages.json only as /messages.json", error="no messages.json at its root")(
    lambda d, sample: tar_with(d / "x.tar", [(member("/messages.json"), sample)])
)
case("zip: messages.json only as ../messages.json", error="no messages.json at its root")(
    lambda d, sample: _zip_with(d / "x.zip", {"../messages.json": sample})
)


def _zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _evil_members_loaded(outcome: Outcome) -> None:
    assert outcome.export["messages"] > 0 and outcome.export["rejected"] == 0


case("tar: a good messages.json among .., absolute, link and device members", check=_evil_members_loaded)(
    lambda d, sample: tar_with(
        d / "evil.tar",
        [
            (member("../../escaped.txt"), b"outside"),
            (member("/tmp/absolute.txt"), b"absolute"),
            (member("media/link.jpg", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (member("media/hard.jpg", tarfile.LNKTYPE, linkname="../../escaped.txt"), None),
            (member("media/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
            (member("media/../../../dotdot.jpg"), b"dotdot"),
            (member("messages.json"), sample),
        ],
    )
)

# -- decompression bombs: 256 MB of spaces, limit 1 MB

BOMB = 256 * MB
LIMIT = {"ETL_MAX_MEMBER_BYTES": str(MB)}


@case("decompression bomb (.tar.gz)", error=f"larger than the limit of {MB} bytes", env=LIMIT, max_seconds=15)
def _tar_bomb(d: Path, _: bytes) -> Path:
    path = d / "bomb.tar.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as archive:
            archive.copybufsize = MB
            archive.addfile(member("messages.json", size=BOMB), Spaces(BOMB))
    return path


@case("decompression bomb (messages.json.gz)", error=f"larger than the limit of {MB} bytes", env=LIMIT, max_seconds=15)
def _json_bomb(d: Path, _: bytes) -> Path:
    path = d / "messages.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz:
        gz.write(b'{"userId": "8:live:me", "conversations": [')
        spaces = Spaces(BOMB)
        while chunk := spaces.read(MB):
            gz.write(chunk)
    return path


# -- per-record problems: the record is rejected, the rest loads


def rejected(count: int, reason: str | None = None, loaded: int = 1) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.export["rejected"] == count
        assert outcome.export["messages"] == loaded
        rows = outcome.rows("SELECT location, reason, raw FROM {s}.rejected_records ORDER BY location")
        assert len(rows) == count
        for location, why, raw in rows:
            assert location.startswith("conversations[") and why and raw
            if reason is not None:
                assert reason in why
        assert outcome.rows("SELECT message_id FROM {s}.messages WHERE message_id = 'good-1'")

    return check


NUL_OR_SURROGATE = "NUL character or an unpaired surrogate"

case("invalid UTF-8 in content", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(
        d / "messages.json", document([with_raw(message(content="X"), "X", b'"caf\xe9 \xff\xfe"'), GOOD])
    )
)
case("invalid UTF-8 in an id", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(d / "messages.json", document([with_raw(message(id="X"), "X", b'"16\xc3"'), GOOD]))
)
case("UTF-8-encoded surrogate (CESU) in content", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(d / "messages.json", document([with_raw(message(content="X"), "X", b'"a\xed\xa0\x80b"'), GOOD]))
)
case("NUL in content", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(d / "messages.json", document([encode(message(content="a\x00b")), GOOD]))
)
case("unpaired high surrogate in content", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(d / "messages.json", document([encode(message(content="smile \ud83d")), GOOD]))
)
case("unpaired low surrogate in an id", check=rejected(1, NUL_OR_SURROGATE))(
    lambda d, _: write(d / "messages.json", document([encode(message(id="1\udc00")), GOOD]))
)
case("invalid timestamps", check=rejected(6, "originalarrivaltime"))(
    lambda d, _: write(
        d / "messages.json",
        document(
            [
                encode(message(id=f"t{i}", originalarrivaltime=value))
                for i, value in enumerate(
                    ["not a time", 12345, "", None, "2020-13-45T25:61:00Z", "9999-12-31T23:59:59.9999999-14:00"]
                )
            ]
            + [GOOD]
        ),
    )
)
case("ids of the wrong type", check=rejected(4, "message id is"))(
    lambda d, _: write(
        d / "messages.json",
        document([encode(message(id=value)) for value in ([1, 2], {"a": 1}, True, 1.5)] + [GOOD]),
    )
)


def _conversation_number(outcome: Outcome) -> None:
    assert outcome.export["conversations"] == 1 and outcome.export["messages"] == 1
    rows = outcome.rows("SELECT location, reason, raw FROM {s}.rejected_records")
    assert rows == [("conversations[1]", "conversation without a usable id", "5")]


case("a conversation that is a number", check=_conversation_number)(
    lambda d, _: write(d / "messages.json", document([GOOD], more=b", 5"))
)


def _sql_verbatim(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2 and outcome.export["rejected"] == 0
    got = outcome.rows("SELECT conversation_id, message_id, sender_name, content_raw FROM {s}.messages ORDER BY 2")
    assert (f"19:{SQL}@thread.skype", SQL, SQL, SQL) in got
    assert outcome.rows("SELECT display_name, topic FROM {s}.conversations") == [(SQL, SQL)]
    assert outcome.rows("SELECT file_name FROM {s}.exports") == [(f"{SQL}.json",)]
    assert outcome.rows("SELECT person_id FROM {s}.people WHERE person_id = %s", (f"8:{SQL}",))


case("SQL-looking ids, names, content and file name", check=_sql_verbatim)(
    lambda d, _: write(
        d / f"{SQL}.json",
        document(
            [
                encode(message(id=SQL, conversationid=f"19:{SQL}@thread.skype", displayName=SQL, content=SQL,
                               **{"from": SQL})),
                encode(message(id="good-1", conversationid=f"19:{SQL}@thread.skype")),
            ],
            {"id": f"19:{SQL}@thread.skype", "displayName": SQL, "threadProperties": {"topic": SQL}},
        ),
    )
)


def _bom(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2 and outcome.export["rejected"] == 0


case("UTF-8 byte order mark", check=_bom)(
    lambda d, _: write(d / "messages.json", b"\xef\xbb\xbf" + document([GOOD, encode(message())]))
)


def _nul_in_sender(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2
    senders = outcome.rows("SELECT sender_id FROM {s}.messages WHERE message_id = '1600000000000'")
    assert senders == [("8:live:x\\u0000y",)]


case("NUL in a sender id (kept, spelled out)", check=_nul_in_sender)(
    lambda d, _: write(d / "messages.json", document([encode(message(**{"from": "8:live:x\x00y"})), GOOD]))
)

# -- big but valid


def _big_string(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2 and outcome.export["rejected"] == 0
    assert outcome.rows("SELECT length(content_raw) FROM {s}.messages WHERE message_id = 'big'") == [(100 * MB,)]


@case("one 100 MB string", check=_big_string, args=("--memory-limit-mb", "1536"), max_rss_mb=1536, max_seconds=40)
def _hundred_mb_string(d: Path, _: bytes) -> Path:
    path = d / "messages.json"
    head, tail = document([with_raw(message(id="big", content="X"), "X", b'"\0"'), GOOD]).split(b"\0")
    with open(path, "wb") as out:
        out.write(head)
        block = b"x" * MB
        for _ in range(100):
            out.write(block)
        out.write(tail)
    return path


def _many_conversations(outcome: Outcome) -> None:
    assert outcome.export["conversations"] == 1_000_000 and outcome.export["messages"] == 0
    assert outcome.rows("SELECT count(*) FROM {s}.conversations") == [(1_000_000,)]


@case("a million empty conversations", check=_many_conversations, max_rss_mb=400, max_seconds=45)
def _million(d: Path, _: bytes) -> Path:
    path = d / "messages.json"
    with open(path, "wb") as out:
        out.write(b'{"userId": "8:live:me", "exportDate": "2025-01-01T00:00", "conversations": [')
        out.write(b",".join(b'{"id":"19:c%d@thread.skype","MessageList":[]}' % i for i in range(1_000_000)))
        out.write(b"]}")
    return path


def _many_words(outcome: Outcome) -> None:
    assert outcome.export["messages"] == 2


case(
    "content with 150,000 distinct words",
    check=_many_words,
)(
    lambda d, _: write(
        d / "messages.json",
        document([encode(message(content=" ".join(f"w{i}" for i in range(150_000)))), GOOD]),
    )
)


# --------------------------------------------------------------------------- running a case


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    database_url: str
    schema: str

    @property
    def export(self) -> dict:
        return json.loads(self.stdout)["exports"][0]

    def rows(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql.SQL(query).format(s=sql.Identifier(self.schema)), params).fetchall()


def run_load(path: Path, *, home: Path, cwd: Path, tmp: Path, database_url: str, schema: str, case: Case) -> Outcome:
    """``skype-etl load`` in its own process; the peak RSS of its process tree is sampled."""
    env = {**os.environ, "ETL_HOME": str(home), "TMPDIR": str(tmp), **case.env}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "etl_assets.cli", "load", str(path), "--database-url", database_url,
               "--schema", schema, "--json", *case.args]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        try:
            parent = psutil.Process(process.pid)
            while not done.wait(0.02):
                rss = parent.memory_info().rss
                for child in parent.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=case.max_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"no result within {case.max_seconds} s")
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    return Outcome(process.returncode, stdout, stderr, seconds, peak[0] / MB, database_url, schema)


def listing(root: Path, *, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file (with its size and mtime) and directory under ``root``, outside ``skip``."""
    out = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        st = path.lstat()
        out[str(path.relative_to(root))] = (0, 0) if path.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def warehouse_rows(database_url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)).fetchone()
        if not exists:
            return {}
        present = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()}
        count = sql.SQL("SELECT count(*) FROM {}.{}")
        return {
            t.name: conn.execute(count.format(sql.Identifier(schema), sql.Identifier(t.name))).fetchone()[0]
            for t in s.ALL_TABLES
            if t.name in present
        }


@pytest.fixture(scope="module")
def sample_json(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real generated messages.json (every message type and quirk)."""
    truth = generate_export(tmp_path_factory.mktemp("sample") / "messages.json", messages=400, seed=23)
    return truth.path.read_bytes()


def test_every_case_states_its_outcome() -> None:
    """A case must expect either a named error or a load with checks: none can pass by saying nothing."""
    vague = [name for name, spec in CASES.items() if (spec.error is None) == (spec.check is None)]
    assert not vague, vague


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name: str, database_url: str, schema: str, tmp_path: Path, sample_json: bytes) -> None:
    spec = CASES[name]
    inputs, home, cwd, tmp = (tmp_path / d for d in ("input", "home", "cwd", "tmp"))
    for d in (inputs, cwd, tmp):
        d.mkdir()
    path = spec.build(inputs, sample_json)
    before = listing(tmp_path)

    outcome = run_load(path, home=home, cwd=cwd, tmp=tmp, database_url=database_url, schema=schema, case=spec)

    # Nothing written outside the artifact store: the input, cwd and TMPDIR are as they were.
    assert listing(tmp_path, skip=home) == before
    written = listing(home) if home.exists() else {}
    assert all(p == "artifacts" or p.startswith("artifacts/") for p in written), written
    # the time limit is enforced by run_load (communicate with the case's timeout)
    if spec.max_rss_mb is not None:
        assert outcome.peak_rss_mb < spec.max_rss_mb, f"peak RSS {outcome.peak_rss_mb:.0f} MB"

    if spec.error is not None:
        assert outcome.returncode == 2, outcome.stderr
        lines = outcome.stderr.strip().splitlines()
        assert len(lines) == 1, outcome.stderr
        assert lines[0].startswith(f"skype-etl: {path}") and spec.error in lines[0], lines[0]
        assert outcome.stdout == ""
        assert not any(warehouse_rows(database_url, schema).values())
        # Whatever was read, nothing near the size of an inflated member was written.
        assert all(size < MB for size, _ in written.values())
    else:
        assert outcome.returncode == 0, outcome.stderr
        assert spec.check is not None
        spec.check(outcome)
    shutil.rmtree(inputs)  # pytest keeps recent temp dirs: do not keep 100 MB inputs and their Parquet
    shutil.rmtree(home, ignore_errors=True)
