"""Manual dial and "call back now": the pure rules that decide whether an agent may place a
call to a number it typed (or to its dropped call / due callback) right now.

Pure: no IO. The runtime side looks up the DNC list and the lead, then asks `check_manual_dial`
for the verdict; a refusal carries a stable reason code (the desktop words it from its catalogs
as `manual_reasons.<code>`) and a readable English message for logs and the protocol.

States: a manual call goes to *this* agent only, so the agent must not be able to receive a
routed call meanwhile. Allowed: paused (the engine reserves the agent for the call,
dialer/core/manual_call.py). Refused: ready (the pacer could route a call at the same
moment), talking, reserved and wrap-up (a call in hand: from wrap-up the desktop pauses
first - applied after the wrap-up - then gives the disposition, then dials), logged out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers

from common.vocabulary import AgentState
from scheduling.windows import CallingWindow

#: states from which an agent may place a manual call or "call back now"
MANUAL_DIAL_STATES: frozenset[AgentState] = frozenset({AgentState.PAUSED})


class ManualReason(enum.StrEnum):
    """Why a manual dial is refused: a stable list (renaming one is a protocol change)."""

    INVALID_NUMBER = "invalid_number"
    DNC = "dnc"
    OUTSIDE_WINDOW = "outside_window"
    UNKNOWN_ZONE = "unknown_zone"
    NOT_ALLOWED_IN_STATE = "not_allowed_in_state"
    NO_LEAD = "no_lead"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused manual dial: `code` for pages and metrics, `message` for people, `params` to
    fill the page's wording (never the number itself)."""

    code: ManualReason
    message: str
    params: dict[str, str] = field(default_factory=dict)


class ManualDialError(ValueError):
    """A refused manual dial, raised by the runtime side; `refusal` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.code}: {refusal.message}")
        self.refusal = refusal


def parse_number(raw: str, region: str | None) -> str | Refusal:
    """The typed number in E.164, or a refusal. `region` (ISO 3166 alpha-2: the lead's
    country or the campaign's region) is used for numbers typed without a country code."""
    text = (raw or "").strip()
    if not text:
        return Refusal(ManualReason.INVALID_NUMBER, "number: empty")
    try:
        num = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException as e:
        return Refusal(ManualReason.INVALID_NUMBER, f"number: cannot be read ({e._msg})")
    if not phonenumbers.is_valid_number(num):
        return Refusal(ManualReason.INVALID_NUMBER,
                       "number: not a valid phone number for its country")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def state_refusal(state: AgentState, has_lead: bool) -> Refusal | None:
    """Why the agent's state (or the lack of a current lead) forbids a manual call."""
    if state not in MANUAL_DIAL_STATES:
        allowed = ", ".join(sorted(s.value for s in MANUAL_DIAL_STATES))
        return Refusal(ManualReason.NOT_ALLOWED_IN_STATE,
                       f"not allowed while {state.value} (allowed: {allowed})",
                       {"state": state.value, "allowed": allowed})
    if not has_lead:
        return Refusal(ManualReason.NO_LEAD,
                       "no current lead to attach the call to (be on, wrapping up or "
                       "previewing a lead's call)")
    return None


def window_refusal(window: CallingWindow, zones: tuple[str, ...],
                   now: datetime) -> Refusal | None:
    """Why the number's calling window forbids a call at `now`: it must be open in every
    candidate zone of the number (the strictest reading when a number spans zones)."""
    if not zones:
        return Refusal(ManualReason.UNKNOWN_ZONE,
                       "the number's time zone is unknown, so its calling window cannot be "
                       "checked")
    for z in zones:
        sched = window.in_zone(z)
        if not sched.is_open(now):
            nxt = sched.next_open(now)
            # in the callee's local time: what the agent can tell the customer
            opens = (nxt.astimezone(ZoneInfo(z)).isoformat(timespec="minutes")
                     if nxt else "")
            msg = f"outside the {window.name} calling window in {z}"
            if opens:
                msg += f"; it opens at {opens}"
            return Refusal(ManualReason.OUTSIDE_WINDOW, msg,
                           {"window": window.name, "zone": z, "opens_at": opens})
    return None


def check_manual_dial(*, raw_number: str, region: str | None, state: AgentState,
                      has_lead: bool, is_dnc: bool | None = None,
                      window: CallingWindow | None = None, zones: tuple[str, ...] = (),
                      now: datetime | None = None) -> str | Refusal:
    """The E.164 number to dial, or the first refusal in order: state, number, DNC, window.

    `is_dnc` is the runtime's DNC lookup of the parsed number (None: not looked up yet, so
    the caller can parse first, look up, then call again); `window` None skips the window
    check (the runtime always passes one)."""
    bad = state_refusal(state, has_lead)
    if bad:
        return bad
    parsed = parse_number(raw_number, region)
    if isinstance(parsed, Refusal):
        return parsed
    if is_dnc:
        return Refusal(ManualReason.DNC, "the number is on the do-not-call list")
    if window is not None:
        if now is None:
            raise ValueError("now: required with a window")
        late = window_refusal(window, zones, now)
        if late:
            return late
    return parsed
