"""The supervisor console's listen-in (`/api/console/listen`) against the whole DialerApp (the
in-memory SIP pool, the real web server on a loopback port), on SQLite and PostgreSQL:
start (monitor), the sessions list with who listens, a mode change, stop; refusals mapped to
their HTTP status (404 no such call, 409 node full, 422 a bad phone or mode) with no audit
row; one audit row per control that took effect, never with the phone URI (nor in INFO logs);
agent sessions 403, none 401; dialer_call_controls_total counted; the agent's `state` says
whether the call is on hold."""

from __future__ import annotations

import asyncio
import json
import logging
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from test_console_controls import PW, Running, _settings, agent_cmd, until

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AttemptStage, DialMode
from db import audit, web_accounts
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.bus.messages import HoldCmd, LoginCmd, ReadyCmd, ResumeCmd, StateEvt
from dialer.call_controls import ListenError, ListenIn, controls_of
from dialer.dispositions import state_body
from dialer.passwords import hash_password
from dialer.ports import SipEventHandler
from dialer.web.console_listen import SIP_URI
from sip.api_controls import Listen, StopListen
from sip.memory import MemoryPool
from support.leads import make_numbers, seed_campaign

PHONE = "sip:sue-desk@pbx.example.test:5070"


def _pool(on_event: SipEventHandler) -> MemoryPool:
    # a call and its agent leg take 2 slots, a listen leg the third: a second listen on the
    # same call finds the node full
    return MemoryPool(on_event=on_event, trunks={"pstn"}, capacity=3)


@pytest.fixture
async def running(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Running, Any]]:
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "mem", make_numbers(now, {f"{i:03d}": 5 for i in range(2)}),
                        now)
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    await web_accounts.create_user(sessions, login="sue", role="supervisor",
                                   password_hash=hash_password(PW["sue"]), now=now)
    settings = _settings(db_url, tmp_path / "var")
    music = tmp_path / "hold.wav"
    with wave.open(str(music), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0" * 1600)
    main = settings.campaigns[0].model_copy(update={"dial_mode": DialMode.PROGRESSIVE,
                                                    "hold_music_wav": str(music)})
    settings = settings.model_copy(update={"campaigns": [main]})
    # the callee answers after 0.2 s and never hangs up: the call stays bridged
    app = DialerApp(settings, clock=SYSTEM_CLOCK,
                    target_for=lambda e164: "sip:answer_0.2_0@memory.invalid",
                    pool_factory=_pool)
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.ready.wait(), 30)
    run = Running(app, task)
    try:
        yield run, sessions
    finally:
        await run.stop()
        await engine.dispose()


async def _client(base: str, login: str | None) -> tuple[httpx.AsyncClient, dict[str, str]]:
    http = httpx.AsyncClient(base_url=base, timeout=40)
    if login is None:
        return http, {}
    r = await http.post("/api/session", json={"login": login, "password": PW[login]})
    assert r.status_code == 200, r.text
    return http, {"X-CSRF-Token": r.json()["csrf"]}


def _count(app: DialerApp, control: str, outcome: str) -> float:
    v = app.metrics.registry.get_sample_value(
        "dialer_call_controls_total", {"campaign": "mem", "control": control, "outcome": outcome})
    return float(v or 0)


