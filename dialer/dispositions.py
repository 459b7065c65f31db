"""Nothing lost: a disposition is acknowledged only once it is in the database, a re-sent one
is answered `already_disposed`, a connected call whose disposition was lost holds its lead as
"needs outcome" until someone records it, and agents are restored after a restart
(docs/agent-protocol.md, "Nothing lost"). The runtime's own code, in a file of its own like
dialer.sip_events: these functions take the `CampaignRuntime`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from common.vocabulary import AgentState, AttemptResult, AttemptStage, CallbackScope
from dialer.agent_messages import screen_pop_body
from dialer.call_controls import is_on_hold
from dialer.core.actions import LeadUpdate
from dialer.core.errors import (
    AlreadyDisposedError,
    IllegalTransitionError,
    InvalidDispositionError,
    NotYourCallError,
    UnknownCallError,
)
from dialer.core.outcomes import apply_disposition
from dialer.core.tickets import LeadTicket
from sip import api as sip

if TYPE_CHECKING:
    from dialer.runtime import CampaignRuntime
    from dialer.sip_events import LiveCall

log = logging.getLogger(__name__)

#: how long an agent's `disposition` waits for its commit before the reply says `not_saved`
SAVE_WAIT_S = 10.0

#: the pause reason of an agent restored after a restart while a call of theirs waits for its
#: outcome: they finish that outcome before the next call, as in a wrap-up (a restart cannot
#: keep the wrap-up itself: the call is gone); their late disposition makes them ready again
OUTCOME_PAUSE = "outcome"

#: a state restored after a restart: where the agent was (the last logged state) -> where it
#: goes. A call in progress did not survive the restart, so reserved/talking/wrap_up agents are
#: free of it; a talking or wrapping-up agent whose call waits for its outcome is paused
#: (OUTCOME_PAUSE) until it is given, the others are ready.
RESTORED_STATE = {
    AgentState.READY: AgentState.READY,
    AgentState.RESERVED: AgentState.READY,
    AgentState.TALKING: AgentState.READY,
    AgentState.WRAP_UP: AgentState.READY,
    AgentState.PAUSED: AgentState.PAUSED,
    AgentState.LOGGED_OUT: AgentState.LOGGED_OUT,
}


class DispositionNotSavedError(Exception):
    """The disposition was applied but is not in the database yet (it is being retried):
    the desktop sends the same one again later and gets `already_disposed` once it is."""


class SaveMarks:
    """Per attempt of this run: has its disposition been committed? (set by the record
    writer). Only the most recent `keep` are remembered; older re-sends are answered from the
    database."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self.saved: dict[int, bool] = {}

    def expect(self, attempt_id: int) -> None:
        self.saved.setdefault(attempt_id, False)
        while len(self.saved) > self.keep:
            del self.saved[next(iter(self.saved))]


def cut_by_fault(rt: CampaignRuntime, call: LiveCall, result: AttemptResult) -> AttemptResult:
    """The result to record: a call the engine counts as connected (the person talked to an
    agent) whose line was lost to a fault (a node died) is recorded `lost`, with its talk
    time; the agent still wraps it up, and its lead goes back to that agent (see below)."""
    end = call.sip_end
    if result is AttemptResult.CONNECTED and end is not None \
            and end.result is AttemptResult.LOST:
        call.cut_by_fault = True
        log.warning("campaign %s: attempt %s was cut by a fault while agent %s talked; the "
                    "agent calls back", rt.name, call.attempt_id, call.agent_login)
        return AttemptResult.LOST
    return result


def call_back_after_a_cut(rt: CampaignRuntime, call: LiveCall, u: LeadUpdate) -> LeadUpdate:
    """A call cut by a fault is never redialed to someone else: unless the agent's outcome
    ends the lead or books its own callback, the lead becomes a callback owned by the agent
    who was talking, due at once (the caller calls back and introduces themselves again)."""
    if u.next_contact_at is None or u.dnc or u.callback_scope is not None \
            or call.agent_login is None:
        return u
    log.info("campaign %s: attempt %s: the lead is a callback for agent %s, due now",
             rt.name, call.attempt_id, call.agent_login)
    return dataclasses.replace(u, next_contact_at=u.at, owner=call.agent_login,
                               callback_scope=CallbackScope.AGENT)


