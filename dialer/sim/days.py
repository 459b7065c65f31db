"""Many days of one campaign in the simulator, under a compliance preset (docs/compliance.md).

`MonthSimulation` runs the real `CampaignEngine` through daily shifts (Monday to Friday by
default; agents log in at the shift's start, take their breaks, and log out at its end) for
`days` calendar days, with the engine's abandon ledger and governor carried across days as
the live runtime carries them. Leads have callee zones, numbers (some in Florida, whose rules
the `us_federal` preset applies by the geocoder) and a share of them are on the DNC list;
every lead handed to the engine passes `scheduling`'s `next_callable_at` under the preset's
rules, as the live hopper's claim does.

An independent oracle checks every dial, from the simulation's own knowledge of each lead
(not from the scheduling code): inside the callee's legal local hours (read straight from
the presets file), not a DNC number, no 4th call in 24 h to a Florida number, and under the
UK preset nothing within 72 h of an abandoned call or 24 h of a machine. The result reports
the worst abandon rate over every rolling window the preset regulates (24 h, 30 days; with
the UK's AMD false-positive estimate), the worst hour, and the oracle's counts.

    r = MonthSimulation(Workload(agents=20), predictive, seed=1,
                        month=Month(days=30, preset="uk")).run_month()
    r.worst_window, r.calls_outside_window, r.dnc_calls
"""

from __future__ import annotations

import hashlib
import heapq
import math
import multiprocessing
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from common.vocabulary import AbandonWindow, AgentState, AttemptResult, LeadStatus
from dialer.core.actions import Action, AttemptFinished, Dial, LeadUpdate
from dialer.core.config import EngineConfig
from dialer.core.governor import settings_for_window
from dialer.core.tickets import LeadTicket
from dialer.sim.results import PolicySpec
from dialer.sim.simulator import _BREAK as _BREAK_KIND
from dialer.sim.simulator import _TICK as _TICK_KIND
from dialer.sim.simulator import Simulation
from dialer.sim.workload import Workload
from scheduling.callable import CallingRules, LeadFacts, next_callable_at
from scheduling.compliance import compliance_preset, effective_abandon, regional_windows
from scheduling.windows import preset_data

__all__ = ["Month", "MonthResult", "MonthSimulation", "format_month_table", "month_config",
           "run_months"]

_DAY_S = 86_400.0
_DAY_START, _DAY_END = 100, 101  # event kinds after the simulator's own
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: (zone, share, area codes) of a US campaign's callees; 305/407 are in Florida
_US_ZONES = (("America/New_York", 0.45, ("212", "305", "407", "617")),
             ("America/Chicago", 0.30, ("312", "214")),
             ("America/Denver", 0.07, ("303",)),
             ("America/Los_Angeles", 0.18, ("415", "213")))
_UK_ZONES = (("Europe/London", 1.0, ("20", "161", "113")),)
_FLORIDA = frozenset({"305", "407"})
#: the shift's start in UTC hours (a call center in the campaign's east, 09:00 local)
_SHIFT_START_UTC_H = {"uk": 9.0}
_DEFAULT_SHIFT_START_UTC_H = 14.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Month:
    """The multi-day frame of a run: how many calendar days, which weekdays have a shift,
    the compliance preset, and the share of numbers on the DNC list."""

    days: int = 30
    preset: str = "us_federal"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    dnc_share: float = 0.02
    #: shift start in UTC hours (None: 09:00 on the campaign's eastern side)
    shift_start_utc_h: float | None = None


@dataclass(slots=True)
class MonthResult:
    policy: str
    preset: str
    workload: Workload
    seed: int
    days: int
    shifts: int
    dials: int
    live: int
    abandoned: int
    machines: int
    #: the worst rate over every rolling window of the preset's own period
    worst_window: float
    #: the worst over rolling 24 h and 30-day windows (with the UK estimate where it counts)
    worst_24h: float
    worst_30d: float
    worst_hour: float
    calls_outside_window: int
    dnc_calls: int
    #: other preset rules broken: Florida's 3 in 24 h, the UK's 72 h and 24 h gaps
    rule_breaks: int
    #: 1 - idle share of the agents' available time (talk + wrap-up over available)
    occupancy: float
    window_name: str = ""


