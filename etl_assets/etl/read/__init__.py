"""Reading the warehouse without SQL: exports of conversations and a search command.

Kept apart from the load: it only reads the published tables, through psycopg, by their
table and column names, so it works on any warehouse the loader filled.
"""

from .errors import ReadInputError

__all__ = ["ReadInputError"]
