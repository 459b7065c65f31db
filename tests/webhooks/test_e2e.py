"""End to end: a live `dialer run` (SIPp callees behind Kamailio, SIPp agent phones,
simulated agents over MQTT; tests/support/faults.py) posts its outcome webhooks to a real
receiver on 127.0.0.1. The receiver is down for 30 s, and while it is down the dialer is
killed (SIGKILL) after a disposition was saved and before it could be delivered, then
started again. In the end the receiver has every event of the outbox exactly once after
dedupe by delivery id, in order per lead, each with a valid signature, and every saved
disposition among them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from db import webhooks as wh
from db.pgserver import TempPostgres
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile
from support.crm import (
    WebhooksSection,
    backend,
    check_deliveries,
    until,
    wait_calls_done,
    wait_delivered,
)
from support.faults import StackSpec, wait_for

from .receiver import Receiver, verify_signature

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.sipp,
              pytest.mark.timeout(300)]

OUTAGE_S = 30.0


class WebhookStack(WebhooksSection):
    """The fault stack with a `[webhooks]` section and a subscription made before the
    dialer's first start (so it receives every event of the run)."""

    receiver_url = ""
    secret = ""

    def start_dialer(self):  # type: ignore[no-untyped-def]
        if not self.secret:  # the database is migrated and seeded by now
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                self.secret = pool.submit(asyncio.run, self._subscribe()).result(30)
        return super().start_dialer()

    async def _subscribe(self) -> str:
        engine = create_engine(self.db_url)
        try:
            _, secret = await wh.create_subscription(
                session_factory(engine), self.receiver_url, list(wh.EVENTS),
                created_by="e2e", now=datetime.now(UTC))
            return secret
        finally:
            await engine.dispose()


@pytest.fixture(params=["default", "production"])
def stack_kind(request: pytest.FixtureRequest) -> tuple[str, TempPostgres | None]:
    """default: SQLite and the embedded broker; production: PostgreSQL and Mosquitto (the
    session's PostgreSQL starts here, outside the test's event loop)."""
    return backend(request)


async def test_every_event_once_in_order_through_an_outage_and_a_crash(
        tmp_path: Path, stack_kind: tuple[str, TempPostgres | None]) -> None:
    kind, pg = stack_kind
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    from support.kamailio import available as kamailio_available
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    spec = StackSpec(
        kind=kind,
        leads={"answer_1_3": 14},
        profile=AgentProfile(wrapup_s=(0.8, 1.5), break_probability=0.0,
                             settle_s=(0.2, 0.4), auto_resume_s=(1.0, 2.0),
                             reply_timeout_s=5.0,
                             disposition_mix={"interested": 0.4, "callback": 0.25,
                                              "do_not_call": 0.15, "no_need": 0.2}))
    async with Receiver() as r:
        st = WebhookStack(tmp_path, spec, pg)
        st.receiver_url = r.url
        async with st:
            def dispositions_received() -> int:
                return sum(1 for q in r.accepted() if q.event == "disposition.saved")

            await until(lambda: dispositions_received() >= 2, 90, "two dispositions posted")
            await r.stop()
            down_at = time.monotonic()
            disposed = sum(1 for a in await st.attempts() if a.disposition)

            async def one_more() -> bool:
                return sum(1 for a in await st.attempts() if a.disposition) > disposed

            # a disposition saved while the receiver is down: in the outbox, not delivered
            await wait_for(one_more, 25, "a disposition during the outage")
            await st.kill_dialer()
            st.start_dialer()
            await st.wait_dialer_up()
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            await r.start()

            await wait_calls_done(st, 120)
            await wait_delivered(st, 60)
            rc, _ = await st.sigterm_dialer(st.spec.drain_deadline_s + 30)
            assert rc == 0, st.log_tail()
            events = await st.query("SELECT id, event, lead_id, key FROM webhook_events "
                                    "ORDER BY id")
            rows = await st.attempts()
            disposed_ids = [a.id for a in rows if a.disposition]
            ended_ids = [a.id for a in rows if a.ended_at is not None]
            restarts = st.log_text().count("dialer faults running")

    accepted = r.accepted()
    assert restarts == 2, "the dialer was killed and started again"
    check_deliveries(r.requests, accepted, [e[0] for e in events],
                     lambda h, b: verify_signature(st.secret, h, b))
    saved = {q.json["data"]["attempt_id"] for q in accepted if q.event == "disposition.saved"}
    assert set(disposed_ids) <= saved, "every saved disposition was posted"
    assert len(disposed_ids) >= 4
    finished = {q.json["data"]["attempt_id"] for q in accepted if q.event == "attempt.finished"}
    assert finished == set(ended_ids), "every closed attempt was posted (crash orphans too)"
    kinds = {e[1] for e in events}
    assert {"attempt.finished", "disposition.saved", "lead.status_changed"} <= kinds
