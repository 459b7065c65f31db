"""`next_callable_at`: the earliest instant every calling rule allows a lead to be dialed.

Pure and fast. The rules split in two kinds:

* thresholds, "not before X": retry delay after the last result, the lock-out after an
  abandoned call, the agreed callback / next-contact time, rolling attempt caps (the instant
  the oldest counted attempt leaves the period), a cool-off after a refusal;
* open sets: the company's calendar and the callee's legal window in *every* candidate zone.

Absolute bars (DNC, a status that is not dialable, max attempts, unknown zone) answer "never"
with a reason. Otherwise the answer is the first instant >= max(now, thresholds) inside the
intersection of the open sets, found by leapfrogging each schedule's `next_open_ts` until they
agree; it is "never" when nothing within the horizon satisfies them all.

Inside, open sets are integer UTC seconds (every boundary is a whole minute of local time);
the binding threshold is kept as an exact datetime, so an answer that falls on a threshold (or
on `now`) is that instant to the microsecond.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from common.vocabulary import DIALABLE_STATUSES, AttemptResult, LeadStatus, RetryPolicy
from scheduling.calendar import CalendarError, CompanyCalendar, Schedule, from_ts, to_ts
from scheduling.windows import PRESETS, AttemptCap, CallingWindow, candidate_zones

__all__ = [
    "Callability",
    "CallingRules",
    "Gate",
    "LeadFacts",
    "NeverReason",
    "next_callable_at",
]

_DAY = 86_400


class NeverReason(enum.StrEnum):
    """Why a lead will not be callable (stored in Lead.never_reason)."""

    DNC = "dnc"
    STATUS = "status"  # done, exhausted, invalid ...: not a dialable status
    MAX_ATTEMPTS = "max_attempts"
    #: no zone on the lead, none from the number, no default - or a zone tzdata does not know
    UNKNOWN_ZONE = "unknown_zone"
    NO_OPEN_TIME = "no_open_time"  # company hours and callee window never overlap (horizon)
    #: a connected call's disposition was lost (a stop, crash or outage): nobody calls the
    #: person again until someone records what was agreed on that call
    NEEDS_OUTCOME = "needs_outcome"


class Gate(enum.StrEnum):
    """Which rule decided the answer's time (useful for "why not now?")."""

    NOW = "now"
    RETRY_DELAY = "retry_delay"
    ABANDON_LOCKOUT = "abandon_lockout"
    CALLBACK = "callback"
    NEXT_CONTACT = "next_contact"
    ATTEMPT_CAP = "attempt_cap"
    REFUSAL_COOLDOWN = "refusal_cooldown"
    COMPANY_HOURS = "company_hours"
    CALLEE_WINDOW = "callee_window"


