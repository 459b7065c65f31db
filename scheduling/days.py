"""Local-day helpers shared by the daily plan, the end-of-day report and the jobs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from scheduling.calendar import zone
from scheduling.callbacks import local_to_utc


def local_day_bounds(day: date, zone_name: str) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar day `day` in `zone_name`, as aware UTC datetimes.

    Local midnight can be skipped by DST (e.g. America/Santiago): the day then starts at the
    first instant whose local date is `day`, which `fold=0` + normalising gives us.
    """
    zi = zone(zone_name)

    def start_of(d: date) -> datetime:
        local = datetime.combine(d, time(0), tzinfo=zi)
        utc = local.astimezone(UTC)
        if utc.astimezone(zi).date() != d:  # midnight fell in a gap: take the jump instant
            return local_to_utc(datetime.combine(d, time(0)), zone_name)
        return utc

    return start_of(day), start_of(date.fromordinal(day.toordinal() + 1))


def local_date(at: datetime, zone_name: str) -> date:
    """The calendar date in `zone_name` at instant `at`."""
    return at.astimezone(zone(zone_name)).date()
