"""The telephony engine's interface: commands the dialer sends and events it receives.

Plain frozen dataclasses with no pjsua2 import, so the dialer core, the simulator and the
node processes all share them. ``call_id`` is always chosen by the caller: the dialer passes its
engine's call id (a string such as ``<campaign>-<run>-<n>``, not the attempt's database id) and
keeps the mapping to the attempt itself, so every event maps straight back to one call.

Time stamps: every event carries ``mono`` (``time.monotonic()`` of the machine where the
event happened; CLOCK_MONOTONIC is system-wide on Linux, so node and dialer values compare on
one host) and ``wall`` (aware UTC datetime) for storage.

The wire codec (:func:`to_wire` / :func:`from_wire`) turns these objects into JSON-safe dicts
for the pool <-> node message protocol; it only knows the classes registered here.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from common.vocabulary import AmdVerdict, AttemptResult

HangupBy = Literal["remote", "local", "node"]

#: The default auto-answer headers put on agent legs (Polycom/Yealink/Snom/Linphone style).
AUTO_ANSWER_HEADERS: dict[str, str] = {
    "Call-Info": "<sip:127.0.0.1>;answer-after=0",
    "Alert-Info": "<http://127.0.0.1>;info=alert-autoanswer;delay=0",
}


class SipApiError(ValueError):
    """A command or configuration value is invalid; the message names the field."""


def _check_call_id(call_id: str, name: str = "call_id") -> None:
    if not isinstance(call_id, str) or not call_id or len(call_id) > 128:
        raise SipApiError(
            f"{name} must be a non-empty string of at most 128 chars, got {call_id!r}"
        )


def _check_sip_uri(uri: str, name: str) -> None:
    if not isinstance(uri, str) or not uri.lower().startswith(("sip:", "sips:")) or "@" not in uri:
        raise SipApiError(f"{name} must be a SIP URI like 'sip:user@host[:port]', got {uri!r}")


def _check_headers(headers: dict[str, str], name: str = "headers") -> None:
    for k, v in headers.items():
        if not isinstance(k, str) or not k or any(c in k for c in ":\r\n "):
            raise SipApiError(f"{name}: invalid header name {k!r}")
        if not isinstance(v, str) or "\r" in v or "\n" in v:
            raise SipApiError(f"{name}: invalid value for header {k!r}")


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AmdSettings:
    """Answering-machine detection settings (times in ms).

    ``method`` selects the analyser (docs/sip.md, "Answering-machine detection"): ``"vad"``
    (default) decides from what follows the greeting - the caller waiting (silence after
    speech) -> human, a greeting going on past ``greeting_budget_ms`` or a beep -> machine -
    with the WebRTC voice-activity detector; ``"energy"`` is the classic energy/cadence method
    whose thresholds follow Asterisk ``app_amd`` (also the fallback when the VAD package is
    missing). ``max_analysis_ms`` bounds the whole analysis (the 2-second abandon clock may be
    running meanwhile: keep it short); with ``"vad"`` give it at least pick-up delay (~1 s) +
    ``greeting_budget_ms`` + ``vad_long_silence_ms``, or long greetings end as UNKNOWN.
    ``decide_by_ms`` (default 2.5 s after answer) is the decision deadline for people: a caller
    who has stopped after a short answer by then is HUMAN without the full closing silence.
    """

    initial_silence_ms: int = 2500
    greeting_ms: int = 1500
    after_greeting_silence_ms: int = 800
    max_analysis_ms: int = 6500
    min_word_ms: int = 100
    between_words_silence_ms: int = 50
    max_words: int = 3
    #: mean absolute sample value (16-bit PCM) above which a 20 ms frame counts as voice
    silence_threshold: int = 256
    #: "vad" (voice activity + beep) or "energy" (classic app_amd cadence rules)
    method: str = "vad"
    #: vad: the decision-time budget per campaign - a greeting still going on this long after
    #: its first voiced frame is a recorded one (a receptionist has stopped and waits by then)
    greeting_budget_ms: int = 4500
    #: vad: silence after a short greeting meaning the caller waits for us -> HUMAN (tuned by
    #: bench/amd.py on its 2,400-clip corpus; Asterisk's app_amd waits 800 ms by default)
    vad_silence_ms: int = 900
    #: vad: the same after a greeting longer than 1.5 s (receptionist or recording): a little
    #: longer, to hear a beep that follows a recorded greeting's pause (never below
    #: ``vad_silence_ms``: the larger of the two applies)
    vad_long_silence_ms: int = 900
    #: vad: WebRTC VAD aggressiveness 0..3 (3 = least likely to call noise speech; frames
    #: are also gated by the line's noise floor)
    vad_aggressiveness: int = 1
    #: vad: after a long-greeting verdict keep listening up to this long for the beep (or the
    #: greeting's end) so a message starts after it; 0 = report at once
    beep_wait_ms: int = 0
    #: vad: the decision deadline, ms after answer (0 = none). Still undecided then, a caller
    #: who has stopped talking (``decide_by_pause_ms``) and never said one utterance (speech
    #: without a pause of 160 ms) longer than ``decide_by_utterance_ms`` is HUMAN (cause
    #: ``deadline``: when in doubt a person); anything else (a greeting still going on, a
    #: tone) is left to the rules above. The two limits are bench/amd.py's tuned values; the
    #: deadline itself is set per campaign (``amd_decide_by_ms``)
    decide_by_ms: int = 2500
    #: vad: the pause that, at the deadline, means the caller has stopped talking
    decide_by_pause_ms: int = 240
    #: vad: the longest utterance still taken for a person at the deadline
    decide_by_utterance_ms: int = 1200

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "method":
                if v not in AMD_METHODS:
                    raise SipApiError(f"AmdSettings.method must be one of {AMD_METHODS}, got {v!r}")
                continue
            low = 0 if f.name in ("vad_aggressiveness", "beep_wait_ms", "decide_by_ms") else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                kind = "a non-negative" if low == 0 else "a positive"
                raise SipApiError(f"AmdSettings.{f.name} must be {kind} int, got {v!r}")
        if self.max_analysis_ms > 30_000:
            raise SipApiError("AmdSettings.max_analysis_ms must be <= 30000")
        if self.vad_aggressiveness > 3:
            raise SipApiError("AmdSettings.vad_aggressiveness must be 0..3")
        if not 1000 <= self.greeting_budget_ms <= 20_000:
            raise SipApiError("AmdSettings.greeting_budget_ms must be in [1000, 20000]")
        if not 200 <= self.vad_silence_ms <= 5000:
            raise SipApiError("AmdSettings.vad_silence_ms must be in [200, 5000]")
        if not 200 <= self.vad_long_silence_ms <= 5000:
            raise SipApiError("AmdSettings.vad_long_silence_ms must be in [200, 5000]")
        if self.decide_by_ms and not 1000 <= self.decide_by_ms <= 30_000:
            raise SipApiError(
                f"AmdSettings.decide_by_ms must be 0 (no deadline) or in [1000, 30000] ms after "
                f"answer, got {self.decide_by_ms}"
            )
        if not 20 <= self.decide_by_pause_ms <= 5000:
            raise SipApiError(
                f"AmdSettings.decide_by_pause_ms must be in [20, 5000] ms, "
                f"got {self.decide_by_pause_ms}"
            )
        if not 200 <= self.decide_by_utterance_ms <= 20_000:
            raise SipApiError(
                f"AmdSettings.decide_by_utterance_ms must be in [200, 20000] ms, "
                f"got {self.decide_by_utterance_ms}"
            )


#: the analysers :class:`AmdSettings.method` can select
AMD_METHODS = ("vad", "energy")


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Originate:
    """Place a call to a customer.

    ``ring_timeout_s`` counts from the first 18x (compliance: at least 15 s by default in
    campaigns); ``setup_timeout_s`` bounds the wait for the first 18x/200 after the INVITE.
    ``reserve_agent_slot`` makes the pool keep a slot for the agent leg on the same node (the
    two legs must share a conference bridge); only set it False for calls never bridged.
    """

    call_id: str
    target: str
    caller_id: str
    ring_timeout_s: float
    trunk: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    amd: AmdSettings | None = None
    record_path: str | None = None
    setup_timeout_s: float = 30.0
    reserve_agent_slot: bool = True

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_sip_uri(self.target, "Originate.target")
        if not isinstance(self.caller_id, str) or not self.caller_id.strip():
            raise SipApiError("Originate.caller_id must be a non-empty number or SIP URI")
        if not (0 < self.ring_timeout_s <= 600):
            raise SipApiError(
                f"Originate.ring_timeout_s must be in (0, 600], got {self.ring_timeout_s}"
            )
        if not (0 < self.setup_timeout_s <= 600):
            raise SipApiError(
                f"Originate.setup_timeout_s must be in (0, 600], got {self.setup_timeout_s}"
            )
        _check_headers(self.headers, "Originate.headers")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    """Call an agent's phone and connect it to the (answered) customer call, media both ways."""

    call_id: str
    agent_call_id: str
    agent_uri: str
    answer_timeout_s: float = 5.0
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTO_ANSWER_HEADERS))
    #: place the agent leg through this trunk's account (PBX credentials / outbound proxy)
    trunk: str | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_call_id(self.agent_call_id, "agent_call_id")
        _check_sip_uri(self.agent_uri, "Bridge.agent_uri")
        if not (0 < self.answer_timeout_s <= 120):
            raise SipApiError(
                f"Bridge.answer_timeout_s must be in (0, 120], got {self.answer_timeout_s}"
            )
        _check_headers(self.headers, "Bridge.headers")


