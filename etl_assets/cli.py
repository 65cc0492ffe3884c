"""The ``skype-etl`` command: load exports, run the demo, start the Dagster UI.

Exit codes of ``load``: 0 success, 2 unusable input or setting (one line on stderr
naming the file or setting and the reason), 1 any other failure.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from etl_assets.etl import secrets
from etl_assets.etl.config import ETLConfig, load_config, variable_name
from etl_assets.etl.errors import EtlError, InvalidExportError, InvalidSettingError

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose: bool) -> None:
    """Turn Skype export archives into a clean, searchable PostgreSQL archive."""
    from etl_assets.etl.private import private_directory, restrict_new_files

    restrict_new_files()
    try:
        private_directory(load_config().home_dir)
    except InvalidSettingError as e:
        _fail(e, EXIT_BAD_INPUT)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    secrets.scrub_logging()


def _fail(error: BaseException, code: int = EXIT_FAILURE) -> None:
    """Report ``error`` as one line on stderr, without any known secret, and exit with ``code``."""
    message = secrets.scrub(str(error).strip())
    if not isinstance(error, EtlError):
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"skype-etl: {one_line}", err=True)
    sys.exit(code)


def _one_line_errors(command: Callable) -> Callable:
    """The command boundary: any failure becomes one redacted line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (InvalidExportError, InvalidSettingError) as e:
            _fail(e, EXIT_BAD_INPUT)
        except Exception as e:  # noqa: BLE001 - a traceback could show a password
            _fail(e)

    return wrapper


OPTION_OF_SETTING = {"schema_name": "--schema", "database_url": "--database-url", "batch_size": "--batch-size",
                     "workers": "--workers", "memory_limit_mb": "--memory-limit-mb"}


def _config(**options: object) -> ETLConfig:
    """The configuration: the environment's, with the options given on the command line.

    A bad value fails with exit 2 in one line naming the option or the variable it came from;
    a database URL's secrets are known from here on, so every output scrubs them.
    """
    given = {name: value for name, value in options.items() if value is not None}
    try:
        config = load_config(**given)
    except InvalidSettingError as e:
        field = next((f for f in given if variable_name(f) == e.setting), None)
        _fail(InvalidSettingError(OPTION_OF_SETTING.get(field, e.setting), e.reason) if field else e, EXIT_BAD_INPUT)
        raise  # unreachable: _fail exits
    _checked_database_url(config.database_url)
    return config


def _checked_database_url(url: str | None) -> None:
    """Know the secrets of a given URL (every output scrubs them) and fail clearly if it is malformed."""
    if url:
        secrets.remember(url)
        secrets.parse(url)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--database-url", help="PostgreSQL URL (default: ETL_DATABASE_URL, else the embedded server).")
