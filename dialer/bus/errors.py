"""Errors of the agent protocol (sent to agents) and of the bus itself (raised locally)."""

from __future__ import annotations

import enum

from dialer.core.errors import (
    AlreadyDisposedError,
    CoreError,
    IllegalTransitionError,
    InvalidDispositionError,
    NotYourCallError,
    UnknownAgentError,
    UnknownCallError,
)


class ErrorCode(enum.StrEnum):
    """The `code` of an `error` message. Agents branch on these; never rename a value."""

    # the message itself is wrong (the bus rejects it before the dialer sees it)
    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON, or not a JSON object
    TOO_LARGE = "too_large"  # payload over the size limit
    UNSUPPORTED_VERSION = "unsupported_version"  # `v` is not a version this dialer speaks
    UNKNOWN_TYPE = "unknown_type"  # `type` names no agent command
    INVALID_MESSAGE = "invalid_message"  # a field is missing, extra or of the wrong form
    LOGIN_MISMATCH = "login_mismatch"  # payload `login` differs from the topic's login
    #: over the web desktop's WebSocket: the command's login is not the signed-in agent's
    FORBIDDEN = "forbidden"
    # the dialer refuses it (returned by the runtime's handler)
    UNKNOWN_AGENT = "unknown_agent"  # no such agent configured
    NOT_LOGGED_IN = "not_logged_in"  # the command needs a logged-in agent
    INVALID_STATE = "invalid_state"  # not allowed in the agent's current state
    NOT_YOUR_ATTEMPT = "not_your_attempt"  # the attempt belongs to another agent
    UNKNOWN_ATTEMPT = "unknown_attempt"
    UNKNOWN_LEAD = "unknown_lead"
    UNKNOWN_DISPOSITION = "unknown_disposition"  # code not in the campaign's catalog
    INVALID_DISPOSITION = "invalid_disposition"  # the core refused it (message says why)
    NEXT_CONTACT_REQUIRED = "next_contact_required"  # the disposition needs next_contact_at
    INVALID_NEXT_CONTACT = "invalid_next_contact"  # in the past, or outside allowed bounds
    ALREADY_DISPOSED = "already_disposed"
    NOT_SAVED = "not_saved"  # applied, but not yet in the database: send the same one again
    SESSION_ACTIVE = "session_active"  # login while another session of it is live (takeover)
    STALE_SESSION = "stale_session"  # the session was ended or taken over: log in again
    #: a call control (hold, resume, dtmf) could not be carried out: the customer's phone
    #: refused it or did not answer; the call is as it was (docs/call-controls.md)
    CONTROL_FAILED = "control_failed"
    #: a manual dial the calling rules refuse; the message starts with the reason code
    #: (dialer/core/manual.py `ManualReason`, or `lead_busy`), never with the number
    MANUAL_DIAL_REFUSED = "manual_dial_refused"
    # the dialer could not process it
    OVERLOADED = "overloaded"  # too many commands queued for this agent; retry later
    INTERNAL = "internal"  # a fault in the dialer; logged there, nothing was changed


class ProtocolError(Exception):
    """A command the dialer refuses. The bus sends it to the agent as an `error` message.

    The runtime's command handler returns (or raises) one of these; the message is shown to
    the agent, so it must be useful to a person and must not contain other people's data.
    """

    def __init__(self, code: ErrorCode, message: str, *, ref_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code)
        self.message = message
        #: the offending message's `id`, when it could be read (echoed in the reply)
        self.ref_id = ref_id


class BusError(Exception):
    """The bus cannot do its job (bad URL, broker refused the credentials, not started)."""


def protocol_error_for(exc: CoreError) -> ProtocolError:
    """Translate what the dialer core raised for an agent's command into the reply.

    The runtime calls this at the boundary (errors are translated at the boundary):
    core messages name agents, states, calls and codes, never a callee's data.
    """
    match exc:
        case UnknownAgentError():
            code = ErrorCode.UNKNOWN_AGENT
        case UnknownCallError():
            code = ErrorCode.UNKNOWN_ATTEMPT
        case IllegalTransitionError():
            code = ErrorCode.INVALID_STATE
        case InvalidDispositionError():
            code = ErrorCode.INVALID_DISPOSITION
        case AlreadyDisposedError():
            code = ErrorCode.ALREADY_DISPOSED
        case NotYourCallError():
            code = ErrorCode.NOT_YOUR_ATTEMPT
        case _:
            code = ErrorCode.INTERNAL
    return ProtocolError(code, str(exc))