@dataclass(slots=True)
class _LeadFacts:
    zone: str
    phone: str
    area: str
    dnc: bool
    dials: list[float] = field(default_factory=list)
    last_result: AttemptResult | None = None
    abandoned_at: float | None = None
    machine_at: float | None = None


def month_config(preset: str, base: EngineConfig | None = None) -> EngineConfig:
    """The engine configuration a campaign on `preset` runs with (the preset's abandon rules,
    through the same `effective_abandon` as the live runtime)."""
    from dataclasses import replace

    base = base or EngineConfig(campaign_id="sim")
    p = compliance_preset(preset)
    window = AbandonWindow.ROLLING_24H if p.abandon and \
        AbandonWindow.ROLLING_30D not in p.abandon.windows else AbandonWindow.ROLLING_30D
    ab = effective_abandon(p, cap=base.abandon.cap, window=window,
                           grace_s=base.abandon.grace_seconds, amd_false_positive_rate=None)
    policy = replace(base.abandon, cap=ab.cap, window=ab.window, grace_seconds=ab.grace_s,
                     count_amd_false_positives=ab.count_amd_false_positives,
                     amd_false_positive_rate=ab.amd_false_positive_rate)
    return replace(base, abandon=policy,
                   governor=settings_for_window(ab.window, base.governor))


