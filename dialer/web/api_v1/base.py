"""What the CRM API's routers share: the dependencies, the store errors as problems, opaque
cursors, and the JSON shapes of stored rows (no personal data beyond what a scope reads)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends

from db.api_store import Conflict, NotFound
from db.audit import Actor
from db.models import Attempt, Lead
from db.repositories import RepositoryError
from dialer.lead_csv import LeadImportError
from dialer.web.api_v1.auth import ApiCaller, require_scope
from dialer.web.api_v1.problems import Problem
from dialer.web.deps import WebDeps, deps

log = logging.getLogger(__name__)

Deps = Annotated[WebDeps, Depends(deps)]


def scope(name: str) -> Any:
    """`caller: scope("leads:write")`: the request's token, holding the scope."""
    return Annotated[ApiCaller, Depends(require_scope(name))]


# the callers of each scope, as parameter types: `caller: LeadsWrite`
CampaignsRead = Annotated[ApiCaller, Depends(require_scope("campaigns:read"))]
CampaignsWrite = Annotated[ApiCaller, Depends(require_scope("campaigns:write"))]
LeadsRead = Annotated[ApiCaller, Depends(require_scope("leads:read"))]
LeadsWrite = Annotated[ApiCaller, Depends(require_scope("leads:write"))]
CompaniesRead = Annotated[ApiCaller, Depends(require_scope("companies:read"))]
CompaniesWrite = Annotated[ApiCaller, Depends(require_scope("companies:write"))]
DncRead = Annotated[ApiCaller, Depends(require_scope("dnc:read"))]
DncWrite = Annotated[ApiCaller, Depends(require_scope("dnc:write"))]
CallbacksRead = Annotated[ApiCaller, Depends(require_scope("callbacks:read"))]
CallbacksWrite = Annotated[ApiCaller, Depends(require_scope("callbacks:write"))]
AttemptsRead = Annotated[ApiCaller, Depends(require_scope("attempts:read"))]
ReportsRead = Annotated[ApiCaller, Depends(require_scope("reports:read"))]


def actor(caller: ApiCaller) -> Actor:
    return Actor.token(caller.name)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Store errors as problems: NotFound 404, Conflict 409, a database failure 503."""
    try:
        yield
    except NotFound as e:
        raise Problem(404, None, str(e)) from None
    except Conflict as e:
        raise Problem(409, None, str(e)) from None
    except LeadImportError as e:
        raise Problem(422, None, str(e)) from None
    except RepositoryError as e:
        log.warning("CRM API: database error: %s", e.operation)
        raise Problem(503, None, f"the database failed ({e.operation}); retry later",
                      headers={"Retry-After": "5"}) from None


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else p for p in parts],
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list[Any]:
    """The parts of an opaque cursor (422 naming `cursor` when it is not one of ours)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError
        out: list[Any] = []
        for p, k in zip(parts, kinds, strict=True):
            if k is datetime:
                out.append(datetime.fromisoformat(p))
            elif k is int and isinstance(p, int):
                out.append(p)
            else:
                raise ValueError
        return out
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Problem(422, None, "cursor: not a cursor this API gave out; use `next_cursor` "
                                 "of the previous page", field="cursor") from None


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def lead_json(lead: Lead, campaign: str) -> dict[str, Any]:
    return {"id": lead.id, "campaign": campaign, "external_id": lead.external_id,
            "phone": lead.phone_e164, "name": lead.name, "company_id": lead.company_id,
            "timezone": lead.timezone, "status": lead.status.value, "priority": lead.priority,
            "custom_fields": dict(lead.custom_fields or {}),
            "next_contact_at": iso(lead.next_contact_at), "next_call_at": iso(lead.next_call_at),
            "never_reason": lead.never_reason, "attempts": lead.attempts,
            "last_result": lead.last_result.value if lead.last_result else None,
            "last_attempt_at": iso(lead.last_attempt_at),
            "created_at": iso(lead.created_at), "updated_at": iso(lead.updated_at)}


def attempt_json(a: Attempt, *, campaign: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id, "campaign_id": a.campaign_id, "lead_id": a.lead_id,
        "phone": a.phone_e164, "dial_mode": a.dial_mode.value, "stage": a.stage.value,
        "result": a.result.value if a.result else None, "created_at": iso(a.created_at),
        "answered_at": iso(a.answered_at), "ended_at": iso(a.ended_at),
        "sip_code": a.sip_code, "amd_verdict": a.amd_verdict.value, "abandoned": a.abandoned,
        "ring_s": a.ring_s, "talk_s": a.talk_s, "agent_id": a.agent_id,
        "disposition": a.disposition, "notes": a.notes,
        "next_contact_at": iso(a.next_contact_at), "opted_out": a.opted_out}
    if campaign is not None:
        out["campaign"] = campaign
    return out
