"""A transfer to an agent another instance serves, with real parts (docs/cluster.md,
"Transfers across members"): two `dialer run` processes in their own network namespaces
(tests/cluster/lab.py), one PostgreSQL, one Mosquitto, SIPp callees (60 s calls) and the
agents' SIPp phones on the `pstn` host. The two agents' desktops are this test's own MQTT
clients (no simulated agents), one agent served by each instance:

* `caller` (served by d2) takes a call; the campaign is then held through d1's console, so
  `target` (served by d1) can be ready without d1 dialing for her;
* `caller` transfers the call to `target` by name: d1 lends `target` to d2 over the
  members' MQTT topic (its log says so, her lease row is d2's), d2's node rings her SIPp
  phone and hands the customer over: `caller` gets the ack, `target`'s desktop the screen
  pop naming `caller`, the attempt's handlers are `answered` (caller) then `transfer_blind`
  (target); `target`'s hangup and disposition are answered by d2;
* the agent state log has no log out for `target`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import aiomqtt
import pytest

from dialer.agentsim import AgentProfile
from dialer.bus.messages import (
    AgentCommand,
    DispositionCmd,
    HangupCmd,
    LoginCmd,
    ReadyCmd,
    TransferCmd,
)
from dialer.cluster import rendezvous
from support.netns import NetLab, unavailable

from .lab import CAMPAIGN, ClusterLab
from .lab import lab_until as _until

why = unavailable() or (None if shutil.which("sipp") else "sipp not installed")
pytestmark = [
    pytest.mark.skipif(why is not None, reason=why or ""),
    pytest.mark.slow,
    pytest.mark.sipp,
    pytest.mark.timeout(240),
]


class Desk:
    """One agent's MQTT desktop: sends commands, keeps every event."""

    def __init__(self, lab: ClusterLab, login: str) -> None:
        assert lab.data is not None
        self.login = login
        self.client = aiomqtt.Client(lab.data.ip, 1883, username=login,
                                     password=lab.agent_creds[login])
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Desk:
        await self.client.__aenter__()
        await self.client.subscribe(f"dialer/agents/{self.login}/evt", qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for m in self.client.messages:
            self.events.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]

    async def event(self, pred: Any, seconds: float, what: str) -> dict[str, Any]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            got = next((e for e in self.events if pred(e)), None)
            if got is not None:
                return got
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.login}: no {what} in {seconds:.0f} s; events: "
                             f"{[(e['type'], e.get('code')) for e in self.events]}")

    async def ok(self, cmd: AgentCommand, seconds: float = 20) -> None:
        await self.client.publish(f"dialer/agents/{self.login}/cmd", cmd.to_json(), qos=1)
        got = await self.event(lambda e: e.get("ref_id") == cmd.id
                               and e["type"] in ("ack", "error"), seconds,
                               f"answer to {cmd.type}")
        assert got["type"] == "ack", (cmd.type, got.get("code"), got.get("message"))


async def test_a_transfer_to_an_agent_of_another_instance_over_real_sip(tmp_path: Any) -> None:
    lab = ClusterLab(NetLab(), tmp_path, leads={"answer_1_60": 10}, agents=4, instances=2)
    # one agent each instance prefers (rendezvous hashing: the first command lands there)
    caller = next(a for a in lab.agent_creds if rendezvous(a, ["d1", "d2"]) == "d2")
    target = next(a for a in lab.agent_creds if rendezvous(a, ["d1", "d2"]) == "d1")
    lab.lab.start()
    try:
        await lab.start(AgentProfile(), simulated=())
        d1, csrf = await lab.console("d1")
        try:
            async with Desk(lab, caller) as c, Desk(lab, target) as t:
                await t.ok(LoginCmd(login=target))
                await c.ok(LoginCmd(login=caller))
                holders = dict(await lab.query(
                    "SELECT name, holder FROM job_leases WHERE name LIKE 'cluster/agent/%'"))
                assert holders == {f"cluster/agent/{caller}": "d2",
                                   f"cluster/agent/{target}": "d1"}, holders
                # ---- caller's call, bridged on d2 to her SIPp phone
                await c.ok(ReadyCmd(login=caller))
                pop = await c.event(lambda e: e["type"] == "screen_pop", 40, "a call")
                attempt = pop["attempt_id"]
                await c.event(lambda e: e["type"] == "state" and e.get("state") == "talking",
                              20, "talking")
                # ---- hold the campaign (no new calls anywhere), then target is ready on d1
                r = await d1.post(f"/api/console/campaigns/{CAMPAIGN}/pause", headers=csrf,
                                  json={"reason": "transfer test"})
                assert r.status_code == 200, r.text
                await t.ok(ReadyCmd(login=target))
                await t.event(lambda e: e["type"] == "state" and e.get("state") == "ready",
                              10, "ready")
                # ---- the transfer, by name, to the agent d1 serves
                t0 = time.monotonic()
                await c.ok(TransferCmd(login=caller, attempt_id=attempt, to=target,
                                       notes="lab transfer"), 40)
                took_s = time.monotonic() - t0
                tpop = await t.event(lambda e: e["type"] == "screen_pop"
                                     and e.get("attempt_id") == attempt, 10, "the screen pop")
                assert tpop["transfer"]["from_agent"] == caller, tpop
                holders = dict(await lab.query(
                    "SELECT name, holder FROM job_leases WHERE name LIKE 'cluster/agent/%'"))
                assert holders[f"cluster/agent/{target}"] == "d2", holders
                assert f"lent agent {target} to d2 for a transfer" in lab.log("d1")
                assert f"serves agent {target}, lent by d1 for a transfer" in lab.log("d2")
                # each instance's /metrics counts its side of the hand-over
                assert lab.scrape("d2", "dialer_cluster_agent_handovers_total",
                                  result="borrowed") == 1
                assert lab.scrape("d1", "dialer_cluster_agent_handovers_total",
                                  result="lent") == 1
                async def handlers() -> list[tuple[str, str]] | None:
                    # written by d2 after the hand-over, not before the ack
                    rows = [tuple(r) for r in await lab.query(
                        "SELECT g.login, h.how FROM attempt_handlers h JOIN agents g "
                        "ON g.id = h.agent_id WHERE h.attempt_id = :a ORDER BY h.id",
                        a=attempt)]
                    return rows if len(rows) == 2 else None

                rows = await _until(handlers, 10, "the transfer's handler row")
                assert rows == [(caller, "answered"), (target, "transfer_blind")], rows
                # ---- target's call is d2's now
                await t.ok(HangupCmd(login=target, attempt_id=attempt))
                await t.ok(DispositionCmd(login=target, attempt_id=attempt, code="no_need"))
                rows = await lab.query(
                    "SELECT dialer_id, result, agent_id = (SELECT id FROM agents WHERE "
                    "login = :l) FROM attempts WHERE id = :a", a=attempt, l=target)
                assert [tuple(r) for r in rows] == [("d2", "connected", True)], rows
                states = [r[0] for r in await lab.query(
                    "SELECT s.state FROM agent_state_log s JOIN agents g ON g.id = s.agent_id "
                    "WHERE g.login = :l ORDER BY s.id", l=target)]
                assert "logged_out" not in states, states
                print(f"\ntransfer from {caller} (d2) to {target} (d1, lent to d2): acked in "
                      f"{took_s * 1000:.0f} ms; {target}'s states {states}")
        finally:
            await d1.aclose()
    finally:
        await lab.close()
