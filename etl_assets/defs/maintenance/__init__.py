"""The maintenance area: garbage collection, as a job and a schedule."""
