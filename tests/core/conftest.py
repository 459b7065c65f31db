"""Fixtures for the pure core: a fake clock and small engine/lead factories."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer.core import CampaignEngine, EngineConfig, LeadTicket

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    """The only clock core tests use: moves when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_lead_ids = itertools.count(1)


def lead(**kw: Any) -> LeadTicket:
    n = next(_lead_ids)
    base: dict[str, Any] = {
        "lead_id": f"L{n}",
        "phone_e164": f"+4670{n:07d}",
        "due_at": T0 - timedelta(hours=1),
    }
    base.update(kw)
    return LeadTicket(**base)


def make_engine(**cfg: Any) -> CampaignEngine:
    seq = itertools.count(1)
    config = EngineConfig(campaign_id="test", **cfg)
    return CampaignEngine(config, call_id_factory=lambda: f"c{next(seq)}")


def of_type(actions: list[Any], tp: type) -> list[Any]:
    return [a for a in actions if isinstance(a, tp)]
