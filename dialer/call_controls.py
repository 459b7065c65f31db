"""The agent's call controls and the supervisors' listen-in on a campaign's live calls
(docs/call-controls.md).

Agent commands (`hold`, `resume`, `dtmf`, dispatched by dialer.agent_commands): each one is
checked like `hangup` (a live call of this agent, bridged), sent to the SIP pool, and answered
once the node reports the result (`CallHeld`, `DtmfSent`) or refuses it - so the agent's ack
means "done", and a phone that refused the hold re-INVITE becomes an `error control_failed`.

Hold time: the runtime's SIP events pass through :func:`on_sip_event`; the times of the
`CallHeld` events add up into `attempts.hold_s` (and `attempts.holds`), written at each resume
and at the call's end (a call that ends on hold counts until its end).

Listen-in (issue #14) for the supervisor console: :class:`ListenIn` is a plain async facade
over the campaigns' runtimes,

    listen_in = ListenIn(app.runtimes)
    session = await listen_in.listen(attempt_id, "sip:sup1@pbx", "monitor")
    await listen_in.change_mode(session.session_id, "barge")
    await listen_in.stop_listen(session.session_id)

raising :class:`ListenError` with a `reason` of `no_such_call`, `not_bridged`, `node_full`,
`invalid` or `failed`. The supervisor's phone is a third leg placed by the node that holds the
call (sip.api_controls), so it is planned into that node's call slots.

Digits of `dtmf` are never logged (they may be a card number); no phone numbers at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from common.vocabulary import AttemptStage
from dialer.core.errors import CoreError, IllegalTransitionError, UnknownCallError
from sip import api as sip
from sip.api_controls import (
    LISTEN_MODES,
    CallHeld,
    DtmfSent,
    Hold,
    Listen,
    ListenEnded,
    ListenStarted,
    Resume,
    SendDtmf,
    StopListen,
)

if TYPE_CHECKING:
    from dialer.runtime import CampaignRuntime
    from dialer.sip_events import LiveCall

log = logging.getLogger(__name__)

#: how long an agent's control waits for the node's answer (a re-INVITE's round trip)
CONTROL_TIMEOUT_S = 10.0
_CONTROL_COMMANDS = frozenset({"Hold", "Resume", "SendDtmf", "Listen", "StopListen"})


class CallControlError(CoreError):
    """A call control could not be carried out (the phone refused it, no answer, no slot)."""


class ListenError(Exception):
    """A listen-in request was refused; `reason` is machine-readable (see module doc)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ListenSession:
    """A supervisor listening in on one call."""

    session_id: str
    attempt_id: int
    campaign: str
    agent: str | None
    supervisor_uri: str
    mode: str
    started_at: datetime
    #: listen request -> the supervisor's phone connected in the bridge (at the node)
    join_ms: float


