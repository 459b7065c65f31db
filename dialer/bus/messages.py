"""The messages of the agent protocol, as strict pydantic models (docs/agent-protocol.md).

Every message is a JSON object with `type`, `v` (protocol version), `id` (the sender's
message id; replies echo it as `ref_id`) and `ts` (ISO 8601 with an offset). On the wire all
four are required; in Python `v`, `id` and `ts` are filled in when not given, so code builds
messages with only the fields that matter, e.g. `ReadyCmd(login="alice")`.

Validation is strict: unknown fields, wrong JSON types ("12" for a number), naive
timestamps and unknown enum values are all refused. The JSON Schemas in docs/schemas are
generated from these models (`python -m dialer.bus.schemas docs/schemas`).

Size: the whole protocol in one module, so the command union, the event models and the
schemas generated from them cannot drift apart.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from common.clock import utc_now
from common.vocabulary import (
    GROUP_PATTERN,
    AgentState,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DispositionSpec,
    LeadStatus,
)
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.topics import LOGIN_PATTERN

PROTOCOL_VERSION: Literal[1] = 1
#: larger payloads are refused before parsing (a screen pop with long notes is ~10 KiB)
MAX_PAYLOAD_BYTES = 64 * 1024
#: the fields every message carries on the wire
ENVELOPE_FIELDS = ("type", "v", "id", "ts")

_MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_MESSAGE_ID_RE = re.compile(_MESSAGE_ID_PATTERN)
MessageId = Annotated[str, StringConstraints(pattern=_MESSAGE_ID_PATTERN)]
Login = Annotated[str, StringConstraints(pattern=LOGIN_PATTERN)]
GroupName = Annotated[str, StringConstraints(pattern=GROUP_PATTERN)]
RowId = Annotated[int, Field(gt=0, lt=2**63)]
DispositionCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Notes = Annotated[str, StringConstraints(max_length=4000)]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
FieldValue = str | int | float | bool | None


class StateChange(Protocol):
    """What dialer.core.actions.AgentStateChanged carries (duck-typed: no import cycle)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def old(self) -> AgentState: ...
    @property
    def new(self) -> AgentState: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...


def new_message_id() -> str:
    """A random message id: 16 hex digits, unique enough for echoing within a session."""
    return secrets.token_hex(8)


def _now() -> datetime:
    # The bus is an IO edge: a message's timestamp is the wall-clock time it was built.
    return utc_now()


def _envelope_required(schema: dict[str, Any]) -> None:
    """JSON Schema: v, id and ts have Python defaults but are required on the wire."""
    required = schema.setdefault("required", [])
    for name in ENVELOPE_FIELDS:
        if name not in required:
            required.append(name)


class _Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, json_schema_extra=_envelope_required
    )

    v: Literal[1] = Field(default=PROTOCOL_VERSION, description="protocol version")
    id: MessageId = Field(
        default_factory=new_message_id,
        description="the sender's message id; replies to it carry it as ref_id",
    )
    ts: AwareDatetime = Field(
        default_factory=_now, description="when the message was sent, ISO 8601 with offset"
    )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# ---------------------------------------------------------------- agent -> dialer (`cmd`)


class _AgentCommand(_Message):
    login: Login = Field(description="the agent's login; must equal the login in the topic")
    session: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")] | None = \
        Field(default=None, description="the session id given at login; a command of a "
              "session that is no longer the login's is refused (stale_session)")

    def to_json(self) -> bytes:
        # a desktop without sessions sends no `session` field at all
        return self.model_dump_json(exclude={"session"} if self.session is None else None
                                    ).encode()


SessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]


class LoginCmd(_AgentCommand):
    """Start (or resume) a session: a new session is logged in and paused until `ready`; the
    reply is the agent's `state`, then the ack."""

    type: Literal["login"] = "login"
    session: SessionId | None = Field(
        default=None,
        description="the desktop's session id (random, kept for the tab's life); one session "
        "per login: another live session is refused unless `takeover` is true",
    )
    takeover: bool = Field(
        default=False, description="end the login's other session and take its place")


class GetStateCmd(_AgentCommand):
    """Ask for the agent's state, its open call, its calls waiting for an outcome and the
    disposition catalog (answered with a `state` event, then the ack)."""

    type: Literal["get_state"] = "get_state"


