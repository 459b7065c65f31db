"""Three-party conference: the agent brings a third party into its call (docs/call-controls.md).

The third party is another leg on the call's node, joined in the node's conference bridge so
that all three hear each other: at the SIP level a listen-in leg in `barge` mode
(`sip.api_controls.Listen`), with its slot reserved on the call's node like a supervisor's
(`node_full` otherwise). Two kinds of third party:

* **another agent of the campaign**, who must be *paused* (decision: a paused agent is never
  routed a call, so nothing can ring its phone while it sits in the conference; a ready one
  would have to be taken off the floor by the engine, which this first version does not do);
* **an outside number** (a specialist, the customer's colleague): the number passes the
  manual-dial rules (parsed in the campaign's region, DNC, the callee's calling window;
  `manual_dial_refused` otherwise) and is called through the campaign's trunk.

The first agent stays the call's agent throughout (the attempt, its one final state and its
disposition are unchanged); `conference_leave` hangs up the third party's leg, and the call's
end takes it down with the call. One conference leg per call at a time.
"""

from __future__ import annotations

import logging
import weakref

from common.vocabulary import AgentState
from dialer import manual_dial
from dialer.call_controls import CallControlError, ListenError, ListenIn, _agent_call
from dialer.core.errors import IllegalTransitionError, UnknownAgentError
from dialer.core.manual import Refusal
from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)

#: per runtime: attempt id -> (the facade that placed the leg, its session id)
_REGISTRY: weakref.WeakKeyDictionary[CampaignRuntime, dict[int, tuple[ListenIn, str]]] = \
    weakref.WeakKeyDictionary()


def _legs(rt: CampaignRuntime) -> dict[int, tuple[ListenIn, str]]:
    got = _REGISTRY.get(rt)
    if got is None:
        got = _REGISTRY[rt] = {}
    return got


async def conference(rt: CampaignRuntime, login: str, attempt_id: int, *,
                     to: str | None = None, number: str | None = None) -> str:
    """Join `to` (a paused agent's phone) or `number` (through the trunk) to the agent's
    call; returns the conference leg's session id once the third party answered."""
    _agent_call(rt, login, attempt_id, "conference")
    legs = _legs(rt)
    if attempt_id in legs:
        facade, sid = legs[attempt_id]
        if any(s.session_id == sid for s in facade.sessions()):
            raise IllegalTransitionError(f"attempt {attempt_id}", "in conference", "conference")
        del legs[attempt_id]  # its leg ended by itself (the third party hung up)
    if (to is None) == (number is None):
        raise CallControlError("give exactly one of `to` and `number`")
    if to is not None:
        agent = rt.agents.get(to)
        board = rt.engine.board
        if agent is None or to == login:
            raise UnknownAgentError(f"agent {to!r} is not another agent of this campaign")
        state = board.get(to).state if to in board else AgentState.LOGGED_OUT
        if state is not AgentState.PAUSED:
            raise IllegalTransitionError(f"agent {to}", state.value, "conference (pause first)")
        facade, uri = ListenIn({rt.name: rt}), agent.sip_uri
    else:
        assert number is not None
        got = await manual_dial.check(
            rt.store, rt.campaign, raw_number=number, state=AgentState.PAUSED, has_lead=True,
            lead_country=None, lead_zone=None, now=rt.clock.now())
        if isinstance(got, Refusal):
            raise manual_dial.ManualDialRefused(got.code.value, got.message)
        facade, uri = ListenIn({rt.name: rt}, trunk=rt.campaign.trunk), rt.target_for(got)
    try:
        session = await facade.listen(attempt_id, uri, "barge")
    except ListenError as e:
        raise CallControlError(f"conference: {e.reason}: {e}") from None
    legs[attempt_id] = (facade, session.session_id)
    log.info("campaign %s: agent %s opened a conference on attempt %s (%s)", rt.name, login,
             attempt_id, "agent " + to if to else "outside number")
    return session.session_id


async def conference_leave(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """Hang up the third party's leg; the agent and the customer talk on."""
    _agent_call(rt, login, attempt_id, "conference_leave")
    got = _legs(rt).pop(attempt_id, None)
    if got is None:
        raise IllegalTransitionError(f"attempt {attempt_id}", "no conference", "conference_leave")
    facade, sid = got
    try:
        await facade.stop_listen(sid)
    except ListenError:
        pass  # the third party had hung up already
