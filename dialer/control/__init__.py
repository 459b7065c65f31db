"""Supervisor controls of the running dialer: the one class the console (dialer/web/console_api.py)
and the CRM API call to pause, resume, stop and start a campaign, change its dial mode and
maximum dial level, force-pause or log out an agent and move an agent to another campaign.
Every control writes one audit row (db/audit.py): who, what, when (docs/console.md).

    control = Control(sessions=..., clock=..., runtimes=app.runtimes,
                      agent_campaign=app.agent_campaign, runner=app.runner)
    await control.restore()                       # at start: holds from the audit log
    await control.pause_campaign("sales", Actor.user("sue"), "script change")

Campaign holds: a supervisor's pause or stop is a *hold* kept apart from the calendar's
state. The calendar's open edge (`calendar_opened`) resumes dialing only when no hold is on;
`resume`/`start` lift the hold and resume only while the calendar is open. The hold is
persisted as the audit row itself (the newest `campaign.pause|resume|stop|start` row of the
campaign), read back by `restore()` at start, so a restart keeps a held campaign held without
a column of its own; `campaigns.active` stays the calendar's flag (scheduling/jobs.py sets it
at calendar edges, and would undo a hold kept there).

Agent controls go through the agent's own command path (`AgentCommandRunner`, one command at
a time per agent, the same as the desktop's `pause` / `logout`): a talking agent is paused or
logged out after the call's wrap-up, and the desktop gets its `state` message.

Errors are `ControlError` with the HTTP status that means it (404 no such campaign or agent,
409 not possible in the current state, 422 a bad value naming the field).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from common.clock import Clock
from common.vocabulary import AgentState, DialMode
from db import audit
from db import console_store as store
from db.audit import Actor
from db.repositories import RepositoryError, Sessions
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import AgentCommand, LogoutCmd, PauseCmd
from dialer.bus.runner import AgentCommandRunner
from dialer.runtime import CampaignRuntime

if TYPE_CHECKING:
    from dialer.control.cluster_view import ClusterView

__all__ = ["HOLD_ACTIONS", "Control", "ControlError", "Hold", "HoldInfo"]

log = logging.getLogger(__name__)

#: the highest maximum dial level a supervisor may set (the config's own bound)
MAX_DIAL_LEVEL = 10.0
#: a pause reason's length (the agent protocol's ShortText)
_REASON_MAX = 64
#: how long a forced agent command may wait behind the agent's own commands
_COMMAND_WAIT_S = 10.0


class ControlError(Exception):
    """A control was refused; `status` is the HTTP status that means it (404, 409, 422)."""

    def __init__(self, status: Literal[404, 409, 422, 503], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Hold(enum.StrEnum):
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class HoldInfo:
    """A supervisor's hold on a campaign: which, who, when, why."""

    kind: Hold
    actor: str
    at: datetime
    reason: str


#: the audit actions that set or lift a hold (the newest one of a campaign is its hold)
HOLD_ACTIONS: Mapping[str, Hold | None] = {
    "campaign.pause": Hold.PAUSED, "campaign.stop": Hold.STOPPED,
    "campaign.resume": None, "campaign.start": None,
}


def _target(name: str) -> str:
    return f"campaign:{name}"


def _reason(reason: str | None, field: str = "reason") -> str:
    text = (reason or "").strip()
    if len(text) > 200:
        raise ControlError(422, f"{field}: at most 200 characters")
    return text


