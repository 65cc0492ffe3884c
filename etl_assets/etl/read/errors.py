"""The one error the read commands raise on purpose: input a person must fix."""

from __future__ import annotations


class ReadInputError(ValueError):
    """Unusable input (unknown conversation, bad date or zone, unusable folder, query syntax).

    The message is one line that names the input and the reason; the command exits 2.
    """
