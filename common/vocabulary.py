"""Shared vocabulary of the dialer: states, results and policy values.

Every layer (db models, scheduling rules, the pure dialer core, the SIP glue and the
agent protocol) speaks these names, so they live in one dependency-free module.
Enum values are the strings stored in SQL and sent over MQTT: never rename a value.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import timedelta


class LeadStatus(enum.StrEnum):
    """Where a lead stands in the customer lifecycle (docs/domain.md) plus dialing end states."""

    POTENTIAL = "potential"  # cold: need unknown, or former customer after churn + cool-off
    HOT = "hot"  # showed interest, no decision yet
    SERVED = "served"  # has a contract; called for periodic follow-ups
    DONE = "done"  # no need and no further contact wanted (never called again by this campaign)
    EXHAUSTED = "exhausted"  # max attempts reached without a decision
    DNC = "dnc"  # do not call: never dialed again from any campaign
    INVALID = "invalid"  # number does not exist / wrong number


#: statuses the hopper may still pick (subject to scheduling rules)
DIALABLE_STATUSES: frozenset[LeadStatus] = frozenset(
    {LeadStatus.POTENTIAL, LeadStatus.HOT, LeadStatus.SERVED}
)


class AttemptStage(enum.StrEnum):
    """Progress of one dial. Stored on the attempt row; ENDED means `result` is final."""

    CREATED = "created"  # row written, INVITE not yet sent
    DIALING = "dialing"  # INVITE sent
    RINGING = "ringing"  # 180/183 received
    ANSWERED = "answered"  # 200 OK received, waiting for AMD / an agent
    BRIDGED = "bridged"  # connected to an agent
    MESSAGE = "message"  # playing the recorded message (abandon / machine message)
    ENDED = "ended"


class AttemptResult(enum.StrEnum):
    """The one final state every attempt ends in."""

    CONNECTED = "connected"  # a live person reached an agent
    ABANDONED = "abandoned"  # a live person, no agent within the grace time
    MACHINE = "machine"  # answering machine detected (hung up or message left)
    BUSY = "busy"  # 486 / 600
    NO_ANSWER = "no_answer"  # ring timeout (CANCEL -> 487), 408, 480
    INVALID_NUMBER = "invalid_number"  # 404 / 484 / 604
    REJECTED = "rejected"  # 403 / 603
    FAILED = "failed"  # 5xx, timeouts, transport errors
    CANCELLED = "cancelled"  # the dialer hung up before answer (shutdown, policy)
    LOST = "lost"  # the SIP node holding the call died; outcome unknown
    SKIPPED = "skipped"  # preview: the agent skipped the lead, no call placed


#: results where a live person answered (docs/compliance.md denominator)
LIVE_RESULTS: frozenset[AttemptResult] = frozenset(
    {AttemptResult.CONNECTED, AttemptResult.ABANDONED}
)


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # picked for a call, bridge in progress (or preview shown)
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class DialMode(enum.StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class AmdVerdict(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"
    NOT_RUN = "not_run"


class CallbackScope(enum.StrEnum):
    AGENT = "agent"  # owned by one agent (falls back to the campaign after a grace time)
    CAMPAIGN = "campaign"


class MachinePolicy(enum.StrEnum):
    HANG_UP = "hang_up"
    LEAVE_MESSAGE = "leave_message"
    TREAT_AS_HUMAN = "treat_as_human"


class AbandonClockStart(enum.StrEnum):
    """When the 2-second clock for "connected to a live agent" starts (docs/compliance.md)."""

    ANSWER = "answer"  # strictest (UK): from the 200 OK
    GREETING_START = "greeting_start"
    GREETING_END = "greeting_end"  # US FCC: after the person's completed greeting


class AbandonWindow(enum.StrEnum):
    ROLLING_30D = "rolling_30d"  # US / Canada: successive 30-day periods (we measure rolling)
    ROLLING_24H = "rolling_24h"
    CALENDAR_DAY = "calendar_day"  # UK: midnight to midnight in the campaign's zone


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonPolicy:
    cap: float = 0.03
    window: AbandonWindow = AbandonWindow.ROLLING_30D
    grace_seconds: float = 2.0
    clock_start: AbandonClockStart = AbandonClockStart.ANSWER
    #: UK: add an estimate of AMD false positives (humans classed as machines) to the numerator
    count_amd_false_positives: bool = False
    amd_false_positive_rate: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Minimum delay before the next attempt, by the last attempt's result, and attempt caps."""

    max_attempts: int = 6
    #: optional cap on attempts in a rolling 30 days (France: 4)
    max_attempts_per_30_days: int | None = None
    delays: dict[AttemptResult, timedelta] = field(
        default_factory=lambda: {
            AttemptResult.BUSY: timedelta(minutes=15),
            AttemptResult.NO_ANSWER: timedelta(hours=2),
            AttemptResult.MACHINE: timedelta(hours=4),
            AttemptResult.ABANDONED: timedelta(hours=72),  # UK lock-out after an abandoned call
            AttemptResult.FAILED: timedelta(minutes=10),
            AttemptResult.REJECTED: timedelta(days=1),
            AttemptResult.CANCELLED: timedelta(minutes=1),
            AttemptResult.LOST: timedelta(minutes=5),
            AttemptResult.SKIPPED: timedelta(hours=1),
            AttemptResult.CONNECTED: timedelta(days=1),
        }
    )

    def delay_after(self, result: AttemptResult) -> timedelta:
        return self.delays.get(result, timedelta(0))


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionSpec:
    """One entry of a campaign's disposition catalog: what an agent's coded outcome does."""

    code: str
    label: str
    new_status: LeadStatus | None = None  # None keeps the lead's status
    reached: bool = True  # a person was reached (report: "reached")
    meeting: bool = False  # counts as a meeting set
    contract: bool = False  # counts as a contract signed
    needs_callback: bool = False  # the agent must give a next-contact time
    add_to_dnc: bool = False
    final: bool = False  # no further calls in this campaign
    #: next contact when the agent gives none (None: the retry policy decides)
    default_next_contact: timedelta | None = None
    closes_complaint: bool = False
    #: set by the dialer itself, never offered to (or accepted from) an agent
    system: bool = False


