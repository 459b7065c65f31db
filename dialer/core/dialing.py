"""The pacing pass of the engine: dial, hang up surplus ringing calls, ask for leads.

Runs at the end of every input (`_after`): route waiting customers first, then weigh
ringing calls that reached the minimum ring time, pace when due, and keep the hopper fed.
"""

from __future__ import annotations

import math
from datetime import datetime

from common.vocabulary import AgentState, DialMode
from dialer.core.actions import Action, Dial, EndCall, NeedLeads, PreviewOffer
from dialer.core.calls import CallRecord, Offer
from dialer.core.engine_state import EPS, EngineState
from dialer.core.governor import InflightRisk
from dialer.core.pacer import (
    AbandonBudget,
    PacerSnapshot,
    over_cap_clamp,
    ringing_calls_to_keep,
)
from dialer.core.tickets import LeadTicket

S = AgentState


class DialingStep(EngineState):
    """The engine's pacing pass (see the module docstring)."""

    def _inflight_risk(self, t: float) -> InflightRisk:
        """The calls already placed as the governor's reserve sees them: answered calls
        waiting for an agent, and the ringing calls' chances of going live within 60 s (a
        sum of Bernoullis: the reserve counts them some standard deviations above the mean,
        because a short window is broken by the unlucky burst, not the average -
        bench/compliance.py saw nine abandons within two seconds on a Monday morning at
        100 agents)."""
        calls = self.model.calls
        mean = var = 0.0
        for c in self.calls.inflight.values():
            p = calls.live_within(t - c.dialed_t, 60.0)
            mean += p
            var += p * (1.0 - p)
        return InflightRisk(len(self.calls.waiting), mean, var, self._ready_staying())

    def _abandon_exposure(self, t: float, z: float | None = None) -> float:
        """Abandons the calls already placed may still produce (`InflightRisk.exposure`
        with ``z``, default ``exposure_z``)."""
        z = self.config.governor.exposure_z if z is None else z
        return self._inflight_risk(t).exposure(z)

    def snapshot(self, now: datetime) -> PacerSnapshot:
        """The pacer's view of the campaign at ``now`` (also useful for dashboards)."""
        t = now.timestamp()
        talking: list[float] = []
        wrapping: list[float] = []
        for rec in self.board:
            st = rec.state
            if rec.pending is not None or rec.visiting:
                # going on a break / logging out after this call, or home after it (a
                # visitor from another campaign): not this campaign's future supply
                continue
            if st is S.TALKING:
                talking.append(t - rec.talk_started)
            elif st is S.WRAP_UP:
                wrapping.append(t - rec.wrap_started)
            elif st is S.RESERVED and rec.call_id is not None and rec.agent_id not in self._offers:
                call = self.calls.find(rec.call_id)
                if call is not None and call.agent_id == rec.agent_id:
                    talking.append(0.0)  # bridge in progress: a talk is about to start
        counts = self.ledger.counts(now)
        hour = self.hour_counts(now)
        g = self.config.governor
        exposure = hour_exposure = 0.0
        room: int | None = None
        hour_budget = self.governor.hour_budget(hour) if g.hour_exposure_z > 0 else None
        if g.reserve_inflight or hour_budget is not None:
            # the reserve for the calls in flight, and the room it leaves for new ones
            risk = self._inflight_risk(t)
            p_new = self.model.calls.live_within(0.0, 60.0)
            if g.reserve_inflight:
                exposure = risk.exposure(g.exposure_z)
                # the new calls' own abandons are in the exposure: the whole spare is theirs
                # (spare_abandons keeps one back for "the next call")
                room = self.governor.room_for_calls(
                    self.governor.spare_abandons(counts) + 1.0, risk, p_new, g.exposure_z)
            if hour_budget is not None:
                hour_exposure = risk.exposure(g.hour_exposure_z)
                in_hour = self.governor.room_for_calls(hour_budget + 1.0, risk, p_new,
                                                       g.hour_exposure_z)
                room = in_hour if room is None else min(room, in_hour)
        return PacerSnapshot(
            mode=self.config.mode,
            t=t,
            agents_logged_in=self.board.logged_in,
            agents_working=self.board.working,
            agents_ready=self._ready_staying(),
            talking_elapsed=tuple(talking),
            wrap_elapsed=tuple(wrapping),
            inflight_ages=tuple(t - c.dialed_t for c in self.calls.inflight.values()),
            reserved_calls=self.calls.reserved_inflight,
            waiting=len(self.calls.waiting),
            lines_in_use=len(self.calls),
            leads_available=self.hopper.available(now),
            limits=self.config.limits,
            model=self.model,
            abandon=AbandonBudget(
                cap=self.config.abandon.cap,
                target=self.config.abandon_target,
                window_live=counts.denominator,
                window_abandoned=counts.numerator,
                risk=self.governor.allowed_risk(counts, hour, exposure, hour_exposure),
                spare=self.governor.has_spare_abandon(counts, hour, exposure, hour_exposure),
                room=room,
            ),
            agent_wait=self.config.agent_wait_seconds,
            dials_total=self._dials,
            live_total=self._connected + self._abandoned,
            abandoned_total=self._abandoned,
            machines_total=self._machines,
            cancel_after=self.config.min_ring_seconds if self._cancelling else None,
            known_free_in=self._agent_free_oracle(t) if self._agent_free_oracle else None,
        )

    # ------------------------------------------------------------------ pacing pass
    def _after(self, t: float, now: datetime, out: list[Action]) -> None:
        """Common tail of every input: route, cancel surplus calls, pace when due, leads."""
        self._route(now, out)
        self._settle_leaving(t, now, out)
        if self._ring_checks and t + EPS >= self._ring_checks[0][0]:
            self._cancel_surplus(t, now, out)
        if t + EPS >= self._next_pace_t:
            self._pace(t, now, out)
        self._need_leads(t, now, out)

    def _dial(
        self,
        lead: LeadTicket,
        t: float,
        now: datetime,
        out: list[Action],
        *,
        reserved_agent: str | None = None,
        call_id: str | None = None,
    ) -> None:
        cid = call_id or self._new_call_id()
        call = CallRecord(
            call_id=cid, lead=lead, dialed_t=t, dialed_at=now, reserved_agent=reserved_agent
        )
        self.calls.add(call)
        if reserved_agent is not None:
            self.board.get(reserved_agent).call_id = cid
        self._dials += 1
        out.append(Dial(cid, lead, reserved_agent))

    def _pace(self, t: float, now: datetime, out: list[Action]) -> None:
        self._next_pace_t = t + self.config.pace_interval_seconds
        board = self.board
        if board.working <= 0:
            return  # nothing paced: the next agent to log in is served at once
        self._last_pace_t = t
        dials_before = self._dials
        # agent-owned callbacks go to their owners first, whatever the mode
        if board.ready and len(self.hopper):
            clamped: bool | None = None  # the guard's verdict, read once if needed
            for agent_id in self.hopper.owners_with_due_callbacks(now):
                rec = board.ready.get(agent_id)
                if rec is None:
                    continue
                staying_after = self._ready_staying() - (1 if rec.pending is None else 0)
                if self._guard_clamp and self._unassigned_calls() > staying_after:
                    # the owner is one of the ready agents the calls already placed count
                    # on: with no abandon to spare, its callback waits for the next pass
                    # with a ready agent to spare (a ring time at most, since the clamp
                    # dials no more lines than ready agents)
                    if clamped is None:
                        clamped = not self.snapshot(now).abandon.spare
                    if clamped:
                        continue
                lead = self.hopper.take_for_owner(agent_id, now)
                if lead is None:
                    continue
                self._set(rec, S.RESERVED, t, now, out, "callback")
                if self.config.mode is DialMode.PREVIEW:
                    cid = self._new_call_id()
                    self._offers[agent_id] = Offer(cid, lead, t)
                    rec.call_id = cid
                    out.append(PreviewOffer(agent_id, cid, lead))
                else:
                    self._dial(lead, t, now, out, reserved_agent=agent_id)
        if self.config.mode is DialMode.PREVIEW:
            for rec in sorted(board.ready.values(), key=lambda r: (r.ready_since, r.agent_id)):
                leads = self.hopper.take(1, now)
                if not leads:
                    break
                self._set(rec, S.RESERVED, t, now, out, "preview")
                cid = self._new_call_id()
                self._offers[rec.agent_id] = Offer(cid, leads[0], t)
                rec.call_id = cid
                out.append(PreviewOffer(rec.agent_id, cid, leads[0]))
        else:
            if self._cancelling:
                self._cancel_surplus(t, now, out)
            snap = self.snapshot(now)
            n = self._pacer(snap)
            if self._guard_clamp:
                # the hard clamp (docs/pacing.md): with no abandon to spare, lines in
                # flight + new dials <= ready agents, whatever the pacer asked for
                n = over_cap_clamp(snap, n)
            if n > 0:
                for lead in self.hopper.take(n, now):
                    self._dial(lead, t, now, out)
        for _ in range(self._dials - dials_before):
            self._recent_dials.append(t)
        horizon = t - 60.0
        while self._recent_dials and self._recent_dials[0] < horizon:
            self._recent_dials.popleft()

    def _cancel_surplus(self, t: float, now: datetime, out: list[Action]) -> None:
        """Hang up ringing calls past the minimum ring time that no agent is expected for.

        Runs when a call reaches the minimum ring time and before every predictive pacing
        pass (a call kept once is weighed again as the agents' state changes). The pacer
        counts a younger call's answers only up to the minimum ring time; this is what
        makes that safe. The calls are weighed youngest first: they have the most answer
        probability left, so the oldest are the first to go.
        """
        while self._ring_checks and t + EPS >= self._ring_checks[0][0]:
            self._ring_checks.popleft()
        min_ring = self.config.min_ring_seconds
        old = [c for c in self.calls.inflight.values()
               if c.ringing_t is not None and t + EPS >= c.ringing_t + min_ring]
        if not old:
            return
        old.sort(key=lambda c: -c.dialed_t)
        for c in old:
            del self.calls.inflight[c.call_id]
        keep = ringing_calls_to_keep(self.snapshot(now), tuple(t - c.dialed_t for c in old))
        for c in old[:keep]:
            self.calls.inflight[c.call_id] = c
        for c in old[keep:]:
            c.cancelled = True
            self._cancels += 1
            out.append(EndCall(c.call_id))

    def _need_leads(self, t: float, now: datetime, out: list[Action]) -> None:
        if self._lead_request_t is not None:
            return
        c = self.config
        by_agents = max(1, math.ceil(self.board.working * c.hopper_leads_per_agent))
        low = max(
            min(c.hopper_low_water, by_agents),
            math.ceil(len(self._recent_dials) / 60.0 * c.hopper_lookahead_seconds),
        )
        have = len(self.hopper)
        if have < low:
            self._lead_request_t = t
            out.append(NeedLeads(2 * low - have))
