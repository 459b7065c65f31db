"""The one source of time: aware UTC wall time for records and rules, monotonic for durations.

Everything that needs time takes a `Clock` and calls it; nothing else reads the system
clock. Production passes `SYSTEM_CLOCK`; tests and the simulator pass a `ManualClock`,
which moves only when told, so working hours, DST edges, wrap-up timeouts and lease
renewals are testable without sleeping.

`clock.now()` is what rules and rows use (always timezone-aware UTC); `clock.monotonic()`
measures durations (queue waits, wrap-up seconds) and never jumps when NTP steps the wall
clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What every time-dependent part of the dialer is given."""

    def now(self) -> datetime:
        """The current wall time, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...


class SystemClock:
    """The machine's clocks. The only place in the project that reads them for logic."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


#: the production clock; pass it explicitly where a `Clock` is expected
SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A virtual clock for tests and the simulator: it moves only by `advance` or `set`.

    Wall and monotonic time move together, so a duration measured on one equals the
    difference on the other, as on a machine whose wall clock is not stepped.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock start must be timezone-aware (e.g. tzinfo=UTC)")
        self._now = start.astimezone(UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        """Move time forward by `seconds` (>= 0) and return the new wall time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back (advance by {seconds} s)")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump forward to `when` (aware, not earlier than now)."""
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs an aware datetime")
        return self.advance((when - self._now).total_seconds())

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


def utc_now() -> datetime:
    """Wall time from the system clock, for SQL column defaults and CLI edges only.

    Business logic takes a `Clock` (or a `now` argument) instead of calling this.
    """
    return SYSTEM_CLOCK.now()
