"""Agent-to-agent transfers in the live dialer (docs/call-controls.md, "Transfer").

The agent commands `transfer`, `transfer_complete` and `transfer_cancel` (dispatched by
dialer.agent_commands) drive the engine's transfer inputs (dialer.core.transfer) and the SIP
pool's `TransferAgent` / `CompleteTransfer` / `CancelTransfer` (sip.api_controls); each one is
acked once the node reports the result, like hold and resume (dialer.call_controls):

* `transfer` (blind): the engine reserves the receiving agent (named, or the longest-idle
  ready one of a group), its desktop gets the screen pop with the lead's history and the first
  agent's notes, the node rings its phone; acked at `AgentTransferred` (the customer is with
  the new agent, the first agent is free), `error control_failed` at `TransferFailed` (the
  call stays with the first agent, the target is ready again).
* `transfer` (warm): the customer is put on hold; acked at `ConsultStarted` (the two agents
  talk). `transfer_complete` hands the customer over (acked at `AgentTransferred`, the
  customer is taken off hold); `transfer_cancel` hangs up the other agent and takes the
  customer off hold again (acked once the first agent hears the customer). A warm transfer
  whose target never answers also takes the customer off hold.

* `transfer` to a ``number`` (external): the number passes the manual-dial rules (parsed in
  the campaign's region, DNC, the callee's calling window: `manual_dial_refused` otherwise)
  and is called through the campaign's trunk, without the auto-answer headers; blind or
  warm as above. At `AgentTransferred` the customer talks with the outside party, this agent
  is in wrap-up and gets `call_ended` at once: it owes the call's disposition (decision: no
  other agent heard the call). The attempt stays open until the outside parties hang up.

Who held the call when: `attempt_handlers` rows (db.handlers), written from the SIP events
here: `answered` at the bridge, `transfer_blind` / `transfer_warm` / `transfer_out` (no
agent) at `AgentTransferred` (closing the previous row), closed at the call's end.

The runtime's own code, kept in this file (dialer/runtime.py stays within its size): the
engine input is run here and its `TransferTo` carried out here, the rest by the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.vocabulary import AgentState, AttemptStage
from dialer import call_controls, manual_dial
from dialer.call_controls import CallControlError
from dialer.core.actions import Action, TransferTo
from dialer.core.errors import CoreError, IllegalTransitionError, UnknownAgentError
from dialer.core.manual import Refusal
from dialer.dispositions import screen_pop_of
from sip import api as sip
from sip.api_controls import (
    AgentTransferred,
    CancelTransfer,
    CompleteTransfer,
    ConsultStarted,
    TransferAgent,
    TransferFailed,
)

if TYPE_CHECKING:
    from dialer.runtime import CampaignRuntime
    from dialer.sip_events import LiveCall

log = logging.getLogger(__name__)

#: how long the receiving agent's phone may ring (auto-answer phones answer at once)
TRANSFER_ANSWER_TIMEOUT_S = 15.0
#: how long an outside number may ring: a person walks to the phone
EXTERNAL_ANSWER_TIMEOUT_S = 30.0
_TRANSFER_COMMANDS = frozenset({"TransferAgent", "CompleteTransfer", "CancelTransfer"})
_SEQ = itertools.count(1)


@dataclass(slots=True)
class _Pending:
    """A transfer in progress on one call, as the runtime sees it."""

    from_login: str
    #: the receiving agent; None: an outside number
    to_login: str | None
    mode: str
    notes: str
    agent_call_id: str
    #: "done" (AgentTransferred), "consult" (ConsultStarted), "cancel" (cancelled)
    waiters: dict[str, list[asyncio.Future[object]]] = field(default_factory=dict)


_REGISTRY: weakref.WeakKeyDictionary[CampaignRuntime, dict[str, _Pending]] = \
    weakref.WeakKeyDictionary()


def _pending(rt: CampaignRuntime) -> dict[str, _Pending]:
    p = _REGISTRY.get(rt)
    if p is None:
        p = _REGISTRY[rt] = {}
    return p


def _input(rt: CampaignRuntime, fn: Callable[..., list[Action]], *args: object,
           **kw: object) -> list[Action]:
    """An engine input at `now`, its actions carried out by the runtime (it has no use for
    `TransferTo`: that one is the caller's); see CampaignRuntime._input."""
    try:
        actions = fn(rt.clock.now(), *args, **kw)
    except CoreError:
        rt._wake.set()
        raise
    rt._apply(actions)
    return actions


def _expect(p: _Pending, kind: str) -> asyncio.Future[object]:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    p.waiters.setdefault(kind, []).append(fut)
    return fut


def _settle(p: _Pending, kind: str, value: object = None,
            exc: Exception | None = None) -> None:
    for fut in p.waiters.pop(kind, []):
        if not fut.done():
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)


