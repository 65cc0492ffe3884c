"""The component classes: plain Python, usable without Dagster."""