@dataclass(slots=True)
class _CallState:
    held_since: float | None = None
    hold_s: float = 0.0
    holds: int = 0
    #: (kind, key) -> futures waiting for the node's answer
    waiters: dict[tuple[str, str], list[asyncio.Future[object]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Controls:
    """Per runtime: the state of its calls' controls and its listen sessions."""

    calls: dict[str, _CallState] = field(default_factory=dict)
    sessions: dict[str, ListenSession] = field(default_factory=dict)
    #: hold music for the campaign's calls ("" = silence)
    music_wav: str = ""


_REGISTRY: weakref.WeakKeyDictionary[CampaignRuntime, _Controls] = weakref.WeakKeyDictionary()
_SEQ = itertools.count(1)


def controls_of(rt: CampaignRuntime) -> _Controls:
    c = _REGISTRY.get(rt)
    if c is None:
        c = _REGISTRY[rt] = _Controls()
    return c


def set_hold_music(rt: CampaignRuntime, wav_path: str) -> None:
    """What the campaign's held customers hear (a WAV, 8/16 kHz mono PCM); "" = silence."""
    controls_of(rt).music_wav = wav_path


#: a listen-in refusal's reason -> the `outcome` label of dialer_call_controls_total
_LISTEN_OUTCOMES = {"no_such_call": "refused", "not_bridged": "refused", "invalid": "refused",
                    "node_full": "node_full", "failed": "failed"}


@contextlib.contextmanager
def _counted(rt: CampaignRuntime, control: str) -> Iterator[None]:
    """Count one call control of `rt`'s campaign by its outcome (dialer_call_controls_total:
    ok, refused (not possible now), node_full, failed (the phone or the node did not do it))."""
    try:
        yield
    except ListenError as e:
        _count(rt, control, _LISTEN_OUTCOMES.get(e.reason, "failed"))
        raise
    except CallControlError:
        _count(rt, control, "failed")
        raise
    except CoreError:
        _count(rt, control, "refused")
        raise
    _count(rt, control, "ok")


def _count(rt: CampaignRuntime, control: str, outcome: str) -> None:
    counted = getattr(rt.metrics, "call_control", None)  # DialerMetrics; None in bare tests
    if counted is not None:
        try:
            counted(rt.name, control, outcome)
        except Exception:  # a metric never breaks a control
            log.exception("campaign %s: counting a call control failed", rt.name)


# ------------------------------------------------------------------ agent commands
def _agent_call(rt: CampaignRuntime, login: str, attempt_id: int, what: str) -> LiveCall:
    call = next((c for c in rt.calls.values() if c.attempt_id == attempt_id
                 and not c.engine_done), None)
    if call is None or call.agent_login != login or call.handed_out:  # (transferred out)
        raise UnknownCallError(f"attempt {attempt_id} is not a live call of agent {login}")
    stage = rt.engine.call_stage(call.call_id)
    if stage is not AttemptStage.BRIDGED:
        raise IllegalTransitionError(f"attempt {attempt_id}", str(stage), what)
    return call


def _expect(rt: CampaignRuntime, call_id: str, kind: str, key: str = "") -> asyncio.Future[object]:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    st = controls_of(rt).calls.setdefault(call_id, _CallState())
    st.waiters.setdefault((kind, key), []).append(fut)
    return fut


async def _outcome(fut: asyncio.Future[object], what: str, timeout_s: float) -> object:
    try:
        return await asyncio.wait_for(fut, timeout_s)
    except TimeoutError:
        raise CallControlError(f"{what}: no answer from the telephony node in "
                               f"{timeout_s:g} s") from None


async def hold(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """The agent's `hold`: returns once the customer's phone accepted the hold."""
    with _counted(rt, "hold"):
        call = _agent_call(rt, login, attempt_id, "hold")
        st = controls_of(rt).calls.get(call.call_id)
        if st is not None and st.held_since is not None:
            raise IllegalTransitionError(f"attempt {attempt_id}", "on_hold", "hold")
        fut = _expect(rt, call.call_id, "hold")
        await rt.pool.submit(Hold(call_id=call.call_id, music_wav=controls_of(rt).music_wav))
        await _outcome(fut, "hold", CONTROL_TIMEOUT_S)
    log.info("campaign %s: agent %s put attempt %s on hold", rt.name, login, attempt_id)


async def resume(rt: CampaignRuntime, login: str, attempt_id: int) -> None:
    """The agent's `resume`: returns once agent and customer are connected again."""
    with _counted(rt, "resume"):
        call = _agent_call(rt, login, attempt_id, "resume")
        st = controls_of(rt).calls.get(call.call_id)
        if st is None or st.held_since is None:
            raise IllegalTransitionError(f"attempt {attempt_id}", "not_on_hold", "resume")
        fut = _expect(rt, call.call_id, "resume")
        await rt.pool.submit(Resume(call_id=call.call_id))
        await _outcome(fut, "resume", CONTROL_TIMEOUT_S)
    log.info("campaign %s: agent %s resumed attempt %s", rt.name, login, attempt_id)


async def send_dtmf(rt: CampaignRuntime, login: str, attempt_id: int, digits: str) -> None:
    """The agent's `dtmf`: returns once the node sent the digits (never logged)."""
    with _counted(rt, "dtmf"):
        call = _agent_call(rt, login, attempt_id, "dtmf")
        try:
            cmd = SendDtmf(call_id=call.call_id, digits=digits)
        except sip.SipApiError as e:
            raise CallControlError(str(e)) from None
        fut = _expect(rt, call.call_id, "dtmf")
        await rt.pool.submit(cmd)
        await _outcome(fut, "dtmf", CONTROL_TIMEOUT_S)
    log.debug("campaign %s: agent %s sent %d digits", rt.name, login, len(digits))


def is_on_hold(rt: CampaignRuntime, attempt_id: int) -> bool:
    call = next((c for c in rt.calls.values() if c.attempt_id == attempt_id), None)
    st = controls_of(rt).calls.get(call.call_id) if call is not None else None
    return st is not None and st.held_since is not None


# ------------------------------------------------------------------ SIP events
def on_sip_event(rt: CampaignRuntime, call: LiveCall, ev: object) -> None:
    """Every SIP event of a live call (from dialer.sip_events): the controls' part of it."""
    ctl = controls_of(rt)
    st = ctl.calls.get(call.call_id)
    if isinstance(ev, CallHeld):
        st = st or ctl.calls.setdefault(call.call_id, _CallState())
        now = rt.clock.monotonic()
        if ev.on_hold and st.held_since is None:
            st.held_since = now
            st.holds += 1
            _resolve(st, ("hold", ""), ev)
        elif not ev.on_hold and st.held_since is not None:
            st.hold_s += max(0.0, now - st.held_since)
            st.held_since = None
            _write_hold(rt, call, st)
            _resolve(st, ("resume", ""), ev)
    elif isinstance(ev, DtmfSent) and st is not None:
        _resolve(st, ("dtmf", ""), ev)
    elif isinstance(ev, ListenStarted) and st is not None:
        _resolve(st, ("listen", ev.listen_call_id), ev)
    elif isinstance(ev, ListenEnded):
        ended = ctl.sessions.pop(ev.listen_call_id, None)
        if ended is not None:
            log.info("campaign %s: listen-in on attempt %s ended (%s)", rt.name,
                     call.attempt_id, ev.reason)
            _supervise_listen(rt, ended, active=False, reason=ev.reason)
        if st is not None:
            _fail(st, ("listen", ev.listen_call_id),
                  ListenError("failed", f"the supervisor's phone: {ev.reason}"))
            _resolve(st, ("stop", ev.listen_call_id), ev)
    elif isinstance(ev, sip.CommandRejected) and st is not None \
            and ev.command in _CONTROL_COMMANDS:
        kind = {"Hold": "hold", "Resume": "resume", "SendDtmf": "dtmf"}.get(ev.command)
        if kind is not None:
            _fail(st, (kind, ""), CallControlError(f"{kind} refused: {ev.error}"))
        elif ev.command == "Listen":
            reason = "node_full" if "node full" in ev.error else (
                "not_bridged" if "not bridged" in ev.error else "failed")
            for key in [k for k in st.waiters if k[0] == "listen"]:
                _fail(st, key, ListenError(reason, f"listen-in refused: {ev.error}"))
    elif isinstance(ev, sip.CallEnded | sip.CallLost) and st is not None:
        if st.held_since is not None:
            st.hold_s += max(0.0, rt.clock.monotonic() - st.held_since)
            st.held_since = None
            _write_hold(rt, call, st)
        for key in list(st.waiters):
            _fail(st, key, CallControlError("the call ended"))
        del ctl.calls[call.call_id]


def _resolve(st: _CallState, key: tuple[str, str], value: object) -> None:
    for fut in st.waiters.pop(key, []):
        if not fut.done():
            fut.set_result(value)


def _fail(st: _CallState, key: tuple[str, str], exc: Exception) -> None:
    for fut in st.waiters.pop(key, []):
        if not fut.done():
            fut.set_exception(exc)


def _supervise_listen(rt: CampaignRuntime, s: ListenSession, *, active: bool,
                      reason: str | None = None) -> None:
    """The supervisor stream's `listen` event (who listens in is an audit fact)."""
    rt._supervise({"type": "listen", "attempt_id": s.attempt_id, "campaign": s.campaign,
                   "session_id": s.session_id, "mode": s.mode, "active": active,
                   "agent": s.agent, "reason": reason[:200] if reason else None})


def _write_hold(rt: CampaignRuntime, call: LiveCall, st: _CallState) -> None:
    rt._write(rt.store.update_attempt, call.attempt_id, hold_s=round(st.hold_s, 3),
              holds=st.holds)


# ------------------------------------------------------------------ listen-in facade
class ListenIn:
    """The supervisor console's listen-in API over the running campaigns (module doc)."""

    def __init__(self, runtimes: Mapping[str, CampaignRuntime], *,
                 answer_timeout_s: float = 20.0, trunk: str | None = None) -> None:
        self.runtimes = runtimes
        self.answer_timeout_s = answer_timeout_s
        self.trunk = trunk

    def _find(self, attempt_id: int) -> tuple[CampaignRuntime, LiveCall]:
        for rt in self.runtimes.values():
            for c in rt.calls.values():
                if c.attempt_id == attempt_id and not c.engine_done:
                    return rt, c
        raise ListenError("no_such_call", f"attempt {attempt_id} is not a live call")

    def holds_call(self, attempt_id: int) -> bool:
        """Whether attempt `attempt_id` is a live call of this dialer (in a cluster another
        instance's console forwards a listen-in for it here)."""
        try:
            self._find(attempt_id)
        except ListenError:
            return False
        return True

    def _session(self, session_id: str) -> tuple[CampaignRuntime, LiveCall, ListenSession]:
        for rt in self.runtimes.values():
            s = controls_of(rt).sessions.get(session_id)
            if s is not None:
                _, call = self._find(s.attempt_id)
                return rt, call, s
        raise ListenError("no_such_call", f"no live listen-in session {session_id!r}")

    def sessions(self) -> list[ListenSession]:
        return [s for rt in self.runtimes.values() for s in controls_of(rt).sessions.values()]

    async def listen(self, attempt_id: int, supervisor_uri: str,
                     mode: str = "monitor") -> ListenSession:
        """Ring the supervisor's phone and join it to the call; returns once connected."""
        rt, call = self._find(attempt_id)
        with _counted(rt, "listen"):
            return await self._listen(rt, call, supervisor_uri, mode)

    async def _listen(self, rt: CampaignRuntime, call: LiveCall, supervisor_uri: str,
                      mode: str) -> ListenSession:
        attempt_id = call.attempt_id
        if rt.engine.call_stage(call.call_id) is not AttemptStage.BRIDGED:
            raise ListenError("not_bridged", f"attempt {attempt_id} is not talking to an agent")
        session_id = f"{call.call_id}-listen-{next(_SEQ)}"
        try:
            cmd = Listen(call_id=call.call_id, listen_call_id=session_id,
                         supervisor_uri=supervisor_uri, mode=mode,  # type: ignore[arg-type]
                         answer_timeout_s=self.answer_timeout_s, trunk=self.trunk)
        except sip.SipApiError as e:
            raise ListenError("invalid", str(e)) from None
        try:
            started = await self._send(rt, call, cmd, self.answer_timeout_s + 5)
        except ListenError as e:
            if e.reason == "failed":  # e.g. no answer from the node in time: a leg that
                # connects later would listen with no session (and no audit row): hang it up
                with contextlib.suppress(Exception):
                    await rt.pool.submit(StopListen(call_id=call.call_id,
                                                    listen_call_id=session_id))
            raise
        s = ListenSession(
            session_id=session_id, attempt_id=attempt_id, campaign=rt.name,
            agent=call.agent_login, supervisor_uri=supervisor_uri, mode=mode,
            started_at=rt.clock.now(), join_ms=started.join_ms)
        controls_of(rt).sessions[session_id] = s
        log.info("campaign %s: supervisor listen-in (%s) on attempt %s", rt.name, mode,
                 attempt_id)
        _supervise_listen(rt, s, active=True)
        return s

    async def change_mode(self, session_id: str, mode: str) -> ListenSession:
        """Switch a live session between monitor, whisper and barge (same phone call)."""
        if mode not in LISTEN_MODES:
            raise ListenError("invalid", f"mode must be one of {LISTEN_MODES}")
        rt, call, s = self._session(session_id)
        with _counted(rt, "listen_mode"):
            cmd = Listen(call_id=call.call_id, listen_call_id=session_id,
                         supervisor_uri=s.supervisor_uri, mode=mode,  # type: ignore[arg-type]
                         trunk=self.trunk)
            await self._send(rt, call, cmd, CONTROL_TIMEOUT_S)
        new = dataclasses.replace(s, mode=mode)
        controls_of(rt).sessions[session_id] = new
        _supervise_listen(rt, new, active=True)
        return new

    async def stop_listen(self, session_id: str) -> None:
        """Hang up the supervisor's leg (the call goes on); returns once it is gone."""
        rt, call, _ = self._session(session_id)
        fut = _expect(rt, call.call_id, "stop", session_id)
        await rt.pool.submit(StopListen(call_id=call.call_id, listen_call_id=session_id))
        try:
            await _outcome(fut, "stop listen", CONTROL_TIMEOUT_S)
        except CallControlError:
            pass  # the call ended meanwhile: the leg went with it
        _count(rt, "listen_stop", "ok")
        gone = controls_of(rt).sessions.pop(session_id, None)
        if gone is not None:  # its ListenEnded did not come through the runtime
            _supervise_listen(rt, gone, active=False, reason="stopped")

    async def _send(self, rt: CampaignRuntime, call: LiveCall, cmd: Listen,
                    timeout_s: float) -> ListenStarted:
        fut = _expect(rt, call.call_id, "listen", cmd.listen_call_id)
        await rt.pool.submit(cmd)
        try:
            ev = await _outcome(fut, "listen", timeout_s)
        except CallControlError as e:
            raise ListenError("failed", str(e)) from None
        assert isinstance(ev, ListenStarted)
        return ev
