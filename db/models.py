"""SQLAlchemy 2.x models: the dialer's records.

All times are aware UTC (`UTCDateTime`). Enums are stored by value (common/vocabulary.py).
Every attempt is a row before its INVITE leaves (docs/architecture.md), so `attempts` is the
source of truth for every rate the dialer reports (docs/compliance.md: rates must be recomputable).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.vocabulary import (
    AbandonClockStart,
    AbandonWindow,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DialMode,
    LeadStatus,
    MachinePolicy,
)
from db.types import JSONType, Phone, UTCDateTime, str_enum, utcnow

# Stable constraint names so Alembic migrations are portable between SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType}


class Company(Base):
    """A client company that is called; its calendar says when it can be reached."""

    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    #: {"mon": [["08:00","12:00"],["13:00","17:00"]], ...}; a missing day is a day off
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    holiday_country: Mapped[str | None] = mapped_column(String(8))
    holiday_subdivision: Mapped[str | None] = mapped_column(String(16))
    #: [{"start": "2026-12-24", "end": "2026-12-26", "reason": "..."}]
    closures: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    #: {"2026-12-27": [["10:00","14:00"]]}: open on a normally closed day, or other hours
    special_days: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: whether dialing is switched on (scheduling opens/closes it at calendar edges)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: default calendar for leads without a company of their own
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    dial_mode: Mapped[DialMode] = mapped_column(str_enum(DialMode), default=DialMode.PREDICTIVE)
    lines_per_agent: Mapped[float] = mapped_column(Float, default=2.0)  # power mode
    max_dial_level: Mapped[float] = mapped_column(Float, default=3.0)
    max_lines: Mapped[int | None] = mapped_column(Integer)
    caller_id: Mapped[str] = mapped_column(String(32))
    trunk: Mapped[str | None] = mapped_column(String(64))
    ring_timeout_s: Mapped[float] = mapped_column(Float, default=25.0)
    min_ring_s: Mapped[float] = mapped_column(Float, default=15.0)
    abandon_cap: Mapped[float] = mapped_column(Float, default=0.03)
    abandon_window: Mapped[AbandonWindow] = mapped_column(
        str_enum(AbandonWindow), default=AbandonWindow.ROLLING_30D
    )
    abandon_grace_s: Mapped[float] = mapped_column(Float, default=2.0)
    abandon_clock_start: Mapped[AbandonClockStart] = mapped_column(
        str_enum(AbandonClockStart), default=AbandonClockStart.ANSWER
    )
    amd_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # the config's default: a row made without it must pass the config's rules on update
    amd_max_ms: Mapped[int] = mapped_column(Integer, default=6500)
    #: vad (voice activity + beep) | energy (the classic cadence rules)
    amd_method: Mapped[str] = mapped_column(String(16), default="vad", server_default="vad")
    #: vad: a greeting still going on this long after it began is a recording
    amd_greeting_budget_ms: Mapped[int] = mapped_column(Integer, default=4500,
                                                        server_default="4500")
    #: vad: the decision deadline for people, ms after answer (0 = none; docs/sip.md)
    amd_decide_by_ms: Mapped[int] = mapped_column(Integer, default=2500, server_default="2500")
    #: run AMD on leads of a client company too (False: a business number always reaches
    #: an agent, since receptionists are what AMD most often mistakes for machines)
    amd_company_numbers: Mapped[bool] = mapped_column(Boolean, default=True,
                                                      server_default=true())
    #: the share of people AMD classes as machines, counted as abandons where the preset
    #: says so (UK); None: the preset's default (docs/compliance.md)
    amd_false_positive_rate: Mapped[float | None] = mapped_column(Float)
    machine_policy: Mapped[MachinePolicy] = mapped_column(
        str_enum(MachinePolicy), default=MachinePolicy.HANG_UP
    )
    message_wav: Mapped[str | None] = mapped_column(String(500))
    #: key a person presses during the abandon message to be put on the DNC list (US rule);
    #: "" switches the opt-out off
    optout_key: Mapped[str] = mapped_column(String(1), default="9", server_default="9")
    record_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    calling_window: Mapped[str] = mapped_column(String(32), default="us_federal")
    default_region: Mapped[str] = mapped_column(String(2), default="US")
    callback_grace_s: Mapped[float] = mapped_column(Float, default=900.0)
    #: an agent still in wrap-up after this long is made ready again and the call gets the
    #: dialer's `wrapup_timeout` disposition (0: wait for the agent forever)
    max_wrapup_s: Mapped[float] = mapped_column(Float, default=600.0, server_default="600")
    #: a connected call is ended after this long (a far end that never hangs up); 0 = no limit
    max_call_s: Mapped[float] = mapped_column(Float, default=3600.0, server_default="3600")
    #: RetryPolicy as JSON: {"max_attempts": 6, "max_attempts_per_30_days": null,
    #: "delays_s": {"busy": 900, ...}}
    retry_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: list of DispositionSpec dicts; empty means common.vocabulary.DEFAULT_DISPOSITIONS
    dispositions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    script: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    company: Mapped[Company | None] = relationship()


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    #: where the agent's phone is reached: sip:alice@pbx.example.com or sip:127.0.0.1:5070
    sip_uri: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the campaign the agent works on: set by `dialer agents add`, by a supervisor's move
    #: and, for config agents, seeded from the config file (see config_campaign); NULL: none
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"))
    #: a config agent: the campaign its [[agents]] entry named when it last set campaign_id
    #: (db.repositories.seed_agent_campaign); a move outlives restarts until the file changes
    config_campaign: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: named groups (e.g. "closers"): a transfer to a group goes to its longest-idle ready
    #: agent (names: common.vocabulary.GROUP_PATTERN)
    groups: Mapped[list[Any]] = mapped_column(JSONType, default=list,
                                              server_default=text("'[]'"))


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("campaign_id", "phone_e164", name="uq_leads_campaign_phone"),
        Index("ix_leads_next_call", "campaign_id", "next_call_at"),
        Index("ix_leads_claim", "claimed_until"),
        UniqueConstraint("campaign_id", "external_id", name="uq_leads_campaign_external"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    phone_e164: Mapped[str] = mapped_column(Phone)
    name: Mapped[str] = mapped_column(String(200), default="")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: IANA zone given at import; NULL means "from the number" (phonenumbers candidates)
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[LeadStatus] = mapped_column(str_enum(LeadStatus), default=LeadStatus.POTENTIAL)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher is called first
    #: 0 = callback due, 1 = hot lead or open complaint, 2 = the rest (see hopper_tier())
    hopper_tier: Mapped[int] = mapped_column(Integer, default=2)
    has_open_complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the agreed or planned next contact (callback time, follow-up date)
    next_contact_at: Mapped[datetime | None]
    #: earliest instant every calling rule allows (cached scheduling result; NULL = never)
    next_call_at: Mapped[datetime | None]
    never_reason: Mapped[str | None] = mapped_column(String(200))
    owner_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_result: Mapped[AttemptResult | None] = mapped_column(str_enum(AttemptResult))
    last_attempt_at: Mapped[datetime | None]
    last_abandoned_at: Mapped[datetime | None]
    #: a connected attempt whose disposition was lost to a stop, crash or outage: the lead is
    #: not callable until someone records that call's outcome (docs/agent-protocol.md)
    needs_outcome_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("attempts.id", use_alter=True, name="fk_leads_needs_outcome_attempt",
                   ondelete="SET NULL"))
    #: hopper lease: a claim is valid while claimed_until > now
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the CRM's own key of the lead (CRM API, docs/api.md): unique per campaign, NULL for
    #: leads that did not come through the API with one
    external_id: Mapped[str | None] = mapped_column(String(100))


# The hot query: the hopper's next callable leads of a campaign, best tier first, then highest
# priority, then earliest due. next_call_at caches scheduling.next_callable_at (NULL = never).
Index(
    "ix_leads_hopper", Lead.campaign_id, Lead.hopper_tier, Lead.priority.desc(), Lead.next_call_at
)


def hopper_tier(*, callback_due: bool, status: LeadStatus, open_complaint: bool) -> int:
    """Order of service within a campaign (issue 4): callbacks, hot/complaints, the rest."""
    if callback_due:
        return 0
    if status is LeadStatus.HOT or open_complaint:
        return 1
    return 2


class Attempt(Base):
    """One dial of one number. Written before the INVITE leaves; closed with one final result."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_campaign_created", "campaign_id", "created_at"),
        # the cluster's abandon read every heartbeat (db/cluster.py answered_by_others)
        Index("ix_attempts_campaign_answered", "campaign_id", "answered_at"),
        Index("ix_attempts_open", "stage"),
        Index("ix_attempts_lead", "lead_id"),
        Index("ix_attempts_agent_created", "agent_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(Phone)
    dial_mode: Mapped[DialMode] = mapped_column(str_enum(DialMode))
    #: the dialer process that placed the call (closes its own orphans at restart)
    dialer_id: Mapped[str] = mapped_column(String(64), default="")
    node: Mapped[str | None] = mapped_column(String(64))
    trunk: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[AttemptStage] = mapped_column(
        str_enum(AttemptStage), default=AttemptStage.CREATED
    )
    result: Mapped[AttemptResult | None] = mapped_column(str_enum(AttemptResult))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dialing_at: Mapped[datetime | None]
    ringing_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    amd_done_at: Mapped[datetime | None]
    bridged_at: Mapped[datetime | None]
    message_started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wrapup_ended_at: Mapped[datetime | None]
    sip_code: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(200))
    hangup_by: Mapped[str | None] = mapped_column(String(16))
    amd_verdict: Mapped[AmdVerdict] = mapped_column(
        str_enum(AmdVerdict), default=AmdVerdict.NOT_RUN
    )
    amd_ms: Mapped[int | None] = mapped_column(Integer)
    #: why AMD decided as it did, e.g. beep, long_greeting, silence_after_greeting
    amd_cause: Mapped[str | None] = mapped_column(String(64))
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    bridge_latency_ms: Mapped[float | None] = mapped_column(Float)
    ring_s: Mapped[float | None] = mapped_column(Float)
    talk_s: Mapped[float | None] = mapped_column(Float)
    #: the agent's call controls: seconds the customer spent on hold, and how many holds
    hold_s: Mapped[float | None] = mapped_column(Float)
    holds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    disposition: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    next_contact_at: Mapped[datetime | None]
    recording_path: Mapped[str | None] = mapped_column(String(500))
    #: US opt-out: a key pressed during the abandon message
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_due", "campaign_id", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    scope: Mapped[CallbackScope] = mapped_column(str_enum(CallbackScope))
    owner_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    due_at: Mapped[datetime]
    #: the zone the agreed time was given in (the lead's), for display
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|cancelled
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    reminded_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentStateLog(Base):
    __tablename__ = "agent_state_log"
    __table_args__ = (Index("ix_agent_state_log_agent_started", "agent_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    state: Mapped[AgentState] = mapped_column(str_enum(AgentState))
    reason: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)


class AttemptHandler(Base):
    """Who held a connected call when: the agent it was bridged to (``answered``) until a
    transfer, then each agent it was transferred to (``transfer_blind``/``transfer_warm``),
    or the outside number it was transferred to (``transfer_out``, no agent); ``to_at`` is
    null while that one holds it (db/handlers.py)."""

    __tablename__ = "attempt_handlers"
    __table_args__ = (Index("ix_attempt_handlers_attempt", "attempt_id", "from_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    from_at: Mapped[datetime]
    to_at: Mapped[datetime | None]
    #: answered|transfer_blind|transfer_warm|transfer_out
    how: Mapped[str] = mapped_column(String(16))


class DncEntry(Base):
    """Do-not-call: a national registry list (imported) and the company's own list."""

    __tablename__ = "dnc_entries"
    __table_args__ = (UniqueConstraint("phone_e164", "source", name="uq_dnc_phone_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_e164: Mapped[str] = mapped_column(Phone, index=True)
    source: Mapped[str] = mapped_column(String(32), default="internal")  # internal|national|...
    reason: Mapped[str | None] = mapped_column(String(200))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class DailyPlan(Base):
    __tablename__ = "daily_plans"
    __table_args__ = (
        UniqueConstraint("campaign_id", "agent_id", "plan_date", name="uq_daily_plans_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    #: NULL: the campaign's shared part of the plan
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    plan_date: Mapped[date] = mapped_column(Date)
    size: Mapped[int] = mapped_column(Integer, default=0)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[DailyPlanItem]] = relationship(
        cascade="all, delete-orphan", order_by="DailyPlanItem.position"
    )


class DailyPlanItem(Base):
    __tablename__ = "daily_plan_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("daily_plans.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # callback|hot|complaint|due
    due_at: Mapped[datetime | None]


class DailyReport(Base):
    """The end-of-day primary report (docs/domain.md), per campaign and agent."""

    __tablename__ = "daily_reports"
    __table_args__ = (
        UniqueConstraint("report_date", "campaign_id", "agent_id", name="uq_daily_reports_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    report_date: Mapped[date] = mapped_column(Date)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    planned: Mapped[int] = mapped_column(Integer, default=0)
    called: Mapped[int] = mapped_column(Integer, default=0)
    reached: Mapped[int] = mapped_column(Integer, default=0)
    meetings: Mapped[int] = mapped_column(Integer, default=0)
    contracts: Mapped[int] = mapped_column(Integer, default=0)
    callbacks: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AbandonRollup(Base):
    """Periodic abandon-rate figures per campaign and window (recomputable from attempts)."""

    __tablename__ = "abandon_rollups"
    __table_args__ = (Index("ix_abandon_rollups_key", "campaign_id", "window", "computed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    window: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime]
    live: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    rate: Mapped[float] = mapped_column(Float)


class JobLease(Base):
    """One runner per scheduled job occurrence across dialer processes sharing the database."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    occurrence: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    #: a cluster member's heartbeat row only: its supervisor console's base URL, where the
    #: other members forward agent controls and listen-ins for what it serves (migration 0019)
    console_url: Mapped[str | None] = mapped_column(String(300), default=None)


class InstanceBoard(Base):
    """A dialer instance's live wallboard of one campaign, written on its heartbeat (a
    cluster's consoles merge the live instances' rows: dialer/control/cluster_board.py)."""

    __tablename__ = "instance_boards"

    dialer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    at: Mapped[datetime]
    board: Mapped[dict[str, Any]] = mapped_column(JSONType)


class WebUser(Base):
    """An account of the web server (docs/web.md): an agent, a supervisor or an admin."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # agent | supervisor | admin
    #: "$argon2id$..." (or an older "scrypt$..."): never the password itself
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    #: role agent: the agents row of the same login
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser: the SHA-256 of its cookie's random token, never the token."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: last use + the idle limit: the session ends then unless used again
    expires_at: Mapped[datetime]
    #: a short description of the browser (its User-Agent, cut), for `users list`
    client: Mapped[str] = mapped_column(String(120), default="")


class AuditEntry(Base):
    """Who did what, when, through the console, the API or the command line (docs/web.md,
    "Audit"): one row per control or write, written in the transaction of the change itself
    where there is one, so an audited change and its row land together or not at all."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: user (a web account) | token (an API token) | cli (the command line) | rule (the dialer)
    actor_kind: Mapped[str] = mapped_column(String(16))
    #: the account's login or the token's name: never a password, token or phone number
    actor: Mapped[str] = mapped_column(String(100))
    #: dotted verb, e.g. campaign.pause, agent.force_pause, leads.upsert, token.create
    action: Mapped[str] = mapped_column(String(64))
    #: what it acted on, e.g. campaign:sales, agent:alice, lead:123 ("" for none)
    target: Mapped[str] = mapped_column(String(200), default="")
    #: the parameters (new values, counts); no personal data
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiToken(Base):
    """A CRM API token (docs/api.md): the SHA-256 of a random 256-bit secret, never the
    secret itself, its scopes, and when it stops working."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    #: the token's first characters ("dlr_abcd"), shown by `tokens list` to tell tokens apart
    prefix: Mapped[str] = mapped_column(String(16), default="")
    #: scope names, e.g. ["leads:write", "reports:read"]
    scopes: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """A receiver of outcome webhooks (docs/webhooks.md): its URL, the events it wants and
    the secret its deliveries are signed with. The secret is stored as given to the
    subscriber (it must be usable to sign); the API shows it once, at creation."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: event names, e.g. ["disposition.saved", "dnc.added"]
    events: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the API token's name that created it (never the token)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """The outbox: one row per reported change, written in the transaction of the change
    itself (db/webhook_events.py); fanned out to the subscriptions by the delivery worker
    (db/webhooks.py)."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_fanout", "fanned_out", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    #: makes a re-applied write report its change once (e.g. "attempt.finished:42"); NULL: none
    key: Mapped[str | None] = mapped_column(String(120), unique=True)
    #: what deliveries are ordered by: "lead:<id>", "campaign:<id>" or "dnc"
    order_key: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)


class WebhookDelivery(Base):
    """One event to one subscription: pending (with its retry schedule and lease), delivered
    or dead (a dead letter, re-queued by hand)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id", name="uq_webhook_deliveries_event_sub"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "subscription_id", "order_key", "status",
              "event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the X-Dialer-Delivery header: the same on every retry (receivers dedupe by it)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    order_key: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # |delivered|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    #: past this a failed attempt makes it a dead letter (the retry horizon)
    give_up_at: Mapped[datetime]
    #: a worker is posting it until then (another instance skips it; after a crash it expires)
    lease_until: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
