"""Lenient parsing of the scalar fields of an export: times, numbers, ids.

Each function takes whatever JSON gave (a string, a number, null, or something
unexpected) and returns a clean value or ``None``; none of them raises.
"""

from __future__ import annotations

import json
import re
import math
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MAX = (1 << 63) - 1
_PREFIXED = re.compile(r"^(?:\d+|guest):")
_MIN_EPOCH_MS = -62_135_596_800_000  # 0001-01-01
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31
_ISO_DURATION_RE = re.compile(r"^P(?:T)?(?:(\d+(?:\.\d*)?)H)?(?:(\d+(?:\.\d*)?)M)?(?:(\d+(?:\.\d*)?)S)?$", re.I)


def parse_iso_time(value: object) -> datetime | None:
    """An ISO 8601 time (``Z`` or offset, 0-7 fraction digits) as aware UTC; naive means UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:00-05:00 is past year 9999 in UTC
        return None


def parse_epoch_ms(value: object) -> datetime | None:
    """Epoch milliseconds (number or numeric string) as aware UTC."""
    number = parse_int(value)
    if number is None or not _MIN_EPOCH_MS <= number <= _MAX_EPOCH_MS:
        return None
    return datetime.fromtimestamp(number / 1000, UTC)


def parse_int(value: object) -> int | None:
    """An integer from an int, an integral float (``1594056032575.0``) or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -_INT64_MAX <= value <= _INT64_MAX else None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return parse_int(int(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_int(int(text))
        except ValueError:
            try:
                return parse_int(float(text))
            except (ValueError, OverflowError):
                return None
    return None


def parse_bool(value: object) -> bool | None:
    """A boolean from JSON booleans or the strings ``true``/``false``, ``1``/``0``, ``yes``/``no`` (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return None


def json_value(value: object) -> object:
    """A JSON value that may arrive as a JSON string (``emotions``, ``urlpreviews``, ``callLog``)."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
                return None
        return None
    return value


def normalize_person_id(value: object) -> str | None:
    """A person id in its canonical form: URL form resolved, the ``8:`` prefix added when missing."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if "/contacts/" in text:
        text = text.rsplit("/contacts/", 1)[1]
    if not _PREFIXED.match(text):
        text = "8:" + text
    if not storable_text(text):
        text = escape_unstorable(text)
    return text


def escape_unstorable(text: str) -> str:
    """``text`` with NUL and unpaired surrogates spelled out as ``\\u0000``/``\\ud800``: storable, nothing lost."""
    return _UNSTORABLE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def conversation_kind(conversation_id: str) -> str:
    """``group``, ``bot``, ``special`` or ``one_to_one``, from the id prefix."""
    if conversation_id.startswith("19:"):
        return "group"
    if conversation_id.startswith("28:"):
        return "bot"
    if conversation_id.startswith("48:"):
        return "special"
    return "one_to_one"


def storable_text(value: str) -> bool:
    """Whether PostgreSQL can store the string: no NUL and no unpaired surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_json(value: object) -> str | None:
    """Compact JSON text of a value, or ``None`` for JSON null."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def escaped_json(value: object) -> str:
    """JSON text with every non-ASCII character escaped: storable whatever the value holds."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


# -- attribute strings of the message markup ------------------------------------------


def parse_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def parse_epoch(value: str | None, per_second: int) -> datetime | None:
    """UTC time from epoch seconds (``per_second=1``) or milliseconds (1000), exact for integers."""
    if not value:
        return None
    value = value.strip()
    try:
        n: float = int(value)
    except ValueError:
        n = parse_float(value)
        if n is None:
            return None
    try:
        return _EPOCH + (timedelta(seconds=n) if per_second == 1 else timedelta(milliseconds=n))
    except (OverflowError, ValueError):
        return None


def parse_epoch_auto(value: str | None) -> datetime | None:
    """Epoch seconds, or milliseconds when the number is too large to be seconds."""
    n = parse_float(value.strip()) if value else None
    if n is None:
        return None
    return parse_epoch(value, 1000 if abs(n) >= 1e11 else 1)


def parse_when(value: str) -> datetime | None:
    """Epoch seconds or milliseconds (digits only), else an ISO 8601 time, as aware UTC."""
    value = value.strip()
    if value.isdigit():
        return parse_epoch_auto(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_duration(value: str | None) -> float | None:
    """Seconds from ``h:mm:ss.ff``, ``mm:ss``, ``PT1M2S`` or a plain number."""
    if not value:
        return None
    value = value.strip()
    if ":" in value:
        total = 0.0
        for part in value.split(":"):
            f = parse_float(part) if part else 0.0
            if f is None:
                return None
            total = total * 60 + f
        return total
    if value[:1] in "Pp":
        m = _ISO_DURATION_RE.match(value)
        if not m or not any(m.groups()):
            return None
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return h * 3600 + mi * 60 + s
    return parse_float(value)


def parse_degrees(value: str | None, limit: float) -> float | None:
    """Decimal degrees from micro-degrees; a value that already looks like degrees is kept."""
    if not value:
        return None
    value = value.strip()
    try:
        return int(value) / 1e6
    except ValueError:
        f = parse_float(value)
    if f is None:
        return None
    return f if abs(f) <= limit else f / 1e6
