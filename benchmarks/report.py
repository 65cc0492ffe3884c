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
TARGETS = {"pct_of_floor": 40.0, "vs_dlt": 5.0, "peak_rss_mb": 250.0, "rss_spread_pct": 10.0}
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


def error_line(stderr: str) -> str:
    """The line of ``stderr`` that most likely names the failure."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    named = [ln for ln in lines if "Error" in ln or "Exception" in ln or "failed" in ln or "killed" in ln]
    return (named or lines or [""])[-1]


def _mmm(values: list[float]) -> tuple[float, float, float]:
    return (statistics.median(values), min(values), max(values)) if values else (math.nan,) * 3  # type: ignore[return-value]


def summarize(results: dict[str, Any]) -> dict[int, dict[str, Summary]]:
    """``{size: {contender: Summary}}`` in the order the contenders were given."""
    table: dict[int, dict[str, Summary]] = {}
    for export in results["exports"]:
        size = export["messages"]
        table[size] = {}
        for name in results["contenders"]:
            runs = [r for r in results["runs"] if r["size"] == size and r["contender"] == name]
            ok = [r for r in runs if r["ok"]]
            failed = [r for r in runs if not r["ok"]]
            table[size][name] = Summary(
                contender=name,
                size=size,
                runs=len(ok),
                failed=len(failed),
                rows=sorted({r["rows_loaded"] for r in ok if r["rows_loaded"] is not None}),
                wall=_mmm([r["wall_seconds"] for r in ok]),
                rate=_mmm([r["messages_per_second"] for r in ok]),
                rss=_mmm([r["peak_rss_mb"] for r in ok]),
                error=error_line(failed[-1]["error"]) if failed else "",
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


def _size_table(size: int, export: dict[str, Any], row: dict[str, Summary], descriptions: dict[str, str]) -> list[str]:
    floor = row.get("floor")
    lines = [
        f"### {size:,} messages",
        "",
        f"`{Path(export['path']).name}`: {export['messages']:,} distinct messages in {export['message_records']:,} "
        f"records (edits and server copies on top), {export['conversations']:,} conversations, the largest holding "
        f"{export['heavy_messages']:,} ({export['heavy_share']:.0%}); messages.json {export['json_bytes'] / 1e6:,.0f} MB, "
        f"tar {export['tar_bytes'] / 1e6:,.0f} MB.",
        "",
        "| contender | rows loaded | wall s | messages/s | peak RSS MB | vs floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in row.items():
        if not s.runs:
            lines.append(f"| {name} | failed ({s.failed}×): {s.error[:120]} | | | | |")
            continue
        rows = " / ".join(f"{r:,}" for r in s.rows) or "?"
        ratio = s.rate[0] / floor.rate[0] if floor and floor.runs and floor.rate[0] else math.nan
        failed = f" ({s.failed} failed)" if s.failed else ""
        lines.append(
            f"| {name}{failed} | {rows} | {_range(s.wall, 2)} | {_range(s.rate)} | {_range(s.rss)} | "
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
        "| messages | "
        + " | ".join(f"{p} s" for p in PHASES) + " | "
        + " | ".join(f"{p} cpu s" for p in PHASES) + " | "
        + " | ".join(f"{p} peak MB" for p in PHASES) + " |",
        "|---:|" + "---:|" * (3 * len(PHASES)),
    ]
    for size in sorted({r["size"] for r in runs}):
        mine = [r["output"]["phases"] for r in runs if r["size"] == size]

        def median(key: str, digits: int) -> list[str]:
            values = [[p[ph][key] for p in mine if key in p.get(ph, {})] for ph in PHASES]
            return [_num(statistics.median(v), digits) if v else "–" for v in values]

        cells = median("duration_seconds", 2) + median("cpu_seconds", 1) + median("peak_rss_mb", 0)
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return lines + [""]


def targets(table: dict[int, dict[str, Summary]]) -> tuple[int, list[tuple[str, str, str, str]]]:
    """(size used, [(target, wanted, measured, met / not met / n/a)]), computed from the medians."""
    size = min(table, key=lambda s: abs(math.log(s / TARGET_SIZE)))
    row = table[size]

    def rate(name: str) -> float:
        s = row.get(name)
        return s.rate[0] if s and s.runs else math.nan

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "not met")

    ours, floor, dlt = rate(OURS), rate("floor"), rate("dlt")
    pct = 100 * ours / floor if floor else math.nan
    vs_dlt = ours / dlt if dlt else math.nan
    ours_row = row.get(OURS)
    rss = ours_row.rss[0] if ours_row and ours_row.runs else math.nan
    peaks = [r[OURS].rss[0] for r in table.values() if OURS in r and r[OURS].runs]
    spread = 100 * (max(peaks) - min(peaks)) / min(peaks) if len(peaks) > 1 else math.nan

    def check(value: float, ok: bool) -> str:
        return verdict(None if math.isnan(value) else ok)

    out = [
        ("ours_cli messages/s as % of floor", f">= {TARGETS['pct_of_floor']:g}%", _unit(pct, 1, "%"),
         check(pct, pct >= TARGETS["pct_of_floor"])),
        ("ours_cli messages/s vs dlt", f">= {TARGETS['vs_dlt']:g}×", _unit(vs_dlt, 2, "×"), check(vs_dlt, vs_dlt >= TARGETS["vs_dlt"])),
        ("ours_cli peak RSS", f"<= {TARGETS['peak_rss_mb']:g} MB", _unit(rss, 0, " MB"), check(rss, rss <= TARGETS["peak_rss_mb"])),
        (f"spread of ours_cli peak RSS over {len(peaks)} size{'s' if len(peaks) != 1 else ''} ((max-min)/min)", f"<= {TARGETS['rss_spread_pct']:g}%",
         _unit(spread, 1, "%") if len(peaks) > 1 else "needs 2+ sizes",
         check(spread, spread <= TARGETS["rss_spread_pct"])),
    ]
    return size, out


# -- plot -----------------------------------------------------------------------------------


def plot(table: dict[int, dict[str, Summary]], path: Path) -> None:
    """Two panels over input size (log x): messages/s and peak RSS, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    sizes = sorted(table)
    names = list(next(iter(table.values())).keys()) if table else []
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for name in names:
        points = [(s, table[s][name]) for s in sizes if table[s][name].runs]
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
    exports = {e["messages"]: e for e in results["exports"]}
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
        f"| PostgreSQL | {m['postgresql']}, {m['server']}, `{m['database_url']}` |",
        f"| libraries | {libs}; ijson backend {m['ijson_backend']} |",
        f"| date | {m['date']} |",
        f"| repeats | {results['repeat']} per contender and size |",
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
    for size, row in table.items():
        lines += _size_table(size, exports[size], row, results["contenders"])
    lines += _phase_table(results)
    size, rows = targets(table)
    note = "" if size == TARGET_SIZE else f" (no {TARGET_SIZE:,} run here, so the nearest size instead)"
    lines += [
        "## Targets",
        "",
        f"Computed from the medians at {size:,} messages{note}; the spread uses every size.",
        "",
        "| target | wanted | measured | |",
        "|---|---|---:|---|",
        *[f"| {t} | {w} | {v} | **{ok}** |" for t, w, v, ok in rows],
        "",
        "Where the time goes, what changed to get here and what stands between these numbers and the",
        "targets: [performance.md](performance.md).",
        "",
    ]
    if "ours_dagster" in table[size] and table[size]["ours_dagster"].runs:
        lines += [f"For comparison, ours_dagster's median peak RSS at {size:,} messages is "
                  f"{_num(table[size]['ours_dagster'].rss[0])} MB (Dagster itself included).", ""]
    lines += [
        "## Method",
        "",
        f"- Exports come from `etl_assets.etl.samples.generate_export(path, messages=N, seed={results['exports'][0]['seed']},",
        f"  heavy_share={results['exports'][0]['heavy_share']:g}, media=False)` as `.tar` without media files (no other",
        "  contender copies media; ours copies them in a separate `media` phase): one group conversation",
        f"  holds {results['exports'][0]['heavy_share']:.0%} of the messages. They are kept in `benchmarks/data/` and reused.",
        "- Every run is its own subprocess (the parent only measures), loads into a fresh schema that",
        "  is dropped afterwards, and gets a fresh temporary `ETL_HOME`, so ours never reuses Parquet",
        "  from an earlier run. Contenders run interleaved, in an order rotated per repeat.",
        "- Wall time is measured by the parent from start to exit, so it includes interpreter start",
        "  and imports (Dagster's are several seconds). The input file is in the page cache after the first run.",
        "- Peak RSS: the parent samples the RSS of the run's whole process tree every 50 ms with psutil,",
        "  and takes the larger of that and the main process's own `VmHWM` (catches short spikes).",
        "  `ru_maxrss` is not used: on Linux a child inherits its parent's peak across fork+exec.",
        "- The PostgreSQL server's memory is not counted for anyone. ours_cli and ours_dagster run with",
        "  the project's default settings (`ETL_WORKERS`, `ETL_BATCH_SIZE`), so their tree may hold",
        "  several worker processes; summed RSS counts pages they share more than once.",
        "- dlt runs with its defaults (insert-values loader file format); the columns are hinted as",
        "  `text` so it stores the same raw fields as floor.",
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
