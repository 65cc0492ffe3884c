"""Statistics as pictures: messages per month, per hour of day (UTC) and per person (top 20).

The numbers come from one SQL query each over ``messages``; the pictures are PNG files
drawn by matplotlib with its Agg backend (no display needed). matplotlib is imported
only when a picture is drawn: it takes about 0.7 s and 60 MB, paid by the analytics and
archive steps alone, not by every process that loads the definitions.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

import psycopg
from psycopg import sql

TOP_PEOPLE = 20


@dataclass(frozen=True)
class Statistic:
    name: str
    """File name of its picture (``messages_per_month.png``)."""
    title: str
    labels: list[str]
    values: list[int]
    horizontal: bool = False


def statistics(url: str, schema: str) -> list[Statistic]:
    """The three statistics, read in one snapshot, times in UTC."""
    messages = sql.Identifier(schema, "messages")
    people = sql.Identifier(schema, "people")
    with psycopg.connect(url, application_name="skype-etl statistics") as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        months = conn.execute(sql.SQL(
            "SELECT to_char(date_trunc('month', sent_at), 'YYYY-MM'), count(*) FROM {} GROUP BY 1 ORDER BY 1"
        ).format(messages)).fetchall()
        hours = dict(conn.execute(sql.SQL(
            "SELECT extract(hour FROM sent_at)::int, count(*) FROM {} GROUP BY 1"
        ).format(messages)).fetchall())
        top = conn.execute(sql.SQL(
            "SELECT coalesce(nullif(p.display_name, ''), nullif(m.sender_name, ''), m.sender_id, '(unknown)'), m.n "
            "FROM (SELECT sender_id, max(sender_name) AS sender_name, count(*) AS n FROM {messages} GROUP BY sender_id) m "
            "LEFT JOIN {people} p ON p.person_id = m.sender_id ORDER BY m.n DESC, 1 LIMIT %s"
        ).format(messages=messages, people=people), (TOP_PEOPLE,)).fetchall()
    return [
        Statistic("messages_per_month.png", "Messages per month", [m for m, _ in months], [n for _, n in months]),
        Statistic("messages_per_hour.png", "Messages per hour of day (UTC)", [f"{h:02d}" for h in range(24)],
                  [hours.get(h, 0) for h in range(24)]),
        Statistic("messages_per_person.png", f"Messages per person (top {TOP_PEOPLE})", [p for p, _ in top],
                  [n for _, n in top], horizontal=True),
    ]


def png(stat: Statistic) -> bytes:
    """The statistic as a bar chart in PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    height = max(3.0, 0.28 * len(stat.labels) + 1.0) if stat.horizontal else 3.2
    figure = Figure(figsize=(9, height), dpi=100, layout="constrained")
    axes = figure.subplots()
    positions = list(range(len(stat.labels)))
    if stat.horizontal:
        axes.barh(positions, stat.values, color="#0a5bd8")
        axes.set_yticks(positions, stat.labels, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("messages")
    else:
        axes.bar(positions, stat.values, color="#0a5bd8")
        step = max(1, len(positions) // 24)
        axes.set_xticks(positions[::step], stat.labels[::step], rotation=90 if len(positions) > 24 else 0, fontsize=8)
        axes.set_ylabel("messages")
    axes.set_title(stat.title)
    out = io.BytesIO()
    with warnings.catch_warnings():
        # names in scripts the bundled font lacks are drawn as boxes; that is no reason to warn
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font", category=UserWarning)
        figure.savefig(out, format="png")
    return out.getvalue()


def statistics_pictures(url: str, schema: str) -> list[tuple[Statistic, bytes]]:
    """The statistics and their PNG pictures, for the archive's index and the analytics metadata."""
    return [(stat, png(stat)) for stat in statistics(url, schema)]


def markdown(pictures: list[tuple[Statistic, bytes]]) -> str:
    """The pictures embedded in Markdown as data URIs (Dagster shows them in the asset's metadata)."""
    return "\n\n".join(
        f"**{stat.title}**\n\n![{stat.title}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"
        for stat, data in pictures
    )
