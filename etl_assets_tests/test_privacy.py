"""A private archive stays private: another local user reaches neither the database nor the files.

The other user is a real one (``nobody``): a forked child drops to its ids and tries
what an attacker on the same machine would try. Needs root to switch users.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from etl_assets.etl.load.embedded import SOCKET_NAME, socket_directory, start_embedded, stop_embedded
from etl_assets.samples import generate_export

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another local user needs root")

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else 65534


def as_other_user(attempt: Callable[[], bool]) -> bool:
    """Run ``attempt`` in a child process as ``nobody``; True if the attempt succeeded."""
    pid = os.fork()
    if pid == 0:  # the child: drop privileges for good, try, report by exit code
        code = 3
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = 0 if attempt() else 1
        except BaseException:  # noqa: BLE001 - any failure to get in is a refusal
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the attempt as nobody did not run (exit {code})"
    return code == 0


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A directory every user may traverse (as a home folder usually is), removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="skype-etl-open-"))
    parent.chmod(0o755)
    yield parent
    subprocess.run(["rm", "-rf", str(parent)], check=False)


def _long_home(parent: Path) -> Path:
    """An ETL_HOME whose socket path would not fit the kernel's limit (about 107 bytes)."""
    home = parent / ("h" * max(1, 110 - len(str(parent)) - len("/pgdata/") - len(SOCKET_NAME)))
    assert len(os.fsencode(home / "run" / SOCKET_NAME)) > 107
    return home


def _prefix_modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in path.parents}


def _connects(socket_dir: Path) -> Callable[[], bool]:
    def attempt() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(socket_dir / SOCKET_NAME))
        with psycopg.connect(f"host={socket_dir} user=postgres dbname=postgres", connect_timeout=5) as conn:
            return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]

    return attempt


@pytest.mark.parametrize("path_length", ["short", "long"])
def test_another_user_cannot_reach_the_embedded_server(open_parent: Path, path_length: str) -> None:
    home = open_parent / "home" if path_length == "short" else _long_home(open_parent)
    before = _prefix_modes(home)
    url = start_embedded(home)
    try:
        sockets = socket_directory(home)
        assert (sockets / SOCKET_NAME).is_socket()
        info = sockets.lstat()
        assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
        assert stat.S_IMODE((sockets / SOCKET_NAME).stat().st_mode) & 0o077 == 0
        with psycopg.connect(url) as conn:  # the owner gets in
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert not as_other_user(_connects(sockets)), "another local user reached the embedded server"
        assert _prefix_modes(home) == before, "a directory above ETL_HOME was widened"
    finally:
        stop_embedded(home)


def test_a_socket_directory_made_by_another_user_is_refused(open_parent: Path) -> None:
    home = _long_home(open_parent)
    home.mkdir(parents=True)
    trap = socket_directory(home)  # the place the server would use, taken over by another user
    trap.rmdir()
    trap.mkdir(mode=0o777)
    os.chown(trap, NOBODY, -1)
    try:
        with pytest.raises(Exception, match="belongs to another user"):
            start_embedded(home)
    finally:
        trap.rmdir()


def test_files_under_etl_home_are_private_whatever_the_umask(
    open_parent: Path, server_url: str, tmp_path: Path
) -> None:
    """A CLI load with umask 022 leaves nothing under ETL_HOME that another user can read."""
    export = generate_export(tmp_path / "8_live_private_export.tar", messages=300, seed=5)
    home = open_parent / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    env.update(ETL_HOME=str(home), ETL_DATABASE_URL=server_url, ETL_SCHEMA="t_private_" + os.urandom(4).hex())
    done = subprocess.run(
        [sys.executable, "-m", "etl_assets.cli", "load", str(export.path)],
        env=env, capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.umask(0o022),
    )
    assert done.returncode == 0, done.stderr
    try:
        found = list(home.rglob("*"))
        assert any(p.suffix == ".parquet" for p in found), "the load wrote no data under ETL_HOME"
        media = [p for p in found if p.is_file() and "media" in p.parts]
        assert media, "the export's media were not stored under ETL_HOME"
        wide = [f"{p} {stat.S_IMODE(p.lstat().st_mode):o}" for p in [home, *found] if p.lstat().st_mode & 0o077]
        assert not wide, "readable by others: " + ", ".join(wide[:5])
        target = media[0]
        assert not as_other_user(lambda: bool(target.read_bytes() or True)), "another user read a media file"
        assert not as_other_user(lambda: bool(os.listdir(home) or True)), "another user listed ETL_HOME"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{env["ETL_SCHEMA"]}" CASCADE')
            conn.execute(f'DROP SCHEMA IF EXISTS "{env["ETL_SCHEMA"]}_staging" CASCADE')