class Control:
    """See the module docstring."""

    def __init__(self, *, sessions: Sessions, clock: Clock,
                 runtimes: Mapping[str, CampaignRuntime],
                 agent_campaign: MutableMapping[str, str], runner: AgentCommandRunner) -> None:
        self.sessions = sessions
        self.clock = clock
        self.runtimes = runtimes
        self.agent_campaign = agent_campaign
        self.runner = runner
        #: campaign name -> the supervisor's hold on it
        self.holds: dict[str, HoldInfo] = {}
        #: campaigns whose calendar is closed now (the calendar's hooks say so)
        self.calendar_closed: set[str] = {
            name for name, rt in runtimes.items()
            if rt.campaign.company_id is not None and not rt.campaign.active}
        # one control at a time: a pause and a resume of one campaign never interleave
        self._lock = asyncio.Lock()
        #: in a cluster: the other instances' boards and the shared controls' sync
        self.cluster_view: ClusterView | None = None

    # ------------------------------------------------------------------ start, calendar
    async def restore(self) -> None:
        """Put back the holds the audit log says are on (call before the runtimes run)."""
        last = await store.last_actions(self.sessions, [_target(n) for n in self.runtimes],
                                        list(HOLD_ACTIONS))
        for name, rt in self.runtimes.items():
            row = last.get(_target(name))
            kind = HOLD_ACTIONS.get(row.action) if row is not None else None
            if row is None or kind is None:
                continue
            self.holds[name] = HoldInfo(kind, row.actor.name, row.at,
                                        str(row.detail.get("reason") or ""))
            rt.stop_dialing()
            log.info("campaign %s: %s by %s since %s (kept over the restart)", name,
                     kind.value, row.actor.name, row.at.isoformat())

    async def sync(self) -> None:
        """Take on what another instance's console did (a cluster's heartbeat calls it): the
        holds the audit log says are on or lifted, and the stored dial settings. The controls
        themselves apply at once on the instance that took them; every other instance follows
        here within one heartbeat."""
        names = list(self.runtimes)
        last = await store.last_actions(self.sessions, [_target(n) for n in names],
                                        list(HOLD_ACTIONS))
        stored = await store.dial_settings(self.sessions, names)
        async with self._lock:
            for name, rt in self.runtimes.items():
                row = last.get(_target(name))
                kind = HOLD_ACTIONS.get(row.action) if row is not None else None
                current = self.holds.get(name)
                if row is not None and kind is not None and (
                        current is None or current.kind is not kind):
                    self.holds[name] = HoldInfo(kind, row.actor.name, row.at,
                                                str(row.detail.get("reason") or ""))
                    rt.stop_dialing()
                    log.info("campaign %s: %s by %s on another instance", name, kind.value,
                             row.actor.name)
                elif kind is None and current is not None:
                    del self.holds[name]
                    if name not in self.calendar_closed:
                        rt.resume_dialing()
                    log.info("campaign %s: %s lifted on another instance", name,
                             current.kind.value)
                got = stored.get(name)
                if got is not None and (got.dial_mode, got.max_dial_level) != (
                        rt.campaign.dial_mode, rt.campaign.max_dial_level):
                    apply_dial_settings(rt, got.dial_mode, got.max_dial_level)
                    log.info("campaign %s: dial settings %s / max level %g from another "
                             "instance", name, got.dial_mode.value, got.max_dial_level)

    def calendar_opened(self, rt: CampaignRuntime) -> None:
        """The calendar's open edge: dial again unless a supervisor holds the campaign."""
        self.calendar_closed.discard(rt.name)
        hold = self.holds.get(rt.name)
        if hold is None:
            rt.resume_dialing()
        else:
            log.info("campaign %s: calendar opened, but it stays %s (supervisor hold)",
                     rt.name, hold.kind.value)

    def calendar_closed_edge(self, rt: CampaignRuntime) -> None:
        """The calendar's close edge: stop starting calls (the hold, if any, stays)."""
        self.calendar_closed.add(rt.name)
        rt.stop_dialing()

    # ------------------------------------------------------------------ campaigns
    def _runtime(self, name: str) -> CampaignRuntime:
        rt = self.runtimes.get(name)
        if rt is None:
            raise ControlError(404, f"campaign {name!r} does not run on this dialer "
                                    f"(running: {', '.join(sorted(self.runtimes)) or 'none'})")
        return rt

    def state_of(self, name: str) -> str:
        """dialing | paused | stopped | closed (calendar) | idle (not dialing otherwise)."""
        rt = self._runtime(name)
        hold = self.holds.get(name)
        if hold is not None:
            return hold.kind.value
        if name in self.calendar_closed:
            return "closed"
        return "dialing" if rt.dialing else "idle"

    async def _record(self, actor: Actor, action: str, target: str,
                      detail: dict[str, Any], *, done: bool = False) -> None:
        """Write the control's audit row; `done`: the control has already taken effect (an
        agent's command), so a failure says the row is missing, not that nothing changed."""
        try:
            await audit.record(self.sessions, actor, action, target, detail,
                               now=self.clock.now())
        except RepositoryError as e:
            if done:
                log.error("%s on %s by %s %s took effect but its audit row was not written: "
                          "%s", action, target, actor.kind, actor.name, e)
                raise ControlError(503, f"done, but the database did not take the audit "
                                        f"row: {e}") from e
            raise ControlError(503, f"the database did not take the audit row, so nothing "
                                    f"was changed: {e}") from e

    async def _hold(self, name: str, kind: Hold, actor: Actor, reason: str | None) -> HoldInfo:
        async with self._lock:
            rt = self._runtime(name)
            why = _reason(reason)
            current = self.holds.get(name)
            if current is not None and (current.kind is kind or current.kind is Hold.STOPPED):
                # a stop wins over a pause, never the other way round
                raise ControlError(409, f"campaign {name!r} is {current.kind.value} already "
                                        f"(by {current.actor} at {current.at.isoformat()})")
            action = "campaign.pause" if kind is Hold.PAUSED else "campaign.stop"
            # the audit row is the hold's persistence: written first, so a hold the
            # database did not take is not applied either
            await self._record(actor, action, _target(name),
                               {"reason": why, "was": self.state_of(name)})
            info = HoldInfo(kind, actor.name, self.clock.now(), why)
            self.holds[name] = info
            rt.stop_dialing()
            log.info("campaign %s: %s by %s %s", name, kind.value, actor.kind, actor.name)
            return info

    async def _lift(self, name: str, action: str, actor: Actor, reason: str | None,
                    only: Hold | None) -> str:
        async with self._lock:
            rt = self._runtime(name)
            why = _reason(reason)
            current = self.holds.get(name)
            if current is None:
                raise ControlError(409, f"campaign {name!r} is not paused or stopped "
                                        f"(it is {self.state_of(name)})")
            if only is not None and current.kind is not only:
                raise ControlError(409, f"campaign {name!r} is {current.kind.value}: "
                                        "start it instead")
            await self._record(actor, action, _target(name),
                               {"reason": why, "was": current.kind.value})
            del self.holds[name]
            if name not in self.calendar_closed:
                rt.resume_dialing()
            log.info("campaign %s: %s by %s %s", name, action.split(".")[1], actor.kind,
                     actor.name)
            return self.state_of(name)

    async def pause_campaign(self, name: str, actor: Actor, reason: str | None = None) -> HoldInfo:
        """Stop starting calls until `resume_campaign` (calls in flight go on; the hopper's
        leads go back). The calendar does not undo it; a restart keeps it."""
        return await self._hold(name, Hold.PAUSED, actor, reason)

    async def stop_campaign(self, name: str, actor: Actor, reason: str | None = None) -> HoldInfo:
        """Stop dialing and leave the campaign stopped until `start_campaign`: nothing is
        hung up; calls in flight and wrap-ups finish. A stop wins over a pause."""
        return await self._hold(name, Hold.STOPPED, actor, reason)

    async def resume_campaign(self, name: str, actor: Actor, reason: str | None = None) -> str:
        """Lift a pause (a stopped campaign needs `start_campaign`); returns the state."""
        return await self._lift(name, "campaign.resume", actor, reason, Hold.PAUSED)

    async def start_campaign(self, name: str, actor: Actor, reason: str | None = None) -> str:
        """Lift a pause or a stop; dialing resumes while the calendar is open."""
        return await self._lift(name, "campaign.start", actor, reason, None)

    async def set_dial(self, name: str, actor: Actor, mode: DialMode | str | None = None,
                       max_dial_level: float | None = None) -> dict[str, Any]:
        """Change the dial mode and/or the maximum dial level (lines per working agent):
        live in the runtime's pacer and stored in the campaign's row, with its audit row."""
        if mode is None and max_dial_level is None:
            raise ControlError(422, "give dial_mode or max_dial_level (or both)")
        new_mode: DialMode | None = None
        if mode is not None:
            try:
                new_mode = DialMode(mode)
            except ValueError:
                raise ControlError(422, f"dial_mode: {mode!r} is not one of "
                                        f"{', '.join(m.value for m in DialMode)}") from None
        level: float | None = None
        if max_dial_level is not None:
            try:
                level = float(max_dial_level)
            except (TypeError, ValueError):
                raise ControlError(422, "max_dial_level: expected a number") from None
            if not math.isfinite(level) or not 1.0 <= level <= MAX_DIAL_LEVEL:
                raise ControlError(422, f"max_dial_level: must be between 1 and "
                                        f"{MAX_DIAL_LEVEL:g}, got {max_dial_level}")
        async with self._lock:
            rt = self._runtime(name)
            if level is not None and level < rt.campaign.lines_per_agent:
                raise ControlError(422, f"max_dial_level: must be at least the campaign's "
                                        f"lines_per_agent ({rt.campaign.lines_per_agent:g})")
            try:
                got = await store.set_dial_settings(
                    self.sessions, name, mode=new_mode, max_dial_level=level, actor=actor,
                    action="campaign.set_dial", detail={}, now=self.clock.now())
            except RepositoryError as e:
                raise ControlError(503, f"the database did not take the change: {e}") from e
            if got is None:
                raise ControlError(404, f"campaign {name!r} is not in the database")
            _, after = got
            apply_dial_settings(rt, after.dial_mode, after.max_dial_level)
            log.info("campaign %s: dial settings %s / max level %g by %s %s", name,
                     after.dial_mode.value, after.max_dial_level, actor.kind, actor.name)
            return {"dial_mode": after.dial_mode.value, "max_dial_level": after.max_dial_level}

    # ------------------------------------------------------------------ agents
    def _agent_runtime(self, login: str) -> CampaignRuntime:
        rt = self.runtimes.get(self.agent_campaign.get(login, ""))
        if rt is None or login not in rt.agents:
            raise ControlError(404, f"agent {login!r} works on no campaign of this dialer")
        return rt

    def agent_state(self, login: str) -> AgentState:
        rt = self._agent_runtime(login)
        board = rt.engine.board
        return board.get(login).state if login in board else AgentState.LOGGED_OUT

    async def _command(self, login: str, cmd: AgentCommand) -> None:
        """Run `cmd` through the agent's own command queue; a refusal becomes ControlError."""
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[ProtocolError | None] = loop.create_future()

        def reply(_cmd: AgentCommand, error: ProtocolError | None, _fault: bool) -> None:
            if not verdict.done():
                verdict.set_result(error)

        refused = self.runner.submit(login, cmd, reply)
        if refused is not None:
            raise ControlError(409, f"agent {login!r}: {refused}")
        try:
            error = await asyncio.wait_for(verdict, _COMMAND_WAIT_S)
        except TimeoutError:
            raise ControlError(409, f"agent {login!r}: the command waited over "
                                    f"{_COMMAND_WAIT_S:g} s behind the agent's own") from None
        if error is not None:
            raise ControlError(409, f"agent {login!r}: {error.message}")

    def _outcome(self, rt: CampaignRuntime, login: str) -> dict[str, Any]:
        rec = rt.engine.board.get(login) if login in rt.engine.board else None
        state = rec.state if rec is not None else AgentState.LOGGED_OUT
        pending = rec.pending.value if rec is not None and rec.pending is not None else None
        return {"login": login, "campaign": rt.name, "state": state.value,
                "applies": "after_call" if pending else "now", "pending": pending}

    async def force_pause(self, login: str, actor: Actor,
                          reason: str | None = None) -> dict[str, Any]:
        """Pause agent `login` as its own `pause` would: now if idle, after the call if busy."""
        why = _reason(reason) or "supervisor"
        if len(why) > _REASON_MAX:
            raise ControlError(422, f"reason: at most {_REASON_MAX} characters for a pause")
        rt = self._agent_runtime(login)
        before = self.agent_state(login)
        if before is AgentState.LOGGED_OUT:
            raise ControlError(409, f"agent {login!r} is logged out")
        await self._command(login, PauseCmd(login=login, reason=why))
        out = self._outcome(rt, login)
        await self._record(actor, "agent.force_pause", f"agent:{login}",
                           {"reason": why, "campaign": rt.name, "was": before.value,
                            "applies": out["applies"]}, done=True)
        log.info("agent %s: paused by %s %s (%s)", login, actor.kind, actor.name, out["applies"])
        return out

    async def force_logout(self, login: str, actor: Actor,
                           reason: str | None = None) -> dict[str, Any]:
        """Log agent `login` out as its own `logout` would (after the call's wrap-up if busy)."""
        why = _reason(reason)
        rt = self._agent_runtime(login)
        before = self.agent_state(login)
        if before is AgentState.LOGGED_OUT:
            raise ControlError(409, f"agent {login!r} is logged out already")
        await self._command(login, LogoutCmd(login=login))
        out = self._outcome(rt, login)
        await self._record(actor, "agent.force_logout", f"agent:{login}",
                           {"reason": why, "campaign": rt.name, "was": before.value,
                            "applies": out["applies"]}, done=True)
        log.info("agent %s: logged out by %s %s (%s)", login, actor.kind, actor.name,
                 out["applies"])
        return out

    async def move_agent(self, login: str, campaign: str, actor: Actor) -> dict[str, Any]:
        """Move agent `login` to `campaign`: logged out of the old one first (refused while
        on a call or in wrap-up), then in the new one's agent set and `agents.campaign_id`.
        The agent logs in again from the desktop. In a cluster the campaign may run on other
        instances only: this one then stops serving the agent and tells them
        (dialer/cluster.py `send_away`); refused when no live instance runs it."""
        async with self._lock:
            old = self._agent_runtime(login)
            new = self.runtimes.get(campaign)
            elsewhere: list[str] = []
            if new is None:
                if self.cluster_view is None:
                    self._runtime(campaign)  # the 404 naming the campaigns that run here
                else:
                    elsewhere = await self.cluster_view.runs_on(campaign)
                    if not elsewhere:
                        raise ControlError(409, f"campaign {campaign!r} runs on no live "
                                                "dialer instance")
            if new is old:
                raise ControlError(409, f"agent {login!r} works on {campaign!r} already")
            state = self.agent_state(login)
            if state in (AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP):
                raise ControlError(409, f"agent {login!r} is {state.value}: move them after "
                                        "the call (pause or log them out first)")
            if state is not AgentState.LOGGED_OUT:
                await self._command(login, LogoutCmd(login=login))
                if self.agent_state(login) is not AgentState.LOGGED_OUT:
                    raise ControlError(409, f"agent {login!r} could not be logged out now")
            try:
                ok = await store.set_agent_campaign(
                    self.sessions, login, campaign, actor=actor, action="agent.move",
                    detail={"from": old.name, "to": campaign, "was": state.value},
                    now=self.clock.now())
            except RepositoryError as e:
                raise ControlError(503, f"the database did not take the move: {e}") from e
            if not ok:
                raise ControlError(404, f"agent {login!r} or campaign {campaign!r} is not in "
                                        "the database")
            if new is None:
                assert self.cluster_view is not None
                await self.cluster_view.cluster.send_away(old, login, campaign)
            else:
                row = old.agents.pop(login)
                forget_agent(old, login)
                new.agents[login] = row
                self.agent_campaign[login] = campaign
            log.info("agent %s: moved from %s to %s by %s %s%s", login, old.name, campaign,
                     actor.kind, actor.name,
                     f" (runs on {', '.join(elsewhere)})" if elsewhere else "")
            out = {"login": login, "from": old.name, "to": campaign, "state": "logged_out"}
            return {**out, "instances": elsewhere} if elsewhere else out


def apply_dial_settings(rt: CampaignRuntime, mode: DialMode, max_dial_level: float) -> None:
    """Put a campaign's new dial mode and maximum dial level into its running engine.

    The engine's config is a frozen value object read at every pacing pass, so a new one
    takes effect at the next pass; the pacer function and the surplus-call switch are derived
    from the mode at construction (engine_state.py) and are set again here. Calls in flight
    and outstanding preview offers are not touched."""
    rt.engine.set_dial_settings(mode, max_dial_level)
    # the attempt rows of new calls carry the campaign's mode
    rt.campaign.dial_mode = mode
    rt.campaign.max_dial_level = max_dial_level


def forget_agent(rt: CampaignRuntime, login: str) -> None:
    """Drop a logged-out agent's record from a campaign's board (it moved elsewhere), so the
    old campaign's agents gauge and wallboard no longer count it."""
    rt.engine.board.forget(login)