@dataclass(frozen=True, slots=True, kw_only=True)
class Play:
    """Play a WAV (8/16 kHz mono PCM) to an answered call; optionally hang up at its end."""

    call_id: str
    #: "" plays the pool's default message (PoolConfig.message_wav)
    wav_path: str = ""
    hangup_after: bool = True

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        if not isinstance(self.wav_path, str):
            raise SipApiError("Play.wav_path must be a file path (or '' for the default message)")


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecording:
    """Record the conversation (customer + agent mixed) to a WAV file until the call ends."""

    call_id: str
    wav_path: str

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        if not isinstance(self.wav_path, str) or not self.wav_path.endswith(".wav"):
            raise SipApiError("StartRecording.wav_path must be a path ending in .wav")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """End the call (CANCEL before answer, BYE after); the agent leg goes with it."""

    call_id: str
    reason: str = ""

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)


Command = Originate | Bridge | Play | StartRecording | Hangup


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _EventBase:
    call_id: str
    mono: float = field(default_factory=time.monotonic)
    wall: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTrying(_EventBase):
    """The INVITE left the node. ``node`` names it (``node-<index>``, as the metrics label)."""

    node: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging(_EventBase):
    """First 18x (and again if early media starts later). The ring timer starts here."""

    early_media: bool
    sip_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(_EventBase):
    """200 OK received and ACKed; media is up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmdDone(_EventBase):
    verdict: AmdVerdict
    took_ms: int
    #: short machine-readable cause, e.g. "long_greeting", "silence_after_greeting"
    cause: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLegAnswered(_EventBase):
    agent_call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLegFailed(_EventBase):
    """The agent's phone did not answer in time, was busy, or the leg failed / hung up early.

    The customer call stays up: the router may Bridge it to another agent.
    """

    agent_call_id: str
    sip_code: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallBridged(_EventBase):
    agent_call_id: str
    #: customer answered -> media connected to the agent, measured on the node
    latency_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackDone(_EventBase):
    """A Play finished (or was cut short because the call ended)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStats:
    """RTP packet counters at the node for the customer leg and (if any) the agent leg."""

    rx_packets: int = 0
    tx_packets: int = 0
    agent_rx_packets: int = 0
    agent_tx_packets: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(_EventBase):
    """The final event of a call (exactly one per accepted Originate, unless CallLost).

    ``hangup_by``: "remote" = the callee ended or refused it; "local" = a dialer command
    (Hangup, Play with hangup_after) or the agent hanging up; "node" = the node decided on its
    own (ring timeout, setup timeout, shutdown). ``result`` is the node's classification; for
    answered calls it is CONNECTED when an agent was bridged, MACHINE when AMD said machine,
    else ABANDONED - the dialer may refine it with what it knows.
    """

    result: AttemptResult
    sip_code: int | None
    reason: str
    hangup_by: HangupBy
    ring_s: float | None
    talk_s: float | None
    retryable: bool
    answered_after_cancel: bool = False
    media: MediaStats | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallLost(_EventBase):
    """The node holding the call died; the outcome is unknown (close the attempt as LOST).

    The final event of the call (never followed by a CallEnded). What the pool had heard of
    the call until then: ``answered`` (a CallAnswered came), ``bridged`` (a CallBridged came),
    ``ring_s`` (first 18x -> answer, or -> the loss when unanswered), ``talk_s`` (answer -> the
    loss), ``node`` (``node-<index>``). Defaults keep older producers valid.
    """

    reason: str
    answered: bool = False
    bridged: bool = False
    ring_s: float | None = None
    talk_s: float | None = None
    node: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(_EventBase):
    """The customer pressed a key (RFC 2833/4733 telephone-event or SIP INFO), e.g. the
    opt-out key during the recorded message (compliance: a DNC request at once)."""

    digit: str
    method: str  # "rfc2833" | "sip_info" | "inband"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkStatus(_EventBase):
    """Registration state of a trunk changed (``call_id`` is ``trunk:<name>``).

    ``registered`` False with ``sip_code`` e.g. 401/403 (bad credentials), 408 (registrar
    unreachable) or 503: the trunk is failing and calls through it will fail too.
    """

    trunk: str
    registered: bool
    sip_code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkHealthChanged(_EventBase):
    """The pool's circuit breaker of a trunk moved (``call_id`` is ``trunk:<name>``).

    ``state`` and ``previous`` are ``"closed"`` (calls go), ``"open"`` (Originates through the
    trunk are refused with a retryable CommandRejected) or ``"half_open"`` (a trial call may
    go); ``reason`` says why (no phone numbers); ``failures`` is the count of consecutive trunk
    failures when it moved (docs/trunks.md). At pool start every trunk is reported once with
    ``previous == state`` (a snapshot, not a transition).
    """

    trunk: str
    state: str
    previous: str
    reason: str
    failures: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(_EventBase):
    """A command could not be executed. ``retryable`` e.g. for PJ_ETOOMANY (70010) / pool full."""

    error: str
    retryable: bool
    command: str = ""


