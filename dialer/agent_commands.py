"""Agent commands from the bus to a campaign's runtime, with one session per login
(docs/agent-protocol.md). The app looks up the agent's campaign and calls
`AgentCommands.handle`; the reply is None (ack) or the ProtocolError to send.

Sessions: a desktop picks a random session id and sends it with `login` and with every
command. A login has one session at a time: a `login` with another session id is refused
(`session_active`) unless it says `takeover`, which ends the old session (its desktop gets
`state logged_out`-free notice: an `error stale_session` on its next command). A command
carrying a session id that is not the login's current one is refused (`stale_session`) and
changes nothing, so a forgotten tab cannot log out the live one. Commands without a session
id (older desktops, scripts) are accepted as before. Sessions live in memory: after a
restart the first `login` of each agent starts its session again.
"""

from __future__ import annotations

import logging

from dialer import call_conference, call_controls, call_transfer, manual_dial
from dialer.bus.errors import ErrorCode, ProtocolError, protocol_error_for
from dialer.bus.messages import (
    AgentCommand,
    CallBackNowCmd,
    ConferenceCmd,
    ConferenceLeaveCmd,
    DispositionCmd,
    DtmfCmd,
    GetStateCmd,
    HangupCmd,
    HoldCmd,
    LoginCmd,
    LogoutCmd,
    ManualDialCmd,
    PauseCmd,
    PreviewAcceptCmd,
    PreviewSkipCmd,
    ReadyCmd,
    ResumeCmd,
    TransferCancelCmd,
    TransferCmd,
    TransferCompleteCmd,
)
from dialer.core.errors import CoreError
from dialer.dispositions import DispositionNotSavedError, disposition, hang_up, send_state
from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)


class AgentSessions:
    """The current session id of each login (see the module doc)."""

    def __init__(self) -> None:
        self._current: dict[str, str] = {}

    def current(self, login: str) -> str | None:
        return self._current.get(login)

    def begin(self, login: str, session: str | None, *, takeover: bool) -> None:
        """A `login`: start, resume or take over the login's session."""
        if session is None:
            return
        live = self._current.get(login)
        if live is not None and live != session and not takeover:
            raise ProtocolError(
                ErrorCode.SESSION_ACTIVE,
                f"agent {login} is logged in from another session; log in with takeover "
                "to end it")
        if live is not None and live != session:
            log.info("agent %s: a new session took over from the previous one", login)
        self._current[login] = session

    def check(self, login: str, session: str | None) -> None:
        """Refuse a command of a session that is no longer the login's."""
        live = self._current.get(login)
        if session is not None and live is not None and session != live:
            raise ProtocolError(
                ErrorCode.STALE_SESSION,
                f"this session of agent {login} was ended or taken over; log in again")

    def end(self, login: str) -> None:
        self._current.pop(login, None)


class AgentCommands:
    """Runs one agent command on its campaign's runtime."""

    def __init__(self) -> None:
        self.sessions = AgentSessions()

    async def handle(self, rt: CampaignRuntime, login: str,
                     cmd: AgentCommand) -> ProtocolError | None:
        try:
            if isinstance(cmd, LoginCmd):
                self.sessions.begin(login, cmd.session, takeover=cmd.takeover)
                rt.agent_login(login)
                await rt.flush_agent_messages(login)
                await send_state(rt, login, catalog=True)
                return None
            self.sessions.check(login, cmd.session)
            if isinstance(cmd, GetStateCmd):
                await send_state(rt, login, catalog=True)
            elif isinstance(cmd, ReadyCmd):
                rt.agent_ready(login)
            elif isinstance(cmd, PauseCmd):
                rt.agent_pause(login, cmd.reason)
            elif isinstance(cmd, LogoutCmd):
                rt.agent_logout(login)
                self.sessions.end(login)
            elif isinstance(cmd, DispositionCmd):
                await disposition(rt, login, cmd.attempt_id, cmd.code, cmd.notes,
                                  cmd.next_contact_at, cmd.callback_scope)
            elif isinstance(cmd, HangupCmd):
                hang_up(rt, login, cmd.attempt_id)
            elif isinstance(cmd, HoldCmd):
                await call_controls.hold(rt, login, cmd.attempt_id)
            elif isinstance(cmd, ResumeCmd):
                await call_controls.resume(rt, login, cmd.attempt_id)
            elif isinstance(cmd, DtmfCmd):
                await call_controls.send_dtmf(rt, login, cmd.attempt_id, cmd.digits)
            elif isinstance(cmd, TransferCmd):
                await call_transfer.transfer(rt, login, cmd.attempt_id, to=cmd.to,
                                             group=cmd.group, mode=cmd.mode, notes=cmd.notes,
                                             number=cmd.number)
            elif isinstance(cmd, TransferCompleteCmd):
                await call_transfer.transfer_complete(rt, login, cmd.attempt_id)
            elif isinstance(cmd, TransferCancelCmd):
                await call_transfer.transfer_cancel(rt, login, cmd.attempt_id)
            elif isinstance(cmd, ManualDialCmd):
                await manual_dial.manual_dial(rt, login, lead_id=cmd.lead_id, number=cmd.number,
                                              attach=cmd.attach)
            elif isinstance(cmd, ConferenceCmd):
                await call_conference.conference(rt, login, cmd.attempt_id, to=cmd.to,
                                                 number=cmd.number)
            elif isinstance(cmd, ConferenceLeaveCmd):
                await call_conference.conference_leave(rt, login, cmd.attempt_id)
            elif isinstance(cmd, CallBackNowCmd):
                await manual_dial.call_back_now(rt, login, lead_id=cmd.lead_id)
            elif isinstance(cmd, PreviewAcceptCmd | PreviewSkipCmd):
                rt.preview_decision(login, isinstance(cmd, PreviewAcceptCmd))
        except manual_dial.ManualDialRefused as e:
            return ProtocolError(ErrorCode.MANUAL_DIAL_REFUSED, str(e))
        except call_controls.CallControlError as e:
            return ProtocolError(ErrorCode.CONTROL_FAILED, str(e))
        except CoreError as e:
            return protocol_error_for(e)
        except DispositionNotSavedError as e:
            return ProtocolError(ErrorCode.NOT_SAVED, str(e))
        finally:
            await rt.flush_agent_messages(login)  # its state changes go out before the ack
        return None