def queue_lead_update(rt: CampaignRuntime, u: LeadUpdate, lead_id: int,
                      attempt_id: int | None) -> None:
    """Queue a lead outcome as separate writes, each one transaction or idempotent, so the
    record writer may retry any of them after a database outage without doing it twice."""
    owner_id = rt.agents[u.owner].id if u.owner in rt.agents else None
    fields: dict[str, object] = {
        "status": u.status, "next_contact_at": u.next_contact_at, "attempts": u.attempts,
        "owner_agent_id": owner_id,
    }
    if u.result is not None:
        fields["last_result"] = u.result
        fields["last_attempt_at"] = u.at
        if u.result is AttemptResult.ABANDONED:
            fields["last_abandoned_at"] = u.at
    if u.complaint_closed:
        fields["has_open_complaint"] = False
    callback = u.callback_scope is not None and u.next_contact_at is not None
    rt._write(rt.store.update_lead, lead_id, now=u.at, callback_pending=callback, **fields)
    if callback and u.callback_scope is not None and u.next_contact_at is not None:
        rt._write(rt.store.add_callback, campaign_id=rt.campaign.id, lead_id=lead_id,
                  scope=u.callback_scope,
                  owner_agent_id=owner_id if u.callback_scope is CallbackScope.AGENT else None,
                  due_at=u.next_contact_at, attempt_id=attempt_id, notes=u.notes,
                  created_at=u.at)
    if u.dnc:
        rt._write(_store_agent_dnc, rt, lead_id, attempt_id, u.at)
    if attempt_id is not None and u.disposition is not None:
        # last: once the disposition is on the attempt, every part of the outcome is saved
        rt._write(_store_disposition, rt, attempt_id, u)
    rt._write(rt.callability.refresh, campaign_id=rt.campaign.id, now=u.at,
              lead_ids=[lead_id], abandon_lockout=rt.abandon_lockout)


def hold_overdue_wrapup(rt: CampaignRuntime, call: LiveCall, u: LeadUpdate) -> LeadUpdate:
    """The engine closed a wrap-up that got no disposition within the campaign's limit (and
    made the agent ready). No outcome was given, so none is made up: the call waits as "needs
    outcome" (its lead is not called) and the agent's desktop is told, so a late disposition
    closes it. Returns the lead update to queue after the hold: counters and last result, no
    disposition."""
    log.warning("campaign %s: agent %s gave no disposition within %.0f s; attempt %s waits "
                "as 'needs outcome'", rt.name, call.agent_login, rt.campaign.max_wrapup_s,
                call.attempt_id)
    # first, so the lead's callability refresh queued after it already sees the hold
    rt._write(_hold_and_tell, rt, call.attempt_id, call.agent_login)
    return dataclasses.replace(u, disposition=None)


async def _hold_and_tell(rt: CampaignRuntime, attempt_id: int, login: str | None) -> None:
    await rt.store.hold_for_outcome([attempt_id])
    if login is not None:
        await send_state(rt, login)


async def _store_disposition(rt: CampaignRuntime, attempt_id: int, u: LeadUpdate) -> None:
    await rt.store.update_attempt(attempt_id, disposition=u.disposition, notes=u.notes,
                                  next_contact_at=u.next_contact_at, wrapup_ended_at=u.at)
    await rt.store.release_outcome(attempt_id)  # a held lead is free again
    rt.dispositions.saved[attempt_id] = True


async def _store_agent_dnc(rt: CampaignRuntime, lead_id: int, attempt_id: int | None,
                           at: datetime) -> None:
    phone = await rt.store.lead_phone(lead_id)
    if phone:
        await rt.store.add_dnc(phone, now=at, reason="agent request", attempt_id=attempt_id)
        if rt.metrics is not None:
            rt.metrics.dnc_hit(rt.name)


async def disposition(
    rt: CampaignRuntime, login: str, attempt_id: int, code: str, notes: str,
    next_contact_at: datetime | None, scope: CallbackScope,
) -> None:
    """An agent's `disposition` command; returns once it is committed.

    For the call the agent is wrapping up: the engine applies it (the agent moves on at once).
    For a call of this agent that waits as "needs outcome": it is recorded without any change
    of the agent's state. A re-send of a recorded one raises AlreadyDisposedError."""
    call = next((c for c in rt.calls.values() if c.attempt_id == attempt_id), None)
    if call is not None:
        if call.agent_login != login:
            raise NotYourCallError(f"attempt {attempt_id} is not this agent's call")
        rt.agent_disposition(login, attempt_id, code, notes, next_contact_at, scope)
        rt.dispositions.expect(attempt_id)
    elif attempt_id in rt.dispositions.saved:
        await _wait_saved(rt, attempt_id)
        raise AlreadyDisposedError(f"attempt {attempt_id} already has its disposition")
    else:
        await _late_disposition(rt, login, attempt_id, code, notes, next_contact_at, scope)
    await _wait_saved(rt, attempt_id)


