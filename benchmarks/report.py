"""The benchmark report: markdown tables, computed targets and a PNG plot from a results dict.

Re-render from saved results: ``python -m benchmarks.report benchmarks/results/results-....json [--out docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_SIZE = 475_000
OURS = "ours_cli"
TARGETS = {"share_of_floor": 0.50, "vs_dlt": 5.0, "peak_rss_mb": 250.0, "rss_spread_pct": 10.0,
           "dagster_vs_cli": 1.3, "second_vs_first": 2.0}
MAIN_CASE = ("stock", True)
PHASES = ("extract", "transform", "load")


@dataclass
class Summary:
    """Median, min and max of one contender's successful runs at one size."""

    contender: str
    size: int
    runs: int
    failed: int
    rows: list[int]
    wall: tuple[float, float, float]
    rate: tuple[float, float, float]
    rss: tuple[float, float, float]
    error: str
    process: tuple[float, float, float] = (math.nan,) * 3


def error_line(stderr: str) -> str:
    """The line of ``stderr`` that most likely names the failure."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    named = [ln for ln in lines if "Error" in ln or "Exception" in ln or "failed" in ln or "killed" in ln]
    return (named or lines or [""])[-1]


def _mmm(values: list[float]) -> tuple[float, float, float]:
    return (statistics.median(values), min(values), max(values)) if values else (math.nan,) * 3  # type: ignore[return-value]


Case = tuple[str, bool, int]
"""(server, with media, size): one table of the report."""


def case_of(run: dict[str, Any]) -> Case:
    return run.get("server", "stock"), run.get("media", False), run["size"]


def case_title(case: Case) -> str:
    server, media, size = case
    return f"{size:,} messages, {'with' if media else 'without'} media, {server} server"


def summarize(results: dict[str, Any]) -> dict[Case, dict[str, Summary]]:
    """``{case: {contender: Summary}}``, main case first, contenders in the order given."""
    table: dict[Case, dict[str, Summary]] = {}
    main = tuple(results.get("main_case", MAIN_CASE))
    for case in sorted({case_of(r) for r in results["runs"]}, key=lambda c: (c[:2] != main, c)):
        table[case] = {}
        size = case[2]
        for name in results["contenders"]:
            runs = [r for r in results["runs"] if case_of(r) == case and r["contender"] == name]
            if not runs:
                continue
            ok = [r for r in runs if r["ok"]]
            failed = [r for r in runs if not r["ok"]]
            table[case][name] = Summary(
                contender=name,
                size=size,
                runs=len(ok),
                failed=len(failed),
                rows=sorted({r["rows_loaded"] for r in ok if r["rows_loaded"] is not None}),
                wall=_mmm([r["wall_seconds"] for r in ok]),
                rate=_mmm([r["messages_per_second"] for r in ok]),
                rss=_mmm([r["peak_rss_mb"] for r in ok]),
                error=error_line(failed[-1]["error"]) if failed else "",
                process=_mmm([r["peak_process_mb"] for r in ok if "peak_process_mb" in r]),
            )
    return table


# -- formatting ---------------------------------------------------------------------------


def _num(x: float, digits: int = 0) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:,.{digits}f}"


def _unit(x: float, digits: int, unit: str) -> str:
    return "–" if math.isnan(x) else f"{_num(x, digits)}{unit}"


def _range(t: tuple[float, float, float], digits: int = 0) -> str:
    med, lo, hi = t
    if math.isnan(med):
        return "–"
    if _num(lo, digits) == _num(hi, digits):
        return f"**{_num(med, digits)}**"
    return f"**{_num(med, digits)}** ({_num(lo, digits)}–{_num(hi, digits)})"


def _case_table(case: Case, export: dict[str, Any], row: dict[str, Summary]) -> list[str]:
    floor = row.get("floor")
    lines = [
        f"### {case_title(case)}",
        "",
        f"`{Path(export['path']).name}`: {export['messages']:,} distinct messages in {export['message_records']:,} "
        f"records (edits and server copies on top), {export['conversations']:,} conversations, the largest holding "
        f"{export['heavy_messages']:,} ({export['heavy_share']:.0%}); messages.json {export['json_bytes'] / 1e6:,.0f} MB, "
        f"{export.get('media_files', 0):,} media files, tar {export['tar_bytes'] / 1e6:,.0f} MB.",
        "",
        "| contender | rows loaded | wall s | messages/s | peak MB, whole tree | largest process MB | vs floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in row.items():
        if not s.runs:
            lines.append(f"| {name} | failed ({s.failed}×): {s.error[:120]} | | | | | |")
            continue
        rows = " / ".join(f"{r:,}" for r in s.rows) or "?"
        ratio = s.rate[0] / floor.rate[0] if floor and floor.runs and floor.rate[0] else math.nan
        failed = f" ({s.failed} failed)" if s.failed else ""
        lines.append(
            f"| {name}{failed} | {rows} | {_range(s.wall, 2)} | {_range(s.rate)} | {_range(s.rss)} | {_range(s.process)} | "
            f"{'–' if math.isnan(ratio) else f'{ratio:.2f}×'} |"
        )
    return lines + [""]


def _phase_table(results: dict[str, Any]) -> list[str]:
    """Median per phase of ours_cli, from the command's own ``--json`` statistics."""
    runs = [r for r in results["runs"] if r["contender"] == OURS and r["ok"] and r["output"].get("phases")]
    if not runs:
        return []
    lines = [
        "### Phases of ours_cli (from `skype-etl load --json`, medians)",
        "",
        "Wall seconds, CPU seconds of the command and its worker processes (the database server's",
        "work is not in them: a load with little CPU here is waiting for PostgreSQL), and peak RSS.",
        "",
        "| case | "
        + " | ".join(f"{p} s" for p in PHASES) + " | "
        + " | ".join(f"{p} cpu s" for p in PHASES) + " | "
        + " | ".join(f"{p} peak MB" for p in PHASES) + " |",
        "|---|" + "---:|" * (3 * len(PHASES)),
    ]
    for case in sorted({case_of(r) for r in runs}):
        mine = [r["output"]["phases"] for r in runs if case_of(r) == case]

        def median(key: str, digits: int) -> list[str]:
            values = [[p[ph][key] for p in mine if key in p.get(ph, {})] for ph in PHASES]
            return [_num(statistics.median(v), digits) if v else "–" for v in values]

        cells = median("duration_seconds", 2) + median("cpu_seconds", 1) + median("peak_rss_mb", 0)
        lines.append(f"| {case_title(case)} | " + " | ".join(cells) + " |")
    return lines + [""]


