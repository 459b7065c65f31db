"""Several `dialer run` instances on one campaign (docs/cluster.md): `[cluster] enabled`.

Every instance shares one PostgreSQL and one external MQTT broker; each has its own
`[dialer] id`, SIP nodes and lines. What this module adds to a `DialerApp`:

* **a heartbeat** (db/cluster.py): every `heartbeat_s` the instance renews its lease row;
* **one instance per agent**: with a shared broker every instance receives every agent's
  commands. An agent lease row says which instance serves the agent; a command of an agent
  served elsewhere is dropped silently (no ack, no error: the serving instance answers). A
  free agent is taken by the instance its login hashes to among the live members
  (rendezvous hashing, so agents spread evenly), by any other after `defer_s`; the lease is
  taken with one conditional UPDATE, so exactly one instance wins. An instance keeps its
  agents while it lives (renewed with the heartbeat); an agent's runtime (`rt.agents`) holds
  only the agents this instance serves;
* **death** of an instance (its heartbeat expired): the one survivor that marks it dead
  closes its open attempts as `lost` and holds its connected calls without a disposition as
  "needs outcome" (as a restart of that instance would), and releases its lead claims; then
  the survivors take over its agents (rendezvous hashing again) and restore each to where
  the agent state log says it was, telling its desktop: the agent gets calls again within
  `lease_ttl_s` + a few heartbeats, without reconnecting;
* **the campaign-wide abandon ledger**: every heartbeat, the other instances' answers per
  window (attempt rows, `db.cluster.answered_by_others`) become each runtime's ledger's
  external contribution (`AbandonLedger.set_external`), so every governor guards the
  campaign's rate, not its own share;
* **self-fencing** (`Fencing`): no call while this instance's own heartbeat is older than
  the TTL; if a survivor judged it dead meanwhile, it hangs up what it holds, writes nothing
  over the survivor's clean-up and rejoins as a new run once that is over;
* **transfers and moves across members** (dialer/cluster_lend.py): a transfer to a ready
  agent another member serves first moves the agent to the call's member (the lender hands
  its lease over); a move to a campaign only other members run releases the agent to them;
  every member follows every move (`relocate`, `follow_moves`);
* `dialer_instance_info{dialer_id}` and `dialer_cluster_members` gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from common.clock import Clock
from common.vocabulary import AbandonWindow, AttemptResult
from db import cluster as db
from db.models import Agent
from db.repositories import Sessions
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import AgentCommand
from dialer.bus.runner import AgentCommandRunner, CommandHandler, Elsewhere, Reply
from dialer.cluster_agents import restore_agent
from dialer.cluster_lend import Lending
from dialer.core.abandon import ExternalCounts
from dialer.core.governor import hour_outlook_spans

if TYPE_CHECKING:
    from dialer.app import DialerApp
    from dialer.core.actions import Dial, LeadUpdate
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)

#: the verdict of a command this instance does not serve: never sent to the agent
NOT_MINE = ProtocolError(ErrorCode.UNKNOWN_AGENT, "served by another dialer instance")

Gate = Callable[[str, AgentCommand], Awaitable[bool]]


class ClusterRunner(AgentCommandRunner):
    """The app's command runner; with a `gate` (cluster on) a command the gate refuses gets
    no reply at all: another instance serves that agent and answers it."""

    def __init__(self, handler: CommandHandler, **kw: Any) -> None:
        super().__init__(self._gated, **kw)
        self._inner = handler
        self.gate: Gate | None = None

    def set_handler(self, handler: CommandHandler) -> None:
        self._inner = handler

    async def _gated(self, login: str, cmd: AgentCommand) -> ProtocolError | None:
        if self.gate is not None:
            try:
                mine = await self.gate(login, cmd)
            except Exception as e:
                # the lease could not be read (a database outage): stay silent. Only the
                # instance serving the agent may answer; an error from another one would make
                # the desktop give up a command (a disposition) that its instance will take
                log.warning("cluster: agent %s's %s not admitted here: %s", login, cmd.type, e)
                return NOT_MINE
            if not mine:
                return NOT_MINE
        return await self._inner(login, cmd)

    def submit(self, login: str, cmd: AgentCommand, reply: Reply, *,
               elsewhere: Elsewhere | None = None) -> ProtocolError | None:
        def answer(c: AgentCommand, result: ProtocolError | None, fault: bool) -> None:
            if result is not NOT_MINE:
                reply(c, result, fault)
            elif elsewhere is not None:  # a WebSocket's command: relayed to the serving one
                elsewhere(c)

        return super().submit(login, cmd, answer)


def rendezvous(login: str, members: list[str]) -> str | None:
    """The member a login belongs to (highest hash): the same answer on every instance that
    sees the same members, and only 1/n of the agents move when a member joins or leaves."""
    if not members:
        return None
    return max(members, key=lambda m: hashlib.sha256(f"{m}\0{login}".encode()).digest())


class Cluster:
    """This instance's part in a cluster; see the module docstring."""

    def __init__(self, *, dialer_id: str, sessions: Sessions, clock: Clock,
                 heartbeat_s: float, lease_ttl_s: float, registry: Any = None) -> None:
        self.id = dialer_id
        self.sessions = sessions
        self.clock = clock
        self.every = heartbeat_s
        self.ttl = timedelta(seconds=lease_ttl_s)
        #: a free agent's command waits this long on an instance it does not hash to
        self.defer_s = min(1.0, heartbeat_s)
        self.started = clock.now()
        #: the `up:<run>` of this instance's heartbeat row; a new one after a self-fence
        self.run = self.started
        self.fence = Fencing(self)
        #: this instance's console base URL, advertised in its heartbeat row (`advertise`):
        #: the other members' consoles forward agent controls and listen-ins to it
        self.console_url: str | None = None
        #: run after every healthy beat (dialer/control/cluster_view.py registers them)
        self.on_beat: list[Callable[[], Awaitable[None]]] = []
        self.runtimes: dict[str, CampaignRuntime] = {}
        #: agents this instance serves, and the rows of those it does not (yet)
        self.mine: set[str] = set()
        self.spare: dict[str, tuple[CampaignRuntime, Agent]] = {}
        #: agents being handed to another member right now (dialer/cluster_lend.py)
        self.handing: set[str] = set()
        self.members: list[db.Member] = []
        self.leases: dict[str, db.AgentLease] = {}
        #: what this instance did (logs, tests)
        self.cleaned: dict[str, tuple[int, int]] = {}
        self.taken_over: list[str] = []
        self.beats = 0
        #: clock.monotonic() of the first heartbeat of the current unbroken run of them:
        #: another instance is judged dead only by an instance that has itself been beating
        #: for a whole TTL (after a database outage every heartbeat is stale at once)
        self._healthy_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._gauges = _gauges(registry, dialer_id)
        #: dialer_cluster_agent_handovers_total{result} (None without metrics)
        self.handovers = self._gauges[2] if self._gauges is not None else None
        #: lends and borrows agents for transfers across members (set by start_cluster)
        self.lending: Lending | None = None
        #: the app's login -> campaign name (kept current when an agent moves)
        self.agent_campaign: dict[str, str] | None = None
        self._moves_seen = 0
        self._moves_lock = asyncio.Lock()

    # ------------------------------------------------------------------ start and stop
    async def start(self, runtimes: dict[str, CampaignRuntime]) -> None:
        """Beat once, keep in the runtimes only the agents whose lease is ours (a quick
        restart finds them still held), and start beating.

        A restart while a survivor is still cleaning up after this instance's previous run
        (its row `cleaning`) waits for that clean-up (at most the clean-up lease, `lease_ttl_s`,
        should the survivor die meanwhile): the clean-up closes every open attempt of this
        `dialer_id`, and would close the new run's first attempts too."""
        waited = False
        while not await db.rejoin(self.sessions, dialer_id=self.id, started=self.run,
                                  now=self.clock.now(), ttl=self.ttl,
                                  console_url=self.console_url):
            if not waited:
                log.warning("cluster: instance %s waits for another instance's clean-up after "
                            "its previous run before it starts", self.id)
                waited = True
            await asyncio.sleep(self.every)
        now = self.clock.now()
        self.fence.last_ok = self.clock.monotonic()
        self.runtimes = runtimes
        for rt in runtimes.values():
            rt.fence = self.fence
            rt.store = StageGuardedStore(rt.store, self.sessions)  # type: ignore[assignment]
        self.leases = await db.agent_leases(self.sessions)
        for rt in runtimes.values():
            for login in list(rt.agents):
                lease = self.leases.get(login)
                if lease is not None and lease.holder == self.id and lease.expires_at >= now:
                    self.mine.add(login)
                else:
                    self.spare[login] = (rt, rt.agents.pop(login))
        self.members = await db.members(self.sessions)
        log.info("cluster: instance %s up; %d agent(s) kept from a previous run, %d live "
                 "member(s)", self.id, len(self.mine), len(self.alive(now)))
        self._task = asyncio.create_task(self._loop(), name="cluster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(Exception):
            # a clean stop: the agents' leases lapse on their own (a survivor takes them
            # over once they expire), the heartbeat row goes now
            await db.leave(self.sessions, dialer_id=self.id)

    async def advertise(self, url: str | None) -> None:
        """This instance's console is at `url` (the web server has started): written now,
        and with every heartbeat from then on."""
        self.console_url = url
        await db.advertise_console(self.sessions, dialer_id=self.id, url=url)

    # ------------------------------------------------------------------ agents' commands
    def alive(self, now: datetime) -> list[str]:
        return [m.dialer_id for m in self.members if m.alive(now)]

    def preferred(self, login: str, now: datetime) -> bool:
        alive = self.alive(now)
        if self.id not in alive:
            alive.append(self.id)
        return rendezvous(login, alive) == self.id

    async def admit(self, login: str, cmd: AgentCommand) -> bool:
        """Whether this instance handles `login`'s command (the runner's gate)."""
        if login in self.mine:
            return not self.fence.stale() or await self._still_mine(login)
        if login not in self.spare or login in self.handing:
            return False  # not an agent of this instance's campaigns: another may know it
        now = self.clock.now()
        lease = self.leases.get(login)
        if lease is not None and lease.holder != self.id and lease.expires_at >= now:
            return False
        # decide on the members of now, not of the last heartbeat (several instances starting
        # together would otherwise each see fewer members than there are), and on the moves
        # of now (the agent may have been moved to a campaign run elsewhere, or here)
        self.members = await db.members(self.sessions)
        await self.follow_moves()
        if login not in self.spare:
            return False
        lease = (await db.agent_leases(self.sessions)).get(login)
        if lease is not None and lease.holder != self.id and lease.holder in self.alive(now):
            # its instance lives and will renew it (a lapse after a database outage): the
            # agent stays there; only a dead instance's agents move (the heartbeat's job)
            return False
        if not self.preferred(login, now):
            await asyncio.sleep(self.defer_s)
            now = self.clock.now()
        if await db.take_agent(self.sessions, login=login, dialer_id=self.id, now=now,
                               ttl=self.ttl):
            self._adopt(login)
            log.info("cluster: instance %s serves agent %s", self.id, login)
            return True
        return False

    def _adopt(self, login: str) -> CampaignRuntime | None:
        got = self.spare.pop(login, None)
        if got is None:
            return None
        rt, row = got
        rt.agents[login] = row
        self.mine.add(login)
        return rt

    def _release(self, login: str) -> None:
        """An agent another instance serves now leaves this one's board and runtime."""
        self.mine.discard(login)
        for rt in self.runtimes.values():
            if login in rt.agents:
                if login in rt.engine.board:
                    rt._engine(rt.engine.agent_logout, login)
                self.spare[login] = (rt, rt.agents.pop(login))

    async def _still_mine(self, login: str) -> bool:
        """After a stall (no heartbeat for a TTL) a survivor may have taken agent `login`
        over before this instance's next beat notices: its lease says. With the database
        down nobody can have taken it through the database: still ours."""
        try:
            lease = await db.agent_lease(self.sessions, login)
        except Exception as e:
            log.debug("cluster: lease of %s unreadable (%s): still served here", login, e)
            return True
        return (lease is None or lease.holder == self.id
                or lease.expires_at < self.clock.now())

    # ------------------------------------------------------------------ agent moves
    async def relocate(self, login: str, campaign: str) -> None:
        """Another member moved agent `login` (not served here) to `campaign`: this member
        takes it on there if it runs that campaign (its next command, or a take-over, puts
        it on that campaign's board), else forgets it. Idempotent."""
        if login in self.mine:
            return  # served here: the move was made here, on the runtimes themselves
        # the lease as of the last heartbeat is stale: the moving member released it
        self.leases.pop(login, None)
        new = next((rt for rt in self.runtimes.values() if rt.name == campaign), None)
        got = self.spare.get(login)
        if got is not None and got[0] is new:
            return
        row = got[1] if got is not None else None
        if got is not None:
            del self.spare[login]
            got[0].engine.board.forget(login)  # its logged-out record, if any
        if self.agent_campaign is not None:
            self.agent_campaign[login] = campaign
        if new is None:
            return
        if row is None:
            row = await db.agent_row(self.sessions, login)
            if row is None:
                return
        self.spare[login] = (new, row)
        log.info("cluster: instance %s follows the move of agent %s to %s", self.id, login,
                 campaign)

    async def follow_moves(self) -> None:
        """The moves made since this member started (audit rows) and not followed yet, in
        their order: at every heartbeat (a notice missed while the broker was down), at a
        `moved` notice, and before a free agent is taken on (`admit`). One at a time, so an
        older move is never applied after a newer one."""
        async with self._moves_lock:
            for audit_id, login, campaign in await db.moves_after(
                    self.sessions, after_id=self._moves_seen, since=self.started):
                await self.relocate(login, campaign)
                self._moves_seen = audit_id

    async def send_away(self, rt: CampaignRuntime, login: str, campaign: str) -> None:
        """This member moved agent `login` (logged out, its row written) to `campaign`,
        which runs on other members only: it stops serving the agent (the lease is
        released, so the agent's next command lands on a member running `campaign`) and
        tells the live members at once (`Lending`'s `moved` notice: they read the moves)."""
        rt.agents.pop(login, None)
        rt.engine.board.forget(login)
        self.mine.discard(login)
        self.spare.pop(login, None)
        if self.agent_campaign is not None:
            self.agent_campaign[login] = campaign
        await db.release_agents(self.sessions, dialer_id=self.id, logins=[login])
        if self.lending is not None:
            self.lending.announce_move(login, campaign)

    # ------------------------------------------------------------------ the heartbeat
    async def _loop(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception:
                self._healthy_since = None
                log.exception("cluster: heartbeat of %s failed", self.id)
            await asyncio.sleep(self.every)

    async def beat(self) -> None:
        """One heartbeat: renew, look at the others, clean up after the dead, take over
        their agents, refresh the campaign-wide abandon counts."""
        now = self.clock.now()
        mono = self.clock.monotonic()
        if not self.fence.fenced:
            if await db.renew_if_mine(self.sessions, dialer_id=self.id, started=self.run,
                                      now=now, ttl=self.ttl, console_url=self.console_url):
                if mono - self.fence.last_ok > self.ttl.total_seconds():
                    self._healthy_since = None  # stalled, unnoticed: judge nobody just yet
                    log.warning("cluster: instance %s's heartbeat was %.1f s old (a stall or "
                                "a database outage) but nobody took over; dialing again",
                                self.id, mono - self.fence.last_ok)
                self.fence.last_ok = mono
            else:
                await self.fence.fence(now)
        if self.fence.fenced and not await self.fence.rejoin(now, mono):
            return
        lost = await db.renew_agents(self.sessions, dialer_id=self.id, logins=sorted(self.mine),
                                     now=now, ttl=self.ttl)
        for login in lost:  # held by another instance now (we stalled past the TTL)
            log.error("cluster: instance %s lost agent %s to another instance", self.id, login)
            self._release(login)
        if self._healthy_since is None:
            self._healthy_since = mono
        self.members = await db.members(self.sessions)
        self.leases = await db.agent_leases(self.sessions)
        await self.follow_moves()
        if mono - self._healthy_since >= self.ttl.total_seconds():
            for m in self.members:
                if m.dialer_id != self.id and not m.alive(now) and m.occurrence != db.DEAD:
                    await self._clean_up_after(m, now)
            await self._take_over(now)
        await self.refresh_abandons(now)
        for hook in self.on_beat:  # the console's shared controls and wallboard
            try:
                await hook()
            except Exception as e:  # the heartbeat itself went well: log, go on
                log.warning("cluster: %s's beat hook %s failed: %s", self.id,
                            getattr(hook, "__qualname__", hook), e)
        self.beats += 1
        if self._gauges is not None:
            self._gauges[1].set(len(self.alive(now)))

    async def _clean_up_after(self, m: db.Member, now: datetime) -> None:
        if not await db.claim_dead(self.sessions, dead_id=m.dialer_id, by=self.id, now=now,
                                   ttl=self.ttl):
            return
        store = next(iter(self.runtimes.values())).store if self.runtimes else None
        closed = held = 0
        if store is not None:
            closed = await store.close_orphaned_attempts(dialer_id=m.dialer_id, now=now)
            held = await store.hold_orphaned_outcomes(dialer_id=m.dialer_id)
        await db.mark_dead(self.sessions, dead_id=m.dialer_id, by=self.id)
        self.cleaned[m.dialer_id] = (closed, held)
        log.warning("cluster: instance %s is dead (heartbeat expired at %s): %s closed its %d "
                    "open attempts as lost, %d connected calls wait as 'needs outcome'",
                    m.dialer_id, m.expires_at.isoformat(), self.id, closed, held)

    async def _take_over(self, now: datetime) -> None:
        """Agents whose lease lapsed with its holder gone (dead and cleaned up, or stopped)
        come to the instance they hash to (to any after one more TTL)."""
        dead_or_gone = {m.dialer_id for m in self.members if m.occurrence == db.DEAD}
        known = {m.dialer_id for m in self.members}
        for login, lease in sorted(self.leases.items()):
            if login not in self.spare or lease.expires_at >= now:
                continue
            if lease.holder in known and lease.holder not in dead_or_gone:
                continue  # its instance is still being cleaned up after (or came back)
            if not (self.preferred(login, now) or now - lease.expires_at > self.ttl):
                continue
            if not await db.take_agent(self.sessions, login=login, dialer_id=self.id, now=now,
                                       ttl=self.ttl):
                continue
            rt = self._adopt(login)
            if rt is None:
                continue
            self.taken_over.append(login)
            state = await restore_agent(rt, login)
            log.warning("cluster: instance %s took over agent %s from %s (restored %s)",
                        self.id, login, lease.holder, state)

    # ------------------------------------------------------------------ abandons
    async def refresh_abandons(self, now: datetime) -> None:
        """The other instances' answers per window into every runtime's ledger, plus a
        reserve of one abandoned live answer per other live instance: until the next
        refresh each of them may spend one abandon this instance cannot see yet, so the
        guard keeps room for it (the campaign stays under its cap, not a few abandons over)."""
        reserve = len([m for m in self.alive(now) if m != self.id])
        for rt in self.runtimes.values():
            ledger = rt.engine.ledger
            # the hour guard's spans too (the last hour and the parts of it that the hours
            # ending soon keep: dialer.core.governor.HourOutlook)
            keys: list[AbandonWindow | float] = [
                *AbandonWindow, *hour_outlook_spans(rt.engine.config.governor)]
            starts = {k: datetime.fromtimestamp(ledger.window_start(now, k), UTC) for k in keys}
            got = await db.answered_by_others(
                self.sessions, campaign_id=rt.campaign.id, dialer_id=self.id,
                ended_after=self.started, starts=starts)
            ledger.set_external({k: ExternalCounts(live + reserve, ab + reserve, mach)
                                 for k, (live, ab, mach) in got.items()})


class StageGuardedStore:
    """A runtime's store whose stage updates never reopen an attempt a survivor closed while
    this instance stalled (db.cluster.advance_open_attempt); everything else goes through."""

    def __init__(self, inner: Any, sessions: Sessions) -> None:
        self._inner = inner
        self._sessions = sessions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def update_attempt(self, attempt_id: int, **fields: object) -> None:
        if "stage" in fields:
            await db.advance_open_attempt(self._sessions, attempt_id, **fields)
        else:
            await self._inner.update_attempt(attempt_id, **fields)


class Fencing:
    """The self-fence (the runtimes' `fence` hook, dialer.cluster_agents.Fence). An instance
    whose last successful heartbeat is older than the TTL places no call: it stalled (a
    blocked loop, a suspended VM) or lost the database, and a survivor may be closing its
    attempts and releasing its leads. If a survivor did judge it dead (its heartbeat row is no
    longer its own `up:<run>`), it *fences*: stops dialing, returns its hopper, hangs up every
    call it holds and writes none of their outcomes (the survivor closed them as `lost` and
    holds their leads), then registers again as a new run once that clean-up is over and
    dials again."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.last_ok = cluster.clock.monotonic()
        self.fenced = False
        #: calls ended unplaced (True: their lead claims go back) or taken over by a
        #: survivor (False: it released and may have re-claimed them): no lead update written
        self.disowned: dict[str, bool] = {}
        self._dialing: set[str] = set()  # campaigns that were dialing when fenced
        self.refused = 0
        self.fences = 0

    def stale(self) -> bool:
        c = self.cluster
        return self.fenced or c.clock.monotonic() - self.last_ok > c.ttl.total_seconds()

    def refuse(self, rt: CampaignRuntime, dial: Dial) -> bool:
        if not self.stale():
            return False
        if not self.refused:
            log.warning("cluster: instance %s places no call: its heartbeat is older than "
                        "the TTL", self.cluster.id)
        self.refused += 1
        self.disowned[dial.call_id] = True
        rt._engine(rt.engine.call_ended, dial.call_id, AttemptResult.SKIPPED)
        return True

    def swallow(self, rt: CampaignRuntime, update: LeadUpdate) -> bool:
        if update.call_id not in self.disowned:
            return False
        lead_id = int(update.lead_id)
        if self.disowned.pop(update.call_id):
            rt._write(rt.store.release_claims, holder=rt.dialer_id, lead_ids=[lead_id])
        rt._claimed.discard(lead_id)
        rt.calls.pop(update.call_id, None)
        rt._call_ended.set()
        return True

    async def fence(self, now: datetime) -> None:
        c = self.cluster
        self.fenced = True
        self.fences += 1
        calls = 0
        for rt in c.runtimes.values():
            if rt.dialing:
                self._dialing.add(rt.name)
            rt.stop_dialing()
            for call in list(rt.calls.values()):
                self.disowned[call.call_id] = False
                calls += 1
            await rt.hang_up_all("dialer instance fenced: another instance took over")
        log.error("cluster: instance %s fenced at %s: another instance judged it dead (it "
                  "stalled past the TTL); hopper returned, %d call(s) hung up, their outcomes "
                  "left to the survivor", c.id, now.isoformat(), calls)

    async def rejoin(self, now: datetime, mono: float) -> bool:
        c = self.cluster
        run = now
        if not await db.rejoin(c.sessions, dialer_id=c.id, started=run, now=now, ttl=c.ttl,
                               console_url=c.console_url):
            return False  # a survivor is still cleaning up after this instance
        c.run = run
        c._healthy_since = None
        self.last_ok = mono
        self.fenced = False
        for rt in c.runtimes.values():
            if rt.name in self._dialing:
                rt.resume_dialing()
        self._dialing.clear()
        log.warning("cluster: instance %s rejoined at %s as a new run; dialing again",
                    c.id, now.isoformat())
        return True


def _gauges(registry: Any, dialer_id: str) -> tuple[Any, Any, Any] | None:
    if registry is None:
        return None
    from prometheus_client import Counter, Gauge

    info = Gauge("dialer_instance_info", "This dialer instance (value 1); its [dialer] id",
                 ["dialer_id"], registry=registry)
    info.labels(dialer_id=dialer_id).set(1)
    members = Gauge("dialer_cluster_members", "Dialer instances alive on this database "
                    "(heartbeat not expired), as this instance sees them", registry=registry)
    handovers = Counter(
        "dialer_cluster_agent_handovers", "Agents handed between instances for a transfer "
        "(dialer/cluster_lend.py): result lent (this instance gave one), borrowed (took one), "
        "refused (a request this instance made or answered came to nothing)", ["result"],
        registry=registry)
    for result in ("lent", "borrowed", "refused"):
        handovers.labels(result=result)
    return info, members, handovers


async def start_cluster(app: DialerApp, stack: contextlib.AsyncExitStack,
                        sessions: Sessions) -> Cluster | None:
    """The app's hook (after the runtimes are built, before they run and before MQTT):
    None when `[cluster] enabled` is false."""
    s = app.settings
    if not s.cluster.enabled:
        return None
    cluster = Cluster(dialer_id=s.dialer.id, sessions=sessions, clock=app.clock,
                      heartbeat_s=s.cluster.heartbeat_s, lease_ttl_s=s.cluster.lease_ttl_s,
                      registry=getattr(app.metrics, "registry", None))
    # transfers to agents other members serve, moves' notices (the bus wires its sender:
    # dialer/app.py)
    cluster.lending = Lending(cluster)
    cluster.agent_campaign = app.agent_campaign
    await cluster.start(app.runtimes)
    stack.push_async_callback(cluster.stop)
    for rt in app.runtimes.values():
        rt.peers = cluster.lending
    if isinstance(app.runner, ClusterRunner):
        app.runner.gate = cluster.admit
    return cluster
