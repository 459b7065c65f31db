"""What must hold after any fault, checked from the database alone (issue 12).

    violations = await check_invariants(db_url, campaign="faults", since=run_start,
                                        abandon_baseline=None, agents=None)
    assert_invariants(violations)        # one AssertionError listing every broken rule

Each violation names its invariant and the attempt (or lead, or agent) ids involved:

(i)   every attempt has exactly one final result: stage `ended`, `result` and `ended_at` set;
(ii)  every attempt that reached an agent (`bridged_at` set) has a disposition, or is its
      lead's "needs outcome" attempt (`leads.needs_outcome_attempt_id`);
(iii) no lead has two attempts whose [created_at, ended_at] intervals overlap;
(iv)  no lead that reached an agent in the run was dialed again afterwards, except for the
      same agent (a call cut by a fault becomes a callback owned by that agent);
(v)   over the abandon cap (seeded history), the count of abandoned attempts did not grow;
(vi)  each agent's latest agent_state_log row is a working state (ready, reserved, talking,
      wrap_up), not logged_out and not paused with reason "login".

`check_agents_working` checks (vi) alone: take it while the dialer still runs (a clean stop
may log agents out); `check_invariants` checks (i)-(v) (and (vi) if `agents` is given).
Only attempts of `campaign` count; seeded history (dialer_id "history") is not judged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from db.session import create_engine, session_factory

WORKING_STATES = frozenset({"ready", "reserved", "talking", "wrap_up"})
_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Violation:
    invariant: str  # "i" .. "vi"
    message: str

    def __str__(self) -> str:
        return f"({self.invariant}) {self.message}"


def _aware(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v if v.tzinfo else v.replace(tzinfo=UTC)


async def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def _has_column(url: str, table: str, column: str) -> bool:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            cols = await conn.run_sync(lambda c: sa_inspect(c).get_columns(table))
        return any(c["name"] == column for c in cols)
    finally:
        await engine.dispose()


async def check_agents_working(url: str, agents: Iterable[str]) -> list[Violation]:
    """(vi): each agent's latest state row is a working state."""
    rows = await _rows(url, "SELECT g.login, l.state, l.reason, l.id FROM agent_state_log l "
                            "JOIN agents g ON g.id = l.agent_id ORDER BY l.started_at, l.id")
    latest: dict[str, tuple[str, str | None]] = {}
    for login, state, reason, _id in rows:
        latest[login] = (str(state), reason)
    out = []
    for login in agents:
        state, reason = latest.get(login, ("no state row", None))
        if state not in WORKING_STATES:
            why = "logged out" if state == "logged_out" else (
                "still waiting for its login's first ready" if (state, reason) == (
                    "paused", "login") else f"in {state!r} (reason {reason!r})")
            out.append(Violation("vi", f"agent {login} ends {why}, not in a working state "
                                       f"{sorted(WORKING_STATES)}"))
    return out


async def check_invariants(
    url: str, *, campaign: str, since: datetime, abandon_baseline: int | None = None,
    agents: Iterable[str] | None = None,
) -> list[Violation]:
    """Every broken invariant of the run of `campaign` that started at `since`."""
    has_needs_outcome = await _has_column(url, "leads", "needs_outcome_attempt_id")
    rows = await _rows(
        url,
        "SELECT a.id, a.lead_id, a.stage, a.result, a.created_at, a.bridged_at, a.ended_at, "
        "a.disposition, a.agent_id, a.abandoned, a.dialer_id FROM attempts a "
        "JOIN campaigns c ON c.id = a.campaign_id WHERE c.name = :n ORDER BY a.id", n=campaign)
    needs: dict[int, int | None] = {}
    if has_needs_outcome:
        needs = {lid: aid for lid, aid in await _rows(
            url, "SELECT l.id, l.needs_outcome_attempt_id FROM leads l JOIN campaigns c "
                 "ON c.id = l.campaign_id WHERE c.name = :n", n=campaign)}
    out: list[Violation] = []
    history = [r for r in rows if r[10] == "history"]
    run = [r for r in rows if r[10] != "history"]

    # (i) one final result each
    for aid, _lid, stage, result, _c, _b, ended, *_ in run:
        if str(stage) != "ended" or result is None or ended is None:
            out.append(Violation("i", f"attempt {aid} has no final result: stage={stage} "
                                      f"result={result} ended_at={ended}"))

    # (ii) reached an agent -> disposition or the lead's needs-outcome attempt
    missing = [r for r in run if r[5] is not None and r[7] is None]
    if missing and not has_needs_outcome:
        out.append(Violation("ii", "attempts " + ", ".join(str(r[0]) for r in missing)
                             + " reached an agent and have no disposition, and the schema has "
                               "no leads.needs_outcome_attempt_id column (needs-outcome not "
                               "migrated) to hold them"))
    else:
        for r in missing:
            if needs.get(r[1]) != r[0]:
                out.append(Violation("ii", f"attempt {r[0]} (lead {r[1]}) reached an agent "
                                           f"but has no disposition, and lead {r[1]}'s needs-"
                                           f"outcome attempt is {needs.get(r[1])}"))

    # (iii) no overlapping attempts of one lead
    by_lead: dict[int, list[Any]] = defaultdict(list)
    for r in run:
        by_lead[r[1]].append(r)
    for lid, atts in by_lead.items():
        atts.sort(key=lambda r: _aware(r[4]) or _FAR)
        for a, b in pairwise(atts):
            a_end = _aware(a[6]) or _FAR
            b_start = _aware(b[4]) or _FAR
            if b_start < a_end:
                out.append(Violation("iii", f"lead {lid}: attempts {a[0]} and {b[0]} overlap "
                                            f"({a[4]}..{a[6]} and {b[4]}..{b[6]})"))

    # (iv) reached an agent in the run -> not dialed again, but by that agent
    for lid, atts in by_lead.items():
        for a in atts:
            created = _aware(a[4])
            if a[5] is None or created is None or created < since:
                continue
            reached_at = _aware(a[5]) or created
            for b in atts:
                b_created = _aware(b[4])
                if b[0] == a[0] or b_created is None or b_created <= reached_at:
                    continue
                if b[8] is None or b[8] != a[8]:
                    out.append(Violation("iv", f"lead {lid} reached agent {a[8]} on attempt "
                                               f"{a[0]} and was dialed again on attempt {b[0]} "
                                               f"(agent {b[8]})"))

    # (v) over the cap: no new abandons
    if abandon_baseline is not None:
        now_abandoned = sum(1 for r in rows if str(r[3]) == "abandoned" or r[9])
        if now_abandoned > abandon_baseline:
            new = [r[0] for r in run if str(r[3]) == "abandoned" or r[9]]
            out.append(Violation("v", f"the campaign was over its abandon cap, yet abandoned "
                                      f"attempts grew from {abandon_baseline} to "
                                      f"{now_abandoned}: attempts {new}"))
    del history

    if agents is not None:
        out += await check_agents_working(url, agents)
    return out


def assert_invariants(violations: list[Violation], context: str = "") -> None:
    if violations:
        raise AssertionError(
            f"{len(violations)} invariant(s) broken{': ' + context if context else ''}\n"
            + "\n".join(f"  {v}" for v in violations))
