from __future__ import annotations

from datetime import timedelta

from common.vocabulary import LeadStatus
from dialer.core import Hopper, order_leads

from .conftest import T0, lead

GRACE = timedelta(minutes=15)


def test_order_tiers_callbacks_then_hot_and_complaints_then_priority_and_due() -> None:
    old_low = lead(priority=1, due_at=T0 - timedelta(hours=5))
    new_high = lead(priority=5, due_at=T0 - timedelta(minutes=1))
    old_high = lead(priority=5, due_at=T0 - timedelta(hours=2))
    hot = lead(status=LeadStatus.HOT, priority=0)
    complaint = lead(status=LeadStatus.SERVED, has_open_complaint=True, priority=0,
                     due_at=T0 - timedelta(days=1))
    cb = lead(callback_due_at=T0 - timedelta(minutes=1))
    got = order_leads([old_low, new_high, old_high, hot, complaint, cb], T0, GRACE)
    assert got == [cb, complaint, hot, old_high, new_high, old_low]


def test_agent_owned_callback_only_for_owner_until_grace_then_campaign() -> None:
    cb = lead(callback_owner="alice", callback_due_at=T0 - timedelta(minutes=5))
    other = lead()
    assert order_leads([cb, other], T0, GRACE) == [other]
    assert order_leads([cb, other], T0, GRACE, for_agent="alice") == [cb, other]
    after = T0 + timedelta(minutes=11)  # due + grace passed
    assert order_leads([cb, other], after, GRACE) == [cb, other]


def test_callback_not_yet_due_is_not_dialable() -> None:
    future = lead(callback_due_at=T0 + timedelta(minutes=30))
    assert order_leads([future], T0, GRACE) == []


def test_hopper_take_matches_pure_order_and_ignores_duplicates() -> None:
    leads = [lead(priority=p, due_at=T0 - timedelta(minutes=m)) for p, m in
             [(1, 5), (3, 1), (3, 9), (0, 60)]]
    leads.append(lead(status=LeadStatus.HOT))
    h = Hopper(GRACE)
    assert h.add(leads) == len(leads)
    assert h.add(leads[:2]) == 0
    assert h.take(len(leads), T0) == order_leads(leads, T0, GRACE)
    assert len(h) == 0


def test_hopper_owner_callbacks() -> None:
    h = Hopper(GRACE)
    mine = lead(callback_owner="bob", callback_due_at=T0 - timedelta(minutes=1))
    h.add([mine, lead()])
    assert h.owners_with_due_callbacks(T0) == {"bob"}
    assert h.available(T0) == 1  # the owned callback is held for bob
    assert h.take_for_owner("alice", T0) is None
    assert h.take_for_owner("bob", T0) is mine
    assert h.owners_with_due_callbacks(T0) == set()


def test_next_callback_change_reports_due_and_grace_end() -> None:
    h = Hopper(GRACE)
    due = T0 + timedelta(minutes=10)
    h.add([lead(callback_owner="bob", callback_due_at=due)])
    assert h.next_callback_change(T0) == due
    assert h.next_callback_change(due) == due + GRACE
