"""The warehouse area: the tables, their checks, and the analytics views."""