@click.option("--schema", help="Warehouse schema (default: ETL_SCHEMA, else skype).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--batch-size", type=int, default=None, help="Rows per Parquet row group.")
@click.option("--memory-limit-mb", type=int, default=None, help="Stop with an error past this memory use.")
@click.option("--workers", type=int, default=None, help="Processes that transform messages (default: cores, at most 4).")
@_one_line_errors
def load(
    paths: tuple[str, ...],
    database_url: str | None,
    schema: str | None,
    as_json: bool,
    batch_size: int | None,
    memory_limit_mb: int | None,
    workers: int | None,
) -> None:
    """Load one or more export files (.tar, .tar.gz, .zip or messages.json): paths, or URLs of objects (s3://...)."""
    from etl_assets.etl.pipeline import ETLPipeline

    config = _config(database_url=database_url, schema_name=schema, batch_size=batch_size,
                     memory_limit_mb=memory_limit_mb, workers=workers)
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    progress = _LoadProgress.for_terminal(as_json=as_json, verbose=verbose)
    try:
        pipeline = ETLPipeline(config, copy_raw=False, progress=progress)
        try:
            results = [pipeline.run(path) for path in paths]
        finally:
            if progress is not None:
                progress.close()
    except InvalidExportError as e:
        _fail(e, EXIT_BAD_INPUT)
    except Exception as e:  # noqa: BLE001 - the command reports every failure in one line
        _fail(e)

    report = {
        "exports": [r.summary() for r in results],
        "phases": _merged_phases(results),
        "database": secrets.redact(pipeline.loader.database_url),
        "schema": config.schema_name,
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    for export in report["exports"]:
        state = " (already loaded: nothing changed)" if export["already_loaded"] else ""
        click.echo(
            f"{export['path']}: {export['conversations']} conversations, {export['messages']} messages, "
            f"{export['rejected']} rejected{state}"
        )
    for name, phase in report["phases"].items():
        if name == "media":
            click.echo(
                f"  {name:<9} {phase['duration_seconds']:8.2f} s  {phase['messages']:>10} files copied, "
                f"{phase['rejected']} skipped or damaged"
            )
            continue
        click.echo(
            f"  {name:<9} {phase['duration_seconds']:8.2f} s  {phase['messages_per_second']:10.0f} msg/s  "
            f"peak {phase['peak_rss_mb']:.0f} MB  cpu {phase['cpu_seconds']:.1f} s"
        )


class _LoadProgress:
    """``load``'s progress: a tqdm bar per phase on a terminal, or log lines with ``-v``.

    Nothing at all with ``--json`` or when stderr is not a terminal (and not ``-v``), so
    scripts and pipes see only the report.
    """

    LABELS = {"extract": "read", "transform": "transformed", "media": "media copied", "load": "published"}
    LOG_EVERY = 2.0
    """Seconds between two log lines of a phase with ``-v``."""

    def __init__(self, bars: bool) -> None:
        import threading

        self.bars = bars
        self._open: dict[str, object] = {}
        self._logged: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_terminal(cls, *, as_json: bool, verbose: bool) -> _LoadProgress | None:
        if as_json:
            return None
        if verbose:
            return cls(bars=False)
        return cls(bars=True) if sys.stderr.isatty() else None

    def __call__(self, phase: str, done: int, total: int | None, unit: str) -> None:
        with self._lock:
            if self.bars:
                self._bar(phase, done, total, unit)
            else:
                self._log(phase, done, total, unit)

    def _bar(self, phase: str, done: int, total: int | None, unit: str) -> None:
        from tqdm import tqdm

        bar = self._open.get(phase)
        if bar is None:
            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except OSError:
                columns = 0
            bar = tqdm(
                total=total, desc=f"{phase:<9}", unit=unit, unit_scale=unit == "B",
                file=sys.stderr, ncols=columns or 80, leave=True, dynamic_ncols=False,
            )
            self._open[phase] = bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()
        if total is not None and done == total:  # the phase's last report
            bar.close()
            del self._open[phase]

    def _log(self, phase: str, done: int, total: int | None, unit: str) -> None:
        import time

        now = time.monotonic()
        last = self._logged.get(phase)
        finished = total is not None and done == total
        if last is not None and not finished and now - last < self.LOG_EVERY:
            return
        self._logged[phase] = now
        shown = f"{done}/{total}" if total is not None else f"{done}"
        logging.getLogger("etl_assets.cli").info("progress %s: %s %s %s", phase, shown, unit, self.LABELS.get(phase, ""))

    def close(self) -> None:
        with self._lock:
            for bar in self._open.values():
                bar.close()
            self._open.clear()


def _merged_phases(results) -> dict[str, dict]:
    """Per phase over all exports: total time, overall throughput, highest peak memory."""
    merged: dict[str, dict] = {}
    for result in results:
        for name, stats in result.phases.items():
            m = merged.setdefault(
                name, {"duration_seconds": 0.0, "messages": 0, "peak_rss_mb": 0.0, "cpu_seconds": 0.0, "rejected": 0}
            )
            m["rejected"] += stats.rejected or 0
            m["duration_seconds"] += stats.duration_seconds
            m["cpu_seconds"] = round(m["cpu_seconds"] + stats.cpu_seconds, 3)
            m["messages"] += stats.messages_processed
            m["peak_rss_mb"] = max(m["peak_rss_mb"], stats.peak_rss_mb)
    for m in merged.values():
        seconds = m["duration_seconds"]
        m["messages_per_second"] = round(m["messages"] / seconds, 1) if seconds else 0.0
        m["duration_seconds"] = round(seconds, 3)
    return merged


@main.command()
@click.option("--database-url", help="PostgreSQL URL (default: ETL_DATABASE_URL, else the embedded server).")
@click.option("--schema", help="Warehouse schema (default: ETL_SCHEMA, else skype).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--min-age", "min_age", type=click.FloatRange(min=0), default=None,
              help="Seconds a leftover must be untouched before it is removed (default 3600).")
@_one_line_errors
def gc(database_url: str | None, schema: str | None, dry_run: bool, as_json: bool, min_age: float | None) -> None:
    """Remove leftovers of interrupted runs and artifacts no published export needs.

    Never touches what a running load or transform uses (it takes the same locks).
    """
    from etl_assets.etl.gc import DEFAULT_MIN_AGE_SECONDS, collect_garbage
    from etl_assets.etl.load.database import resolve_database_url

    config = _config(database_url=database_url, schema_name=schema)
    url = resolve_database_url(config.database_url, home=config.home_dir)
    report = collect_garbage(
        config.artifacts_dir, url, config.schema_name, dry_run=dry_run,
        min_age_seconds=DEFAULT_MIN_AGE_SECONDS if min_age is None else min_age,
    )
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        click.echo(f"{verb} {item.kind} {item.target} ({item.bytes} bytes): {item.reason}")
    for item in report.kept:
        click.echo(f"kept {item.kind} {item.target}: {item.reason}")
    click.echo(f"{len(report.removed)} {verb}, {report.bytes_freed} bytes; {len(report.kept)} kept in use")


@main.command()
def settings() -> None:
    """Print every setting: its environment variable, default and meaning."""
    from etl_assets.etl.config import settings_table

    click.echo(settings_table(), nl=False)


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--messages", type=int, default=2000, show_default=True, help="Distinct messages.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--archive", type=click.Choice(["tar", "tar.gz", "zip", "json"]), default=None,
              help="Container; by default from the suffix of OUT.")
