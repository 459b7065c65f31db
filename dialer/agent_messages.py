"""Messages to agents and the supervisor: the ordered agent outbox and the bodies of the
screen pop and the preview (docs/agent-protocol.md)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable

from common.vocabulary import DispositionSpec
from db.store import HistoryEntry, LeadCard
from dialer.ports import AgentBus, AgentMessageKind, Body

log = logging.getLogger(__name__)

#: starts a coroutine as a tracked background task (CampaignRuntime._spawn)
Spawn = Callable[[Coroutine[object, object, None], str], None]
#: a message body built when its turn to be sent comes (None: nothing to send)
BodyLater = Callable[[], Awaitable[Body | None]]


class AgentOutbox:
    """Agent messages, handed to the bus in the order they were queued for each agent.

    Each agent has its own queue and sender, so one agent's screen pop, built from the store,
    never holds back another agent's messages (with one queue for the whole campaign, 200
    agents' pops and states waited in one line); an agent's own messages keep their order."""

    def __init__(self, name: str, bus: AgentBus, spawn: Spawn) -> None:
        self.name = name
        self.bus = bus
        self._spawn = spawn
        self._queues: dict[str, deque[tuple[AgentMessageKind, Body | BodyLater]]] = {}
        self._scheduled: set[str] = set()
        self._sending: dict[str, asyncio.Lock] = {}

    def put(self, login: str, kind: AgentMessageKind, body: Body | BodyLater) -> None:
        """Queue a message for an agent; sent in order by flush(). A `BodyLater` (e.g. the
        screen pop, read from the store) is built when its turn comes, so the messages queued
        after it (the agent's `talking` state) still follow it; None drops it."""
        self._queues.setdefault(login, deque()).append((kind, body))
        if login not in self._scheduled:
            self._scheduled.add(login)
            self._spawn(self._flush_agent(login), "agent-messages")

    async def flush(self, login: str | None = None) -> None:
        """Hand queued messages to the bus, in order: one agent's, or everyone's. The agent
        command handler awaits this before it returns, so a state change reaches the agent
        before the command's ack."""
        for who in [login] if login is not None else list(self._queues):
            await self._flush_agent(who)

    async def _flush_agent(self, login: str) -> None:
        self._scheduled.discard(login)
        lock = self._sending.setdefault(login, asyncio.Lock())
        async with lock:  # one sender per agent at a time, or a later message could overtake
            queue = self._queues.get(login)
            while queue:
                kind, body = queue.popleft()
                try:
                    ready = await body() if callable(body) else body
                    if ready is not None:
                        await self.bus.send_agent(login, kind, ready)
                except Exception:
                    log.exception("campaign %s: %s message to an agent failed", self.name,
                                  kind)


def lead_body(card: LeadCard, *, full: bool) -> dict[str, object]:
    """The lead as an agent sees it; the preview shows no company or custom fields."""
    return {
        "id": card.id, "name": card.name or "-", "phone": card.phone_e164,
        "company": card.company if full else None,
        # only scalar fields: the agent protocol's schema allows nothing else
        "custom_fields": {k: v for k, v in card.custom_fields.items()
                          if isinstance(v, str | int | float | bool)} if full else {},
        "status": card.status.value,
    }


def screen_pop_body(
    attempt_id: int, card: LeadCard, history: Iterable[HistoryEntry], script: str,
    dispositions: Iterable[DispositionSpec],
) -> dict[str, object]:
    return {
        "attempt_id": attempt_id,
        "lead": lead_body(card, full=True),
        "history": [{"attempt_id": h.attempt_id, "at": h.at.isoformat(),
                     "result": h.result.value, "disposition": h.disposition,
                     "notes": h.notes or "", "agent": h.agent} for h in history],
        "script": script,
        # the dialer's own codes (wrap-up timeout) are not the agent's to choose
        "dispositions": [{"code": s.code, "label": s.label, "needs_callback": s.needs_callback,
                          "final": s.final} for s in dispositions if not s.system],
    }


def preview_body(card: LeadCard, script: str) -> dict[str, object]:
    return {"lead": lead_body(card, full=False), "script": script}
