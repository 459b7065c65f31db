"""The console's admin pages (docs/console.md): add an agent account, upload a lead file,
add numbers to the do-not-call list. Each calls the command line's own code path, so the
page and `dialer agents add` / `dialer leads import` / `dialer dnc add` agree:

* `POST /api/console/agents` (admin) `{"login", "password", "sip_uri", "campaign",
  "display_name", "groups"}`: `db.web_accounts.add_agent`, as `dialer agents add`
* `POST /api/console/leads/import?campaign=&region=&delimiter=&encoding=&create_companies=`
  with the CSV file as the request body: `dialer.importer.import_leads`, as `dialer leads
  import`, answering its row-by-row report (every rejected or skipped row: line, outcome,
  reason, detail)
* `POST /api/console/dnc` `{"numbers", "region", "reason"}`: `db.dnc.add`, as `dialer dnc add`

Each success writes one audit row (the login, counts; never a password or phone number).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.vocabulary import MAX_GROUPS_PER_AGENT, check_groups
from db import audit, dnc, web_accounts
from db.audit import Actor
from db.repositories import RepositoryError
from db.web_accounts import AccountError
from dialer.importer import ImportOptions, LeadImportError, import_leads
from dialer.lead_csv import RowIssue
from dialer.passwords import hash_password
from dialer.web.auth import Signed, role
from dialer.web.deps import WebDeps, deps

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console")
Deps = Annotated[WebDeps, Depends(deps)]
Supervisor = Annotated[Signed, Depends(role("supervisor", "admin"))]
Admin = Annotated[Signed, Depends(role("admin"))]

#: an uploaded lead file's limit (a bigger one goes through `dialer leads import`)
MAX_UPLOAD = 20 * 1024 * 1024
#: rejected or skipped rows listed in the answer (the counts cover all of them)
MAX_ISSUES = 5000


class NewAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=1024)
    sip_uri: str = Field(min_length=5, max_length=255, pattern=r"^sips?:\S+$")
    campaign: str | None = Field(default=None, max_length=100)
    display_name: str = Field(default="", max_length=200)
    groups: list[str] = Field(default_factory=list, max_length=MAX_GROUPS_PER_AGENT)

    @field_validator("groups")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return check_groups(v)


class DncAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[str] = Field(min_length=1, max_length=1000)
    region: str = Field(default="US", pattern=r"^[A-Za-z]{2}$")
    reason: str | None = Field(default=None, max_length=200)


@router.post("/agents")
async def add_agent(body: NewAgent, s: Admin, d: Deps) -> dict[str, Any]:
    """A database agent with its web account, as `dialer agents add`; the running dialer
    takes it on at its next start."""
    password_hash = await asyncio.to_thread(hash_password, body.password)
    try:
        account = await web_accounts.add_agent(
            d.sessions, login=body.login, sip_uri=body.sip_uri, password_hash=password_hash,
            now=d.clock.now(), display_name=body.display_name, campaign=body.campaign or None,
            groups=body.groups)
    except AccountError as e:
        raise HTTPException(409 if "already" in str(e) else 422, str(e)) from None
    await audit.record(d.sessions, Actor.user(s.login), "agent.add", f"agent:{account.login}",
                       {"campaign": account.campaign}, now=d.clock.now())
    log.info("web: admin %s added agent %s", s.login, account.login)
    return {"login": account.login, "campaign": account.campaign, "role": account.role,
            "note": "the dialer takes the agent on at its next start"}


def _issue(i: RowIssue) -> dict[str, Any]:
    return {"line": i.line, "outcome": i.outcome.value, "reason": i.reason.value,
            "detail": i.detail}


@router.post("/leads/import")
async def leads_import(
    request: Request, s: Supervisor, d: Deps,
    campaign: Annotated[str, Query(min_length=1, max_length=100)],
    region: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    delimiter: Annotated[str, Query(max_length=5)] = "auto",
    encoding: Annotated[str, Query(max_length=40)] = "utf-8",
    create_companies: bool = False,
) -> dict[str, Any]:
    """Import the request body (a CSV file) into `campaign`; the answer is the import's
    report, row by row, as `dialer leads import` prints and writes it."""
    try:
        opts = ImportOptions(campaign=campaign, region=region.upper() if region else None,
                             delimiter="\t" if delimiter == "tab" else delimiter,
                             encoding=encoding, create_companies=create_companies)
    except LeadImportError as e:
        raise HTTPException(422, str(e)) from None
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"the file is over {MAX_UPLOAD // 2**20} MiB: import it "
                                     "with `dialer leads import`")
    if not data:
        raise HTTPException(422, "file: the upload is empty")
    issues: list[RowIssue] = []

    def keep(issue: RowIssue) -> None:
        if len(issues) < MAX_ISSUES:
            issues.append(issue)

    with tempfile.TemporaryDirectory(prefix="dialer-upload-") as tmp:
        path = Path(tmp) / "leads.csv"
        await asyncio.to_thread(path.write_bytes, bytes(data))
        try:
            summary = await import_leads(d.sessions, path, opts, now=d.clock.now(),
                                         on_issue=keep)
        except LeadImportError as e:
            raise HTTPException(422, str(e)) from None
    figures = {"rows": summary.rows, "imported": summary.imported,
               "rejected": summary.rejected, "skipped": summary.skipped,
               "blank_lines": summary.blank_lines}
    await audit.record(d.sessions, Actor.user(s.login), "leads.import", f"campaign:{campaign}",
                       {**figures, "bytes": len(data)}, now=d.clock.now())
    return {"campaign": summary.campaign, "delimiter": summary.delimiter,
            "encoding": summary.encoding, **figures,
            "by_reason": dict(summary.by_reason),
            "companies_created": list(summary.companies_created),
            "issues": [_issue(i) for i in issues]}


@router.post("/dnc")
async def dnc_add(body: DncAdd, s: Supervisor, d: Deps) -> dict[str, Any]:
    """Add numbers to the internal do-not-call list, as `dialer dnc add`; their leads stop."""
    numbers = []
    for k, raw in enumerate(body.numbers):
        try:
            numbers.append(dnc.normalise_number(raw, body.region.upper()))
        except ValueError as e:
            raise HTTPException(422, f"numbers[{k}]: {e}") from None
    added = stopped = 0
    try:
        for n in numbers:
            got = await dnc.add(d.sessions, n, now=d.clock.now(), source="internal",
                                reason=body.reason)
            added += got.added
            stopped += got.leads_stopped
    except (RepositoryError, ValueError) as e:
        raise HTTPException(503, f"the do-not-call list was not changed: {e}") from None
    await audit.record(d.sessions, Actor.user(s.login), "dnc.add", "dnc:internal",
                       {"numbers": len(numbers), "added": added, "leads_stopped": stopped,
                        "reason": body.reason or ""}, now=d.clock.now())
    return {"numbers": len(numbers), "added": added, "already_listed": len(numbers) - added,
            "leads_stopped": stopped}