class HangupCmd(_AgentCommand):
    """End the call this agent is talking on (the agent then wraps up as usual)."""

    type: Literal["hangup"] = "hangup"
    attempt_id: RowId


class HoldCmd(_AgentCommand):
    """Put the customer of the call this agent is talking on on hold (music or silence);
    acked once the customer's phone accepted the hold."""

    type: Literal["hold"] = "hold"
    attempt_id: RowId


class ResumeCmd(_AgentCommand):
    """Take the customer off hold: agent and customer hear each other again."""

    type: Literal["resume"] = "resume"
    attempt_id: RowId


DtmfDigits = Annotated[str, StringConstraints(pattern=r"^[0-9*#A-D]{1,32}$")]


class DtmfCmd(_AgentCommand):
    """Send keypad digits to the customer (an IVR's menu, an extension): RFC 2833
    telephone-events, or SIP INFO where the trunk needs it. The digits are never logged."""

    type: Literal["dtmf"] = "dtmf"
    attempt_id: RowId
    digits: DtmfDigits = Field(description="1 to 32 of 0-9 * # A-D")


class TransferCmd(_AgentCommand):
    """Hand the call this agent is talking on to another agent of the campaign (or a ready
    agent of another campaign of this dialer, for this one call): ``to`` a ready agent, or
    the longest-idle ready agent of ``group``; or to an outside ``number``
    (the manual-dial rules, through the campaign's trunk). ``blind``: acked once the
    customer is connected to that agent (this agent is then free; the receiving agent owns
    the disposition) or to the outside party (this agent gets `call_ended` and owes the
    disposition); ``warm``: the customer is put on hold and acked once the other side
    answered, then `transfer_complete` or `transfer_cancel`. ``notes`` go to the receiving
    agent's screen pop."""

    type: Literal["transfer"] = "transfer"
    attempt_id: RowId
    to: Login | None = Field(default=None, description="the receiving agent's login")
    group: GroupName | Annotated[list[Login], Field(min_length=1, max_length=200)] | None \
        = Field(default=None, description="instead of `to`: a named group of agents (e.g. "
                "closers), or logins to choose from; the longest-idle ready one takes it")
    number: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = Field(
        default=None, description="instead of `to`: an outside number (never logged)")
    mode: Literal["blind", "warm"] = "blind"
    notes: Notes = Field(default="", description="shown in the receiving agent's screen pop")

    @model_validator(mode="after")
    def _one_target(self) -> TransferCmd:
        if sum(x is not None for x in (self.to, self.group, self.number)) != 1:
            raise ValueError("give exactly one of `to`, `group` and `number`")
        return self


class TransferCompleteCmd(_AgentCommand):
    """A warm transfer: hand the customer (taken off hold) to the agent consulted; acked once
    connected."""

    type: Literal["transfer_complete"] = "transfer_complete"
    attempt_id: RowId


class TransferCancelCmd(_AgentCommand):
    """A transfer in progress: give it up; the customer stays with (a warm one: is taken off
    hold and back with) this agent. Acked once done."""

    type: Literal["transfer_cancel"] = "transfer_cancel"
    attempt_id: RowId


class ReadyCmd(_AgentCommand):
    """Ready for calls (from paused, after login, or to end wrap-up early)."""

    type: Literal["ready"] = "ready"


class PauseCmd(_AgentCommand):
    """Take a break; calls already connected are not affected."""

    type: Literal["pause"] = "pause"
    reason: ShortText = Field(description="break, lunch, training, ...")


class LogoutCmd(_AgentCommand):
    """End the session."""

    type: Literal["logout"] = "logout"


class DispositionCmd(_AgentCommand):
    """The coded outcome of a call the agent took, with notes and the next contact."""

    type: Literal["disposition"] = "disposition"
    attempt_id: RowId
    code: DispositionCode = Field(description="a code from the screen pop's dispositions")
    notes: Notes = ""
    next_contact_at: AwareDatetime | None = Field(
        default=None, description="agreed next contact, ISO 8601 with offset"
    )
    callback_scope: CallbackScope = Field(
        default=CallbackScope.AGENT,
        description="who makes the callback: this agent, or anyone on the campaign",
    )


class PreviewAcceptCmd(_AgentCommand):
    """Preview mode: dial the lead shown."""

    type: Literal["preview_accept"] = "preview_accept"
    lead_id: RowId


