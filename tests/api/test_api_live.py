"""The CRM API against a live `dialer run` (the fault harness's call center: SIPp callees
behind a Kamailio proxy, SIPp agent phones, simulated agents, the web server on).

A token made with the real `dialer tokens create`; 1,000 leads pushed over HTTP in one bulk
upsert; the dialer calls them; the attempts endpoint pages through those calls; a re-sent
batch changes nothing while the dialer works.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from support.crm import create_token, fresh_numbers
from support.faults import CAMPAIGN, wait_for
from support.kamailio import available as kamailio_available
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

LEADS = 1000


async def test_leads_pushed_over_http_are_called(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    spec = WebSpec(leads={"answer_1_5": 1}, web_agents={},
                   agents={"agent1": "pw-1", "agent2": "pw-2"},
                   campaign_toml='dial_mode = "power"\nlines_per_agent = 2.0\n')
    async with WebStack(tmp_path, spec) as st:
        token = await create_token(
            st, "crm", ["leads:write", "leads:read", "attempts:read", "campaigns:read"])
        batch = [{"external_id": f"crm-{i}", "phone": p, "name": f"Live {i}",
                  "timezone": z, "priority": 50}
                 for i, (p, z) in enumerate(fresh_numbers(st, LEADS))]
        async with httpx.AsyncClient(base_url=st.web_url, timeout=60, headers={
                "Authorization": f"Bearer {token}"}) as c:
            r = await c.post("/api/v1/leads/bulk", json={"campaign": CAMPAIGN, "leads": batch})
            assert r.status_code == 200, r.text
            rep = r.json()
            assert (rep["created"], rep["rejected"], rep["skipped"]) == (LEADS, 0, 0), \
                rep["issues"][:5]
            ours = {x["id"] for x in rep["results"]}

            called: dict[int, dict] = {}

            async def ten_ended() -> bool:
                cursor = None
                while True:
                    params = {"campaign": CAMPAIGN, "limit": 50,
                              **({"cursor": cursor} if cursor else {})}
                    page = (await c.get("/api/v1/attempts", params=params)).json()
                    for a in page["attempts"]:
                        if a["lead_id"] in ours:
                            called[a["id"]] = a
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                return sum(1 for a in called.values() if a["result"] is not None) >= 10

            await wait_for(ten_ended, 180, "ten calls to leads pushed over the API")
            done = [a for a in called.values() if a["result"] is not None]
            assert {a["result"] for a in done} <= {"connected", "abandoned", "no_answer"}
            assert any(a["result"] == "connected" and a["talk_s"] for a in done)
            # the phone numbers the API reports are the ones it was given
            phones = {x["phone"] for x in batch}
            assert all(a["phone"] in phones for a in called.values())
            one = (await c.get(f"/api/v1/leads/{done[0]['lead_id']}")).json()
            assert one["external_id"].startswith("crm-") and one["calls"]

            again = (await c.post("/api/v1/leads/bulk",
                                  json={"campaign": CAMPAIGN, "leads": batch})).json()
            assert again["created"] == 0 and again["unchanged"] + again["updated"] == LEADS
            stats = (await c.get(f"/api/v1/campaigns/{CAMPAIGN}/stats")).json()
            assert stats["leads"] == LEADS + 1 and stats["attempts"] >= 10
            # erasure while the dialer works: done, or 409 while the lead is being dialled
            r = await c.delete(f"/api/v1/leads/{done[0]['lead_id']}")
            assert r.status_code in (200, 409), r.text