async def _wait(fut: asyncio.Future[object], what: str, timeout_s: float) -> object:
    try:
        return await asyncio.wait_for(fut, timeout_s)
    except TimeoutError:
        raise CallControlError(f"{what}: no answer from the telephony node in "
                               f"{timeout_s:g} s") from None


# ------------------------------------------------------------------ agent commands
async def transfer(rt: CampaignRuntime, login: str, attempt_id: int, *, to: str | None,
                   group: str | Sequence[str] | None, mode: str, notes: str = "",
                   number: str | None = None) -> str | None:
    """The agent's `transfer`; returns the receiving agent's login (None for an outside
    ``number``) once done (blind) or once it answered (warm)."""
    call = call_controls._agent_call(rt, login, attempt_id, "transfer")
    if isinstance(group, str):
        group = group_members(rt, group)
    visitor = await _bring_target(rt, login, to, group) if number is None else None
    outside: str | None = None
    if number is not None:
        got = await manual_dial.check(
            rt.store, rt.campaign, raw_number=number, state=AgentState.PAUSED, has_lead=True,
            lead_country=None, lead_zone=None, now=rt.clock.now())
        if isinstance(got, Refusal):
            raise manual_dial.ManualDialRefused(got.code.value, got.message)
        outside = got
    try:
        actions = _input(rt, rt.engine.transfer_start, call.call_id, login,
                         to_agent=visitor or to, group=None if visitor else group,
                         consult=mode == "warm", external=outside is not None,
                         visitor=visitor is not None)
    except CoreError:
        if visitor is not None and rt.visits is not None:
            rt.visits.give_back(rt, visitor)
        raise
    tt = next(a for a in actions if isinstance(a, TransferTo))
    p = _Pending(login, tt.to_agent, mode, notes, f"{call.call_id}-xfer-{next(_SEQ)}")
    _pending(rt)[call.call_id] = p
    if tt.to_agent is not None:
        rt._outbox.put(tt.to_agent, "screen_pop", functools.partial(_screen_pop, rt, call, p))
    fut = _expect(p, "consult" if tt.consult else "done")
    try:
        if outside is not None:  # through the campaign's trunk, rung like any callee
            cmd = TransferAgent(call_id=call.call_id, agent_call_id=p.agent_call_id,
                                agent_uri=rt.target_for(outside), headers={},
                                trunk=rt.campaign.trunk,
                                answer_timeout_s=EXTERNAL_ANSWER_TIMEOUT_S, consult=tt.consult)
        else:
            agent = rt.agents.get(tt.to_agent or "")
            if agent is None:
                raise sip.SipApiError(f"agent {tt.to_agent} has no phone")
            cmd = TransferAgent(call_id=call.call_id, agent_call_id=p.agent_call_id,
                                agent_uri=agent.sip_uri,
                                answer_timeout_s=TRANSFER_ANSWER_TIMEOUT_S, consult=tt.consult)
    except sip.SipApiError as e:
        _pending(rt).pop(call.call_id, None)
        rt._engine(rt.engine.transfer_failed, call.call_id, "invalid")
        raise CallControlError(f"transfer refused: {e}") from None
    # the outside number is never logged (personal data)
    log.info("campaign %s: agent %s transfers attempt %s to %s (%s)", rt.name, login,
             attempt_id, tt.to_agent or "an outside number", mode)
    try:
        await rt.pool.submit(cmd)
    except Exception as e:  # the pool is closing: the target is free again
        if _pending(rt).pop(call.call_id, None) is p:
            rt._engine(rt.engine.transfer_failed, call.call_id, "not sent")
        raise CallControlError(f"transfer not sent: {e}") from None
    try:
        await _wait(fut, "transfer", cmd.answer_timeout_s + 5)
    except CallControlError:
        if _pending(rt).get(call.call_id) is p:  # still running: its TransferFailed frees it
            rt._submit(CancelTransfer(call_id=call.call_id))
        raise
    return tt.to_agent


