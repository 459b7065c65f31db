"""The bulk upsert and `dialer leads import` are one code path: the same rows give the same
leads and the same report (reason and detail), a file's line N being the API's index N-2."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from api_harness import NOW, ApiDb
from sqlalchemy import select

from db.models import Campaign, Lead
from dialer.importer import ImportOptions, import_leads

ROWS = [
    ("+12125550101", "Ann", "", "5", "", ""),
    ("12", "Bad Phone", "", "", "", ""),
    ("+12125550102", "", "", "", "", ""),
    ("+12125550103", "Zed", "Mars/Base", "", "", ""),
    ("+12125550104", "Pri", "", "101", "", ""),
    ("+12125550105", "St", "", "", "boiling", ""),
    ("+12125550106", "When", "", "", "", "31.02.2026"),
    ("+12125550101", "Ann again", "", "", "", ""),
    ("(212) 555-0107", "National", "America/Chicago", "", "hot", "2026-12-03 10:00"),
]


async def test_same_rows_same_report(client: httpx.AsyncClient, api_db: ApiDb,
                                     tmp_path: Path) -> None:
    async with api_db.sessions.begin() as s:
        s.add(Campaign(name="csv", caller_id="+14155550100", timezone="America/New_York"))
    path = tmp_path / "leads.csv"
    path.write_text("phone,name,timezone,priority,status,next_contact_at\n"
                    + "".join(",".join(r) + "\n" for r in ROWS))
    issues = []
    summary = await import_leads(api_db.sessions, path, ImportOptions(campaign="csv"),
                                 now=NOW, on_issue=issues.append)
    # the one difference: a file's issue names lines, the API's the rows' indexes
    from_file = [(i.line - 2, i.outcome.value, i.reason.value,
                  re.sub(r"as line (\d+)", lambda m: f"as row {int(m.group(1)) - 2}", i.detail))
                 for i in issues]

    leads = [{"phone": p, "name": n, "timezone": tz or None, "priority": pr or None,
              "status": st or None, "next_contact_at": nc or None}
             for p, n, tz, pr, st, nc in ROWS]
    rep = (await client.post("/api/v1/leads/bulk",
                             json={"campaign": "spring", "leads": leads})).json()
    from_api = [(i["index"], i["outcome"], i["reason"], i["detail"]) for i in rep["issues"]]
    assert from_api == from_file and len(from_file) == 7
    assert rep["created"] == summary.imported == 2

    async def stored(campaign: str) -> list[tuple]:
        async with api_db.sessions() as s:
            rows = await s.scalars(select(Lead).join(Campaign).where(Campaign.name == campaign)
                                   .order_by(Lead.phone_e164))
            return [(x.phone_e164, x.name, x.timezone, x.priority, x.status, x.next_contact_at,
                     x.next_call_at, x.hopper_tier) for x in rows]

    assert await stored("csv") == await stored("spring")