async def _wait_saved(rt: CampaignRuntime, attempt_id: int) -> None:
    try:
        await asyncio.wait_for(rt.flush(), SAVE_WAIT_S)
    except TimeoutError:
        pass
    if not rt.dispositions.saved.get(attempt_id):
        raise DispositionNotSavedError(
            f"the disposition of attempt {attempt_id} is applied but not saved within "
            f"{SAVE_WAIT_S:.0f} s (the database is down or behind); send the same disposition "
            "again in a while")


async def _late_disposition(
    rt: CampaignRuntime, login: str, attempt_id: int, code: str, notes: str,
    next_contact_at: datetime | None, scope: CallbackScope,
) -> None:
    facts = await rt.store.attempt_outcome(attempt_id)
    agent = rt.agents.get(login)
    if facts is None or facts.campaign_id != rt.campaign.id or agent is None:
        raise UnknownCallError(f"attempt {attempt_id}")
    if facts.agent_id != agent.id:
        raise NotYourCallError(f"attempt {attempt_id} is not this agent's call")
    if facts.disposition is not None:
        raise AlreadyDisposedError(f"attempt {attempt_id} already has its disposition")
    if not facts.held:
        raise UnknownCallError(f"attempt {attempt_id} is not waiting for a disposition")
    if login not in rt.engine.board or \
            rt.engine.board.get(login).state is AgentState.LOGGED_OUT:
        raise IllegalTransitionError(f"agent {login}", "logged_out", "disposition")
    spec = rt.engine.config.dispositions.get(code)
    if spec is None:
        raise InvalidDispositionError(
            f"unknown disposition code {code!r}; known: {sorted(rt.engine.config.dispositions)}")
    if spec.system:
        raise InvalidDispositionError(f"disposition {code!r} is set by the dialer only")
    (lead,) = await rt.store.hopper_leads([facts.lead_id])
    ticket = LeadTicket(
        lead_id=str(lead.id), phone_e164=lead.phone_e164, priority=lead.priority,
        due_at=lead.next_contact_at or rt.clock.now(), status=lead.status,
        has_open_complaint=lead.has_open_complaint, attempts=lead.attempts,
        timezone=lead.timezone)
    update = apply_disposition(ticket, spec, rt.clock.now(), rt.engine.config.retry,
                               agent_id=login, next_contact_at=next_contact_at,
                               callback_scope=scope, notes=notes or None)
    rt.dispositions.expect(attempt_id)
    log.info("campaign %s: agent %s recorded the lost outcome of attempt %s", rt.name, login,
             attempt_id)
    queue_lead_update(rt, update, facts.lead_id, attempt_id)
    rec = rt.engine.board.get(login)
    if rec.state is AgentState.PAUSED and rec.reason == OUTCOME_PAUSE:
        # restored to finish this outcome: the last one done ends that "wrap-up"
        left = [o for o in await rt.store.open_outcomes(campaign_id=rt.campaign.id,
                                                         agent_id=agent.id)
                if o.attempt_id != attempt_id]
        if not left:
            rt._engine(rt.engine.agent_ready, login)


async def hold_open_wrapups(rt: CampaignRuntime) -> int:
    """At a stop: connected calls still waiting for their disposition hold their leads as
    "needs outcome" (the agent is told after the restart). Returns how many."""
    await rt.flush()
    open_ids = [c.attempt_id for c in rt.calls.values() if c.engine_done and c.agent_login]
    held = await rt.store.hold_for_outcome(open_ids) if open_ids else 0
    if held:
        log.warning("campaign %s: %d calls still in wrap-up at the stop wait as 'needs "
                    "outcome'; their leads are not called until the outcome is recorded",
                    rt.name, held)
    return held


async def restore_agents(rt: CampaignRuntime) -> None:
    """At start: put each agent back where the agent state log says it was (see
    RESTORED_STATE), and tell its desktop, with its calls waiting for an outcome."""
    by_id = {a.id: login for login, a in rt.agents.items()}
    owing = {o.agent_id for o in await rt.store.open_outcomes(campaign_id=rt.campaign.id)}
    for last in await rt.store.last_agent_states(rt.campaign.id):
        login = by_id.get(last.agent_id)
        target = RESTORED_STATE.get(last.state, AgentState.LOGGED_OUT)
        reason = last.reason
        if last.state in (AgentState.TALKING, AgentState.WRAP_UP) and last.agent_id in owing:
            target, reason = AgentState.PAUSED, OUTCOME_PAUSE
        if login is None or target is AgentState.LOGGED_OUT:
            continue
        if target is AgentState.READY:
            rt._engine(rt.engine.agent_login, login, ready=True)
        else:
            rt._engine(rt.engine.agent_login, login)
            if reason and reason != "login":
                rt._engine(rt.engine.agent_pause, login, reason)
        log.info("campaign %s: agent %s restored as %s (was %s)", rt.name, login,
                 target.value, last.state.value)
        await send_state(rt, login)