async def transfer_complete(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """The agent's `transfer_complete` (warm): returns once the customer is with the agent
    consulted."""
    call = call_controls._agent_call(rt, login, attempt_id, "transfer_complete")
    p = _pending(rt).get(call.call_id)
    tr = rt.engine.transfer_of(call.call_id)
    if p is None or tr is None or not tr.consulting:
        raise IllegalTransitionError(f"attempt {attempt_id}", "no consultation",
                                     "transfer_complete")
    fut = _expect(p, "done")
    # the node takes the customer off hold right after the swap: acked once it has
    resumed = call_controls._expect(rt, call.call_id, "resume") \
        if call_controls.is_on_hold(rt, attempt_id) else None
    await rt.pool.submit(CompleteTransfer(call_id=call.call_id))
    await _wait(fut, "transfer_complete", call_controls.CONTROL_TIMEOUT_S)
    if resumed is not None:
        with contextlib.suppress(CallControlError):  # the call ended meanwhile
            await _wait(resumed, "transfer_complete", call_controls.CONTROL_TIMEOUT_S)


async def transfer_cancel(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """The agent's `transfer_cancel`: returns once the other agent's leg is gone and (warm)
    the customer is off hold, back with this agent."""
    call = call_controls._agent_call(rt, login, attempt_id, "transfer_cancel")
    p = _pending(rt).get(call.call_id)
    if p is None:
        raise IllegalTransitionError(f"attempt {attempt_id}", "no transfer", "transfer_cancel")
    fut = _expect(p, "cancel")
    await rt.pool.submit(CancelTransfer(call_id=call.call_id))
    await _wait(fut, "transfer_cancel", call_controls.CONTROL_TIMEOUT_S)
    if call_controls.is_on_hold(rt, attempt_id):
        await call_controls.resume(rt, login, attempt_id)


async def _screen_pop(rt: CampaignRuntime, call: LiveCall, p: _Pending) -> dict[str, object] | None:
    body = await screen_pop_of(rt, call)
    if body is not None:
        body["transfer"] = {"from_agent": p.from_login, "mode": p.mode, "notes": p.notes}
    return body


async def _resume_after_failure(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """A warm transfer failed: the customer, on hold, is given back to the first agent."""
    with contextlib.suppress(CoreError, CallControlError):
        if call_controls.is_on_hold(rt, attempt_id):
            await call_controls.resume(rt, login, attempt_id)


# ------------------------------------------------------------------ SIP events
def on_sip_event(rt: CampaignRuntime, call: LiveCall, ev: object) -> None:
    """Every SIP event of a live call (from dialer.sip_events): the transfers' part."""
    pending = _pending(rt)
    p = pending.get(call.call_id)
    if isinstance(ev, sip.CallBridged):
        _hand_over(rt, call, call.agent_login, ev.wall, "answered")
    elif isinstance(ev, ConsultStarted) and p is not None:
        rt._engine(rt.engine.transfer_consulting, call.call_id)
        _settle(p, "consult", ev)
    elif isinstance(ev, AgentTransferred) and p is not None and p.to_login is None:
        del pending[call.call_id]
        _handed_out(rt, call, p, ev)
    elif isinstance(ev, AgentTransferred) and p is not None:
        del pending[call.call_id]
        rt._engine(rt.engine.transfer_done, call.call_id)
        call.agent_login = p.to_login
        _hand_over(rt, call, p.to_login, ev.wall, f"transfer_{p.mode}")
        rt._supervise_call(call, AttemptStage.BRIDGED)  # the console sees the new agent
        to = rt.agents.get(p.to_login)
        if to is not None:
            rt._write(rt.store.update_attempt, call.attempt_id, agent_id=to.id)
        log.info("campaign %s: attempt %s transferred from %s to %s (%.0f ms)", rt.name,
                 call.attempt_id, p.from_login, p.to_login, ev.took_ms)
        _settle(p, "done", ev)
        _settle(p, "consult", ev)
    elif isinstance(ev, TransferFailed) and p is not None:
        _failed(rt, call, p, ev.reason or "failed", ev)
    elif isinstance(ev, sip.CommandRejected) and p is not None \
            and ev.command in _TRANSFER_COMMANDS:
        if ev.command == "TransferAgent":
            _failed(rt, call, p, f"refused: {ev.error}", ev)
        else:
            kind = "done" if ev.command == "CompleteTransfer" else "cancel"
            _settle(p, kind, exc=CallControlError(f"{ev.command} refused: {ev.error}"))
    elif isinstance(ev, sip.CallEnded | sip.CallLost):
        rt._write(rt.store.close_handlers, call.attempt_id, ev.wall)
        if p is not None:
            del pending[call.call_id]
            for kind in list(p.waiters):
                _settle(p, kind, exc=CallControlError("the call ended"))


def _handed_out(rt: CampaignRuntime, call: LiveCall, p: _Pending,
                ev: AgentTransferred) -> None:
    """An external transfer is done: the customer talks with the outside party; the first
    agent wraps the call up now (it stays the attempt's agent and owes the disposition)."""
    rt._engine(rt.engine.transfer_done, call.call_id)
    call.handed_out = True
    rt._write(rt.store.hand_over, call.attempt_id, None, ev.wall, "transfer_out")
    talk_s = 0.0 if call.answered_mono is None else max(0.0, ev.mono - call.answered_mono)
    rt._to_agent(p.from_login, "call_ended", {"attempt_id": call.attempt_id,
                                              "talk_s": round(talk_s, 3)})
    log.info("campaign %s: attempt %s transferred from %s to an outside number (%.0f ms)",
             rt.name, call.attempt_id, p.from_login, ev.took_ms)
    _settle(p, "done", ev)
    _settle(p, "consult", ev)


def _failed(rt: CampaignRuntime, call: LiveCall, p: _Pending, reason: str,
            ev: object) -> None:
    del _pending(rt)[call.call_id]
    rt._engine(rt.engine.transfer_failed, call.call_id, reason[:48])
    target = p.to_login or "the outside number"
    log.info("campaign %s: transfer of attempt %s to %s failed (%s)", rt.name,
             call.attempt_id, target, reason)
    _settle(p, "cancel", ev)
    err = CallControlError(f"transfer to {target} failed: {reason}")
    _settle(p, "done", exc=err)
    _settle(p, "consult", exc=err)
    if p.mode == "warm" and reason != "cancelled":
        rt._spawn(_resume_after_failure(rt, p.from_login, call.attempt_id), "resume")


def _hand_over(rt: CampaignRuntime, call: LiveCall, login: str | None, at: object,
               how: str) -> None:
    agent = rt.agents.get(login) if login else None
    if agent is not None:
        rt._write(rt.store.hand_over, call.attempt_id, agent.id, at, how)


async def _bring_target(rt: CampaignRuntime, login: str, to: str | None,
                        group: Sequence[str] | None) -> str | None:
    """Bring the transfer's target here when it is not a ready agent of the call's campaign
    on this dialer: in a cluster, an agent of the campaign another member serves comes to
    this one first (dialer/cluster_lend.py; the named agent, or for a group with nobody
    ready here, its longest-ready member elsewhere); an agent of another campaign this
    dialer runs *visits* for the call (dialer/campaign_visits.py): its login is returned,
    the transfer then names it. When none can come the engine refuses the transfer as for an
    agent not ready here."""
    visits = rt.visits
    if to is not None:
        if to in rt.agents:
            return None
        home = visits.home_of(rt, to) if visits is not None else None
        if home is not None:
            if visits is not None and visits.borrow(rt, to):
                return to
            raise IllegalTransitionError(f"agent {to} (campaign {home.name})",
                                         _home_state(home, to), "transfer")
        peers = rt.peers
        if peers is not None and not await peers.borrow(rt, to) \
                and to in peers.groups_elsewhere(rt):
            # an agent of the campaign another member serves (or nobody): not ready there
            raise IllegalTransitionError(f"agent {to} (on another dialer instance)",
                                         "not ready", "transfer")
        return None
    if group is None or _ready_here(rt, login, group):
        return None
    members = set(group)
    if rt.peers is not None:
        for r in rt.peers.ready_elsewhere(rt):
            if r.login != login and r.login in members and await rt.peers.borrow(rt, r.login):
                return None
    if visits is not None:
        for who in visits.ready_elsewhere(rt):
            if who != login and who in members and visits.borrow(rt, who):
                return who
    return None


def _home_state(home: CampaignRuntime, login: str) -> str:
    board = home.engine.board
    if login not in board:
        return AgentState.LOGGED_OUT.value
    rec = board.get(login)
    return rec.state.value if rec.pending is None else "leaving"


def _ready_here(rt: CampaignRuntime, login: str, group: Sequence[str]) -> bool:
    ready = rt.engine.board.ready
    return any(x != login and x in ready and ready[x].pending is None for x in group)


def ready_targets(rt: CampaignRuntime, login: str) -> list[str]:
    """The desktop's transfer picker: the campaign's ready agents other than ``login``,
    longest-idle first (the order a group transfer picks in), then in a cluster those other
    members serve, longest ready first (as their last boards showed them), then the ready
    agents of this dialer's other campaigns. An agent with a pause or log-out pending is
    left out: the engine would refuse it as a target."""
    recs = sorted(rt.engine.board.ready.values(), key=lambda r: (r.ready_since, r.agent_id))
    here = [r.agent_id for r in recs if r.agent_id != login and r.pending is None]
    if rt.peers is not None:
        here += [r.login for r in rt.peers.ready_elsewhere(rt) if r.login != login]
    if rt.visits is not None:  # then this dialer's other campaigns' (they would visit)
        here += [who for who in rt.visits.ready_elsewhere(rt) if who != login]
    return here


def _groups_of(rt: CampaignRuntime) -> dict[str, tuple[str, ...]]:
    """Every agent of the campaign with its groups: this member's, in a cluster the ones
    other members serve, then the agents of this dialer's other campaigns (who would visit
    for the call: dialer/campaign_visits.py)."""
    out = {login: tuple(a.groups or ()) for login, a in rt.agents.items()}
    if rt.peers is not None:
        for login, groups in rt.peers.groups_elsewhere(rt).items():
            out.setdefault(login, groups)
    if rt.visits is not None:
        for login, groups in rt.visits.groups_elsewhere(rt).items():
            out.setdefault(login, groups)
    return out


def group_members(rt: CampaignRuntime, name: str) -> list[str]:
    """The campaign's agents in the named group (`agents.groups`); UnknownAgentError when
    nobody is, so the agent learns the name is wrong rather than "nobody ready"."""
    members = [login for login, groups in _groups_of(rt).items() if name in groups]
    if not members:
        raise UnknownAgentError(f"no agent of campaign {rt.name} or of this dialer's other "
                                f"campaigns is in group {name!r}")
    return members


def transfer_groups(rt: CampaignRuntime, login: str) -> list[dict[str, object]]:
    """The desktop's picker: each named group of the campaign's other agents, with how many
    of them could take a transfer now (ready, not leaving), by name."""
    ready = set(ready_targets(rt, login))
    groups = {who: g for who, g in _groups_of(rt).items() if who != login}
    names = sorted({n for g in groups.values() for n in g})
    return [{"name": n, "ready": sum(1 for who, g in groups.items() if n in g and who in ready)}
            for n in names]
