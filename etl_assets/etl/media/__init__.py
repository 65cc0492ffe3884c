"""Media: the export's files copied into the artifact store, within limits, with a report."""