class ManualDialCmd(_AgentCommand):
    """A paused agent calls a lead itself (docs/call-controls.md): the typed number, checked
    (DNC, the callee's window), placed for this agent only; acked once placed, else
    `manual_dial_refused` with the reason first. ``new_number`` makes it the lead's number."""

    type: Literal["manual_dial"] = "manual_dial"
    lead_id: RowId
    number: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    attach: Literal["one_off", "new_number"] = "one_off"


class ConferenceCmd(_AgentCommand):
    """Bring a third party into this agent's call (docs/call-controls.md): ``to`` a paused
    agent of the campaign, or ``number`` (the manual-dial rules, through the trunk); acked
    once it answered and all three hear each other. `conference_leave` ends its part."""

    type: Literal["conference"] = "conference"
    attempt_id: RowId
    to: Login | None = None
    number: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None

    @model_validator(mode="after")
    def _one_party(self) -> ConferenceCmd:
        if (self.to is None) == (self.number is None):
            raise ValueError("give exactly one of `to` and `number`")
        return self


class ConferenceLeaveCmd(_AgentCommand):
    """Hang up the conference's third party; the agent and the customer talk on."""

    type: Literal["conference_leave"] = "conference_leave"
    attempt_id: RowId


class CallBackNowCmd(_AgentCommand):
    """A paused agent calls back its own lead now (its due callback, or its last call's
    lead): `manual_dial` of the lead's number; `not_yours` / `not_due` otherwise."""

    type: Literal["call_back_now"] = "call_back_now"
    lead_id: RowId


class PreviewSkipCmd(_AgentCommand):
    """Preview mode: do not call the lead shown now."""

    type: Literal["preview_skip"] = "preview_skip"
    lead_id: RowId


AgentCommand = Annotated[
    LoginCmd | ReadyCmd | PauseCmd | LogoutCmd | DispositionCmd | PreviewAcceptCmd
    | PreviewSkipCmd | GetStateCmd | HangupCmd | HoldCmd | ResumeCmd | DtmfCmd | TransferCmd
    | TransferCompleteCmd | TransferCancelCmd | ManualDialCmd | CallBackNowCmd | ConferenceCmd
    | ConferenceLeaveCmd,
    Field(discriminator="type"),
]
AGENT_COMMANDS: TypeAdapter[AgentCommand] = TypeAdapter(AgentCommand)
AGENT_COMMAND_TYPES: tuple[type[_AgentCommand], ...] = (
    LoginCmd, ReadyCmd, PauseCmd, LogoutCmd, DispositionCmd, PreviewAcceptCmd, PreviewSkipCmd,
    GetStateCmd, HangupCmd, HoldCmd, ResumeCmd, DtmfCmd, TransferCmd, TransferCompleteCmd,
    TransferCancelCmd, ManualDialCmd, CallBackNowCmd, ConferenceCmd, ConferenceLeaveCmd,
)


# ---------------------------------------------------------------- dialer -> agent (`evt`)


class LeadCard(BaseModel):
    """The lead as an agent sees it (the agent may see the phone number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: RowId
    name: Annotated[str, StringConstraints(max_length=200)]
    phone: E164
    company: Annotated[str, StringConstraints(max_length=200)] | None = None
    custom_fields: dict[Annotated[str, StringConstraints(max_length=64)], FieldValue] = Field(
        default_factory=dict, max_length=100
    )
    status: LeadStatus


class HistoryEntry(BaseModel):
    """One past attempt on the lead, newest first in a screen pop."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    attempt_id: RowId
    at: AwareDatetime
    result: AttemptResult
    disposition: DispositionCode | None = None
    notes: Notes = ""
    agent: Login | None = None