#: the dialer's own disposition when an agent gives none within the campaign's max wrap-up
WRAPUP_TIMEOUT = "wrapup_timeout"

DEFAULT_DISPOSITIONS: tuple[DispositionSpec, ...] = (
    DispositionSpec(code="no_need", label="No need", final=False,
                    default_next_contact=timedelta(days=180)),
    DispositionSpec(code="interested", label="Interested (hot)", new_status=LeadStatus.HOT,
                    default_next_contact=timedelta(days=3)),
    DispositionSpec(code="callback", label="Callback agreed", needs_callback=True),
    DispositionSpec(code="meeting_set", label="Meeting set", new_status=LeadStatus.HOT,
                    meeting=True, needs_callback=True),
    DispositionSpec(code="contract", label="Contract signed", new_status=LeadStatus.SERVED,
                    contract=True, default_next_contact=timedelta(days=90)),
    DispositionSpec(code="refused", label="Refused firmly", new_status=LeadStatus.POTENTIAL,
                    default_next_contact=timedelta(days=180)),
    DispositionSpec(code="churned", label="Terminated contract", new_status=LeadStatus.POTENTIAL,
                    default_next_contact=timedelta(days=90)),
    DispositionSpec(code="complaint_resolved", label="Complaint resolved",
                    closes_complaint=True, default_next_contact=timedelta(days=30)),
    DispositionSpec(code="not_reached", label="Wrong person / not reached", reached=False),
    # a machine the AMD missed (or AMD off) that the agent heard: nobody was reached, so the
    # lead is retried (not closed; the try counts toward max_attempts) after 4 hours, the
    # RetryPolicy's delay after a machine the AMD caught: the same machine gets the same
    # retry whoever spotted it (with no default it would get a connected call's 1 day)
    DispositionSpec(code="answering_machine", label="Answering machine", reached=False,
                    default_next_contact=timedelta(hours=4)),
    DispositionSpec(code="wrong_number", label="Wrong number", new_status=LeadStatus.INVALID,
                    reached=False, final=True),
    DispositionSpec(code="do_not_call", label="Do not call", new_status=LeadStatus.DNC,
                    add_to_dnc=True, final=True),
    DispositionSpec(code=WRAPUP_TIMEOUT, label="No disposition (wrap-up timed out)",
                    system=True),
)


def disposition_catalog(
    specs: tuple[DispositionSpec, ...] = DEFAULT_DISPOSITIONS,
) -> dict[str, DispositionSpec]:
    return {s.code: s for s in specs}


#: a named group of agents ("closers", "senior-sales"): lower case, digits, "_" and "-"
GROUP_PATTERN = r"^[a-z0-9_-]{1,32}$"
#: how many groups one agent may belong to
MAX_GROUPS_PER_AGENT = 16


def check_groups(names: list[str] | tuple[str, ...]) -> list[str]:
    """The group names, each checked against GROUP_PATTERN, duplicates dropped, in order;
    ValueError names the bad one and the expected form."""
    out: list[str] = []
    for n in names:
        if not re.fullmatch(GROUP_PATTERN, n):
            raise ValueError(f"group name {n!r}: expected 1-32 of a-z, 0-9, '_' and '-' "
                             "(e.g. closers)")
        if n not in out:
            out.append(n)
    if len(out) > MAX_GROUPS_PER_AGENT:
        raise ValueError(f"at most {MAX_GROUPS_PER_AGENT} groups per agent, got {len(out)}")
    return out