@click.option("--media/--no-media", default=True, show_default=True, help="A media/ folder in the archive.")
@click.option("--heavy-share", type=float, default=0.3, show_default=True,
              help="Share of the messages in one big group (0 for none).")
@click.option("--bad-records", type=int, default=0, show_default=True, help="Unusable records to add.")
@click.option("--owner", default=None, help="Export owner id, e.g. 8:live:.cid.0123abcd.")
@click.option("--digest", "digest_path", type=click.Path(path_type=Path), default=None,
              help="Also write the per-message digest (JSON lines) to this file.")
def sample(out: Path, messages: int, seed: int, archive: str | None, media: bool, heavy_share: float,
           bad_records: int, owner: str | None, digest_path: Path | None) -> None:
    """Write a generated sample export to OUT (.tar, .tar.gz, .zip or .json) and print its truth as JSON."""
    from .samples import generate_export

    truth = generate_export(out, messages=messages, seed=seed, archive=archive, media=media, heavy_share=heavy_share,
                            bad_records=bad_records, owner=owner, digest=digest_path)
    click.echo(json.dumps(truth.to_json(), default=str))


@main.command()
@click.option("--messages", type=int, default=3000, show_default=True, help="Messages in the sample export.")
@click.option("--seed", type=int, default=7, show_default=True)
@_one_line_errors
def demo(messages: int, seed: int) -> None:
    """Generate a sample export and materialize the whole asset graph for it through Dagster."""
    from etl_assets.demo import run_demo

    run_demo(_config(), messages=messages, seed=seed, echo=click.echo)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@_one_line_errors
def psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the warehouse (the bundled one for the embedded server).

    The password goes to psql in ``PGPASSWORD`` (readable only by this user), never on its
    command line, which every local user can read.
    """
    import shutil

    from etl_assets.etl.load.database import psql_executable, resolve_database_url

    config = _config()
    connection = secrets.psql_connection(resolve_database_url(config.database_url, home=config.home_dir))
    executable = psql_executable() if not config.database_url else shutil.which("psql") or psql_executable()
    env = {**os.environ, **connection.env, "PGOPTIONS": f"-csearch_path={config.schema_name},public"}
    os.execve(executable, [executable, *([connection.conninfo] if connection.conninfo else []), *psql_args], env)


@main.command()
def stop() -> None:
    """Stop the embedded PostgreSQL under ETL_HOME (it keeps running between commands)."""
    from etl_assets.etl.load.embedded import embedded_pgdata, stop_embedded

    home = _config().home_dir
    if not (embedded_pgdata(home) / "postmaster.pid").exists():
        click.echo(f"No embedded PostgreSQL is running under {home}.")
        return
    stop_embedded(home)
    click.echo(f"Stopped the embedded PostgreSQL under {home}.")


@main.command()
@click.option("--port", type=int, default=3000, show_default=True)
@_one_line_errors
def dev(port: int) -> None:
    """Start the Dagster webserver and daemon on 127.0.0.1 (embedded PostgreSQL by default)."""
    from etl_assets.defs.instance import apply_instance_env

    config = _config()
    apply_instance_env(config)
    click.echo(f"Inbox: {config.inbox_dir}  (drop Skype export files here)")
    click.echo(f"Dagster UI: http://127.0.0.1:{port}")
    argv = dev_command(port)
    os.execvp(argv[0], argv)


def dev_command(port: int) -> list[str]:
    """``dagster dev`` for this project, bound to 127.0.0.1 only."""
    return [sys.executable, "-m", "dagster", "dev", "-m", "etl_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]


def _read_input_errors(command: Callable) -> Callable:
    """Input a person must fix (unknown conversation, bad date, unusable folder, query syntax): exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .etl.read import ReadInputError

        try:
            return command(*args, **kwargs)
        except ReadInputError as e:
            _fail(EtlError(str(e)), EXIT_BAD_INPUT)

    return wrapper


