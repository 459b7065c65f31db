"""Simulated agents: MQTT clients that behave like telemarketers, for the demo and e2e tests.

A SimulatedAgent speaks the real agent protocol (docs/agent-protocol.md) through a real
broker, exactly as an agent's desktop would: it logs in, goes ready, and for every call
takes the screen pop, waits for `call_ended`, spends a wrap-up time, sends a disposition
drawn from a realistic mix (with notes and, where the code needs one, a next-contact date a
few days ahead); the dialer then makes it ready again - unless it asked for a short break
first (`pause` during wrap-up), after which it sends `ready` itself. In preview mode it
accepts most leads and skips some. If the dialer pauses it (e.g. its phone did not answer),
it goes ready again after a while, as a person would.

A disposition is kept until the dialer answers it: when the connection drops before the
reply (a broker restart, a dialer restart), the agent re-sends it with the same attempt_id
right after logging in again; `ack`, or `error` with code `already_disposed` (it had landed
before the drop), both count as done; any other error drops it. At most
`MAX_DISPOSITION_SENDS` sends per disposition.

All randomness comes from the `rng` given, so a seeded demo run is repeatable in what
agents decide (not in when the network delivers it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common.clock import SYSTEM_CLOCK, Clock
from common.vocabulary import AgentState, CallbackScope
from dialer.bus.client import AgentClient
from dialer.bus.errors import BusError, ProtocolError
from dialer.bus.messages import (
    AgentCommand,
    CallbackReminderEvt,
    CallEndedEvt,
    DialerMessage,
    DispositionCmd,
    ErrorEvt,
    LoginCmd,
    LogoutCmd,
    PauseCmd,
    PreviewAcceptCmd,
    PreviewEvt,
    PreviewSkipCmd,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
)

log = logging.getLogger(__name__)

#: share of connected calls ending in each disposition (outbound B2B list, cold + warm),
#: after practitioners' figures: most calls find no need or an unreachable decision maker,
#: about one in six agrees a callback, meetings and contracts are rare, DNC requests rarer.
DEFAULT_MIX: Mapping[str, float] = {
    "no_need": 0.33,
    "interested": 0.14,
    "callback": 0.15,
    "meeting_set": 0.07,
    "contract": 0.03,
    "not_reached": 0.13,
    "refused": 0.08,
    "wrong_number": 0.04,
    "do_not_call": 0.015,
    "complaint_resolved": 0.005,
}

_NOTES: Mapping[str, tuple[str, ...]] = {
    "no_need": ("Has a supplier, happy with it.", "No budget this year.", "Not relevant."),
    "interested": ("Asked for the price list by e-mail.", "Interested; decides next week."),
    "callback": ("Decision maker away; call back.", "Busy now, asked to call later."),
    "meeting_set": ("Meeting agreed at their office.", "Online demo agreed."),
    "contract": ("Signed the 12-month contract.", "Agreed to the offer; contract sent."),
    "not_reached": ("Reception would not connect.", "Wrong person; no direct number given."),
    "refused": ("Refused firmly.",),
    "wrong_number": ("Number belongs to another company.",),
    "do_not_call": ("Asked never to be called again.",),
    "complaint_resolved": ("Invoice problem explained and solved.",),
}

_BREAK_REASONS = ("break", "coffee", "lunch", "training")

#: how many times one disposition is sent at most (first send plus re-sends after reconnects)
MAX_DISPOSITION_SENDS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentProfile:
    """How a simulated agent behaves. Times in seconds."""

    wrapup_s: tuple[float, float] = (5.0, 20.0)
    disposition_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    #: chance of a short break after finishing a call
    break_probability: float = 0.08
    break_s: tuple[float, float] = (20.0, 90.0)
    #: a next contact is agreed this many days ahead
    callback_days: tuple[float, float] = (1.0, 7.0)
    #: share of callbacks the agent leaves to the whole campaign rather than keeping
    campaign_callback_share: float = 0.2
    preview_skip_probability: float = 0.1
    preview_think_s: tuple[float, float] = (2.0, 8.0)
    #: after the dialer pauses the agent (phone did not answer), ready again after this
    auto_resume_s: tuple[float, float] = (5.0, 15.0)
    #: delay between logging in and the first `ready`
    settle_s: tuple[float, float] = (0.5, 3.0)
    reply_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("wrapup_s", "break_s", "callback_days", "preview_think_s",
                     "auto_resume_s", "settle_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"AgentProfile.{name} = {(lo, hi)}: expected 0 <= low <= high")
        for name in ("break_probability", "campaign_callback_share", "preview_skip_probability"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"AgentProfile.{name} = {p}: expected a probability in [0, 1]")
        if not self.disposition_mix or any(w < 0 for w in self.disposition_mix.values()) \
                or sum(self.disposition_mix.values()) <= 0:
            raise ValueError("AgentProfile.disposition_mix: expected non-negative weights "
                             "with a positive sum")


@dataclass(slots=True)
class AgentSimStats:
    calls: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    breaks: int = 0
    previews_accepted: int = 0
    previews_skipped: int = 0
    refused: int = 0  # commands the dialer answered with an error
    reconnects: int = 0
    #: dispositions sent again after a reconnect (each still counted once when it landed)
    resent_dispositions: int = 0
    #: dispositions given up (refused, or unanswered after MAX_DISPOSITION_SENDS sends)
    lost_dispositions: int = 0


class SimulatedAgent:
    """One simulated telemarketer. `await agent.run()` until cancelled or `stop()`."""

    def __init__(
        self,
        login: str,
        password: str,
        broker_url: str,
        rng: random.Random,
        profile: AgentProfile | None = None,
        *,
        prefix: str = "dialer",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.login = login
        self._password = password
        self._url = broker_url
        self.rng = rng
        self.profile = profile or AgentProfile()
        self._prefix = prefix
        #: where callback dates the agent proposes are counted from
        self.clock = clock
        self.state: AgentState = AgentState.LOGGED_OUT
        self.stats = AgentSimStats()
        self._stopping = asyncio.Event()
        self._client: AgentClient | None = None
        #: attempts this desktop wrapped up (the last 100)
        self._wrapped: collections.deque[int] = collections.deque(maxlen=100)
        self._pop: ScreenPopEvt | None = None
        #: pauses we asked for whose `state: paused` event we have not seen yet (that event
        #: is queued before the ack, so it is read only after the break)
        self._own_pauses = 0
        #: the disposition sent (or about to be) whose reply has not come yet, and its sends
        self._unacked: DispositionCmd | None = None
        self._unacked_sends = 0
        #: the attempt whose call ended and whose disposition is still being chosen
        self.wrapping: int | None = None
        #: the current session got as far as a logged-in desktop (resets the backoff)
        self._session_ok = False
        #: the next `state` event answers a (re-)login
        self._after_login = False

    def stop(self) -> None:
        """Ask the agent to log out and return from `run()`."""
        self._stopping.set()

    async def run(self) -> None:
        """Connect, log in and work until `stop()`; reconnects after a lost connection."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._session()
                return
            except BusError as e:
                if self._stopping.is_set():
                    return
                if self._session_ok:  # it worked for a while: come back quickly
                    self._session_ok = False
                    delay = 0.5
                self.stats.reconnects += 1
                log.warning("simulated agent %s: %s; reconnecting in %.1f s", self.login, e,
                            delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        async with AgentClient(self.login, self._password, self._url, prefix=self._prefix,
                               reply_timeout_s=self.profile.reply_timeout_s) as client:
            self._client = client
            try:
                self._after_login = True
                await self._command(LoginCmd(login=self.login))
                self._session_ok = True
                if self._unacked is not None:
                    self.stats.resent_dispositions += 1
                    log.info("simulated agent %s: re-sending the disposition of attempt %d",
                             self.login, self._unacked.attempt_id)
                    await self._send_disposition()
                await self._sleep(self._uniform(self.profile.settle_s))
                await self._command(ReadyCmd(login=self.login))
                while not self._stopping.is_set():
                    event = await self._next_event(client)
                    if event is not None:
                        await self._on_event(event)
                await self._command(LogoutCmd(login=self.login))
            finally:
                self._client = None

    async def _next_event(self, client: AgentClient) -> DialerMessage | None:
        stop = asyncio.ensure_future(self._stopping.wait())
        nxt = asyncio.ensure_future(client.next_event())
        done, _ = await asyncio.wait({stop, nxt}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if nxt in done:
            return nxt.result()
        nxt.cancel()
        await asyncio.gather(nxt, return_exceptions=True)
        return None

    async def _on_event(self, event: DialerMessage) -> None:
        match event:
            case StateEvt(state=state, reason=reason):
                previous, self.state = self.state, state
                # only the state answering a new login can tell of a call_ended we missed
                self._after_login, after_login = False, self._after_login
                if state is AgentState.PAUSED and self._own_pauses > 0:
                    self._own_pauses -= 1
                elif state is AgentState.WRAP_UP and self._pop is not None and after_login:
                    # a call_ended missed while offline: the state after a new login says
                    # the call is over, so wrap up the call of the last screen pop
                    log.info("simulated agent %s: in wrap-up for attempt %d (call_ended "
                             "missed)", self.login, self._pop.attempt_id)
                    await self._wrap_up(self._pop.attempt_id)
                elif state is AgentState.PAUSED:
                    # the dialer paused us (phone did not answer, ...): come back later
                    log.info("simulated agent %s paused by the dialer (%s)", self.login, reason)
                    await self._sleep(self._uniform(self.profile.auto_resume_s))
                    await self._command(ReadyCmd(login=self.login))
                log.debug("simulated agent %s: %s -> %s", self.login, previous, state)
            case ScreenPopEvt(attempt_id=attempt_id):
                repeated = attempt_id in self._wrapped or (
                    self._pop is not None and self._pop.attempt_id == attempt_id)
                if attempt_id not in self._wrapped:
                    self._pop = event
                if not repeated:  # the dialer repeats an open call's pop after a re-login
                    self.stats.calls += 1
            case CallEndedEvt(attempt_id=attempt_id):
                await self._wrap_up(attempt_id)
            case PreviewEvt(lead=lead):
                await self._sleep(self._uniform(self.profile.preview_think_s))
                if self.rng.random() < self.profile.preview_skip_probability:
                    self.stats.previews_skipped += 1
                    await self._command(PreviewSkipCmd(login=self.login, lead_id=lead.id))
                else:
                    self.stats.previews_accepted += 1
                    await self._command(PreviewAcceptCmd(login=self.login, lead_id=lead.id))
            case CallbackReminderEvt(lead_id=lead_id):
                log.debug("simulated agent %s: callback reminder for lead %d",
                          self.login, lead_id)
            case ErrorEvt(code=code):
                log.warning("simulated agent %s: unsolicited error %s", self.login, code)
            case _:
                log.debug("simulated agent %s: ignoring %s", self.login, event.type)

    async def _wrap_up(self, attempt_id: int) -> None:
        # after a re-login the dialer repeats an open call's pop and call_ended, and the state
        # says wrap_up: each call is wrapped up once
        if attempt_id in self._wrapped:
            return
        self._wrapped.append(attempt_id)
        self.wrapping = attempt_id
        pop, self._pop = self._pop, None
        if pop is None or pop.attempt_id != attempt_id:
            log.warning("simulated agent %s: call_ended for attempt %d without its screen pop",
                        self.login, attempt_id)
            codes = list(self.profile.disposition_mix)
            needs_callback = {"callback", "meeting_set"}
        else:
            codes = [d.code for d in pop.dispositions]
            needs_callback = {d.code for d in pop.dispositions if d.needs_callback}
        await self._sleep(self._uniform(self.profile.wrapup_s))
        take_break = self.rng.random() < self.profile.break_probability
        if take_break:
            # "pause after this call": the dialer applies it when the disposition closes the
            # call, instead of making us ready (docs/agent-protocol.md)
            reason = self.rng.choice(_BREAK_REASONS)
            if await self._command(PauseCmd(login=self.login, reason=reason)):
                self._own_pauses += 1
        self._unacked = self.choose_disposition(attempt_id, codes, needs_callback)
        self._unacked_sends = 0
        self.wrapping = None
        await self._send_disposition()
        if take_break:
            self.stats.breaks += 1
            await self._sleep(self._uniform(self.profile.break_s))
            await self._command(ReadyCmd(login=self.login))

    def choose_disposition(self, attempt_id: int, codes: list[str],
                           needs_callback: set[str]) -> DispositionCmd:
        """Draw a disposition from the mix, limited to the codes the campaign offers."""
        weighted = [(c, self.profile.disposition_mix.get(c, 0.0)) for c in codes]
        weighted = [(c, w) for c, w in weighted if w > 0] or [(c, 1.0) for c in codes]
        code = self.rng.choices([c for c, _ in weighted], [w for _, w in weighted])[0]
        next_contact: datetime | None = None
        scope = CallbackScope.AGENT
        if code in needs_callback:
            days = self._uniform(self.profile.callback_days)
            at = self.clock.now() + timedelta(days=days)
            # people agree round times: the next quarter hour
            at = at.replace(second=0, microsecond=0) + timedelta(minutes=15 - at.minute % 15)
            next_contact = at
            if self.rng.random() < self.profile.campaign_callback_share:
                scope = CallbackScope.CAMPAIGN
        notes = self.rng.choice(_NOTES.get(code, ("",)))
        return DispositionCmd(login=self.login, attempt_id=attempt_id, code=code, notes=notes,
                              next_contact_at=next_contact, callback_scope=scope)

    async def _send_disposition(self) -> None:
        """Send the pending disposition; keep it for after a reconnect if no answer came.

        A dropped connection (BusError) propagates: `run()` reconnects and the next session
        sends it again after its login."""
        cmd = self._unacked
        if cmd is None or self._client is None:
            return
        if self._unacked_sends >= MAX_DISPOSITION_SENDS:
            log.warning("simulated agent %s: giving up the disposition of attempt %d after %d "
                        "sends", self.login, cmd.attempt_id, self._unacked_sends)
            self._unacked = None
            self.stats.lost_dispositions += 1
            return
        self._unacked_sends += 1
        try:
            await self._client.request(cmd)
        except ProtocolError as e:
            self._unacked = None
            if e.code == "already_disposed":  # it landed before the connection dropped
                self.stats.dispositions[cmd.code] += 1
                return
            self.stats.refused += 1
            self.stats.lost_dispositions += 1
            log.info("simulated agent %s: disposition of attempt %d refused: %s", self.login,
                     cmd.attempt_id, e.code)
            return
        except TimeoutError:
            log.warning("simulated agent %s: no reply to the disposition of attempt %d; it is "
                        "sent again after the next reconnect", self.login, cmd.attempt_id)
            return
        self._unacked = None
        self.stats.dispositions[cmd.code] += 1

    async def _command(self, cmd: AgentCommand) -> bool:
        assert self._client is not None
        try:
            await self._client.request(cmd)
        except ProtocolError as e:
            self.stats.refused += 1
            log.info("simulated agent %s: %s refused: %s", self.login, cmd.type, e.code)
            return False
        except TimeoutError:
            self.stats.refused += 1
            log.warning("simulated agent %s: no reply to %s", self.login, cmd.type)
            return False
        if isinstance(cmd, DispositionCmd):
            self.stats.dispositions[cmd.code] += 1
        return True

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass


@asynccontextmanager
async def simulated_agents(
    credentials: Mapping[str, str],
    broker_url: str,
    *,
    seed: int = 0,
    profile: AgentProfile | None = None,
    prefix: str = "dialer",
    stop_timeout_s: float = 30.0,
) -> AsyncIterator[list[SimulatedAgent]]:
    """Run one SimulatedAgent per `login -> password` while the block runs.

    On exit every agent is asked to stop: it finishes the disposition it is on and logs
    out; agents still busy after `stop_timeout_s` are cancelled. Each agent gets its own
    random stream derived from `seed`, so adding an agent does not change the others'.
    """
    master = random.Random(seed)
    agents = [
        SimulatedAgent(login, password, broker_url, random.Random(master.getrandbits(64)),
                       profile, prefix=prefix)
        for login, password in credentials.items()
    ]
    tasks = [asyncio.create_task(a.run(), name=f"simagent-{a.login}") for a in agents]
    try:
        yield agents
    finally:
        for a in agents:
            a.stop()
        _, pending = await asyncio.wait(tasks, timeout=stop_timeout_s)
        for t in pending:
            log.warning("simulated agent task %s did not stop in %.0f s; cancelling",
                        t.get_name(), stop_timeout_s)
            t.cancel()
        for agent, outcome in zip(agents, await asyncio.gather(*tasks, return_exceptions=True),
                                  strict=True):
            if isinstance(outcome, Exception):
                log.error("simulated agent %s failed: %r", agent.login, outcome)


def main(argv: list[str] | None = None) -> int:
    """`python -m dialer.agentsim URL LOGIN:PASSWORD ...`: run simulated agents against any
    broker (e.g. a dialer using Mosquitto) until Ctrl-C or --minutes have passed."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dialer.agentsim", description=main.__doc__)
    ap.add_argument("url", help="broker URL, e.g. mqtt://127.0.0.1:1883")
    ap.add_argument("agents", nargs="+", metavar="LOGIN:PASSWORD")
    ap.add_argument("--prefix", default="dialer", help="MQTT topic prefix (default dialer)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this (0: never)")
    args = ap.parse_args(argv)
    credentials: dict[str, str] = {}
    for item in args.agents:
        login, sep, password = item.partition(":")
        if not sep or not login or not password:
            ap.error(f"{item!r}: expected LOGIN:PASSWORD")
        credentials[login] = password
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        async with simulated_agents(credentials, args.url, seed=args.seed,
                                    prefix=args.prefix) as agents:
            if args.minutes > 0:
                await asyncio.sleep(args.minutes * 60)
            else:
                await asyncio.Event().wait()
        for a in agents:
            print(f"{a.login}: calls={a.stats.calls} breaks={a.stats.breaks} "
                  f"refused={a.stats.refused} dispositions={dict(a.stats.dispositions)}")

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
