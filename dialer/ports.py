"""The ports of the live driver: what `CampaignRuntime` and `DialerApp` need from the outside.

Each port is a typing Protocol; the production adapters satisfy them structurally:

* `SipPool`: `sip.pool.NodePool` (pjsua2 node processes), or `sip.memory.MemoryPool` in the
  runtime contract suite (tests/runtime). Commands and events are exactly `sip.api`'s.
* `Store`: `db.store.SqlStore`, every query the runtime and the app run.
* `Callability`: the scheduling rules' re-check of leads (`scheduling.facts`), by
  `dialer.hopper.SchedulingCallability`.
* `Metrics`: `dialer.metrics.DialerMetrics` (the calls the runtime makes).
* `AgentBus`: agent and supervisor messages (`DialerApp` over MQTT; a recorder in tests).

Time is the other port: `common.clock.Clock` (SYSTEM_CLOCK in production).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

from common.vocabulary import (
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DialMode,
)
from db.models import Agent, Campaign
from db.outcomes import AttemptOutcome, LastAgentState, OpenOutcome
from db.store import HistoryEntry, HopperLead, LeadCard, Outcome
from scheduling.facts import RefreshStats
from sip import api as sip

#: every event a SIP pool delivers (sip.api's union)
SipEvent = sip.Event
#: what a pool calls with each event, on the event loop thread
SipEventHandler = Callable[[SipEvent], None]


class NodeView(Protocol):
    """One SIP node as the app's gauges read it (sip.pool.NodeHandle has these fields)."""

    index: int
    generation: int
    capacity: int
    in_use: int
    alive: bool


class SipPool(Protocol):
    """A pool of SIP call slots speaking `sip.api` (events go to the handler given at
    construction; a final event - CallEnded, CallLost, or CommandRejected of the Originate -
    ends every accepted call)."""

    @property
    def capacity(self) -> int:
        """Call slots (customer or agent legs) of the live nodes."""
        ...

    @property
    def free_slots(self) -> int:
        """Call slots free right now."""
        ...

    @property
    def free_call_pairs(self) -> int:
        """How many more customer calls, each with its agent slot, fit right now."""
        ...

    @property
    def nodes(self) -> Sequence[NodeView]: ...

    async def start(self) -> None: ...

    async def submit(self, cmd: sip.Command) -> None:
        """Send a command; a failure arrives as a CommandRejected event, never raised."""
        ...

    async def close(self, drain_deadline_s: float = 10.0) -> None: ...