@main.command("export")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "txt", "csv", "json"]), default="html", show_default=True)
@click.option("--conversation", "conversations", multiple=True, help="Conversation id or name (repeatable; default: all).")
@click.option("--since", help="First day (YYYY-MM-DD, in --tz) or moment (YYYY-MM-DDTHH:MM).")
@click.option("--until", help="Last day, included whole, or last moment.")
@click.option("--from", "senders", multiple=True, help="Only messages by this person (id or name; repeatable).")
@click.option("--tz", "zone", default=None, help="Time zone of times shown and dates given (default: local; UTC allowed).")
@click.option("--database-url", help="PostgreSQL URL (default: ETL_DATABASE_URL, else the embedded server).")
@click.option("--schema", help="Warehouse schema (default: ETL_SCHEMA, else skype).")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it holds an earlier export.")
@click.option("--bom", is_flag=True, help="CSV: start each file with a UTF-8 byte order mark (for spreadsheets).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@_one_line_errors
@_read_input_errors
def export_command(
    out_dir: Path, fmt: str, conversations: tuple[str, ...], since: str | None, until: str | None,
    senders: tuple[str, ...], zone: str | None, database_url: str | None, schema: str | None, force: bool, bom: bool,
    as_json: bool,
) -> None:
    """Write conversations to OUT_DIR as HTML pages, text, CSV or JSON files, with their media."""
    from .etl.load.database import resolve_database_url
    from .etl.read.export import ExportRequest, run_export

    config = _config(database_url=database_url, schema_name=schema)
    url = resolve_database_url(config.database_url, home=config.home_dir)
    summary = run_export(url, config.schema_name, ExportRequest(
        out_dir=out_dir, format=fmt, conversations=conversations, since=since, until=until, senders=senders,
        zone=zone, force=force, bom=bom, artifacts=config.artifacts_dir, progress=sys.stderr.isatty(),
    ))
    if as_json:
        click.echo(json.dumps(summary.to_json()))
        return
    click.echo(
        f"{summary.out_dir}: {summary.conversations} conversations, {summary.messages} messages, "
        f"{summary.media_files} media files ({summary.format}, times in {summary.time_zone})"
    )


@main.command()
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most hits shown.")
@click.option("--tz", "zone", default=None, help="Time zone of times shown and of date: terms (default: local).")
@click.option("--database-url", help="PostgreSQL URL (default: ETL_DATABASE_URL, else the embedded server).")
@click.option("--schema", help="Warehouse schema (default: ETL_SCHEMA, else skype).")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as one JSON list.")
@_one_line_errors
@_read_input_errors
def search(query: str, limit: int, zone: str | None, database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Search messages, newest first: words, "exact phrase", -word, from:, chat:, date:, type:.

    Examples: 'birthday party', '"see you" from:anna', 'chat:family date:2021-03..2021-06 -boring', 'type:call'.
    """
    from .etl.load.database import resolve_database_url
    from .etl.read.search import format_hit, search_messages

    config = _config(database_url=database_url, schema_name=schema)
    url = resolve_database_url(config.database_url, home=config.home_dir)
    hits = search_messages(url, config.schema_name, query, limit=limit, zone=zone)
    if as_json:
        click.echo(json.dumps([hit.to_json() for hit in hits], ensure_ascii=False))
        return
    color = sys.stdout.isatty()
    for hit in hits:
        click.echo(format_hit(hit, color=color), color=color)


if __name__ == "__main__":
    main()
