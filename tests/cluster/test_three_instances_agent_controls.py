"""Agent controls and listen-in given on one instance's console for an agent another instance
serves (docs/cluster.md, "Agent controls and listen-in on any console"), with real parts: two
`dialer run` processes in their own network namespaces (tests/cluster/lab.py), one PostgreSQL,
one Mosquitto, SIPp callees (20 s calls) and SIPp phones for the agents and the supervisor.

Everything is given on d1's console, for agents whose lease is d2's:

* listen-in on a call bridged on d2: the session is created on d2 (d2's own list has it, its
  node rang the supervisor's SIPp phone), the supervisor's phone on the `pstn` host receives
  the call's audio from d2's host (an RTP counter there) until a stop through d1 ends the
  session on d2; d1's list shows it; one `listen.start` and one `listen.stop` row;
* force pause and log out: d2 acts (its log says so, the agent state log has the pause's
  reason, d2's board has the agent logged out), one audit row each; move to the second
  campaign: `agents.campaign_id` changes;
* a request marked as forwarded is answered by d1 itself (404), never sent on;
* d2 killed (-9): a control for its agent through d1 is answered 503 naming d2, and nothing
  is recorded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialer.agentsim import AgentProfile
from dialer.web.console_forward import ANSWERED_BY, FORWARDED
from support.netns import NetLab, unavailable

from .lab import CAMPAIGN, ClusterLab
from .lab import lab_until as _until

why = unavailable() or (None if shutil.which("sipp") else "sipp not installed")
pytestmark = [
    pytest.mark.skipif(why is not None, reason=why or ""),
    pytest.mark.slow,
    pytest.mark.sipp,
    pytest.mark.timeout(300),
]

PROFILE = AgentProfile(
    wrapup_s=(0.5, 1.0),
    break_probability=0.0,
    settle_s=(0.2, 0.5),
    auto_resume_s=(1.0, 2.0),
    reply_timeout_s=8.0,
)
#: a second campaign on every instance: where an agent is moved to
SECOND = "spare"
CAMPAIGNS_TOML = f"""dial_mode = "progressive"