def targets(table: dict[Case, dict[str, Summary]]) -> tuple[Case | None, list[tuple[str, str, str, str]]]:
    """(case used, [(target, wanted, measured, met / not met / n/a)]), from the main case's medians."""
    main = [c for c in table if c[:2] == MAIN_CASE]
    if not main:
        return None, []
    case = min(main, key=lambda c: abs(math.log(c[2] / TARGET_SIZE)))
    row = table[case]

    def median(name: str, attr: str) -> float:
        s = row.get(name)
        return getattr(s, attr)[0] if s and s.runs else math.nan

    def check(value: float, ok: bool) -> str:
        return "n/a" if math.isnan(value) else ("met" if ok else "not met")

    ours, floor, dlt = median(OURS, "rate"), median("floor", "rate"), median("dlt", "rate")
    share = ours / floor if floor else math.nan
    vs_dlt = ours / dlt if dlt else math.nan
    rss = median(OURS, "rss")
    peaks = [table[c][OURS].rss[0] for c in main if OURS in table[c] and table[c][OURS].runs]
    spread = 100 * (max(peaks) - min(peaks)) / min(peaks) if len(peaks) > 1 else math.nan
    dagster = median("ours_dagster", "wall") / median(OURS, "wall")
    # per message of its file: the second export's wall time over the first load's, both for the same file size
    second = (median("ours_second", "wall") / median(OURS, "wall"))
    out = [
        ("ours_cli messages/s as a share of floor's", f">= {TARGETS['share_of_floor']:.2f}", _unit(share, 3, ""),
         check(share, share >= TARGETS["share_of_floor"])),
        ("ours_cli messages/s vs dlt", f">= {TARGETS['vs_dlt']:g}×", _unit(vs_dlt, 2, "×"), check(vs_dlt, vs_dlt >= TARGETS["vs_dlt"])),
        ("ours_cli peak memory, whole process tree", f"<= {TARGETS['peak_rss_mb']:g} MB", _unit(rss, 0, " MB"),
         check(rss, rss <= TARGETS["peak_rss_mb"])),
        (f"spread of that peak over {len(peaks)} size{'s' if len(peaks) != 1 else ''} ((max-min)/min)",
         f"<= {TARGETS['rss_spread_pct']:g}%", _unit(spread, 1, "%") if len(peaks) > 1 else "needs 2+ sizes",
         check(spread, spread <= TARGETS["rss_spread_pct"])),
        ("ours_dagster wall time vs ours_cli", f"<= {TARGETS['dagster_vs_cli']:g}×", _unit(dagster, 2, "×"),
         check(dagster, dagster <= TARGETS["dagster_vs_cli"])),
        ("second export (ours_second) time per message of its file vs the first load's", f"<= {TARGETS['second_vs_first']:g}×",
         _unit(second, 2, "×"), check(second, second <= TARGETS["second_vs_first"])),
    ]
    return case, out


