"""Errors raised by the pure dialer core.

The core is driven by a runtime that translates its own failures (SQL, SIP, MQTT) into
calls on the engine; what the engine raises is always one of these, naming what was wrong,
so a driver can log and drop one bad input without stopping the campaign.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error the dialer core raises."""


class InvalidInputError(CoreError, ValueError):
    """An engine input was malformed (naive datetime, missing result, empty reason...)."""


class EngineConfigError(CoreError, ValueError):
    """A campaign configuration value is out of range or inconsistent."""


class UnknownAgentError(CoreError, KeyError):
    """An input named an agent the engine does not know (never logged in)."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"unknown agent {agent_id!r}: agent_login() it first")
        self.agent_id = agent_id

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownCallError(CoreError, KeyError):
    """An input named a call id the engine never issued or already finished."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"unknown or finished call {call_id!r}")
        self.call_id = call_id

    def __str__(self) -> str:
        return str(self.args[0])


class IllegalTransitionError(CoreError):
    """A state machine was asked for a transition its current state does not allow."""

    def __init__(self, what: str, current: str, wanted: str) -> None:
        super().__init__(f"{what}: cannot go from {current!r} to {wanted!r}")
        self.what = what
        self.current = current
        self.wanted = wanted


class InvalidDispositionError(CoreError, ValueError):
    """An agent's disposition is not in the catalog or lacks a required field."""


class AlreadyDisposedError(CoreError):
    """A disposition for a call whose outcome is already recorded (a re-send: nothing to do)."""


class NotYourCallError(CoreError):
    """An agent named a call that another agent had."""
