"""The cost of scale-out: one backfill of many exports through ``dagster dev`` at 1, 2 and 4 concurrent runs.

    python -m benchmarks.backfill [--exports 50] [--messages 20000] [--concurrency 1,2,4]
                                  [--stock-url URL] [--out docs/backfill.md]

The exports are one organisation's (``samples.organisation``: accounts exported twice, group
chats shared between accounts), with their media. Each level starts from an empty database on
the stock server and an empty ``ETL_HOME``, runs ``dagster dev`` with ``ETL_CONCURRENT_RUNS``
set to the level, adds the partitions and launches one backfill through GraphQL, as a user does
in the UI, and waits for it to finish. Wall time runs from the launch to the backfill's end;
memory is the RSS summed over ``dagster dev``'s whole process tree (webserver, daemon, code
server, run and step workers), sampled every 250 ms. The report and a plot go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from etl_assets.defs.exports.assets import raw_export, transformed_export
from etl_assets.defs.partitions import partition_key_for
from etl_assets.defs.warehouse.assets import skype_tables
from etl_assets.etl.config import load_config
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.samples.organisation import generate_organisation

from benchmarks.run import DATA, DEFAULT_STOCK_URL, RESULTS, _tree_rss_bytes
from etl_assets_tests.dagster_dev import add_partition, dagster_dev, dev_environment, graphql, repository_selector

SAMPLE_SECONDS = 0.25
_LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""
_RUNS = """query($statuses: [RunStatus!]) { runsOrError(filter: {statuses: $statuses}) { ... on Runs { count } } }"""


def organisation(exports: int, messages: int) -> list[Path]:
    """The generated exports, made once and kept under ``benchmarks/data``."""
    folder = DATA / f"organisation_{exports}x{messages}"
    done = folder / "exports.json"
    if done.exists():
        return [folder / name for name in json.loads(done.read_text())]
    shutil.rmtree(folder, ignore_errors=True)
    print(f"generating {exports} exports of {messages} messages ...", file=sys.stderr, flush=True)
    paths = generate_organisation(folder, exports=exports, messages=messages, seed=7)
    done.write_text(json.dumps([p.name for p in paths]))
    return paths


def _database(admin_url: str, name: str, *, drop: bool = False) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if drop:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def run_level(paths: list[Path], concurrency: int, admin_url: str, scratch: Path) -> dict:
    """One backfill of ``paths`` with ``concurrency`` runs at a time; its figures."""
    name = f"skype_etl_backfill_{uuid.uuid4().hex[:8]}"
    url = _database(admin_url, name)
    home = scratch / f"home_{concurrency}"
    inbox = paths[0].parent
    try:
        config = load_config(home=str(home), database_url=url, inbox=str(inbox), concurrent_runs=concurrency)
        with dagster_dev(dev_environment(config), scratch / f"dagster_dev_{concurrency}.log", timeout=300) as (base, _, pid):
            selector = repository_selector(base)
            keys = [partition_key_for(p.name, content_fingerprint(p).digest) for p in paths]
            for key in keys:
                add_partition(base, selector, key)
            dev = psutil.Process(pid)
            peaks: dict[int, int] = {}
            peak = [0, 0]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(SAMPLE_SECONDS):
                    peak[0] = max(peak[0], _tree_rss_bytes(dev, peaks))
                    try:
                        peak[1] = max(peak[1], graphql(base, _RUNS, {"statuses": ["STARTING", "STARTED"]})["runsOrError"]["count"])
                    except OSError:
                        pass

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            selection = [{"path": k.path} for k in (raw_export.key, transformed_export.key, *skype_tables.keys)]
            started = time.perf_counter()
            launched = graphql(base, _LAUNCH, {"params": {"assetSelection": selection, "partitionNames": keys}})
            backfill = launched["launchPartitionBackfill"]["backfillId"]
            while (status := graphql(base, _STATUS, {"id": backfill})["partitionBackfillOrError"]["status"]) == "REQUESTED":
                time.sleep(1)
            wall = time.perf_counter() - started
            done.set()
            sampler.join()
        with psycopg.connect(url) as conn:
            exports, messages = conn.execute("SELECT count(*), coalesce(sum(messages), 0)::bigint FROM skype.exports").fetchone()
        return {
            "concurrency": concurrency, "status": status, "exports": exports, "messages": messages,
            "wall_seconds": round(wall, 1), "messages_per_second": round(messages / wall, 1),
            "peak_tree_mb": round(peak[0] / 2**20, 1), "peak_runs": peak[1],
        }
    finally:
        _database(admin_url, name, drop=True)
        shutil.rmtree(home, ignore_errors=True)


def render(results: dict, plot_name: str) -> str:
    lines = [
        "# Backfill benchmark: many exports through Dagster at 1, 2 and 4 concurrent runs",
        "",
        f"Written by `python -m benchmarks.backfill` on {results['when']} ({results['cores']} cores): "
        f"{results['exports']} generated exports of {results['messages']:,} messages each (with media; "
        "accounts exported twice, group chats shared), one backfill through `dagster dev` per level, "
        "a stock PostgreSQL server, an empty database and `ETL_HOME` per level.",
        "",
        "| concurrent runs | status | exports | messages | wall s | messages/s | peak runs seen | peak RSS of the tree MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["levels"]:
        lines.append(f"| {r['concurrency']} | {r['status']} | {r['exports']} | {r['messages']:,} | {r['wall_seconds']:,} | "
                     f"{r['messages_per_second']:,} | {r['peak_runs']} | {r['peak_tree_mb']:,} |")
    lines += ["", f"![messages per second and peak memory vs concurrent runs]({plot_name})", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = results["levels"]
    x = [r["concurrency"] for r in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.plot(x, [r["messages_per_second"] for r in levels], marker="o")
    left.set(xlabel="concurrent runs", ylabel="messages per second (whole backfill)", xticks=x)
    right.plot(x, [r["peak_tree_mb"] for r in levels], marker="o", color="tab:red")
    right.set(xlabel="concurrent runs", ylabel="peak RSS of the process tree (MB)", xticks=x)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.backfill", description=__doc__.splitlines()[0])
    p.add_argument("--exports", type=int, default=50)
    p.add_argument("--messages", type=int, default=20_000, help="messages per export (default 20000)")
    p.add_argument("--concurrency", default="1,2,4", help="concurrent runs per level (default 1,2,4)")
    p.add_argument("--stock-url", default=DEFAULT_STOCK_URL, help=f"admin URL of a stock server (default {DEFAULT_STOCK_URL})")
    p.add_argument("--out", type=Path, default=Path("docs/backfill.md"))
    args = p.parse_args(argv)
    paths = organisation(args.exports, args.messages)
    results = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": psutil.cpu_count(),
               "exports": args.exports, "messages": args.messages, "levels": []}
    with tempfile.TemporaryDirectory(prefix="skype-etl-backfill-") as scratch:
        for level in (int(c) for c in args.concurrency.split(",")):
            print(f"backfill with {level} concurrent run(s) ...", file=sys.stderr, flush=True)
            results["levels"].append(run_level(paths, level, args.stock_url, Path(scratch)))
            print(json.dumps(results["levels"][-1]), file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backfill_{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json").write_text(json.dumps(results, indent=1))
    picture = args.out.with_suffix(".png")
    plot(results, picture)
    args.out.write_text(render(results, picture.name))
    print(f"wrote {args.out} and {picture}", file=sys.stderr)
    return 0 if all(r["status"] == "COMPLETED_SUCCESS" for r in results["levels"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
