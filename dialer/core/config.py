"""Campaign configuration as the engine needs it: one frozen, validated value object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AbandonPolicy,
    DialMode,
    DispositionSpec,
    MachinePolicy,
    RetryPolicy,
    disposition_catalog,
)
from dialer.core.errors import EngineConfigError
from dialer.core.governor import GovernorSettings
from dialer.core.pacer import LineLimits
from dialer.core.router import TieBreak


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    campaign_id: str
    mode: DialMode = DialMode.PREDICTIVE
    abandon: AbandonPolicy = field(default_factory=AbandonPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    machine_policy: MachinePolicy = MachinePolicy.HANG_UP
    dispositions: Mapping[str, DispositionSpec] = field(default_factory=disposition_catalog)
    #: how long an answered person may wait for an agent before the abandon message starts;
    #: must leave room to start the message inside the grace time
    agent_wait_seconds: float = 1.8
    limits: LineLimits = field(default_factory=LineLimits)
    #: the predictive pacer aims at cap x this, leaving the rest as a safety margin
    abandon_target_ratio: float = 0.8
    governor: GovernorSettings = field(default_factory=GovernorSettings)
    #: the SIP side's ring timeout (sizes the answer-time model's grid)
    ring_timeout_seconds: float = 25.0
    #: compliance: a call is never hung up before it has rung this long
    min_ring_seconds: float = 15.0
    #: predictive mode: hang up a call still ringing after min_ring_seconds when no agent is
    #: expected to be free if it is answered (the lead gets NO_ANSWER and its retry rules);
    #: the pacer then counts answers of younger calls only up to min_ring_seconds
    cancel_surplus_calls: bool = True
    #: priors for the first minutes, before the campaign has its own statistics
    expected_talk_seconds: float = 180.0
    expected_wrap_seconds: float = 15.0
    expected_live_rate: float = 0.3
    #: an agent-owned callback falls back to the whole campaign after this
    callback_grace: timedelta = timedelta(minutes=15)
    tie_break: TieBreak = TieBreak.FEWEST_CALLS
    #: preview: dial the offered lead automatically after this many seconds (None: wait)
    preview_timeout_seconds: float | None = None
    #: pacing cadence, and the least gap between two pacing passes triggered by events
    pace_interval_seconds: float = 2.0
    min_pace_gap_seconds: float = 0.5
    #: hopper refill: keep at least this many leads (but no more than
    #: ``hopper_leads_per_agent`` per working agent, so an instance with few agents does
    #: not hold leads another instance's agents wait for), or the dials of the next lookahead
    hopper_low_water: int = 20
    hopper_leads_per_agent: float = 2.0
    hopper_lookahead_seconds: float = 60.0
    #: ask again for leads if the driver has not answered a NeedLeads within this
    lead_request_timeout_seconds: float = 10.0
    #: zone of the campaign for calendar-day abandon windows
    timezone: str = "UTC"
    #: an agent who gives no disposition within this many seconds of the call's end is
    #: made ready again and the call closed as `WRAPUP_TIMEOUT` (None or 0: no limit)
    max_wrapup_seconds: float | None = None

    def __post_init__(self) -> None:
        def bad(msg: str) -> EngineConfigError:
            return EngineConfigError(f"campaign {self.campaign_id!r}: {msg}")

        if not self.campaign_id:
            raise EngineConfigError("campaign_id must not be empty")
        ab = self.abandon
        if not 0.0 < ab.cap < 1.0:
            raise bad(f"abandon cap must be in (0, 1), got {ab.cap}")
        if ab.grace_seconds <= 0:
            raise bad(f"abandon grace_seconds must be > 0, got {ab.grace_seconds}")
        if not 0.0 < self.agent_wait_seconds <= ab.grace_seconds:
            raise bad(
                f"agent_wait_seconds must be in (0, grace {ab.grace_seconds}], "
                f"got {self.agent_wait_seconds}"
            )
        if not 0.0 <= ab.amd_false_positive_rate < 1.0:
            raise bad(
                f"amd_false_positive_rate must be in [0, 1), got {ab.amd_false_positive_rate}"
            )
        if not 0.0 < self.abandon_target_ratio <= 1.0:
            raise bad(f"abandon_target_ratio must be in (0, 1], got {self.abandon_target_ratio}")
        if self.ring_timeout_seconds <= 0:
            raise bad(f"ring_timeout_seconds must be > 0, got {self.ring_timeout_seconds}")
        # a min ring at or beyond the ring timeout is legal: nothing is ever cancelled then
        if not self.min_ring_seconds >= 0.0:
            raise bad(f"min_ring_seconds must be >= 0, got {self.min_ring_seconds}")
        for name in ("expected_talk_seconds", "expected_wrap_seconds"):
            if getattr(self, name) <= 0:
                raise bad(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.expected_live_rate < 1.0:
            raise bad(f"expected_live_rate must be in (0, 1), got {self.expected_live_rate}")
        if self.callback_grace < timedelta(0):
            raise bad("callback_grace must not be negative")
        if self.preview_timeout_seconds is not None and self.preview_timeout_seconds <= 0:
            raise bad("preview_timeout_seconds must be > 0 or None")
        if self.pace_interval_seconds <= 0 or self.min_pace_gap_seconds < 0:
            raise bad("pace_interval_seconds must be > 0 and min_pace_gap_seconds >= 0")
        if self.min_pace_gap_seconds > self.pace_interval_seconds:
            raise bad("min_pace_gap_seconds must not exceed pace_interval_seconds")
        if self.hopper_low_water < 1 or self.hopper_lookahead_seconds < 0 \
                or self.hopper_leads_per_agent <= 0:
            raise bad("hopper_low_water must be >= 1, hopper_lookahead_seconds >= 0 and "
                      "hopper_leads_per_agent > 0")
        if self.lead_request_timeout_seconds <= 0:
            raise bad("lead_request_timeout_seconds must be > 0")
        if not self.dispositions:
            raise bad("the disposition catalog is empty")
        for code, spec in self.dispositions.items():
            if code != spec.code:
                raise bad(f"disposition catalog key {code!r} differs from its code {spec.code!r}")
        if self.max_wrapup_seconds is not None:
            if not self.max_wrapup_seconds >= 0.0:
                raise bad(f"max_wrapup_seconds must be >= 0 or None, got {self.max_wrapup_seconds}")
            if self.max_wrapup_seconds > 0 and WRAPUP_TIMEOUT not in self.dispositions:
                # the engine closes an overdue wrap-up with this code: it must be in the catalog
                raise bad(f"max_wrapup_seconds needs the {WRAPUP_TIMEOUT!r} disposition")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad(f"unknown timezone {self.timezone!r}") from exc

    @property
    def abandon_target(self) -> float:
        return self.abandon.cap * self.abandon_target_ratio
