"""Extract: open an export in any container, find its members once, stream its records."""