Event = (
    CallTrying
    | CallRinging
    | CallAnswered
    | AmdDone
    | AgentLegAnswered
    | AgentLegFailed
    | CallBridged
    | PlaybackDone
    | CallEnded
    | CallLost
    | CommandRejected
    | TrunkStatus
    | TrunkHealthChanged
    | DtmfReceived
)

# ---------------------------------------------------------------------------------------------
# Classification of a final SIP response (issue 3)
# ---------------------------------------------------------------------------------------------

_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480, 487})
_INVALID = frozenset({404, 484, 604})
_REJECTED = frozenset({403, 603})
#: 5xx that describe a permanent condition of the request or trunk: do not retry blindly
_PERMANENT_5XX = frozenset({501, 505, 513, 580})


def classify_failure(sip_code: int | None, *, got_provisional: bool) -> tuple[AttemptResult, bool]:
    """Map the final SIP code of an unanswered call to (result, retryable).

    A 408 generated locally (no response at all: Timer B) is a network failure, while a 408
    after ringing is the far end giving up (no answer).
    """
    if sip_code is None:
        return AttemptResult.FAILED, True
    if sip_code in _BUSY:
        return AttemptResult.BUSY, True
    if sip_code == 408 and not got_provisional:
        return AttemptResult.FAILED, True
    if sip_code in _NO_ANSWER:
        return AttemptResult.NO_ANSWER, True
    if sip_code in _INVALID:
        return AttemptResult.INVALID_NUMBER, False
    if sip_code in _REJECTED:
        return AttemptResult.REJECTED, False
    if 500 <= sip_code < 600:
        return AttemptResult.FAILED, sip_code not in _PERMANENT_5XX
    # 401/407 after credentials were tried, other 4xx/6xx: misconfiguration, not transient
    return AttemptResult.FAILED, False


