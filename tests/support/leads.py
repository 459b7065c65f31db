"""Test leads whose numbers tell the SIPp callee network what to do (dialer.demo.data)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from db.migrate import upgrade
from db.seed import LeadSeed
from db.seed import seed_campaign as db_seed
from db.session import create_engine, session_factory
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    DatabaseSection,
    DialerSection,
    MetricsSection,
    MqttSection,
    Settings,
    SipSection,
    TrunkSection,
    WebSection,
)
from dialer.demo.data import business_zones, valid_number


def make_numbers(now: datetime, codes: Mapping[str, int], seed: int = 3) -> list[tuple[str, str]]:
    """(E.164 number, zone) per lead, in a zone where it is business time `now`.

    `codes` maps a behaviour code (the number's last three digits) to how many leads get it.
    """
    zone, region, prefix = business_zones(now)[0]
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for code, n in codes.items():
        repeats = 0
        while sum(1 for x, _ in out if x.endswith(code)) < n:
            # the shortest valid length first; after a repeat, the lengths in a random order
            # (a prefix whose shortest number is valid would give that one number forever:
            # Berlin's +49 30 123 ... at the hours Berlin is the first zone in business time)
            number = valid_number(prefix, region, rng, code,
                                  rng.sample(range(7), 7) if repeats else range(7))
            if number is None:
                raise RuntimeError(f"no valid number for {prefix} ending {code}")
            if number in seen:
                repeats += 1
                if repeats > 500:
                    raise RuntimeError(f"only {sum(1 for x, _ in out if x.endswith(code))} "
                                       f"distinct numbers for {prefix} ending {code}")
                continue
            seen.add(number)
            out.append((number, zone))
    return out


async def seed_campaign(url: str, name: str, numbers: list[tuple[str, str]],
                        now: datetime) -> None:
    """Migrate `url` and add campaign `name` with one due lead per number."""
    await asyncio.to_thread(upgrade, url)
    await add_leads(url, name, numbers, now)


def loopback_settings(
    name: str, url: str, data_dir: Path, callee_port: int, agents: list[AgentConfig],
    campaign: CampaignConfig, *, nodes: int = 1,
    dial_plan: str = "dialer.demo.run:sipp_user",
) -> Settings:
    """One dialer on loopback: embedded broker, no /metrics, no web server (a test that wants
    one sets `web`), one trunk to the SIPp callee."""
    return Settings(
        dialer=DialerSection(id=name, drain_deadline_s=2.0, data_dir=data_dir),
        database=DatabaseSection(url=url),
        mqtt=MqttSection(embedded_port=0),
        metrics=MetricsSection(enabled=False),
        web=WebSection(enabled=False),
        sip=SipSection(nodes=nodes, base_port=0, trunks={"pstn": TrunkSection(
            uri=f"sip:127.0.0.1:{callee_port}", dial_plan=dial_plan)}),
        agents=agents,
        campaigns=[campaign],
    )


async def add_leads(url: str, campaign: str, numbers: list[tuple[str, str]],
                    now: datetime) -> None:
    """Add one due lead per (number, zone) to campaign `campaign` at `url` (created if
    missing)."""
    engine = create_engine(url)
    try:
        await db_seed(session_factory(engine), name=campaign, caller_id="+14155550100", now=now,
                      leads=[LeadSeed(phone_e164=number, timezone=zone, name="Test Lead")
                             for number, zone in numbers])
    finally:
        await engine.dispose()
