"""The lead as the core sees it: a claimed, callable ticket handed over by the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.vocabulary import LeadStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadTicket:
    """A lead the driver has claimed from the database and found callable now.

    The driver filters through scheduling (calendars, calling windows, DNC, retry delays)
    before a ticket reaches the engine; the engine only orders and dials them.
    """

    lead_id: str
    phone_e164: str
    priority: int = 0
    #: when the lead became due (its next-contact time); older first within a tier
    due_at: datetime
    status: LeadStatus = LeadStatus.POTENTIAL
    has_open_complaint: bool = False
    #: agent that owns an agreed callback (None: the campaign owns it, or no callback)
    callback_owner: str | None = None
    #: the agreed callback time (None: not a callback)
    callback_due_at: datetime | None = None
    attempts: int = 0
    timezone: str | None = None
    #: the lead works for a client company (a business number: a receptionist answers)
    company_lead: bool = False
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lead_id:
            raise ValueError("LeadTicket.lead_id must not be empty")
        if not self.phone_e164.startswith("+") or not self.phone_e164[1:].isdigit():
            # the number itself stays out of the message: errors end up in logs
            raise ValueError(
                f"LeadTicket {self.lead_id}: phone_e164 must be E.164 ('+' then digits)"
            )
        if self.due_at.tzinfo is None:
            raise ValueError(f"LeadTicket {self.lead_id}: due_at must be timezone-aware")
        if self.callback_due_at is not None and self.callback_due_at.tzinfo is None:
            raise ValueError(f"LeadTicket {self.lead_id}: callback_due_at must be aware")
        if self.attempts < 0:
            raise ValueError(f"LeadTicket {self.lead_id}: attempts must be >= 0")
        if self.callback_owner is not None and self.callback_due_at is None:
            raise ValueError(
                f"LeadTicket {self.lead_id}: callback_owner set without callback_due_at"
            )

    @property
    def is_callback(self) -> bool:
        return self.callback_due_at is not None