def state_body(rt: CampaignRuntime, login: str, state: AgentState | None = None,
               reason: str | None = None) -> dict[str, object]:
    """The `state` message of an agent: its state, why, and the call it concerns."""
    board = rt.engine.board
    rec = board.get(login) if login in board else None
    if state is None:
        state = rec.state if rec is not None else AgentState.LOGGED_OUT
        reason = rec.reason if rec is not None else None
    call = rt.calls.get(rec.call_id) if rec is not None and rec.call_id else None
    busy = state in (AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP)
    # the engine's times are POSIX seconds of the campaign clock
    since = datetime.fromtimestamp(rec.since, UTC).isoformat() \
        if rec is not None and rec.since > 0 and rec.state is state else None
    return {"state": state.value, "reason": reason[:200] if reason else reason,
            "attempt_id": call.attempt_id if call is not None and busy else None,
            "since": since,
            "on_hold": call is not None and busy and is_on_hold(rt, call.attempt_id)}


def hang_up(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """The agent's `hangup`: end the call it is talking on (it then wraps up as usual)."""
    call = next((c for c in rt.calls.values() if c.attempt_id == attempt_id
                 and not c.engine_done), None)
    if call is None or call.agent_login != login or call.handed_out:  # (transferred out)
        raise UnknownCallError(f"attempt {attempt_id} is not a live call of agent {login}")
    stage = rt.engine.call_stage(call.call_id)
    if stage is not AttemptStage.BRIDGED:
        raise IllegalTransitionError(f"attempt {attempt_id}", str(stage), "hangup")
    log.info("campaign %s: agent %s hung up attempt %s", rt.name, login, attempt_id)
    rt._submit(sip.Hangup(call_id=call.call_id, reason="agent hung up"))


def prefetch_screen_pop(rt: CampaignRuntime, call: LiveCall) -> None:
    """Read the lead's card and history while the call rings, so its screen pop goes out the
    moment an agent is chosen instead of after two database reads on a busy dialer (most
    dials never need them; two small indexed reads per dial cost less than a late pop)."""
    task = asyncio.ensure_future(screen_pop_of(rt, call))
    # a call that is never bridged drops its task: retrieve a failure so none is left unread
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    call.pop_prefetch = task


async def prefetched_screen_pop(rt: CampaignRuntime, call: LiveCall) -> dict[str, object] | None:
    """The call's screen pop: the one read while it rang, else read now."""
    task, call.pop_prefetch = call.pop_prefetch, None
    if task is not None:
        try:
            return await task
        except Exception as e:  # the database failed then: it may be back now
            log.debug("campaign %s: prefetched screen pop failed (%s); reading again",
                      rt.name, e)
    return await screen_pop_of(rt, call)


async def screen_pop_of(rt: CampaignRuntime, call: LiveCall) -> dict[str, object] | None:
    """The screen pop of a call: the lead's card, its history, the script, the catalog."""
    card = await rt.store.lead_card(call.lead_id)
    if card is None:
        return None
    history = await rt.store.lead_history(call.lead_id, exclude_attempt_id=call.attempt_id)
    return dict(screen_pop_body(call.attempt_id, card, history, rt.campaign.script or "",
                                rt.engine.config.dispositions.values()))


async def send_state(rt: CampaignRuntime, login: str, *, catalog: bool = False) -> None:
    """The agent's full `state` (the reply to login/get_state, and after a restore)."""
    agent = rt.agents.get(login)
    if agent is None:
        return
    body = state_body(rt, login)
    body["needs_outcome"] = [o.attempt_id for o in
                             await rt.store.open_outcomes(campaign_id=rt.campaign.id,
                                                          agent_id=agent.id)]
    if catalog:
        body["dispositions"] = [
            {"code": s.code, "label": s.label, "needs_callback": s.needs_callback,
             "final": s.final}
            for s in rt.engine.config.dispositions.values() if not s.system]
    rt._to_agent(login, "state", body)
    call = next((c for c in rt.calls.values() if c.attempt_id == body["attempt_id"]), None)
    if catalog and call is not None:
        # a desktop that was away (a broker restart) missed the pop and the call's end:
        # it gets them again, so it can show the lead and send the disposition
        rt._outbox.put(login, "screen_pop", functools.partial(screen_pop_of, rt, call))
        if call.engine_done or call.handed_out:
            end = call.sip_end
            rt._to_agent(login, "call_ended", {
                "attempt_id": call.attempt_id,
                "talk_s": float(end.talk_s or 0.0) if end is not None else 0.0})
