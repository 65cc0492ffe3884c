"""The loaded warehouse: views, documentation of its tables, and the queries that read it."""
