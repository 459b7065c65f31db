"""The console's companies and admin endpoints on SQLite and PostgreSQL: the week view of a
company's calendar with its reasons and the overlap with the campaign's callee window; edits
with `dialer companies set`'s own errors; lead upload with the importer's row-by-row report;
DNC additions; agent accounts (admin only). Each change lands one audit row."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner
from web_harness import NOW, WebDb, make_deps, seed, sign_in

from common.clock import ManualClock
from db import audit, web_accounts
from db.models import Agent, Company, Lead
from db.session import create_engine, session_factory
from dialer.cli_companies import companies_app
from dialer.passwords import hash_password
from dialer.web.server import create_app


@pytest.fixture
async def both(db_url: str, password_hashes: dict[str, str]
               ) -> AsyncIterator[tuple[httpx.AsyncClient, WebDb]]:
    engine = create_engine(db_url)
    try:
        db = await seed(session_factory(engine), password_hashes)
        db.url = db_url
        await web_accounts.create_user(db.sessions, login="ada", role="admin",
                                       password_hash=hash_password("ada-admin-pw"), now=NOW)
        d = make_deps(db, ManualClock(NOW))
        transport = httpx.ASGITransport(app=create_app(d), client=("10.0.0.8", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, db
    finally:
        await engine.dispose()


async def _actions(db: WebDb) -> list[str]:
    return [r.action for r in reversed(await audit.entries(db.sessions))]


def _cli_error(db: WebDb, *args: str) -> str:
    """`dialer companies set` refusing `args` (these refusals come before any database)."""
    cli = typer.Typer()
    cli.add_typer(companies_app, name="companies")
    url = db.url.replace("+aiosqlite", "").replace("+asyncpg", "")
    r = CliRunner().invoke(cli, ["companies", "set", "Acme SIA", *args, "--db", url],
                           env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert r.exit_code == 2, r.output
    return " ".join(r.output.split())


async def test_company_week_overlap_and_edits(both: tuple[httpx.AsyncClient, WebDb]) -> None:
    c, db = both
    csrf = {"X-CSRF-Token": await sign_in(c, "sue")}
    listed = (await c.get("/api/console/companies")).json()["companies"]
    assert [(x["name"], x["timezone"], x["hours"], x["holidays"], x["leads"])
            for x in listed] == [("Acme SIA", "Europe/Riga",
                                  "mon-fri 09:00-12:00,13:00-17:00", "LV", 1)]
    r = await c.get("/api/console/companies/Acme SIA")
    assert r.status_code == 200, r.text
    co = r.json()
    # Wednesday 2 December 2026, 17:00 in Riga: closed after hours
    assert co["today"]["date"] == "2026-12-02" and co["today"]["open_now"] is False
    week = {d["date"]: d for d in co["week"]}
    assert week["2026-12-02"]["open"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert week["2026-12-05"]["open"] == [] and week["2026-12-05"]["notes"] == ["day off"]
    assert len(co["week"]) == 7
    spring = next(o for o in co["overlap"] if o["campaign"] == "spring")
    assert spring["window"] == "us_federal"
    day = next(x for x in spring["days"] if x["date"] == "2026-12-02")
    assert day["callee_window"] == [["08:00", "21:00"]]
    assert day["overlap"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    # Latvia's Christmas holidays, by name
    later = (await c.get("/api/console/companies/Acme SIA?from=2026-12-24")).json()["week"]
    assert later[0]["open"] == [] and later[0]["notes"][0].startswith("holiday: ")
    assert (await c.get("/api/console/companies/Nobody")).status_code == 404
    assert (await c.get("/api/console/companies/Acme SIA?from=soon")).status_code == 422

    # the CLI's own errors, with the field named as the page names it
    for field, value, option in (("hours", "mon-thu 8:3-12", "--hours"),
                                 ("holidays", "XX", "--holidays"),
                                 ("days_off", "funday", "--days-off")):
        r = await c.put("/api/console/companies/Acme SIA", headers=csrf, json={field: value})
        assert r.status_code == 422, r.text
        web = r.json()["detail"]
        assert web.startswith(field)
        cli = _cli_error(db, option, value)
        assert web.removeprefix(field) in cli.replace(option, "", 1), (web, cli)
    r = await c.put("/api/console/companies/Acme SIA", headers=csrf, json={"hours": "closed"})
    assert r.status_code == 422 and "not changed" in r.json()["detail"]
    assert (await c.put("/api/console/companies/Acme SIA", headers=csrf,
                        json={})).status_code == 422
    assert await _actions(db) == []

    # a longer lunch, a closure and a special day: stored and shown
    r = await c.put("/api/console/companies/Acme SIA", headers=csrf, json={
        "hours": "mon-fri 08:30-11:30,13:30-17:00", "add_closures": ["2026-12-28..2026-12-30"],
        "special_days": ["2026-12-04=09:00-12:00"]})
    assert r.status_code == 200, r.text
    assert r.json()["hours"] == "mon-fri 08:30-11:30,13:30-17:00" and r.json()["leads"] == 1
    week = {d["date"]: d for d in (await c.get("/api/console/companies/Acme SIA")).json()["week"]}
    assert week["2026-12-03"]["open"] == [["08:30", "11:30"], ["13:30", "17:00"]]
    assert week["2026-12-04"]["open"] == [["09:00", "12:00"]]
    assert week["2026-12-04"]["notes"] == ["special day"]
    async with db.sessions() as s:
        row = await s.scalar(select(Company).where(Company.name == "Acme SIA"))
        assert row is not None and row.closures == [{"start": "2026-12-28",
                                                     "end": "2026-12-30"}]
    assert await _actions(db) == ["company.set"]


async def test_lead_upload_dnc_and_agent_accounts(
        both: tuple[httpx.AsyncClient, WebDb]) -> None:
    c, db = both
    csrf = {"X-CSRF-Token": await sign_in(c, "sue")}
    body = (b"phone,name\n+12125550142,Ann Example\n12345,Too short\n,Nobody\n"
            b"+12125550142,Twice\n+12125550199,Bo Example\n")
    r = await c.post("/api/console/leads/import?campaign=spring", headers=csrf, content=body)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["rows"], rep["imported"], rep["rejected"], rep["skipped"]) == (5, 2, 2, 1)
    assert [(i["line"], i["outcome"]) for i in rep["issues"]] == [
        (3, "rejected"), (4, "rejected"), (5, "skipped")]
    assert all(i["detail"] for i in rep["issues"])
    r = await c.post("/api/console/leads/import?campaign=nope", headers=csrf, content=body)
    assert r.status_code == 422 and "no campaign named 'nope'" in r.json()["detail"]
    r = await c.post("/api/console/leads/import?campaign=spring&delimiter=x", headers=csrf,
                     content=body)
    assert r.status_code == 422 and "delimiter" in r.json()["detail"]

    r = await c.post("/api/console/dnc", headers=csrf,
                     json={"numbers": ["+12125550142", "(212) 555-0199"], "reason": "asked"})
    assert r.status_code == 200, r.text
    assert r.json() == {"numbers": 2, "added": 2, "already_listed": 0, "leads_stopped": 2}
    async with db.sessions() as s:
        stopped = (await s.scalars(select(Lead.status).where(
            Lead.phone_e164.in_(["+12125550142", "+12125550199"])))).all()
        assert {str(x) for x in stopped} == {"dnc"}
    r = await c.post("/api/console/dnc", headers=csrf, json={"numbers": ["+1212555014x"]})
    assert r.status_code == 422 and r.json()["detail"].startswith("numbers[0]")

    # accounts: an admin's business
    new = {"login": "cy", "password": "cy-agent-pw", "sip_uri": "sip:cy@pbx.example.com",
           "campaign": "spring", "display_name": "Cy"}
    r = await c.post("/api/console/agents", headers=csrf, json=new)
    assert r.status_code == 403
    await c.delete("/api/session", headers=csrf)
    csrf = {"X-CSRF-Token": await sign_in(c, "ada", "ada-admin-pw")}
    r = await c.post("/api/console/agents", headers=csrf, json=new)
    assert r.status_code == 200 and r.json()["campaign"] == "spring", r.text
    assert (await c.post("/api/console/agents", headers=csrf, json=new)).status_code == 409
    bad = {**new, "login": "dee", "sip_uri": "alice"}
    r = await c.post("/api/console/agents", headers=csrf, json=bad)
    assert r.status_code == 422 and "sip_uri" in r.json()["detail"]
    # named groups (transfer targets): at creation, then replaced; names are checked
    r = await c.post("/api/console/agents", headers=csrf,
                     json={**new, "login": "dee", "groups": ["Closers!"]})
    assert r.status_code == 422 and "group name 'Closers!'" in r.json()["detail"]
    r = await c.post("/api/console/agents", headers=csrf,
                     json={**new, "login": "dee", "groups": ["closers", "closers"]})
    assert r.status_code == 200, r.text
    async with db.sessions() as s:
        assert (await s.scalar(select(Agent.groups).where(Agent.login == "dee"))) == ["closers"]
    r = await c.put("/api/console/agents/dee/groups", headers=csrf,
                    json={"groups": ["senior", "retention"]})
    assert r.status_code == 200 and r.json()["groups"] == ["senior", "retention"]
    async with db.sessions() as s:
        assert (await s.scalar(select(Agent.groups).where(Agent.login == "dee"))) \
            == ["senior", "retention"]
    r = await c.put("/api/console/agents/nobody/groups", headers=csrf, json={"groups": []})
    assert r.status_code == 404
    r = await c.put("/api/console/agents/dee/groups", headers=csrf, json={"groups": ["a b"]})
    assert r.status_code == 422
    r = await c.post("/api/session", json={"login": "cy", "password": "cy-agent-pw"})
    assert r.status_code == 200 and r.json()["role"] == "agent"
    assert await _actions(db) == ["leads.import", "dnc.add", "agent.add", "agent.add",
                                  "agent.groups"]
    entries = await audit.entries(db.sessions)
    assert all("+1212" not in str(e.detail) for e in entries)  # no phone numbers
