"""/api/v1/leads: create one, bulk upsert (up to 10,000 per request), read with its calls,
update, and erase (GDPR).

The bulk upsert is the CSV import (dialer/importer.py `import_values`): the same row rules
(dialer/lead_rows.py), the same DNC and duplicate checks, the same chunked writes, and the
same per-row report (`index` is the row's position in `leads`, `reason` the importer's).
Rows keyed by `external_id` are created, updated, or reported `unchanged` when they say what
the lead already says, so a re-sent batch changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.vocabulary import LeadStatus
from db import api_store
from db.audit import Actor
from db.bulk import analyze
from db.repositories import Sessions
from dialer.importer import (
    ANALYZE_AFTER,
    PRIORITY_MAX,
    PRIORITY_MIN,
    STATUS_ALIASES,
    ImportOptions,
    LeadValues,
    Reason,
    Row,
    RowIssue,
    canonical_zone,
    import_values,
)
from dialer.web.api_v1.base import (
    Deps,
    LeadsRead,
    LeadsWrite,
    actor,
    attempt_json,
    lead_json,
    store_errors,
)
from dialer.web.api_v1.problems import Problem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/leads", tags=["leads"])

#: most rows one bulk request may carry
MAX_BULK = 10_000

#: the field a row issue's reason is about (the report names it)
REASON_FIELD = {
    Reason.MISSING_FIELD: "phone", Reason.BAD_PHONE: "phone", Reason.BAD_VALUE: "name",
    Reason.BAD_COMPANY: "company", Reason.BAD_TIMEZONE: "timezone",
    Reason.BAD_PRIORITY: "priority", Reason.BAD_STATUS: "status",
    Reason.BAD_NEXT_CONTACT: "next_contact_at", Reason.DUPLICATE_IN_FILE: "phone",
    Reason.DUPLICATE_IN_DB: "phone", Reason.DNC: "phone",
}

Scalar = str | int | float | bool | None


class LeadFields(BaseModel):
    """One lead as the CRM sends it. Values are checked by the import's row rules; a row
    they refuse is reported (bulk) or answered 422 (single), naming the field."""

    model_config = ConfigDict(extra="forbid")

    external_id: str | None = Field(default=None, min_length=1, max_length=100,
                                    description="the CRM's key: unique per campaign")
    phone: str = Field(max_length=64, description="E.164, or national for the region")
    name: str = Field(default="", max_length=1000)
    company: str | None = Field(default=None, max_length=1000)
    timezone: str | None = Field(default=None, max_length=64)
    priority: int | str | None = None
    status: str | None = Field(default=None, max_length=64)
    next_contact_at: str | None = Field(default=None, max_length=64,
                                        description="ISO 8601; naive times are the lead's zone")
    custom_fields: dict[str, Scalar] = Field(default_factory=dict)

    def values(self) -> LeadValues:
        v = {"phone": self.phone, "name": self.name, "company": self.company or "",
             "timezone": self.timezone or "", "status": self.status or "",
             "priority": "" if self.priority is None else str(self.priority),
             "next_contact_at": self.next_contact_at or ""}
        custom = {str(k)[:100]: ("" if x is None else str(x))
                  for k, x in self.custom_fields.items() if x not in (None, "")}
        return LeadValues(values=v, custom=custom, external_id=self.external_id)


class LeadCreate(LeadFields):
    campaign: str = Field(min_length=1, max_length=100)
    create_companies: bool = False


class BulkUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign: str = Field(min_length=1, max_length=100)
    #: create the companies rows name that do not exist yet (else such rows are rejected)
    create_companies: bool = False
    #: region of numbers written without +country code (default: the campaign's)
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    leads: list[LeadFields] = Field(max_length=MAX_BULK)


class LeadPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    priority: int | None = Field(default=None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    status: str | None = None
    custom_fields: dict[str, Scalar] | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        z = canonical_zone(v)
        if z is None:
            raise ValueError(f"unknown time zone {v[:64]!r}")
        return z

    @field_validator("status")
    @classmethod
    def _status(cls, v: str | None) -> str | None:
        if v is None:
            return v
        key = v.casefold()
        try:
            return (STATUS_ALIASES.get(key) or LeadStatus(key)).value
        except ValueError:
            raise ValueError("expected one of " + ", ".join(s.value for s in LeadStatus)) \
                from None


def issue_json(i: RowIssue) -> dict[str, Any]:
    return {"index": i.line, "outcome": i.outcome.value, "reason": i.reason.value,
            "field": REASON_FIELD.get(i.reason, "lead"), "detail": i.detail}


class StatisticsRefresh:
    """When to refresh PostgreSQL's planner statistics of `leads` as a CRM's batches arrive:
    after `ANALYZE_AFTER` rows or more, when the rows since the last refresh are half as many
    as all rows written before it (the table grew by half: plans made for the old size
    would turn the next batches' look-ups into scans) or a minute has passed. A CSV import
    refreshes after each file; a CRM sending batches back to back would otherwise ANALYZE
    after every one."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        self.since = 0
        self.before = 0
        self.at = -math.inf

    def due(self, rows: int) -> bool:
        self.since += rows
        if self.since < ANALYZE_AFTER:
            return False
        if self.since * 2 < self.before and time.monotonic() - self.at < self.EVERY_S:
            return False
        self.before += self.since
        self.since = 0
        self.at = time.monotonic()
        return True


async def upsert(sessions: Sessions, campaign: str, items: list[LeadValues], *,
                 create_companies: bool, region: str | None, now: datetime, by: Actor,
                 refresh: StatisticsRefresh | None = None,
                 ) -> tuple[Any, list[RowIssue], list[dict[str, Any]]]:
    """Run the import over `items` (each chunk audited as `by`, in its transaction):
    (summary, issues, per-row results)."""
    issues: list[RowIssue] = []
    results: list[dict[str, Any]] = []

    def on_row(r: Row, result: str, lead_id: int) -> None:
        results.append({"index": r.line, "external_id": r.external_id, "id": lead_id,
                        "result": result})

    with store_errors():
        opts = ImportOptions(campaign=campaign, create_companies=create_companies,
                             region=region, chunk_size=2500)
        # not after every one of a CRM's back-to-back batches: see StatisticsRefresh
        summary = await import_values(sessions, items, opts, now=now,
                                      on_issue=issues.append, on_row=on_row,
                                      analyze_after=None, audit_as=by)
    if refresh is not None and refresh.due(summary.imported + summary.updated):
        await analyze(sessions, "leads", after="API upserts")
    results.sort(key=lambda x: x["index"])
    return summary, issues, results


def _count_rows(d: Any, summary: Any) -> None:
    if d.metrics is not None:
        d.metrics.api.rows({"created": summary.imported, "updated": summary.updated,
                            "unchanged": summary.unchanged, "rejected": summary.rejected,
                            "skipped": summary.skipped})


def _refresh_of(request: Request) -> StatisticsRefresh:
    refresh: StatisticsRefresh | None = getattr(request.app.state, "api_statistics", None)
    if refresh is None:
        refresh = request.app.state.api_statistics = StatisticsRefresh()
    return refresh


@router.post("/bulk")
async def bulk_upsert(body: BulkUpsert, d: Deps, request: Request,
                      caller: LeadsWrite) -> dict[str, Any]:
    """Create or update up to 10,000 leads. Good rows are written even when others are
    reported; the report lists every row that was not written with the field and why."""
    summary, issues, results = await upsert(
        d.sessions, body.campaign, [x.values() for x in body.leads],
        create_companies=body.create_companies, region=body.region, now=d.clock.now(),
        by=actor(caller), refresh=_refresh_of(request))
    _count_rows(d, summary)
    return {"campaign": summary.campaign, "received": summary.rows,
            "created": summary.imported, "updated": summary.updated,
            "unchanged": summary.unchanged, "rejected": summary.rejected,
            "skipped": summary.skipped, "companies_created": summary.companies_created,
            "results": results, "issues": [issue_json(i) for i in issues]}


@router.post("", status_code=201)
async def create_lead(body: LeadCreate, d: Deps, response: Response,
                      caller: LeadsWrite) -> dict[str, Any]:
    """One lead, through the same rules as the bulk upsert: 201 created; 422 naming the
    field when they refuse it; 409 when the number is already in the campaign or on a DNC
    list. With an `external_id` the campaign has, the lead is updated (200, `result`
    `updated` or `unchanged`). Audited like a bulk upsert of one row (`leads.upsert`)."""
    now = d.clock.now()
    fields = LeadFields.model_validate(body.model_dump(exclude={"campaign",
                                                                "create_companies"}))
    summary, issues, results = await upsert(
        d.sessions, body.campaign, [fields.values()],
        create_companies=body.create_companies, region=None, now=now, by=actor(caller))
    _count_rows(d, summary)
    if issues:
        i = issues[0]
        status = 422 if i.outcome.value == "rejected" else 409
        f = REASON_FIELD.get(i.reason, "lead")
        raise Problem(status, None, f"{f}: {i.detail}", code=i.reason.value,
                      errors=[{"field": f, "message": i.detail}])
    r = results[0]
    if r["result"] != "created":
        response.status_code = 200
    with store_errors():
        lead, campaign = await api_store.get_lead(d.sessions, r["id"])
    return {**lead_json(lead, campaign), "result": r["result"]}


@router.get("")
async def find_leads(d: Deps, _c: LeadsRead,
                     campaign: Annotated[str, Query(min_length=1, max_length=100)],
                     external_id: Annotated[str, Query(min_length=1, max_length=100)],
                     ) -> dict[str, Any]:
    """The lead a campaign has under the CRM's `external_id` (404 if none)."""
    with store_errors():
        lead = await api_store.lead_by_external_id(d.sessions, campaign, external_id)
    if lead is None:
        raise Problem(404, None, f"campaign {campaign!r} has no lead with external_id "
                                 f"{external_id!r}", field="external_id")
    return lead_json(lead, campaign)


@router.get("/{lead_id}")
async def read_lead(lead_id: int, d: Deps,
                    _c: LeadsRead) -> dict[str, Any]:
    """The lead and its last 100 calls, newest first."""
    with store_errors():
        lead, campaign = await api_store.get_lead(d.sessions, lead_id)
        calls = await api_store.lead_attempts(d.sessions, lead_id)
    return {**lead_json(lead, campaign), "calls": [attempt_json(a) for a in calls]}


@router.patch("/{lead_id}")
async def update_lead(lead_id: int, body: LeadPatch, d: Deps,
                      caller: LeadsWrite) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    if "name" in given and given["name"] is None:
        raise Problem(422, None, "name: may not be null", field="name")
    values: dict[str, Any] = {k: v for k, v in given.items() if v is not None or k == "timezone"}
    if "status" in values:
        values["status"] = LeadStatus(values["status"])
    if "custom_fields" in values:
        values["custom_fields"] = {k: str(v) for k, v in values["custom_fields"].items()
                                   if v not in (None, "")}
    with store_errors():
        await api_store.update_lead(d.sessions, lead_id, values, actor=actor(caller),
                                    now=d.clock.now())
        lead, campaign = await api_store.get_lead(d.sessions, lead_id)
    return lead_json(lead, campaign)


@router.delete("/{lead_id}")
async def erase_lead(lead_id: int, d: Deps,
                     caller: LeadsWrite) -> dict[str, Any]:
    """GDPR erasure: the lead and its calls keep no name, number, custom fields or notes,
    and its call recordings are deleted; the lead is never called again. Figures (counts,
    durations, outcomes) stay."""
    with store_errors():
        n, recordings = await api_store.erase_lead(d.sessions, lead_id, actor=actor(caller),
                                                   now=d.clock.now())
    deleted = await asyncio.to_thread(delete_recordings, recordings)
    return {"id": lead_id, "erased": True, "calls_anonymised": n,
            "recordings_deleted": deleted}


def delete_recordings(paths: list[str]) -> int:
    """Delete the call recordings of an erased lead. Only WAV files in a `recordings`
    directory are touched (what the dialer writes), so a tampered row cannot delete other
    files; one already gone counts as deleted. A file that cannot be deleted is logged
    (its attempt no longer names it) and not counted."""
    done = 0
    for raw in paths:
        path = Path(raw)
        if path.suffix.lower() != ".wav" or path.parent.name != "recordings":
            log.warning("erasure: not deleting %s: not a call recording of the dialer", path)
            continue
        try:
            path.unlink(missing_ok=True)
            done += 1
        except OSError as e:
            log.error("erasure: could not delete a call recording: %s", e)
    return done
