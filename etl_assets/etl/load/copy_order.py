"""Which copy of a row wins when an export (or several) holds it more than once.

One total order per kind of row, shared by the merges and the first load, so that the
winner never depends on the order in which parts were copied or exports were loaded.
"""

from __future__ import annotations

from psycopg import sql

from .. import schema as s

COPY_ORDER: tuple[tuple[str, str], ...] = (
    ("{}version", "DESC"),
    ("{}server_generated", "ASC"),
    ("length({}content_raw)", "DESC"),
    ("{}content_raw", "ASC"),
    ("{}properties", "ASC"),
    ("{}sender_name", "ASC"),
    ("{}edited_at", "ASC"),
    ("{}deleted_at", "ASC"),
    ("{}sent_at", "ASC"),
    ("{}sender_id", "ASC"),
    ("{}message_type", "ASC"),
    ("{}content_text", "ASC"),
    ("{}ams_references", "ASC"),
)
"""Which copy of a message wins, inside one export and across exports: highest version, then a
real copy over a server-generated one, then the longer content, then the first by every other
column (NULLs last). A total order, so the winner is the same whatever the order in which parts
were staged (in parallel) or exports were loaded."""


def message_order(prefix: str = "", *, with_key: bool = True) -> sql.Composed:
    """``COPY_ORDER`` as an ``ORDER BY`` list (after the message key unless ``with_key`` is false)."""
    key = [sql.SQL("conversation_id, message_id")] if with_key else []
    return sql.SQL(", ").join(
        key + [sql.SQL(f"{expr.format(prefix)} {direction} NULLS LAST") for expr, direction in COPY_ORDER]
    )


def sorts_before(new: str, old: str, order: tuple[tuple[str, str], ...]) -> sql.Composed:
    """True when the row ``new`` comes strictly before the row ``old`` in ``order`` (NULLs last)."""
    terms = []
    for i, (expr, direction) in enumerate(order):
        a, b = expr.format(f"{new}."), expr.format(f"{old}.")
        operator = ">" if direction == "DESC" else "<"
        equal_before = [f"{e.format(new + '.')} IS NOT DISTINCT FROM {e.format(old + '.')}" for e, _ in order[:i]]
        terms.append(" AND ".join([*equal_before, f"{a} IS NOT NULL AND ({b} IS NULL OR {a} {operator} {b})"]))
    return sql.SQL("(" + " OR ".join(f"({term})" for term in terms) + ")")


def child_order(table: s.Table, prefix: str = "s.") -> dict[str, sql.Composable]:
    """One row per key of a child table: the first by its other columns (ascending, NULLs last).

    ``keys``: the primary key; ``columns``: every data column; ``others``: the non-key columns;
    ``order``: key, then the others (the order ``DISTINCT ON`` needs).
    """
    names = table.column_names
    others = [n for n in names if n not in table.primary_key]

    def columns(which) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in which)

    return {
        "keys": columns(table.primary_key),
        "scols": columns(names),
        "others": columns(others),
        "order": columns((*table.primary_key, *others)),
    }