class Store(Protocol):
    """Every query of the runtime and the app (db.store.SqlStore). Methods raise
    `db.repositories.RepositoryError` when the database fails."""

    # start-up (app)
    async def close_orphaned_attempts(self, *, dialer_id: str, now: datetime) -> int: ...
    async def hold_orphaned_outcomes(self, *, dialer_id: str) -> int: ...
    async def upsert_campaign(self, cfg: object) -> Campaign: ...
    async def upsert_agent(self, login: str, sip_uri: str, display_name: str,
                           groups: list[str] | None = None) -> Agent: ...
    async def seed_agent_campaign(self, login: str, campaign: str) -> str | None: ...
    async def campaigns(self) -> list[Campaign]: ...
    async def agent_login(self, agent_id: int) -> str | None: ...
    async def callable_counts(
        self, campaign_ids: Iterable[int], now: datetime
    ) -> dict[int, int]: ...
    async def recent_outcomes(self, campaign_id: int, since: datetime) -> list[Outcome]: ...
    async def answered_outcomes(
        self, campaign_id: int, since: datetime
    ) -> list[tuple[datetime, AttemptResult]]: ...

    # hopper
    async def claim_leads(
        self, *, campaign_id: int, now: datetime, limit: int, holder: str, ttl: timedelta,
    ) -> list[int]: ...
    async def hopper_leads(self, lead_ids: Sequence[int]) -> list[HopperLead]: ...
    async def renew_claims(
        self, *, holder: str, lead_ids: Sequence[int], now: datetime, ttl: timedelta
    ) -> int: ...
    async def release_claims(self, *, holder: str, lead_ids: Sequence[int]) -> int: ...
    async def claim_lead(
        self, *, lead_id: int, campaign_id: int, now: datetime, holder: str, ttl: timedelta,
        phone_e164: str | None = None,
    ) -> HopperLead | None: ...

    # attempts
    async def create_attempt(
        self, *, now: datetime, campaign_id: int, lead_id: int, phone_e164: str,
        dial_mode: DialMode, dialer_id: str, trunk: str | None, agent_id: int | None,
    ) -> int: ...
    async def update_attempt(self, attempt_id: int, **fields: object) -> None: ...
    async def finish_attempt(
        self, attempt_id: int, *, result: AttemptResult, ended_at: datetime, **fields: object,
    ) -> bool: ...

    # leads and agents
    async def update_lead(
        self, lead_id: int, *, now: datetime, callback_pending: bool = False, **fields: object,
    ) -> None: ...
    async def add_callback(
        self, *, campaign_id: int, lead_id: int, scope: CallbackScope,
        owner_agent_id: int | None, due_at: datetime, attempt_id: int | None,
        notes: str | None, created_at: datetime,
    ) -> None: ...
    async def lead_phone(self, lead_id: int) -> str | None: ...
    async def add_dnc(
        self, phone_e164: str, *, now: datetime, reason: str, attempt_id: int | None,
    ) -> None: ...
    async def is_dnc(self, phone_e164: str) -> bool: ...
    async def log_agent_state(
        self, *, agent_id: int, campaign_id: int | None, state: AgentState,
        reason: str | None, at: datetime,
    ) -> None: ...
    async def lead_card(self, lead_id: int) -> LeadCard | None: ...

    # nothing lost: the needs-outcome queue and the agents' last states (db.outcomes)
    async def hold_for_outcome(self, attempt_ids: Sequence[int]) -> int: ...
    async def open_outcomes(
        self, *, campaign_id: int | None = None, agent_id: int | None = None,
    ) -> list[OpenOutcome]: ...
    async def attempt_outcome(self, attempt_id: int) -> AttemptOutcome | None: ...
    async def release_outcome(self, attempt_id: int) -> None: ...
    async def last_agent_states(self, campaign_id: int) -> list[LastAgentState]: ...
    async def lead_history(
        self, lead_id: int, *, exclude_attempt_id: int | None = None, limit: int = 20,
    ) -> list[HistoryEntry]: ...
    # agent transfers: who held a call when (db.handlers)
    async def hand_over(self, attempt_id: int, agent_id: int | None, at: datetime, how: str,
                        ) -> None: ...
    async def close_handlers(self, attempt_id: int, at: datetime) -> None: ...


class Callability(Protocol):
    """Re-check the calling rules of a campaign's leads at `now` (next_call_at, tiers)."""

    async def refresh(
        self, *, campaign_id: int, now: datetime, lead_ids: Sequence[int] | None = None,
        abandon_lockout: timedelta,
    ) -> RefreshStats: ...


class Metrics(Protocol):
    """The calls the runtime makes on `dialer.metrics.DialerMetrics`."""

    def attempt_finished(
        self, campaign: str, result: AttemptResult | str, sip_code: int | None = None,
        ring_s: float | None = None, talk_s: float | None = None,
    ) -> None: ...
    def observe_answer_to_agent(self, campaign: str, seconds: float) -> None: ...
    def observe_amd(self, campaign: str, verdict: AmdVerdict | str, seconds: float) -> None: ...
    def observe_wrapup(self, campaign: str, seconds: float) -> None: ...
    def calls_lost(self, campaign: str, n: int = 1) -> None: ...
    def held_back(self, campaign: str, reason: str, n: int = 1) -> None: ...
    def dnc_hit(self, campaign: str, n: int = 1) -> None: ...
    def set_in_flight(
        self, campaign: str, stage_counts: Mapping[AttemptStage | str, int]
    ) -> None: ...
    def set_agents(self, campaign: str, state_counts: Mapping[AgentState | str, int]) -> None: ...
    def set_dial_level(self, campaign: str, level: float) -> None: ...
    def set_answer_rate(self, campaign: str, rate: float) -> None: ...
    def set_abandon(self, campaign: str, window: str, rate: float, cap: float) -> None: ...
    def set_hopper(self, campaign: str, depth: int, callable: int) -> None: ...


#: the agent messages the runtime sends (dialer.bus.messages: StateEvt, ScreenPopEvt, ...)
AgentMessageKind = Literal["state", "screen_pop", "call_ended", "preview", "callback_reminder"]
#: a message body or supervisor event: JSON-able values (validated by the bus's models)
Body = Mapping[str, object]


class AgentBus(Protocol):
    """Messages to agents (by login) and to the supervisor stream."""

    async def send_agent(self, login: str, kind: AgentMessageKind, body: Body) -> None: ...

    async def supervisor(self, event: Body) -> None: ...
