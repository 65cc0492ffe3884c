"""Whether the process that left a temporary file (its pid is in the name) still runs."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True if ``pid`` runs (a process of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