@dataclass(frozen=True, slots=True)
class Callability:
    """`at` is the earliest callable instant (aware UTC), or None with `reason`."""

    at: datetime | None
    reason: NeverReason | None = None
    gate: Gate | None = None

    @property
    def never(self) -> bool:
        return self.at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadFacts:
    """What the rules need to know about one lead. Times are aware datetimes.

    `recent_attempts` are the start times of the lead's attempts inside the longest capped
    period (30 days is enough for every preset); older ones may be left out.
    `calendar` is the lead's company calendar; None uses the campaign's (`CallingRules`).
    `jurisdiction` picks a window from `CallingRules.windows` (e.g. "US-FL"); None or an
    unknown key uses the campaign's default window.
    """

    lead_id: int | str = 0
    status: LeadStatus = LeadStatus.POTENTIAL
    timezone: str | None = None
    phone_e164: str | None = None
    dnc: bool = False
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_result: AttemptResult | None = None
    last_abandoned_at: datetime | None = None
    recent_attempts: tuple[datetime, ...] = ()
    callback_at: datetime | None = None
    next_contact_at: datetime | None = None
    refused_at: datetime | None = None
    calendar: CompanyCalendar | None = None
    jurisdiction: str | None = None
    needs_outcome: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallingRules:
    """A campaign's calling rules. Build once per campaign and reuse (it caches)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    window: CallingWindow = field(default_factory=lambda: PRESETS["us_federal"])
    windows: Mapping[str, CallingWindow] = field(default_factory=dict)
    #: the campaign's company calendar; None means no company-hours rule (consumer leads)
    calendar: CompanyCalendar | None = None
    abandon_lockout: timedelta = timedelta(hours=72)
    #: no call for this long after AMD heard a machine, whatever the retry delay or an agreed
    #: callback says (UK: 24 h unless a live agent is guaranteed; the dialer does not rely on
    #: such a guarantee, so it always waits)
    machine_redial_gap: timedelta | None = None
    #: zone for leads whose zone neither the lead nor the number gives
    default_zone: str | None = None
    horizon_days: int = 400
    _delay_s: dict[AttemptResult, float] = field(init=False, repr=False, compare=False)
    _retry_caps: tuple[AttemptCap, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.abandon_lockout < timedelta(0):
            raise CalendarError(f"abandon_lockout must be >= 0, got {self.abandon_lockout}")
        if self.horizon_days < 1:
            raise CalendarError(f"horizon_days must be >= 1, got {self.horizon_days}")
        if self.retry.max_attempts < 1:
            raise CalendarError(f"max_attempts must be >= 1, got {self.retry.max_attempts}")
        delays = {r: d.total_seconds() for r, d in self.retry.delays.items()}
        if any(v < 0 for v in delays.values()):
            raise CalendarError(f"retry delays must be >= 0: {self.retry.delays}")
        object.__setattr__(self, "_delay_s", delays)
        caps: tuple[AttemptCap, ...] = ()
        if self.retry.max_attempts_per_30_days is not None:
            caps = (AttemptCap(timedelta(days=30), self.retry.max_attempts_per_30_days),)
        object.__setattr__(self, "_retry_caps", caps)
        if self.calendar is not None:
            self.calendar.validate()

    def window_for(self, lead: LeadFacts) -> CallingWindow:
        if lead.jurisdiction is not None:
            return self.windows.get(lead.jurisdiction, self.window)
        return self.window


def next_callable_at(lead: LeadFacts, now: datetime, rules: CallingRules) -> Callability:
    """The earliest instant >= now at which every rule holds for `lead`, or never + reason."""
    if lead.dnc:
        return Callability(None, NeverReason.DNC)
    if lead.status not in DIALABLE_STATUSES:
        return Callability(None, NeverReason.STATUS)
    if lead.needs_outcome:
        return Callability(None, NeverReason.NEEDS_OUTCOME)
    if lead.attempts >= rules.retry.max_attempts:
        return Callability(None, NeverReason.MAX_ATTEMPTS)

    # Thresholds are compared as float seconds but the binding one is kept as an exact
    # datetime, so an answer that lands on a threshold is that instant to the microsecond.
    if now.tzinfo is None:
        to_ts(now)  # raises: naive datetimes are refused
    best_f = now.timestamp()
    best: datetime = now
    gate = Gate.NOW
    # the retry delay spaces out retries nobody agreed to; a callback is an agreed time, so
    # the delay after the call that agreed it does not push it back (e.g. "call me in 2 hours"
    # after a connected call, whose retry delay is a day)
    if lead.last_attempt_at is not None and lead.last_result is not None \
            and lead.callback_at is None:
        delay = rules._delay_s.get(lead.last_result, 0)
        x = lead.last_attempt_at.timestamp() + delay
        if x > best_f:
            best_f, gate = x, Gate.RETRY_DELAY
            best = lead.last_attempt_at + rules.retry.delay_after(lead.last_result)
    if lead.last_abandoned_at is not None:
        lock = lead.last_abandoned_at + rules.abandon_lockout
        x = lock.timestamp()
        if x > best_f:
            best_f, best, gate = x, lock, Gate.ABANDON_LOCKOUT
    if rules.machine_redial_gap is not None and lead.last_result is AttemptResult.MACHINE \
            and lead.last_attempt_at is not None:
        gap_end = lead.last_attempt_at + rules.machine_redial_gap
        x = gap_end.timestamp()
        if x > best_f:
            best_f, best, gate = x, gap_end, Gate.RETRY_DELAY
    if lead.callback_at is not None:
        x = lead.callback_at.timestamp()
        if x > best_f:
            best_f, best, gate = x, lead.callback_at, Gate.CALLBACK
    if lead.next_contact_at is not None:
        x = lead.next_contact_at.timestamp()
        if x > best_f:
            best_f, best, gate = x, lead.next_contact_at, Gate.NEXT_CONTACT

    window = rules.window_for(lead)
    if lead.refused_at is not None and window.refusal_cooldown is not None:
        until = lead.refused_at + window.refusal_cooldown
        x = until.timestamp()
        if x > best_f:
            best_f, best, gate = x, until, Gate.REFUSAL_COOLDOWN
    if lead.recent_attempts:
        caps = rules._retry_caps + window.attempt_caps
        if caps:
            times = sorted(lead.recent_attempts)
            k = len(times)
            for cap in caps:
                if k >= cap.max_attempts:
                    # the attempt that must leave the rolling period before one more is allowed
                    free = times[k - cap.max_attempts] + cap.period
                    x = free.timestamp()
                    if x > best_f:
                        best_f, best, gate = x, free, Gate.ATTEMPT_CAP

    zones = (
        (lead.timezone,) if lead.timezone
        else candidate_zones(None, lead.phone_e164, rules.default_zone)
    )
    if not zones:
        return Callability(None, NeverReason.UNKNOWN_ZONE)
    calendar = lead.calendar if lead.calendar is not None else rules.calendar
    scheds: list[tuple[Schedule, Gate]] = []
    if calendar is not None:
        scheds.append((calendar, Gate.COMPANY_HOURS))
    try:
        for z in zones:
            scheds.append((window.in_zone(z), Gate.CALLEE_WINDOW))
    except CalendarError:
        # a zone name tzdata does not know (bad import data): the local time is unknown
        return Callability(None, NeverReason.UNKNOWN_ZONE)

    # Open sets are whole seconds, so the second holding `best` decides whether it is open.
    t0 = math.floor(best_f)
    t = t0
    limit = t + rules.horizon_days * _DAY
    horizon = rules.horizon_days
    while True:
        moved = False
        for sched, g in scheds:
            n = sched.next_open_ts(t, horizon)
            if n is None:
                return Callability(None, NeverReason.NO_OPEN_TIME)
            if n != t:
                t, gate, moved = n, g, True
        if not moved:
            break
        if t > limit:
            return Callability(None, NeverReason.NO_OPEN_TIME)
    if t == t0:
        return Callability(best.astimezone(UTC), None, gate)
    return Callability(from_ts(t), None, gate)
