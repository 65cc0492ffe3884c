"""Dagster definitions, grouped by concern; wired together in ``etl_assets.definitions``."""
