"""``skype-etl load`` progress: bars on a real pseudo-terminal, nothing extra with --json or a pipe, lines with -v."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from etl_assets.samples import generate_export

from .helpers import drop_schema

BAR = re.compile(r"(\w+)\s*:\s*(\d+)%\|")
"""A tqdm bar: ``transform:  42%|████``."""


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    return generate_export(tmp_path_factory.mktemp("progress") / "8_live_progress_export.tar", messages=3000, seed=7)


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "ETL_HOME": str(home), "ETL_WORKERS": "1", "COLUMNS": "100"}
    for name in ("ETL_DATABASE_URL", "ETL_CRASH_AT", "ETL_PAUSE_AT"):
        env.pop(name, None)
    return env


def _on_pty(args: list[str], home: Path) -> tuple[str, str, int]:
    """Run ``skype-etl ARGS`` with stderr on a pseudo-terminal (80x100); returns (terminal, stdout, code)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "etl_assets.cli", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=slave, env=_env(home), close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = process.stdout.read().decode()
    code = process.wait(timeout=600)
    return b"".join(chunks).decode(errors="replace"), stdout, code


def test_bars_on_a_terminal(export, tmp_path: Path, database_url: str, schema: str) -> None:
    terminal, stdout, code = _on_pty(["load", str(export.path), "--database-url", database_url, "--schema", schema], tmp_path)
    assert code == 0, terminal
    assert f"{export.messages} messages" in stdout
    finished = {phase for phase, percent in BAR.findall(terminal) if percent == "100"}
    assert {"transform", "load"} <= finished, terminal
    assert re.search(r"extract\s*:.*B", terminal)  # bytes read, a counter
    media = re.search(r"media\s*: 100%\|[^\r\n]*\| (\d+)/(\d+) ", terminal)  # media files copied
    assert media and media.group(1) == media.group(2) and int(media.group(1)) >= export.rows["media_files"] > 0, terminal
    assert re.search(rf"transform\s*: 100%\|[^\r\n]*\| {export.message_records}/{export.message_records}", terminal), terminal
    assert "%|" not in stdout  # bars go to the terminal's stderr only


def test_nothing_extra_with_json_on_a_terminal(export, tmp_path: Path, database_url: str, schema: str) -> None:
    terminal, stdout, code = _on_pty(
        ["load", str(export.path), "--json", "--database-url", database_url, "--schema", schema], tmp_path
    )
    assert code == 0
    assert terminal == ""
    report = json.loads(stdout)
    assert report["exports"][0]["messages"] == export.messages
    assert stdout.count("\n") == 1


def test_nothing_extra_on_a_pipe_and_lines_with_verbose(export, tmp_path: Path, database_url: str, schema: str) -> None:
    args = [sys.executable, "-m", "etl_assets.cli"]
    load = ["load", str(export.path), "--database-url", database_url, "--schema", schema]
    piped = subprocess.run([*args, *load], capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert "%|" not in piped.stdout and f"{export.messages} messages" in piped.stdout

    drop_schema(database_url, schema)
    verbose = subprocess.run([*args, "-v", *load], capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert verbose.returncode == 0, verbose.stderr
    assert "%|" not in verbose.stderr
    lines = re.findall(r"progress (\w+): (\d+)(?:/(\d+))? (\w+)", verbose.stderr)
    phases = {phase for phase, *_ in lines}
    assert {"extract", "transform", "media", "load"} <= phases, verbose.stderr
    last_transform = [line for line in lines if line[0] == "transform"][-1]
    assert last_transform[1] == last_transform[2] == str(export.message_records)
    assert last_transform[3] == "msg"


def test_pipeline_reports_each_phase_from_zero_to_its_exact_total(export, tmp_path: Path, database_url: str, schema: str) -> None:
    import threading

    from etl_assets.etl.pipeline import ETLPipeline

    from .helpers import pipeline_config

    seen: list[tuple[str, int, int | None, str]] = []
    lock = threading.Lock()

    def progress(phase: str, done: int, total: int | None, unit: str) -> None:
        with lock:
            seen.append((phase, done, total, unit))

    result = ETLPipeline(pipeline_config(database_url, tmp_path / "artifacts", schema), progress=progress).run(export.path)
    phases = list(dict.fromkeys(p for p, *_ in seen))  # in the order they started
    assert phases[:2] == ["extract", "transform"] and set(phases[2:]) == {"media", "load"}
    transform_end = max(i for i, (p, *_) in enumerate(seen) if p == "transform")
    # the media copy runs beside the load, both after the transform
    assert min(i for i, (p, *_) in enumerate(seen) if p in ("media", "load")) > transform_end
    units = {p: u for p, _, _, u in seen}
    assert units == {"extract": "B", "transform": "msg", "media": "files", "load": "rows"}
    for phase in phases:
        reports = [(done, total) for p, done, total, _ in seen if p == phase]
        assert reports[0][0] == 0
        assert [d for d, _ in reports] == sorted(d for d, _ in reports), phase
        finals = [r for r in reports if r[1] is not None and r[0] == r[1]]
        assert finals == [reports[-1]], phase  # only the last report is complete
    last = {p: (done, total) for p, done, total, _ in seen}
    assert last["transform"] == (export.message_records, export.message_records)
    assert last["media"][0] == result.media.copied > 0
    assert last["load"][0] == sum(result.transformed.rows.values())
    assert last["extract"][0] >= export.path.stat().st_size  # the file is read at least once
