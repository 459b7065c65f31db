from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.vocabulary import AbandonPolicy, AbandonWindow
from dialer.core import AbandonLedger

from .conftest import T0


def test_rate_is_abandoned_over_live_answers_machines_excluded() -> None:
    led = AbandonLedger(AbandonPolicy())
    t = T0.timestamp()
    for i in range(97):
        led.record(t + i, live=True)
    for i in range(3):
        led.record(t + 100 + i, live=True, abandoned=True)
    for i in range(50):
        led.record(t + 200 + i, live=False)
    c = led.counts(T0 + timedelta(hours=1))
    assert (c.live, c.abandoned, c.machines) == (100, 3, 50)
    assert c.rate == pytest.approx(0.03)


def test_uk_adds_estimated_amd_false_positives_to_both_sides() -> None:
    led = AbandonLedger(AbandonPolicy(count_amd_false_positives=True,
                                      amd_false_positive_rate=0.02))
    t = T0.timestamp()
    for _ in range(100):
        led.record(t, live=True)
    led.record(t, live=True, abandoned=True)
    for _ in range(200):
        led.record(t, live=False)
    c = led.counts(T0)
    assert c.est_false_positives == pytest.approx(4.0)
    assert c.rate == pytest.approx((1 + 4) / (101 + 4))


def test_rolling_windows_forget_old_events() -> None:
    led = AbandonLedger(AbandonPolicy(window=AbandonWindow.ROLLING_24H))
    led.record(T0.timestamp(), live=True, abandoned=True)
    led.record((T0 + timedelta(hours=23)).timestamp(), live=True)
    assert led.counts(T0 + timedelta(hours=23)).abandoned == 1
    later = led.counts(T0 + timedelta(hours=25))
    assert (later.live, later.abandoned) == (1, 0)
    assert led.counts(T0 + timedelta(hours=25), AbandonWindow.ROLLING_30D).abandoned == 1
    led.prune(T0 + timedelta(days=40))
    assert led.counts(T0 + timedelta(days=40), AbandonWindow.ROLLING_30D).live == 0


def test_calendar_day_starts_at_local_midnight() -> None:
    led = AbandonLedger(AbandonPolicy(window=AbandonWindow.CALENDAR_DAY), tz="Europe/London")
    late = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)  # 23:30 BST, still June 1st in London
    led.record(late.timestamp(), live=True, abandoned=True)
    assert led.counts(late + timedelta(minutes=20)).abandoned == 1  # 23:50 local
    assert led.counts(late + timedelta(minutes=40)).abandoned == 0  # 00:10 next day


def test_abandoned_machine_answer_is_rejected() -> None:
    with pytest.raises(ValueError, match="live"):
        AbandonLedger(AbandonPolicy()).record(0.0, live=False, abandoned=True)
