"""The runtime's contract, run over every SIP pool backend (MemoryPool and real SIPp + pjsua2).

Each test starts one campaign (tests/runtime/conftest.py) whose leads dial callee behaviours
by their Request-URI user part, drives agents through the runtime's commands, and checks
what the store recorded: attempt rows, lead outcomes, DNC entries. Whatever the backend, the
same calls must leave the same records.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AgentState,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DialMode,
    LeadStatus,
)
from dialer.core.errors import InvalidDispositionError
from dialer.dispositions import disposition

if TYPE_CHECKING:  # the fixtures come from conftest.py; only their types are imported
    from runtime.conftest import CampaignFactory, Harness


async def _closed(h: Harness, n: int) -> bool:
    rows = await h.attempts()
    return len(rows) >= n and all(r.stage is AttemptStage.ENDED for r in rows)


async def test_answered_call_is_bridged_to_the_ready_agent(campaign: CampaignFactory) -> None:
    async with campaign(["answer_0.2_1"], dial_mode=DialMode.PROGRESSIVE) as h:
        h.ready("a1")
        pop = await h.message("a1", "screen_pop")
        ended = await h.message("a1", "call_ended")
        assert pop["attempt_id"] == ended["attempt_id"]
        h.runtime.agent_disposition("a1", int(str(pop["attempt_id"])), "contract", "signed",
                                    None, CallbackScope.CAMPAIGN)
        await h.until("the disposition", lambda: _disposed(h))
        (row,) = await h.attempts()
        phone = next(iter(h.numbers))
        assert row.phone_e164 == phone
        assert row.result is AttemptResult.CONNECTED and row.stage is AttemptStage.ENDED
        assert row.answered_at is not None and row.bridged_at is not None
        assert row.bridge_latency_ms is not None and row.bridge_latency_ms < 2000
        assert row.agent_id is not None and row.disposition == "contract"
        lead = (await h.leads())[phone]
        assert lead.last_result is AttemptResult.CONNECTED and lead.attempts == 1
        assert lead.status is LeadStatus.SERVED
        assert lead.claimed_by is None
        assert h.runtime.stats.bridge_latencies_ms  # the answer-to-agent figure was taken
        # the answer-rate gauge: (live answers + machines) / dials of this run = 1 / 1
        h.runtime._publish_gauges()
        assert 'dialer_answer_rate{campaign="contract"} 1.0' in h.metrics.render().decode()


async def _disposed(h: Harness) -> bool:
    rows = await h.attempts()
    return bool(rows) and rows[0].disposition is not None


async def test_busy_and_no_answer_are_recorded(campaign: CampaignFactory) -> None:
    # 486 Busy Here and 480 Temporarily Unavailable after a short ring
    async with campaign(["status486_0.2_0", "status480_0.2_0"], dial_mode=DialMode.POWER,
                        lines_per_agent=2.0) as h:
        h.ready("a1")
        await h.until("both attempts closed", lambda: _closed(h, 2))
        by_user = {h.numbers[r.phone_e164]: r for r in await h.attempts()}
        busy, unavailable = by_user["status486_0.2_0"], by_user["status480_0.2_0"]
        assert busy.result is AttemptResult.BUSY and busy.sip_code == 486
        assert unavailable.result is AttemptResult.NO_ANSWER and unavailable.sip_code == 480
        assert busy.ringing_at is not None and busy.answered_at is None
        await h.runtime.flush()
        leads = await h.leads()
        for row in (busy, unavailable):
            lead = leads[row.phone_e164]
            assert lead.last_result is row.result and lead.attempts == 1
            # retried later, never at once; the claim is given back
            assert row.ended_at is not None
            assert lead.next_call_at is None or lead.next_call_at > row.ended_at, (
                lead.next_call_at, lead.next_contact_at, row.ended_at)
            assert lead.claimed_by is None


async def test_abandoned_person_hears_the_message(campaign: CampaignFactory) -> None:
    # two people answer at once for one agent: one talks, the other gets the message
    async with campaign(["answer_0.3_1.5", "answer_0.3_1.5"], dial_mode=DialMode.POWER,
                        lines_per_agent=2.0, abandon_grace_s=0.5) as h:
        h.ready("a1")
        await h.until("both attempts closed", lambda: _closed(h, 2))
        rows = await h.attempts()
        results = sorted(r.result.value for r in rows if r.result)
        assert results == sorted([AttemptResult.ABANDONED.value, AttemptResult.CONNECTED.value])
        (lost,) = [r for r in rows if r.result is AttemptResult.ABANDONED]
        assert lost.answered_at is not None and lost.message_started_at is not None
        # the message started within the 2-second rule, counted from the answer
        assert (lost.message_started_at - lost.answered_at).total_seconds() <= 2.0
        assert lost.bridged_at is None and not lost.opted_out
        lead = (await h.leads())[lost.phone_e164]
        assert lead.last_result is AttemptResult.ABANDONED and lead.last_abandoned_at
        assert await h.dnc() == set()


async def test_optout_key_during_the_message_adds_a_dnc_entry(
    campaign: CampaignFactory,
) -> None:
    # every callee presses 9 one second after answering: during the message for the one
    # who found no agent, while talking for the other (no opt-out then)
    async with campaign(["optout_0.3_1", "optout_0.3_1"], dial_mode=DialMode.POWER,
                        lines_per_agent=2.0, abandon_grace_s=0.5) as h:
        h.ready("a1")
        await h.until("both attempts closed", lambda: _closed(h, 2))
        await h.runtime.flush()
        rows = await h.attempts()
        (lost,) = [r for r in rows if r.result is AttemptResult.ABANDONED]
        (talked,) = [r for r in rows if r.result is AttemptResult.CONNECTED]
        await h.until("the opt-out record", lambda: _opted_out(h))
        assert await h.dnc() == {lost.phone_e164}
        leads = await h.leads()
        assert leads[lost.phone_e164].status is LeadStatus.DNC
        assert not talked.opted_out and leads[talked.phone_e164].status is not LeadStatus.DNC


async def _opted_out(h: Harness) -> bool:
    return any(r.opted_out for r in await h.attempts()) and bool(await h.dnc())


async def test_wrapup_timeout_holds_the_call_for_its_outcome(campaign: CampaignFactory) -> None:
    async with campaign(["answer_0.2_0.5"], dial_mode=DialMode.PROGRESSIVE,
                        max_wrapup_s=1.0) as h:
        h.ready("a1")
        pop = await h.message("a1", "screen_pop")
        attempt_id = int(str(pop["attempt_id"]))
        offered = pop["dispositions"]
        assert isinstance(offered, list)
        assert WRAPUP_TIMEOUT not in {d["code"] for d in offered}  # never offered ...
        await h.message("a1", "call_ended")
        with pytest.raises(InvalidDispositionError):  # ... and refused from an agent
            h.runtime.agent_disposition("a1", attempt_id, WRAPUP_TIMEOUT, "",
                                        None, CallbackScope.CAMPAIGN)
        phone = next(iter(h.numbers))

        async def held() -> bool:
            # the hold is written first and the lead's counters right after it (two writes
            # in order), so wait for both rather than read between them
            lead = (await h.leads())[phone]
            return lead.needs_outcome_attempt_id == attempt_id and lead.attempts == 1

        # ... and the agent gives no disposition: the engine ends the wrap-up, and no outcome
        # is made up: the call waits as "needs outcome" and its lead is not callable
        await h.until("the wrap-up timeout", held, 60)
        await h.until("the desktop told", lambda: _told_needs_outcome(h, attempt_id), 10)
        (row,) = await h.attempts()
        assert row.result is AttemptResult.CONNECTED and row.disposition is None
        lead = (await h.leads())[phone]
        assert lead.next_call_at is None and lead.attempts == 1
        states = [b["state"] for b in h.bus.of("a1", "state")]
        assert AgentState.READY.value in states and AgentState.WRAP_UP.value in states
        # each state says when it began (a reloaded desktop shows the real time in state)
        began = [datetime.fromisoformat(str(b["since"])) for b in h.bus.of("a1", "state")
                 if b["state"] == AgentState.WRAP_UP.value]
        assert began and all(b.tzinfo is not None for b in began)
        # the wrap-up duration was measured (about the limit, on the monotonic clock)
        text = h.metrics.render().decode()
        assert 'dialer_wrapup_seconds_count{campaign="contract"} 1.0' in text
        # the late disposition closes it and frees the lead
        await disposition(h.runtime, "a1", attempt_id, "no_need", "late", None,
                          CallbackScope.CAMPAIGN)
        (row,) = await h.attempts()
        assert row.disposition == "no_need"
        assert (await h.leads())[phone].needs_outcome_attempt_id is None


async def _told_needs_outcome(h: Harness, attempt_id: int) -> bool:
    return any(b.get("needs_outcome") == [attempt_id] for b in h.bus.of("a1", "state"))


async def test_hopper_refill_claims_the_next_leads(campaign: CampaignFactory) -> None:
    users = ["status486_0.1_0"] * 4
    async with campaign(users, dial_mode=DialMode.POWER, lines_per_agent=1.0) as h:
        h.ready("a1")
        await h.until("every lead dialed", lambda: _closed(h, len(users)), 90)
        rows = await h.attempts()
        # one line at a time: each refill claimed the next lead, each dialed exactly once
        assert sorted(r.phone_e164 for r in rows) == sorted(h.numbers)
        assert all(r.result is AttemptResult.BUSY for r in rows)
        await h.runtime.flush()
        assert all(lead.claimed_by is None for lead in (await h.leads()).values())
        assert h.runtime.stats.placed == len(users)


async def test_rejected_originate_is_skipped_not_an_attempt(campaign: CampaignFactory) -> None:
    # the pool knows no trunk of that name: the Originate comes back as CommandRejected;
    # a call never placed is `skipped` and does not count against the lead's attempts
    async with campaign(["answer_0.2_1"], dial_mode=DialMode.PROGRESSIVE,
                        trunk="nosuch") as h:
        h.ready("a1")
        await h.until("the attempt closed", lambda: _closed(h, 1))
        row = (await h.attempts())[0]
        assert row.result is AttemptResult.SKIPPED
        assert row.sip_reason is not None and row.sip_reason.startswith("not placed:")
        assert row.ringing_at is None and row.answered_at is None
        await h.runtime.flush()
        lead = (await h.leads())[row.phone_e164]
        assert lead.attempts == 0 and lead.claimed_by is None


async def test_an_abandon_after_an_agent_phone_failed_is_not_charged_to_that_agent(
    campaign: CampaignFactory,
) -> None:
    """docs/domain.md: abandons are the campaign's (the report's shared row); the agent whose
    phone refused the bridge is paused and the attempt no longer names it."""
    async with campaign(["answer_0.2_4"], dial_mode=DialMode.PROGRESSIVE,
                        agents=("status486_0_0",)) as h:
        if h.backend != "memory":
            pytest.skip("SIPp's agent phones answer every call; phone failures are in memory")
        h.ready("status486_0_0")
        await h.until("the attempt closed", lambda: _closed(h, 1))
        (row,) = await h.attempts()
        assert row.result is AttemptResult.ABANDONED
        assert row.agent_id is None


async def test_the_supervisor_stream_shows_every_stage_of_a_call(
    campaign: CampaignFactory,
) -> None:
    async with campaign(["answer_0.2_1"], dial_mode=DialMode.PROGRESSIVE) as h:
        h.ready("a1")
        await h.message("a1", "call_ended")

        async def ended() -> bool:  # supervisor events are sent by background tasks
            return any(e.get("stage") == "ended" for e in h.bus.supervised)

        await h.until("the supervisor's ended event", ended)
        stages = [e["stage"] for e in h.bus.supervised if e.get("type") == "call"]
        assert stages == ["created", "dialing", "ringing", "answered", "bridged", "ended"], \
            stages
        talking = [e for e in h.bus.supervised
                   if e.get("type") == "agent_state" and e["state"] == "talking"]
        assert talking and talking[0]["attempt_id"] is not None


async def test_the_agent_hangs_up_a_call_that_would_go_on(campaign: CampaignFactory) -> None:
    """`hangup`: the agent ends a call whose callee would talk for a minute; the attempt is
    connected, ended by the dialer, and names the node that carried it."""
    from dialer.dispositions import hang_up

    async with campaign(["answer_0.2_60"], dial_mode=DialMode.PROGRESSIVE) as h:
        h.ready("a1")
        pop = await h.message("a1", "screen_pop")
        attempt_id = int(str(pop["attempt_id"]))
        await h.until("the bridge", lambda: _stage(h, AttemptStage.BRIDGED))
        hang_up(h.runtime, "a1", attempt_id)
        ended = await h.message("a1", "call_ended", seconds=20)
        assert ended["attempt_id"] == attempt_id
        await h.runtime.flush()
        (row,) = await h.attempts()
        assert row.result is AttemptResult.CONNECTED and row.hangup_by == "local"
        assert row.talk_s is not None and row.talk_s < 30
        assert row.node  # attempts.node: the SIP node that carried the call


async def _stage(h: Harness, stage: AttemptStage) -> bool:
    rows = await h.attempts()
    return bool(rows) and rows[0].stage is stage


async def test_a_stop_releases_the_hoppers_claims(campaign: CampaignFactory) -> None:
    """Leads claimed into the hopper but not dialed are free for other dialers at the stop."""
    async with campaign(["status486_5_0"] * 6, dial_mode=DialMode.PROGRESSIVE) as h:
        h.ready("a1")
        await h.until("a call placed", lambda: _stage(h, AttemptStage.RINGING))
        h.runtime.stop_dialing()
        await h.runtime.flush()
        leads = await h.leads()
        dialed = {r.phone_e164 for r in await h.attempts()}
        held = [p for p, lead in leads.items() if lead.claimed_by and p not in dialed]
        assert held == [], f"leads still claimed after the stop: {len(held)}"