[[campaigns]]
name = "{SECOND}"
caller_id = "+14155550100"
trunk = "pstn"
dial_mode = "progressive"
"""


async def test_agent_controls_and_listen_in_across_instances(tmp_path: Any) -> None:
    lab = ClusterLab(
        NetLab(),
        tmp_path,
        leads={"answer_1_20": 80},
        # 4 agents: d2 serves two (rendezvous of agent1..4 over d1, d2), so its two nodes
        # have room for a listen leg (a node holding two bridged calls is full)
        agents=4,
        instances=2,
        campaign_toml=CAMPAIGNS_TOML,
    )
    lab.lab.start()
    try:
        await lab.start(PROFILE)
        assert lab.pstn is not None
        phone, rtp_state = lab.start_supervisor_phone()

        async def leases() -> dict[str, str]:
            rows = await lab.query(
                "SELECT name, holder FROM job_leases WHERE name LIKE 'cluster/agent/%'"
            )
            return {n.split("/")[-1]: h for n, h in rows}

        async def all_served() -> dict[str, str] | None:
            got = await leases()
            return got if len(got) == len(lab.agent_creds) else None

        served = await _until(all_served, 30, "every agent served by an instance")
        on_d2 = sorted(a for a, h in served.items() if h == "d2")
        assert len(on_d2) >= 2, f"d2 serves too few agents for this test: {served}"
        urls = dict(
            await lab.query(
                "SELECT name, console_url FROM job_leases WHERE name LIKE 'cluster/instance/%'"
            )
        )
        assert urls == {
            f"cluster/instance/{d}": f"http://{lab.hosts[d].ip}:8080" for d in ("d1", "d2")
        }, urls

        # a simulated agent answers the state of its login with a second `ready` 1-2 s later
        # (dialer/agentsim.py), which cancels a pause pending on its call as a person's
        # Ready would: the controls start once that is over
        await asyncio.sleep(4.0)
        d1, csrf = await lab.console("d1")
        d2, _ = await lab.console("d2")
        try:
            await _listen_in(lab, d1, csrf, d2, on_d2, phone, rtp_state)
            await _agent_controls(lab, d1, csrf, d2, on_d2)
            # ---- d2 dies: a control for its agent through d1 is refused, naming d2
            lab.lab.kill(lab.procs["d2"])
            await asyncio.to_thread(lab.procs["d2"].wait, 10)
            before = await lab.query("SELECT count(*) FROM audit_log")
            r = await d1.post(
                f"/api/console/agents/{on_d2[1]}/pause", headers=csrf, json={"reason": "gone"}
            )
            assert r.status_code == 503, r.text
            assert r.json()["instance"] == "d2" and "'d2'" in r.json()["detail"], r.text
            assert await lab.query("SELECT count(*) FROM audit_log") == before
            print(f"\nd2 killed: d1 answered {r.status_code} {r.json()['detail']!r}")
        finally:
            await d1.aclose()
            await d2.aclose()
    finally:
        await lab.close()


def _rtp(state: Path) -> dict[str, Any]:
    return dict(json.loads(state.read_text()))


async def _listen_in(
    lab: ClusterLab,
    d1: httpx.AsyncClient,
    csrf: dict[str, str],
    d2: httpx.AsyncClient,
    on_d2: list[str],
    phone: str,
    rtp_state: Path,
) -> None:
    """Listen in through d1 on a call bridged on d2 (a refusal such as `node_full` is d2's
    own answer: another of d2's calls is tried), count the audio reaching the supervisor's
    phone, then stop it through d1."""
    refusals: Counter[str] = Counter()

    async def start() -> dict[str, Any] | None:
        snap = (await d1.get("/api/console/snapshot")).json()
        talking = [
            a
            for c in snap["campaigns"]
            for a in c["agents"]
            if a.get("instance") == "d2" and a["state"] == "talking" and a.get("attempt_id")
        ]
        for a in talking:
            r = await d1.post(
                "/api/console/listen",
                headers=csrf,
                json={"attempt_id": a["attempt_id"], "phone": phone, "mode": "monitor"},
            )
            assert r.headers.get(ANSWERED_BY) == "d2", (r.status_code, r.text)
            if r.status_code == 200:
                return dict(r.json())
            refusals[f"{r.status_code} {r.json().get('reason')}"] += 1
        return None

    t0 = time.monotonic()
    session = await _until(start, 60, "a listen-in through d1 on a call of d2")
    join_s = time.monotonic() - t0
    sid = session["session_id"]
    assert session["instance"] == "d2" and session["agent"] in on_d2 and session["by"] == "sue"
    # the session is d2's: its own list (asked as a forwarded request: no fan-out) has it
    own = (await d2.get("/api/console/listen", headers={FORWARDED: "test"})).json()
    assert [(s["session_id"], s["instance"]) for s in own["sessions"]] == [(sid, "d2")]
    seen = (await d1.get("/api/console/listen")).json()
    assert [(s["session_id"], s["instance"]) for s in seen["sessions"]] == [(sid, "d2")]
    # the supervisor's phone hears the call: a second's worth of 20 ms packets carrying sound
    # (the callee's recorded voice; silence would be a leg not in the mix) from d2's host
    first = _rtp(rtp_state)

    async def heard() -> dict[str, Any] | None:
        now = _rtp(rtp_state)
        return now if now["rx_voiced"] - first["rx_voiced"] >= 50 else None

    listening = await _until(heard, 10, "the listen-in's audio at the supervisor's phone")
    assert listening["remote"][0] == lab.hosts["d2"].ip, listening
    r = await d1.delete(f"/api/console/listen/{sid}", headers=csrf)
    assert r.status_code == 200 and r.json() == {"session_id": sid, "stopped": True}, r.text
    # ... and nothing once the session is stopped (its leg hung up on d2's node)
    await asyncio.sleep(1.0)
    after_stop = _rtp(rtp_state)["rx_audio"]
    await asyncio.sleep(1.5)
    assert _rtp(rtp_state)["rx_audio"] == after_stop, "audio still reaches the supervisor"
    own = (await d2.get("/api/console/listen", headers={FORWARDED: "test"})).json()
    assert own["sessions"] == []
    rows = await lab.query(
        "SELECT action, actor FROM audit_log WHERE action LIKE 'listen.%' ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [("listen.start", "sue"), ("listen.stop", "sue")]
    print(
        f"\nlisten-in through d1 on {session['agent']}'s call on d2: session {sid}, "
        f"{listening['rx_audio'] - first['rx_audio']} RTP packets "
        f"({listening['rx_voiced'] - first['rx_voiced']} voiced) from "
        f"{listening['remote'][0]} at the supervisor's phone "
        f"({session['join_ms']} ms to join, {join_s:.1f} s to find a call; refusals on the "
        f"way: {dict(refusals)})"
    )


async def _agent_controls(
    lab: ClusterLab,
    d1: httpx.AsyncClient,
    csrf: dict[str, str],
    d2: httpx.AsyncClient,
    on_d2: list[str],
) -> None:
    first, second = on_d2[0], on_d2[1]
    # ---- marked as forwarded: d1 answers itself (it does not serve the agent), d2 sees nothing
    r = await d1.post(
        f"/api/console/agents/{first}/pause",
        json={"reason": "loop"},
        headers={**csrf, FORWARDED: "d2"},
    )
    assert r.status_code == 404 and ANSWERED_BY not in r.headers, r.text

    # ---- force pause through d1: d2 pauses the agent (now, or after its call)
    r = await d1.post(
        f"/api/console/agents/{second}/pause", headers=csrf, json={"reason": "lab-coaching"}
    )
    assert r.status_code == 200 and r.headers[ANSWERED_BY] == "d2", r.text
    assert r.json()["applies"] in ("now", "after_call")

    async def paused_on_d2() -> bool:
        rows = await lab.query(
            "SELECT count(*) FROM agent_state_log s JOIN agents g ON g.id = s.agent_id "
            "WHERE g.login = :l AND s.state = 'paused' AND s.reason = 'lab-coaching'",
            l=second,
        )
        return rows[0][0] >= 1 and f"agent {second}: paused by user sue" in lab.log("d2")

    try:
        await _until(paused_on_d2, 40, f"{second} paused by d2")
    except AssertionError:
        rows = await lab.query(
            "SELECT s.state, s.reason, s.started_at FROM agent_state_log s JOIN agents g ON "
            "g.id = s.agent_id WHERE g.login = :l ORDER BY s.id",
            l=second,
        )
        raise AssertionError(f"{second}'s states: {rows}") from None
    assert "forwarded to instance d2" in lab.log("d1")

    # ---- log out through d1: d2's own board has the agent logged out (after its call)
    r = await d1.post(f"/api/console/agents/{first}/logout", headers=csrf, json={})
    assert r.status_code == 200 and r.headers[ANSWERED_BY] == "d2", r.text

    async def out_on_d2() -> bool:
        snap = (await d2.get("/api/console/snapshot")).json()
        return any(
            a["login"] == first and a["state"] == "logged_out" and a["instance"] == "d2"
            for c in snap["campaigns"]
            if c["name"] == CAMPAIGN
            for a in c["agents"]
        )

    await _until(out_on_d2, 40, f"{first} logged out on d2")

    # ---- move the logged-out agent through d1 to the second campaign (d2 moves it)
    r = await d1.post(f"/api/console/agents/{first}/move", headers=csrf, json={"campaign": SECOND})
    assert r.status_code == 200 and r.headers[ANSWERED_BY] == "d2", r.text
    assert r.json()["to"] == SECOND
    rows = await lab.query(
        "SELECT c.name FROM agents g JOIN campaigns c ON c.id = g.campaign_id WHERE g.login = :l",
        l=first,
    )
    assert rows[0][0] == SECOND
    rows = await lab.query(
        "SELECT action, target FROM audit_log WHERE action LIKE 'agent.%' ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("agent.force_pause", f"agent:{second}"),
        ("agent.force_logout", f"agent:{first}"),
        ("agent.move", f"agent:{first}"),
    ]
