"""Transfers to an agent another cluster member serves (docs/cluster.md, "Transfers across
members").

A call's media lives on the SIP nodes of the member that placed it, and only that member's
engine can reserve an agent for it. So a transfer to a ready agent served elsewhere first
**moves the agent** to the call's member; the transfer then runs there as any other:

1. the call's member (the borrower) asks the agent's member (the lender) on the lender's
   member topic (`<prefix>/cluster/<id>`, the dialer's MQTT user only): `lend {login, to}`;
2. the lender takes the agent off its board without a state change of its own (the engine's
   `agent_hand_off`: refused unless the agent is READY with nothing pending, no preview
   offer), hands the agent's lease to the borrower with one conditional UPDATE, and replies
   `lent {ok}`; if the UPDATE fails, the agent goes back on its board, ready;
3. the borrower adopts the agent (its runtime and board, ready: the agent state log's next
   row is the borrower's `ready`, and the desktop hears `state ready` once more), and the
   engine reserves it for the transfer.

The agent stays with the borrower afterwards (as after a take-over): its desktop notices
nothing, since every member relays an agent's commands and events to the member that serves
it. A reply that comes after the borrower stopped waiting (`LEND_TIMEOUT_S`) still makes the
borrower adopt the agent, so a lease handed over is never left without an instance serving
it. The picker lists the other members' ready agents from their boards (published with every
heartbeat, so up to one heartbeat old); the lend itself is checked live by the lender.

The same member topics carry **move notices**: a member that moved an agent to a campaign
only other members run (dialer/control `move_agent`) sends `moved {login, campaign}` to
every live member, which then reads the moves from the audit log at once
(`Cluster.follow_moves`: in their order, so a late notice cannot undo a newer move; the
heartbeat reads them too, for a missed notice).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.vocabulary import AgentState
from db import cluster as db
from db.cluster_boards import published_boards
from dialer.core.errors import CoreError

if TYPE_CHECKING:
    from dialer.cluster import Cluster
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)

#: how long the borrower waits for the lender's answer before the transfer is refused
LEND_TIMEOUT_S = 3.0
_SEQ = itertools.count(1)


@dataclass(frozen=True, slots=True)
class RemoteAgent:
    """A ready agent of a campaign served by another member, as its last board showed it."""

    login: str
    member: str
    groups: tuple[str, ...]
    #: seconds ready when that board was written, plus the board's age
    seconds_ready: float


class Lending:
    """One member's side of cross-member transfers: borrowing and lending agents."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: publishes a payload on a member's topic (the agent bus's `to_peer`); False when
        #: the broker is not connected. Set once the bus is up.
        self.send: Callable[[str, bytes], bool] | None = None
        #: campaign name -> the other members' ready agents, longest ready first
        self.remote: dict[str, list[RemoteAgent]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, object]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: what happened (logs, tests): (login, member, "lent" | "borrowed" | "refused: why")
        self.history: list[tuple[str, str, str]] = []
        cluster.on_beat.append(self.refresh)

    # ------------------------------------------------------------------ what is there
    async def refresh(self) -> None:
        """Every heartbeat: the other live members' ready agents, from their boards."""
        c = self.cluster
        now = c.clock.now()
        others = [m for m in c.alive(now) if m != c.id]
        names = [rt.name for rt in c.runtimes.values()]
        rows = await published_boards(c.sessions, campaigns=names, dialer_ids=others,
                                      newer_than=now - c.ttl)
        remote: dict[str, list[RemoteAgent]] = {n: [] for n in names}
        for row in rows:
            age = max(0.0, (now - row.at).total_seconds())
            for a in row.board.get("agents", []):
                if a.get("state") != AgentState.READY.value or a.get("pending"):
                    continue
                if a["login"] in c.mine or a["login"] not in c.spare:
                    continue  # here already, or not an agent of this member's campaigns
                remote[row.campaign].append(RemoteAgent(
                    a["login"], row.dialer_id, tuple(a.get("groups") or ()),
                    float(a.get("seconds_in_state") or 0.0) + age))
        for agents in remote.values():
            agents.sort(key=lambda r: (-r.seconds_ready, r.login))
        self.remote = remote

    def ready_elsewhere(self, rt: CampaignRuntime) -> list[RemoteAgent]:
        """`rt`'s campaign's ready agents served by other members, longest ready first
        (those that came here since are left out)."""
        return [r for r in self.remote.get(rt.name, []) if r.login not in rt.agents]

    def groups_elsewhere(self, rt: CampaignRuntime) -> dict[str, tuple[str, ...]]:
        """The named groups of `rt`'s campaign's agents this member does not serve: as
        their members' boards show them for the ready ones (a console may have changed
        them since), else as this member read them."""
        out = {login: tuple(row.groups or ()) for login, (spare_rt, row)
               in self.cluster.spare.items() if spare_rt is rt}
        out.update({r.login: r.groups for r in self.ready_elsewhere(rt) if r.login in out})
        return out

    # ------------------------------------------------------------------ borrowing
    async def borrow(self, rt: CampaignRuntime, login: str) -> bool:
        """Bring `login`, ready on another live member, onto `rt`'s board (ready) for a
        transfer. True once it is here; False when it cannot come (not an agent of this
        campaign, not logged in anywhere, no longer ready there, the broker or the lender
        cannot be reached): the caller's transfer then fails as for an agent not ready."""
        c = self.cluster
        if login in rt.agents:
            return True
        got = c.spare.get(login)
        if got is None or got[0] is not rt or self.send is None:
            return False
        now = c.clock.now()
        try:
            lease = await db.agent_lease(c.sessions, login)
        except Exception as e:  # the database: the transfer fails as for an agent not ready
            log.warning("cluster: agent %s's lease could not be read for a transfer: %s",
                        login, e)
            return False
        if lease is None or lease.holder == c.id or lease.expires_at < now \
                or lease.holder not in c.alive(now):
            return False  # nobody serves the agent now: it is not ready anywhere
        req = f"{c.id}-{next(_SEQ)}"
        fut: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self._waiting[req] = fut
        body = {"type": "lend", "req": req, "login": login, "campaign": rt.name, "to": c.id}
        try:
            if not self.send(lease.holder, json.dumps(body).encode()):
                self._note(login, lease.holder, "refused: the message broker is down")
                return False
            try:
                reply = await asyncio.wait_for(fut, LEND_TIMEOUT_S)
            except TimeoutError:
                self._note(login, lease.holder, f"refused: no answer in {LEND_TIMEOUT_S:g} s")
                return False
        finally:
            self._waiting.pop(req, None)
        if not reply.get("ok"):
            self._note(login, lease.holder, f"refused: {reply.get('why')}")
            return False
        return self._take(login, lease.holder)

    def _take(self, login: str, lender: str) -> bool:
        """The lender handed `login`'s lease to this member: serve the agent, ready."""
        c = self.cluster
        # the agent's own command may have been admitted here first (the gate took the
        # lease the lender had just handed over): then it is in the runtime already
        rt = c._adopt(login) or next((r for r in c.runtimes.values() if login in r.agents
                                      and login in c.mine), None)
        if rt is None:
            return False
        board = rt.engine.board
        if login in board and board.get(login).state is not AgentState.LOGGED_OUT:
            return True
        try:
            rt._engine(rt.engine.agent_login, login, ready=True)
        except CoreError as e:  # cannot happen for an agent new to this board; never fatal
            log.error("cluster: agent %s from %s could not be put on %s's board: %s",
                      login, lender, rt.name, e)
        self._note(login, lender, "borrowed")
        log.info("cluster: instance %s serves agent %s, lent by %s for a transfer",
                 self.cluster.id, login, lender)
        return True

    # ------------------------------------------------------------------ messages
    def announce_move(self, login: str, campaign: str) -> None:
        """Tell every other live member that `login` now works on `campaign`."""
        c = self.cluster
        body = json.dumps({"type": "moved", "req": f"{c.id}-{next(_SEQ)}", "login": login,
                           "campaign": campaign}).encode()
        for member in c.alive(c.clock.now()):
            if member != c.id and (self.send is None or not self.send(member, body)):
                log.warning("cluster: the move of agent %s could not be announced to %s "
                            "(its heartbeat will see it)", login, member)

    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster: %s failed", task.get_name(), exc_info=task.exception())

    def on_message(self, payload: bytes) -> None:
        """A message on this member's topic (the agent bus's receive loop: never blocks)."""
        try:
            msg = json.loads(payload)
            kind, req = msg["type"], str(msg["req"])
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: a malformed message on %s's member topic was dropped",
                        self.cluster.id)
            return
        if kind == "lend":
            self._spawn(self._lend(msg), "cluster-lend")
        elif kind == "moved":  # read the moves now (in order, from the audit log)
            self._spawn(self.cluster.follow_moves(), "cluster-moved")
        elif kind == "lent":
            fut = self._waiting.get(req)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif msg.get("ok"):  # the borrower had stopped waiting: serve the agent anyway
                self._take(str(msg.get("login")), str(msg.get("from")))

    async def _lend(self, msg: dict[str, object]) -> None:
        c = self.cluster
        login, to, req = str(msg.get("login")), str(msg.get("to")), str(msg.get("req"))
        why = await self._hand_off(login, to, str(msg.get("campaign")))
        if why is not None:
            self._note(login, to, f"refused: {why}")
        reply = {"type": "lent", "req": req, "login": login, "from": c.id,
                 "ok": why is None, "why": why}
        if self.send is None or not self.send(to, json.dumps(reply).encode()):
            log.warning("cluster: the answer to %s's request for agent %s could not be sent",
                        to, login)

    async def _hand_off(self, login: str, to: str, campaign: str) -> str | None:
        """Hand `login` to member `to`; None when done, else why not."""
        c = self.cluster
        rt = next((r for r in c.runtimes.values() if login in r.agents), None)
        if rt is None or login not in c.mine:
            return "not served by this instance"
        if rt.name != campaign:
            return f"agent works on campaign {rt.name}"
        if to not in c.alive(c.clock.now()):
            return f"instance {to} is not alive"
        try:
            rt._input(rt.engine.agent_hand_off, login)
        except CoreError:
            return "agent not ready"
        row = rt.agents.pop(login)
        c.mine.discard(login)
        c.spare[login] = (rt, row)
        c.handing.add(login)  # the gate must not take the agent back meanwhile
        moved = False
        try:
            moved = await db.hand_agent(c.sessions, login=login, from_id=c.id, to_id=to,
                                        now=c.clock.now(), ttl=c.ttl)
        except Exception as e:  # the database: the agent stays here
            log.warning("cluster: handing agent %s to %s failed: %s", login, to, e)
        finally:
            c.handing.discard(login)
        if not moved:
            c._adopt(login)
            rt._engine(rt.engine.agent_login, login, ready=True)
            return "the lease could not be handed over"
        self._note(login, to, "lent")
        log.info("cluster: instance %s lent agent %s to %s for a transfer", c.id, login, to)
        return None

    def _note(self, login: str, member: str, what: str) -> None:
        if self.cluster.handovers is not None:
            self.cluster.handovers.labels(result=what.split(":", 1)[0]).inc()
        self.history.append((login, member, what))
        del self.history[:-100]
        if what.startswith("refused"):
            log.info("cluster: agent %s and instance %s: %s", login, member, what)