# ---------------------------------------------------------------------------------------------
# Wire codec (pool <-> node)
# ---------------------------------------------------------------------------------------------

_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (
        AmdSettings,
        Originate,
        Bridge,
        Play,
        StartRecording,
        Hangup,
        CallTrying,
        CallRinging,
        CallAnswered,
        AmdDone,
        AgentLegAnswered,
        AgentLegFailed,
        CallBridged,
        PlaybackDone,
        MediaStats,
        CallEnded,
        CallLost,
        CommandRejected,
        TrunkStatus,
        TrunkHealthChanged,
        DtmfReceived,
    )
}
_ENUMS: dict[str, type[enum.Enum]] = {"AmdVerdict": AmdVerdict, "AttemptResult": AttemptResult}


def _enc(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return to_wire(v)
    if isinstance(v, enum.Enum):
        return {"__enum__": type(v).__name__, "v": v.value}
    if isinstance(v, datetime):
        return {"__dt__": v.isoformat()}
    if isinstance(v, dict):
        return {k: _enc(x) for k, x in v.items()}
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        if "__type__" in v:
            return from_wire(v)
        if "__enum__" in v:
            return _ENUMS[v["__enum__"]](v["v"])
        if "__dt__" in v:
            return datetime.fromisoformat(v["__dt__"])
        return {k: _dec(x) for k, x in v.items()}
    return v


def to_wire(obj: Any) -> dict[str, Any]:
    """Encode a registered command/event dataclass into a JSON-safe dict."""
    name = type(obj).__name__
    if name not in _CLASSES:
        raise SipApiError(f"cannot encode {name}: not a sip.api message")
    out: dict[str, Any] = {"__type__": name}
    for f in dataclasses.fields(obj):
        out[f.name] = _enc(getattr(obj, f.name))
    return out


def from_wire(data: dict[str, Any]) -> Any:
    """Decode what :func:`to_wire` produced; raises SipApiError on unknown types/fields."""
    try:
        cls = _CLASSES[data["__type__"]]
    except (KeyError, TypeError) as exc:
        raise SipApiError(f"unknown message type in {data!r:.200}") from exc
    kwargs = {k: _dec(v) for k, v in data.items() if k != "__type__"}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SipApiError(f"bad fields for {cls.__name__}: {exc}") from exc


# the call-control messages (hold, DTMF, listen-in) register themselves with the codec above
from sip import api_controls as _api_controls  # noqa: E402, F401