class DispositionOption(BaseModel):
    """One entry of the campaign's disposition catalog, as the agent's desktop shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    code: DispositionCode
    label: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    needs_callback: bool = False
    final: bool = False

    @classmethod
    def from_spec(cls, spec: DispositionSpec) -> DispositionOption:
        return cls(code=spec.code, label=spec.label, needs_callback=spec.needs_callback,
                   final=spec.final)


class StateEvt(_Message):
    """The agent's state changed (or is being confirmed after login/reconnect)."""

    type: Literal["state"] = "state"
    state: AgentState
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    attempt_id: RowId | None = Field(
        default=None, description="the call this state concerns (reserved, talking, wrap_up)")
    needs_outcome: list[RowId] | None = Field(
        default=None, max_length=1000,
        description="on replies to login/get_state and after a restart: this agent's calls "
        "whose outcome was lost and waits for a disposition")
    dispositions: list[DispositionOption] | None = Field(
        default=None, max_length=200,
        description="on replies to login/get_state: the campaign's disposition catalog")
    since: AwareDatetime | None = Field(
        default=None, description="when the agent entered this state (a desktop that "
        "reloads shows the right time in state)")
    on_hold: bool = Field(
        default=False, description="the call of attempt_id is on hold (the agent's `hold`; "
        "a desktop that reloads shows it)")

    @classmethod
    def from_change(cls, change: StateChange) -> StateEvt:
        """The event for the core's AgentStateChanged action, stamped with its time."""
        return cls(state=change.new, reason=change.reason, ts=change.at)


class TransferInfo(BaseModel):
    """A call handed over by another agent: who, how, and the notes they wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    from_agent: Login
    mode: Literal["blind", "warm"]
    notes: Notes = ""


class ScreenPopEvt(_Message):
    """A call is connected to the agent: who it is, what happened before, what to say."""

    type: Literal["screen_pop"] = "screen_pop"
    attempt_id: RowId
    lead: LeadCard
    history: list[HistoryEntry] = Field(default_factory=list, max_length=200)
    script: Annotated[str, StringConstraints(max_length=20000)] = ""
    dispositions: list[DispositionOption] = Field(min_length=1, max_length=200)
    transfer: TransferInfo | None = Field(
        default=None, description="set when another agent transferred the call to this one")


class CallEndedEvt(_Message):
    """The call ended; the agent is in wrap-up until it sends the disposition."""

    type: Literal["call_ended"] = "call_ended"
    attempt_id: RowId
    talk_s: Annotated[float, Field(ge=0)]


class PreviewEvt(_Message):
    """Preview mode: a lead to review; answer with preview_accept or preview_skip."""

    type: Literal["preview"] = "preview"
    lead: LeadCard
    history: list[HistoryEntry] = Field(default_factory=list, max_length=200)
    script: Annotated[str, StringConstraints(max_length=20000)] = ""


class CallbackReminderEvt(_Message):
    """A callback owned by this agent is due soon."""

    type: Literal["callback_reminder"] = "callback_reminder"
    lead_id: RowId
    due_at: AwareDatetime


class ErrorEvt(_Message):
    """A command was refused; nothing was changed."""

    type: Literal["error"] = "error"
    ref_id: MessageId | None = Field(
        description="id of the refused message; null when it could not be read"
    )
    code: ErrorCode
    message: Annotated[str, StringConstraints(max_length=1000)]


class AckEvt(_Message):
    """A command was accepted and applied."""

    type: Literal["ack"] = "ack"
    ref_id: MessageId


DialerMessage = Annotated[
    StateEvt | ScreenPopEvt | CallEndedEvt | PreviewEvt | CallbackReminderEvt | ErrorEvt
    | AckEvt,
    Field(discriminator="type"),
]
DIALER_MESSAGES: TypeAdapter[DialerMessage] = TypeAdapter(DialerMessage)
DIALER_MESSAGE_TYPES: tuple[type[_Message], ...] = (
    StateEvt, ScreenPopEvt, CallEndedEvt, PreviewEvt, CallbackReminderEvt, ErrorEvt, AckEvt,
)


# ---------------------------------------------------------------- dialer -> supervisors


class SupervisorCallEvent(_Message):
    """A call changed stage. Carries ids only: no phone numbers or names."""

    type: Literal["call"] = "call"
    attempt_id: RowId
    campaign: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    stage: AttemptStage
    result: AttemptResult | None = None
    agent: Login | None = None
    lead_id: RowId | None = None
    sip_code: Annotated[int, Field(ge=100, le=699)] | None = None
    ring_s: Annotated[float, Field(ge=0)] | None = None
    talk_s: Annotated[float, Field(ge=0)] | None = None


class SupervisorAgentEvent(_Message):
    """An agent changed state."""

    type: Literal["agent_state"] = "agent_state"
    login: Login
    state: AgentState
    previous: AgentState | None = None
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    attempt_id: RowId | None = None

    @classmethod
    def from_change(cls, change: StateChange, attempt_id: int | None = None
                    ) -> SupervisorAgentEvent:
        return cls(login=change.agent_id, state=change.new, previous=change.old,
                   reason=change.reason, attempt_id=attempt_id, ts=change.at)


class SupervisorListenEvent(_Message):
    """A supervisor's listen-in on a call started, changed mode, or ended (docs/call-controls.md).
    Ids only: the supervisor's phone is not named."""

    type: Literal["listen"] = "listen"
    attempt_id: RowId
    campaign: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    mode: Literal["monitor", "whisper", "barge"]
    active: bool = Field(description="true while the supervisor is joined to the call")
    agent: Login | None = None
    reason: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="why it ended (stopped, supervisor hung up, call ended, ...)")


