"""Manual dial: an agent's own call to a lead, placed for that agent only (pure).

    manual_dial(agent, lead)   PAUSED -> RESERVED ("manual"), Dial(call, lead, agent)

The agent is reserved for the call as for an agent-owned callback: an answer is bridged to
it (never to another agent, and never abandoned: the agent is waiting), no answer frees it.
Whatever the call's end, the agent goes back to PAUSED with the reason it had (a pending
pause set here), so it is never READY in between and never routed another call meanwhile.

Only a paused agent may dial (decision, docs/call-controls.md): a ready agent could be
handed a paced call at the same moment. From wrap-up the desktop sends `pause` (applied
after the wrap-up), the disposition, then `manual_dial`. The calling rules (number, DNC,
the callee's window) are checked before this input by the runtime (dialer/manual_call.py,
dialer/core/manual.py).
"""

from __future__ import annotations

from datetime import datetime

from common.vocabulary import AgentState
from dialer.core.actions import Action
from dialer.core.errors import IllegalTransitionError
from dialer.core.held import delivers_held
from dialer.core.tickets import LeadTicket
from dialer.core.transfer import TransferStep

#: the reserved agent's reason while its manual call rings
MANUAL = "manual"


class ManualStep(TransferStep):
    """The manual-dial input of `CampaignEngine` (see the module docstring)."""

    @delivers_held
    def manual_dial(self, now: datetime, agent_id: str, lead: LeadTicket) -> list[Action]:
        """Place a call to `lead` (its number as the agent typed it) for `agent_id`."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        if rec.state is not AgentState.PAUSED:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "manual_dial")
        back = rec.reason or MANUAL
        self._set(rec, AgentState.RESERVED, t, now, out, MANUAL)
        rec.pending, rec.pending_reason = AgentState.PAUSED, back
        self._dial(lead, t, now, out, reserved_agent=agent_id)
        self._after(t, now, out)
        return out