def _minutes(spec: str) -> list[tuple[int, int]]:
    """The oracle's own reading of "HH:MM-HH:MM,..." (not scheduling's parser)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        a, b = part.split("-")
        ha, ma = a.split(":")
        hb, mb = b.split(":")
        out.append((int(ha) * 60 + int(ma), int(hb) * 60 + int(mb)))
    return out


def _oracle_hours(preset: str) -> dict[str, list[tuple[int, int]]]:
    hours = dict(preset_data()[preset].get("hours", {}))
    every = hours.pop("all", "")
    return {d: _minutes(hours.get(d, every)) for d in _WEEKDAYS}


class MonthSimulation(Simulation):
    """See the module docstring."""

    def __init__(self, workload: Workload, policy: PolicySpec, seed: int, *,
                 month: Month, config: EngineConfig | None = None) -> None:
        super().__init__(workload, policy, seed, config=month_config(month.preset, config))
        self.month = month
        p = compliance_preset(month.preset)
        self.preset = p
        self.rules = CallingRules(window=p.window, windows=regional_windows(p),
                                  abandon_lockout=p.abandon_lockout or timedelta(hours=72),
                                  machine_redial_gap=p.machine_redial_gap,
                                  retry=self.config.retry, horizon_days=14)
        self._zones = _UK_ZONES if month.preset == "uk" else _US_ZONES
        start_h = month.shift_start_utc_h if month.shift_start_utc_h is not None else \
            _SHIFT_START_UTC_H.get(month.preset, _DEFAULT_SHIFT_START_UTC_H)
        # SIM_EPOCH is 08:00 UTC on a Monday: day d's shift starts this long after it
        self._shift_offset = (start_h - 8.0) * 3600.0
        self._horizon = month.days * _DAY_S
        self._leads: dict[int, _LeadFacts] = {}
        self._deferred: list[tuple[float, int]] = []
        self._call_lead: dict[str, int] = {}
        self._machine_log: list[float] = []
        self._outside = self._dnc_calls = 0
        #: preset rules the oracle saw broken, by rule
        self.breaks: Counter[str] = Counter()
        self._hours = {name: _oracle_hours(name) for name in {month.preset, "us_fl"}}
        self._shifts = 0
        self._shift_starts: list[float] = []
        self._avail = self._busy = 0.0

    # ------------------------------------------------------------------ leads
    def _lead(self, i: int) -> _LeadFacts:
        got = self._leads.get(i)
        if got is None:
            h = hashlib.blake2b(f"{self.seed}:{i}".encode(), digest_size=8).digest()
            u = int.from_bytes(h[:4], "big") / 2**32
            v = int.from_bytes(h[4:], "big") / 2**32
            acc = 0.0
            zone, areas = self._zones[-1][0], self._zones[-1][2]
            for z, share, codes in self._zones:
                acc += share
                if u < acc:
                    zone, areas = z, codes
                    break
            area = areas[int(v * 1000) % len(areas)]
            cc = "+44" if self.month.preset == "uk" else "+1"
            phone = f"{cc}{area}2{i % 1_000_000:06d}"
            got = _LeadFacts(zone=zone, phone=phone, area=area,
                             dnc=(v * 1000) % 1 < self.month.dnc_share)
            self._leads[i] = got
        return got

    def _callable_at(self, i: int, u: LeadUpdate | None) -> datetime | None:
        f = self._lead(i)
        now = self._now()
        def at(t: float | None) -> datetime | None:
            return None if t is None else self._dt(t)
        is_cb = u is not None and u.callback_scope is not None
        facts = LeadFacts(
            lead_id=i, timezone=f.zone, phone_e164=f.phone, dnc=f.dnc,
            attempts=len(f.dials), last_attempt_at=at(f.dials[-1]) if f.dials else None,
            last_result=f.last_result, last_abandoned_at=at(f.abandoned_at),
            recent_attempts=tuple(self._dt(t) for t in f.dials[-5:]),
            callback_at=u.next_contact_at if is_cb and u is not None else None,
            next_contact_at=u.next_contact_at if u is not None and not is_cb else None,
            jurisdiction="US-FL" if f.area in _FLORIDA else None,
        )
        return next_callable_at(facts, now, self.rules).at

    def _dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(self._base_ts + t, self._now().tzinfo)

    def _ticket(self, i: int, u: LeadUpdate | None) -> LeadTicket:
        f = self._lead(i)
        now = self._now()
        is_cb = u is not None and u.callback_scope is not None
        return LeadTicket(
            lead_id=str(i), phone_e164=f.phone, due_at=(u.next_contact_at if u else None) or now,
            status=u.status if u is not None else LeadStatus.POTENTIAL,
            callback_owner=u.owner if u is not None else None,
            callback_due_at=u.next_contact_at if is_cb and u is not None else None,
            attempts=len(f.dials), timezone=f.zone)

    def _give_leads(self, n: int) -> list[Action]:
        now = self._now()
        if not self._accepting:
            return self.engine.add_leads(now, [])
        tickets: list[LeadTicket] = []
        # retries and deferred leads whose time has come, each re-checked against the rules
        while self._retries and len(tickets) < n and self._retries[0][0] <= self._t:
            _, lead, _attempts, u = heapq.heappop(self._retries)
            self._offer(lead, u, tickets)
        while self._deferred and len(tickets) < n and self._deferred[0][0] <= self._t:
            _, lead = heapq.heappop(self._deferred)
            self._offer(lead, None, tickets)
        tries = 0
        while len(tickets) < n and tries < 20 * max(n, 1):
            lead = self._next_lead
            self._next_lead += 1
            tries += 1
            self._offer(lead, None, tickets)
        return self.engine.add_leads(now, tickets)

    def _offer(self, lead: int, u: LeadUpdate | None, tickets: list[LeadTicket]) -> None:
        at = self._callable_at(lead, u)
        if at is None:
            return  # never (DNC, attempts used up ...)
        t = self._at(at)
        if t <= self._t + 1e-6:
            tickets.append(self._ticket(lead, u))
        elif u is not None:
            heapq.heappush(self._retries, (t, lead, u.attempts, u))
        else:
            heapq.heappush(self._deferred, (t, lead))

    # ------------------------------------------------------------------ the oracle
    def _on_dial(self, a: Dial) -> None:
        i = int(a.lead.lead_id)
        f = self._lead(i)
        t = self._t
        self._call_lead[a.call_id] = i
        name = "us_fl" if self.month.preset == "us_federal" and f.area in _FLORIDA \
            else self.month.preset
        local = self._now().astimezone(ZoneInfo(f.zone))
        minute = local.hour * 60 + local.minute + local.second / 60.0
        day = _WEEKDAYS[local.weekday()]
        if not any(a0 <= minute < b0 for a0, b0 in self._hours[name][day]):
            self._outside += 1
        if f.dnc:
            self._dnc_calls += 1
        if name == "us_fl" and sum(1 for d in f.dials if t - d < _DAY_S) >= 3:
            self.breaks["florida_3_in_24h"] += 1
        if self.month.preset == "uk":
            if f.abandoned_at is not None and t - f.abandoned_at < 72 * 3600.0:
                self.breaks["uk_72h_after_abandon"] += 1
            if f.machine_at is not None and t - f.machine_at < _DAY_S:
                self.breaks["uk_24h_after_machine"] += 1
        f.dials.append(t)
        super()._on_dial(a)

    def _on_finished(self, a: AttemptFinished) -> None:
        i = self._call_lead.pop(a.call_id, None)
        if i is not None:
            f = self._lead(i)
            f.last_result = a.result
            if a.result is AttemptResult.ABANDONED:
                f.abandoned_at = self._t
            elif a.result is AttemptResult.MACHINE:
                # the gap runs from the call's start, as call records date a call
                f.machine_at = f.dials[-1] if f.dials else self._t
                self._machine_log.append(self._t)
        super()._on_finished(a)

    # ------------------------------------------------------------------ days
    def run_month(self) -> MonthResult:
        w = self.w
        agents = [f"agent{j:03d}" for j in range(w.agents)]
        shift = w.hours * 3600.0
        for d in range(self.month.days):
            if (d % 7) in self.month.workdays:  # day 0 is a Monday
                start = d * _DAY_S + self._shift_offset
                self._push(start, _DAY_START, d)
                self._push(start + shift, _DAY_END, d)
        events = self._events
        while events:
            t, kind, _, payload = heapq.heappop(events)
            if kind == _TICK_KIND:
                if payload != self._tick_token:
                    continue
                self._tick_at = math.inf
            self._t = t
            if kind == _DAY_START:
                self._start_day(agents, t, shift)
            elif kind == _DAY_END:
                self._end_day(agents)
            else:
                if not self._accepting and kind in (_TICK_KIND, _BREAK_KIND) \
                        and not self._waiting_work():
                    continue
                self._apply(self._handle(kind, payload))
            self._schedule_tick()
        return self._result()

    def _start_day(self, agents: list[str], t: float, shift: float) -> None:
        self._shifts += 1
        self._shift_starts.append(t)
        self._accepting = True
        now = self._now()
        for a in agents:
            self._apply(self.engine.agent_login(now, a, ready=True))
        period = self.w.break_every_hours * 3600.0
        if self.w.break_minutes > 0:
            for a in agents:
                jitter = self._rng.uniform(-period / 4, period / 4)
                k = 0
                while (at := (k + 0.5) * period + jitter) < shift:
                    if at > 0:
                        self._push(t + at, _BREAK_KIND, a)
                    k += 1

    def _end_day(self, agents: list[str]) -> None:
        self._accepting = False
        for ticket in self.engine.drain_hopper():  # back to the pool for another day
            heapq.heappush(self._deferred, (self._t, int(ticket.lead_id)))
        now = self._now()
        for a in agents:
            times = self.engine.agent_times(now, a)
            self._avail += sum(v for k, v in times.items()
                               if k not in (AgentState.PAUSED, AgentState.LOGGED_OUT))
            self._busy += times.get(AgentState.TALKING, 0.0) + times.get(AgentState.WRAP_UP,
                                                                           0.0)
            self._apply(self.engine.agent_logout(now, a))

    # ------------------------------------------------------------------ figures
    def _result(self) -> MonthResult:
        ab = self.config.abandon
        fp = ab.amd_false_positive_rate if ab.count_amd_false_positives else 0.0
        live = sorted(self._live_log)
        own = _DAY_S if ab.window in (AbandonWindow.ROLLING_24H,
                                      AbandonWindow.CALENDAR_DAY) else 30 * _DAY_S
        start = [0.0]
        w24 = _worst(live, self._machine_log, fp, _DAY_S, full_after=start)
        w30 = _worst(live, self._machine_log, fp, 30 * _DAY_S, full_after=start)
        hour = _worst(live, self._machine_log, fp, 3600.0, full_after=self._shift_starts)
        n_ab = sum(1 for _, a in live if a)
        return MonthResult(
            policy=self.policy.name, preset=self.month.preset, workload=self.w, seed=self.seed,
            days=self.month.days, shifts=self._shifts, dials=self.engine.counters().dials,
            live=len(live), abandoned=n_ab, machines=len(self._machine_log),
            worst_window=w24 if own == _DAY_S else w30, worst_24h=w24, worst_30d=w30,
            worst_hour=hour, calls_outside_window=self._outside, dnc_calls=self._dnc_calls,
            rule_breaks=sum(self.breaks.values()) + self._lockout,
            occupancy=self._busy / self._avail if self._avail else 0.0,
            window_name=ab.window.value)


def _worst(live: list[tuple[float, bool]], machines: list[float], fp: float, span: float,
           *, full_after: list[float]) -> float:
    """The worst abandon rate over the windows (e - span, e] ending at each live call e, as
    the dialer itself looks back at any instant, with `fp` x machine answers added to both
    sides. Only full windows count: the latest of `full_after` at or before e (the run's
    start for 24 h windows, the shift's start for an hour) must be at or before e - span.
    With no full window (a span as long as the run) the whole run is the one window."""
    if not live:
        return 0.0
    times = [t for t, _ in live]
    prefix = [0]
    for _, ab in live:
        prefix.append(prefix[-1] + int(ab))
    mtimes = sorted(machines)
    anchors = sorted(full_after)

    def rate(lo: float, hi: float) -> float:
        i, k = bisect_right(times, lo), bisect_right(times, hi)
        est = fp * (bisect_right(mtimes, hi) - bisect_right(mtimes, lo))
        n = k - i + est
        return (prefix[k] - prefix[i] + est) / n if n else 0.0

    worst = -1.0
    for e in times:
        lo = e - span
        j = bisect_right(anchors, e) - 1  # the latest anchor at or before e
        if j < 0 or anchors[j] > lo:
            continue  # not a full window
        worst = max(worst, rate(lo, e))
    if worst < 0:  # no full window: the whole run
        worst = rate(times[0] - 1e-9, times[-1])
    return worst


def _month_job(job: tuple[Workload, PolicySpec, int, Month]) -> MonthResult:
    w, p, seed, month = job
    return MonthSimulation(w, p, seed, month=month).run_month()


def run_months(workloads: Sequence[Workload], policies: Sequence[PolicySpec],
               seeds: Sequence[int], months: Sequence[Month], *,
               processes: int = 1) -> list[MonthResult]:
    """Every (workload, policy, seed, month) run, the heaviest first across `processes`."""
    jobs = [(w, p, s, m) for m in months for w in workloads for p in policies for s in seeds]
    jobs.sort(key=lambda j: -(j[0].agents * j[0].hours * j[3].days))
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return pool.map(_month_job, jobs, chunksize=1)
    return [_month_job(j) for j in jobs]


def format_month_table(rows: Sequence[MonthResult]) -> str:
    """One line per run: the windows the presets regulate, the worst hour, the oracle."""
    head = (f"{'preset':<11} {'workload':<22} {'policy':<12} {'seed':>4} {'shifts':>6} "
            f"{'live':>7} {'aband':>6} {'overall':>8} {'worst24h':>9} {'worst30d':>9} "
            f"{'window':>12} {'worst':>7} {'hour':>7} {'outside':>7} {'dnc':>4} "
            f"{'breaks':>6} {'occ':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        overall = r.abandoned / r.live if r.live else 0.0
        lines.append(
            f"{r.preset:<11} {r.workload.label():<22} {r.policy:<12} {r.seed:>4} "
            f"{r.shifts:>6} {r.live:>7} {r.abandoned:>6} {overall:>8.2%} {r.worst_24h:>9.2%} "
            f"{r.worst_30d:>9.2%} {r.window_name:>12} {r.worst_window:>7.2%} "
            f"{r.worst_hour:>7.2%} {r.calls_outside_window:>7} {r.dnc_calls:>4} "
            f"{r.rule_breaks:>6} {r.occupancy:>6.1%}")
    return "\n".join(lines)