SupervisorEvent = Annotated[
    SupervisorCallEvent | SupervisorAgentEvent | SupervisorListenEvent,
    Field(discriminator="type"),
]
SUPERVISOR_EVENTS: TypeAdapter[SupervisorEvent] = TypeAdapter(SupervisorEvent)
SUPERVISOR_EVENT_TYPES: tuple[type[_Message], ...] = (
    SupervisorCallEvent, SupervisorAgentEvent, SupervisorListenEvent,
)


# ---------------------------------------------------------------- parsing


def _describe_errors(err: ValidationError) -> str:
    """Field-by-field reasons without echoing the input values back."""
    parts = []
    for e in err.errors(include_input=False, include_url=False)[:5]:
        # drop the union tag pydantic puts first in the location ("disposition.attempt_id")
        loc = ".".join(str(p) for p in e["loc"][1:])
        parts.append(f"{loc or 'message'}: {e['msg']}")
    more = len(err.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_command(payload: bytes | bytearray, topic_login: str) -> AgentCommand:
    """Decode one agent command received on `topic_login`'s cmd topic.

    Raises ProtocolError (with `ref_id` set when the message's id could be read) for
    anything that is not a well-formed command of this protocol version from that agent.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"payload is {len(payload)} bytes; the limit is "
            f"{MAX_PAYLOAD_BYTES}"
        )
    try:
        raw = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"payload is not UTF-8 JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.MALFORMED_JSON, "payload must be a JSON object")
    ref = raw.get("id")
    ref_id = ref if isinstance(ref, str) and _MESSAGE_ID_RE.fullmatch(ref) else None
    missing = [k for k in ENVELOPE_FIELDS if k not in raw]
    if missing:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"missing required field(s): {', '.join(missing)}",
            ref_id=ref_id,
        )
    if raw["v"] != PROTOCOL_VERSION or isinstance(raw["v"], bool):
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {raw['v']!r} is not supported; this dialer speaks v="
            f"{PROTOCOL_VERSION}",
            ref_id=ref_id,
        )
    known = {t.model_fields["type"].default for t in AGENT_COMMAND_TYPES}
    if not isinstance(raw["type"], str) or raw["type"] not in known:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"type {raw['type']!r} is not an agent command; expected one of "
            f"{', '.join(sorted(known))}",
            ref_id=ref_id,
        )
    try:
        # validate the bytes, not `raw`: strict JSON mode accepts ISO strings for datetimes
        # and enum values while still refusing "12" for a number
        cmd = AGENT_COMMANDS.validate_json(bytes(payload))
    except ValidationError as e:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, _describe_errors(e), ref_id=ref_id) from None
    if cmd.login != topic_login:
        raise ProtocolError(
            ErrorCode.LOGIN_MISMATCH,
            f"login {cmd.login!r} in the message does not match the topic's login "
            f"{topic_login!r}",
            ref_id=ref_id,
        )
    return cmd


def parse_dialer_message(payload: bytes | bytearray) -> DialerMessage:
    """Decode a dialer -> agent message (agents' side). Raises pydantic.ValidationError."""
    return DIALER_MESSAGES.validate_json(bytes(payload))


def parse_supervisor_event(payload: bytes | bytearray) -> SupervisorEvent:
    """Decode a supervisor stream event. Raises pydantic.ValidationError."""
    return SUPERVISOR_EVENTS.validate_json(bytes(payload))