# -- plot -----------------------------------------------------------------------------------


def plot(cases: dict[Case, dict[str, Summary]], path: Path) -> None:
    """Two panels over input size (log x) for the main case: messages/s and peak memory, a line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    table = {c[2]: row for c, row in cases.items() if c[:2] == MAIN_CASE}
    sizes = sorted(table)
    names = list(dict.fromkeys(n for row in table.values() for n in row))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for name in names:
        points = [(s, table[s][name]) for s in sizes if name in table[s] and table[s][name].runs]
        if not points:
            continue
        xs = [s for s, _ in points]
        for ax, attr in ((left, "rate"), (right, "rss")):
            med = [getattr(m, attr)[0] for _, m in points]
            err = [[v - getattr(m, attr)[1] for v, (_, m) in zip(med, points)],
                   [getattr(m, attr)[2] - v for v, (_, m) in zip(med, points)]]
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=name)
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}")
    # minor ticks: label only 2 and 5 times a power of ten, in plain digits
    minor = FuncFormatter(lambda v, _: f"{v:,.0f}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else "")
    for ax, title, ylabel in ((left, "Throughput", "distinct messages / wall second"),
                              (right, "Peak memory", "peak RSS of the run's process tree (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input size (distinct messages)")
        ax.set_ylabel(ylabel)
        ax.set_title(title + " (median, bars: min–max)")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(minor)
        ax.grid(True, which="both", alpha=0.3)
        if len(sizes) == 1:
            ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
        else:
            ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 1.5)
    right.axhline(TARGETS["peak_rss_mb"], color="grey", linestyle="--", linewidth=1, label=f"{TARGETS['peak_rss_mb']:g} MB target")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- markdown ---------------------------------------------------------------------------------


def render(results: dict[str, Any], plot_name: str) -> str:
    """The whole markdown report."""
    m = results["machine"]
    table = summarize(results)
    exports = {(e["messages"], e.get("media_files", 0) > 0): e for e in results["exports"]}
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    lines = [
        "# Benchmarks",
        "",
        "How fast and how lean `skype-etl` loads Skype exports into PostgreSQL, side by side with a",
        "hand-written lower bound (*floor*), the original project's approach and dlt, in the same run",
        "on the same server. Generated by `benchmarks/run.py`; do not edit by hand.",
        "",
        "```",
        results["command"],
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        *[f"| PostgreSQL ({name}) | {d['settings'].get('server_version')}, {d['kind']}, `{d['url']}`; "
          + ", ".join(f"{k}={v}" for k, v in sorted(d['settings'].items()) if k != 'server_version') + " |"
          for name, d in m["servers"].items()],
        f"| libraries | {libs}; ijson backend {m['ijson_backend']} |",
        f"| date | {m['date']} |",
        f"| repeats | {results['repeat']} per contender and case |",
        "",
        "## Contenders",
        "",
        *[f"- **{name}**: {text}" for name, text in results["contenders"].items()],
        "",
        "## Results",
        "",
        "Medians over the repeats, (min–max) where they differ. *messages/s* is distinct messages",
        "divided by the run's wall time; *vs floor* is that rate over floor's. *rows loaded* is",
        "`count(*)` of the contender's message table after the run: ours deduplicates edits and",
        "server copies to the distinct messages, the raw contenders load every record.",
        "",
        f"![throughput and peak RSS vs input size]({plot_name})",
        "",
    ]
    for case, row in table.items():
        lines += _case_table(case, exports[(case[2], case[1])], row)
    lines += _phase_table(results)
    case, rows = targets(table)
    size = case[2] if case else TARGET_SIZE
    note = "" if size == TARGET_SIZE else f" (no {TARGET_SIZE:,} run here, so the nearest size instead)"
    lines += [
        "## Targets",
        "",
        f"Computed from the medians of the main case (with media, stock server) at {size:,} messages{note};",
        "the spread uses every size of the main case.",
        "",
        "| target | wanted | measured | |",
        "|---|---|---:|---|",
        *[f"| {t} | {w} | {v} | **{ok}** |" for t, w, v, ok in rows],
        "",
        "Where the time goes, what changed to get here and what stands between these numbers and the",
        "targets: [performance.md](performance.md).",
        "",
    ]
    if case and "ours_dagster" in table[case] and table[case]["ours_dagster"].runs:
        lines += [f"For comparison, ours_dagster's median peak memory at {size:,} messages is "
                  f"{_num(table[case]['ours_dagster'].rss[0])} MB (Dagster itself included).", ""]
    lines += [
        "## Method",
        "",
        f"- Exports come from `etl_assets.samples.generate_export(path, messages=N, seed={results['exports'][0]['seed']},",
        f"  heavy_share={results['exports'][0]['heavy_share']:g})` as `.tar`, with their media files (as real exports",
        "  have them) and, for the variants, without: one group conversation holds",
        f"  {results['exports'][0]['heavy_share']:.0%} of the messages. They are kept in `benchmarks/data/` and reused.",
        "- The main case, every size and every contender, is an export with media into a stock PostgreSQL",
        "  server with its default settings; the other server and media variants run at one size.",
        "- Every run is its own subprocess (the parent only measures), loads into a database created for",
        "  it and dropped afterwards, and gets a fresh temporary `ETL_HOME`, so ours never reuses Parquet",
        "  or media from an earlier run. Contenders run interleaved, in an order rotated per repeat.",
        "- ours_second: the earlier export of the same account (the newest 10% of every conversation left",
        "  out, 2% of the rest in an older version) is loaded first into the same database and `ETL_HOME`",
        "  (not measured); then loading the full export is measured.",
        "- Wall time is measured by the parent from start to exit, so it includes interpreter start",
        "  and imports (Dagster's are several seconds). The input file is in the page cache after the first run.",
        "- Memory: the parent samples the RSS of the run's whole process tree every 50 ms with psutil and",
        "  sums it (pages that worker processes share count more than once), taking the larger of that and",
        "  the main process's own `VmHWM`; *largest process* is the highest `VmHWM` of any process in the tree.",
        "  `ru_maxrss` is not used: on Linux a child inherits its parent's peak across fork+exec.",
        "- The PostgreSQL server's memory is not counted for anyone. ours_cli and ours_dagster run with",
        "  the project's default settings (`ETL_WORKERS`, `ETL_BATCH_SIZE`).",
        "- dlt runs with its defaults; the columns are hinted as `text` so it stores the same raw fields as floor.",
        "",
    ]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> Path:
    """Write the markdown to ``out`` and the plot beside it (same name, ``.png``); return the plot path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(summarize(results), png)
    out.write_text(render(results, png.name))
    return png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description="Re-render the report from saved results.")
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    a = p.parse_args(argv)
    print(write_report(json.loads(a.results.read_text()), a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