async def test_listen_start_mode_stop_refusals_audit_and_roles(
        running: tuple[Running, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run, sessions = running
    app = run.app
    assert app.web is not None
    base = app.web.url
    rt = app.runtimes["mem"]
    sue, csrf = await _client(base, "sue")
    ann, ann_csrf = await _client(base, "ann")
    anon, _ = await _client(base, None)
    try:
        # ---- roles: no session 401, an agent's 403, on every path
        for http, headers, want in ((anon, {}, 401), (ann, ann_csrf, 403)):
            assert (await http.get("/api/console/listen")).status_code == want
            r = await http.post("/api/console/listen", headers=headers,
                                json={"attempt_id": 1, "phone": PHONE, "mode": "monitor"})
            assert r.status_code == want, r.text
            r = await http.put("/api/console/listen/x", headers=headers, json={"mode": "barge"})
            assert r.status_code == want
            assert (await http.delete("/api/console/listen/x", headers=headers)).status_code \
                == want
        # a write without the CSRF header: refused
        r = await sue.post("/api/console/listen",
                           json={"attempt_id": 1, "phone": PHONE, "mode": "monitor"})
        assert r.status_code == 403

        # ---- a call bridged to ann
        assert await agent_cmd(app, "ann", LoginCmd(login="ann")) is None
        assert await agent_cmd(app, "ann", ReadyCmd(login="ann")) is None

        def bridged() -> int | None:
            for c in rt.calls.values():
                if c.agent_login == "ann" and not c.engine_done \
                        and rt.engine.call_stage(c.call_id) is AttemptStage.BRIDGED:
                    return c.attempt_id
            return None

        await until(lambda: bridged() is not None, 30, "a call bridged to ann")
        attempt = bridged()
        assert attempt is not None

        # ---- refusals: clear statuses, nothing recorded
        for body, status, word in (
                ({"attempt_id": attempt, "phone": "tel:+14155550123", "mode": "monitor"}, 422,
                 "phone"),
                ({"attempt_id": attempt, "phone": "sip:sue@", "mode": "monitor"}, 422, "phone"),
                ({"attempt_id": attempt, "phone": PHONE, "mode": "shout"}, 422, "mode"),
                ({"attempt_id": attempt + 999, "phone": PHONE, "mode": "monitor"}, 404,
                 "no_such_call")):
            r = await sue.post("/api/console/listen", headers=csrf, json=body)
            assert r.status_code == status, (body, r.text)
            assert word in r.text, r.text
        assert await audit.entries(sessions, action_prefix="listen.") == []

        # ---- start: monitor
        r = await sue.post("/api/console/listen", headers=csrf,
                           json={"attempt_id": attempt, "phone": PHONE, "mode": "monitor"})
        assert r.status_code == 200, r.text
        got = r.json()
        sid = got["session_id"]
        assert (got["attempt_id"], got["agent"], got["campaign"], got["mode"], got["by"]) == (
            attempt, "ann", "mem", "monitor", "sue")
        assert "phone" not in got and PHONE not in r.text
        listed = (await sue.get("/api/console/listen")).json()
        assert [(s["session_id"], s["agent"], s["mode"], s["by"]) for s in listed["sessions"]] \
            == [(sid, "ann", "monitor", "sue")]
        assert listed["modes"] == ["monitor", "whisper", "barge"]
        assert _count(app, "listen", "ok") == 1

        # ---- a second leg on the same call: the node has no slot left
        r = await sue.post("/api/console/listen", headers=csrf,
                           json={"attempt_id": attempt, "phone": PHONE, "mode": "barge"})
        assert r.status_code == 409 and r.json()["reason"] == "node_full", r.text
        assert _count(app, "listen", "node_full") == 1

        # ---- change mode
        r = await sue.put(f"/api/console/listen/{sid}", headers=csrf, json={"mode": "whisper"})
        assert r.status_code == 200 and r.json()["mode"] == "whisper", r.text
        r = await sue.put(f"/api/console/listen/{sid}", headers=csrf, json={"mode": "loud"})
        assert r.status_code == 422
        r = await sue.put("/api/console/listen/nope", headers=csrf, json={"mode": "barge"})
        assert r.status_code == 404
        assert [s["mode"] for s in (await sue.get("/api/console/listen")).json()["sessions"]] \
            == ["whisper"]

        # ---- the agent's hold shows in its state (what a reloaded desktop reads)
        assert controls_of(rt).music_wav.endswith("hold.wav")  # the campaign's hold music
        assert state_body(rt, "ann")["on_hold"] is False
        assert await agent_cmd(app, "ann", HoldCmd(login="ann", attempt_id=attempt)) is None
        body = state_body(rt, "ann")
        assert body["on_hold"] is True and body["attempt_id"] == attempt
        # what the app sends goes through the agent protocol's model (as JSON)
        assert StateEvt.model_validate_json(json.dumps(body)).on_hold is True
        assert await agent_cmd(app, "ann", ResumeCmd(login="ann", attempt_id=attempt)) is None
        assert state_body(rt, "ann")["on_hold"] is False
        assert _count(app, "hold", "ok") == 1 and _count(app, "resume", "ok") == 1
        assert await agent_cmd(app, "ann", ResumeCmd(login="ann", attempt_id=attempt)) \
            is not None
        assert _count(app, "resume", "refused") == 1

        # ---- stop
        r = await sue.delete(f"/api/console/listen/{sid}", headers=csrf)
        assert r.status_code == 200 and r.json() == {"session_id": sid, "stopped": True}
        assert (await sue.get("/api/console/listen")).json()["sessions"] == []
        assert (await sue.delete(f"/api/console/listen/{sid}", headers=csrf)).status_code == 404
        assert _count(app, "listen_mode", "ok") == 1 and _count(app, "listen_stop", "ok") == 1

        # ---- the audit rows: one per control that took effect, no phone URI
        rows = list(reversed(await audit.entries(sessions, action_prefix="listen.")))
        assert [(r.action, r.target, r.actor.name) for r in rows] == [
            ("listen.start", f"attempt:{attempt}", "sue"),
            ("listen.mode", f"attempt:{attempt}", "sue"),
            ("listen.stop", f"attempt:{attempt}", "sue")]
        assert [r.detail["mode"] for r in rows] == ["monitor", "whisper", "whisper"]
        assert rows[1].detail["before"] == "monitor" and rows[0].detail["agent"] == "ann"
        assert all("sue-desk" not in str(r.detail) for r in rows)
        log = (await sue.get("/api/console/audit?limit=3")).json()["entries"]
        assert [e["action"] for e in log] == ["listen.stop", "listen.mode", "listen.start"]
        # the phone URI never reaches an INFO (or higher) log line
        assert not [rec.getMessage() for rec in caplog.records
                    if rec.levelno >= logging.INFO and "sue-desk" in rec.getMessage()]
    finally:
        for http in (sue, ann, anon):
            await http.aclose()


@pytest.mark.parametrize("uri", [
    "sip:sue@pbx.example.com", "sip:1001@10.0.0.5:5060", "sips:sue@pbx.example.com;transport=tls",
    "sip:sue-desk@[::1]:5070", "sip:sup-40000@127.0.0.1:5062"])
def test_phone_uris_accepted(uri: str) -> None:
    assert SIP_URI.match(uri)


@pytest.mark.parametrize("uri", [
    "", "sue@pbx", "tel:+14155550100", "sip:sue@", "sip:@pbx", "sip:sue@pbx example",
    "sip:sue@pbx?X-Header=1", "http://pbx/sue", "sip:sue@pbx\r\nVia: x"])
def test_phone_uris_refused(uri: str) -> None:
    assert not SIP_URI.match(uri)


class _StubRuntime:
    """What ListenIn reads of a CampaignRuntime, with a pool whose node never answers."""

    def __init__(self) -> None:
        self.name = "mem"
        self.calls = {"c1": SimpleNamespace(call_id="c1", attempt_id=5, agent_login="ann",
                                            engine_done=False)}
        self.engine = SimpleNamespace(call_stage=lambda _cid: AttemptStage.BRIDGED)
        self.sent: list[object] = []
        self.counted: list[tuple[str, str, str]] = []
        self.pool = SimpleNamespace(submit=self._submit)
        self.metrics = SimpleNamespace(call_control=lambda *a: self.counted.append(a))
        self.clock = SYSTEM_CLOCK

    async def _submit(self, cmd: object) -> None:
        self.sent.append(cmd)


async def test_a_listen_the_node_never_confirms_is_hung_up_and_counted_failed() -> None:
    """No ListenStarted in time: the leg is stopped (it must not join later with no session
    and no audit row), the request fails with `failed`, the counter says so."""
    rt = _StubRuntime()
    listen_in = ListenIn({"mem": rt}, answer_timeout_s=0.2)  # type: ignore[dict-item]
    with pytest.raises(ListenError) as e:
        await listen_in.listen(5, "sip:sue@pbx.example.test", "monitor")
    assert e.value.reason == "failed"
    assert [type(c) for c in rt.sent] == [Listen, StopListen]
    assert rt.sent[0].listen_call_id == rt.sent[1].listen_call_id  # type: ignore[attr-defined]
    assert listen_in.sessions() == []
    assert rt.counted == [("mem", "listen", "failed")]
