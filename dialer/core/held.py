"""Holding abandon messages across a refused engine input (see `delivers_held`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Concatenate, ParamSpec

from dialer.core.actions import Action
from dialer.core.engine_state import EngineState
from dialer.core.errors import CoreError

P = ParamSpec("P")


def delivers_held(
    fn: Callable[Concatenate[EngineState, datetime, P], list[Action]],
) -> Callable[Concatenate[EngineState, datetime, P], list[Action]]:
    """Wrap an input so a refused input cannot swallow an abandon message.

    Every input first expires overdue waiting calls (their abandon message is due now),
    then checks its own arguments. If the check raises, the messages already decided would
    be lost with the exception although the call is in MESSAGE and counted as abandoned;
    they are held instead and returned first by the next input or `tick` (next_wakeup is
    then "now"), so a bad agent command can never leave a person in silence.
    """

    @functools.wraps(fn)
    def wrapper(
        self: EngineState, now: datetime, /, *args: P.args, **kwargs: P.kwargs
    ) -> list[Action]:
        self._expired_now = []
        try:
            out = fn(self, now, *args, **kwargs)
        except CoreError:
            self._held.extend(self._expired_now)
            raise
        finally:
            self._expired_now = []
        if self._held:
            out = [*self._held, *out]
            self._held = []
        return out

    return wrapper
