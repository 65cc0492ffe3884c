"""Time zones and dates given on the command line, turned into exact instants.

Times are stored in UTC; people read and filter them in their own zone. The local zone
is applied per instant by the C library (``datetime.astimezone()``), so daylight saving
time is right for every date, not only for today's offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ReadInputError


@dataclass(frozen=True)
class Zone:
    """A zone to show and interpret times in; ``tz`` is ``None`` for the system's local zone."""

    tz: tzinfo | None
    name: str

    def local(self, instant: datetime) -> datetime:
        """``instant`` (aware) as a wall-clock time of this zone, with its offset."""
        return instant.astimezone(self.tz) if self.tz is not None else instant.astimezone()

    def at(self, day: date, clock: time = time()) -> datetime:
        """The instant that is ``clock`` on ``day`` in this zone."""
        naive = datetime.combine(day, clock)
        return naive.replace(tzinfo=self.tz) if self.tz is not None else naive.astimezone()

    def interpret(self, moment: datetime) -> datetime:
        """A given date-time: kept if it has an offset, else read as a wall-clock time of this zone."""
        if moment.tzinfo is not None:
            return moment
        return moment.replace(tzinfo=self.tz) if self.tz is not None else moment.astimezone()


def parse_zone(name: str | None) -> Zone:
    """``None``/``local`` for the system zone, ``UTC``, or an IANA name such as ``Europe/Berlin``."""
    if name is None or name.strip().lower() in ("", "local"):
        return Zone(None, f"local ({datetime.now().astimezone().tzname()})")
    value = name.strip()
    if value.upper() in ("UTC", "Z"):
        return Zone(timezone.utc, "UTC")
    try:
        return Zone(ZoneInfo(value), value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ReadInputError(f"--tz: unknown time zone {value!r} (use an IANA name such as Europe/Berlin, or UTC)") from None


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Bound:
    """A ``--since``/``--until`` value: a whole day, or an exact moment."""

    day: date | None = None
    moment: datetime | None = None


def parse_bound(option: str, value: str) -> Bound:
    """``YYYY-MM-DD`` (a whole day) or an ISO 8601 date-time; anything else is an input error."""
    text = value.strip()
    try:
        if _DAY.match(text):
            return Bound(day=date.fromisoformat(text))
        return Bound(moment=datetime.fromisoformat(text))
    except ValueError:
        raise ReadInputError(f"{option}: not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM): {value!r}") from None


def since_instant(bound: Bound, zone: Zone) -> datetime:
    """First instant included: the start of the day, or the moment itself."""
    if bound.day is not None:
        return zone.at(bound.day)
    assert bound.moment is not None
    return zone.interpret(bound.moment)


def until_instant(bound: Bound, zone: Zone) -> tuple[datetime, bool]:
    """(instant, inclusive): a day is included whole (up to the next midnight, exclusive)."""
    if bound.day is not None:
        return zone.at(bound.day + timedelta(days=1)), False
    assert bound.moment is not None
    return zone.interpret(bound.moment), True
