"""What the live CRM test needs: tests/webhooks/test_crm_e2e.py (the combined test: leads
over the API, outcome webhooks through a receiver outage and a dialer crash, calls read back
over the API, on SQLite and PostgreSQL; it replaced an API-only and a webhooks-only live
test that each checked a subset of the same).

* `backend(request)`: the stack kind of a parametrized fixture ("default": SQLite and the
  embedded broker; "production": PostgreSQL and Mosquitto, the session's PostgreSQL);
* `WebhooksSection`: a FaultStack mixin writing a `[webhooks]` table with short retries;
  `CrmStack`: the web stack (web server on) with it and a small API body limit;
* `dialer_cli(...)`, `create_token(...)`, `revoke_token(...)`: the real `dialer tokens`
  commands against the stack's config;
* `fresh_numbers(stack, n)`: numbers in business time that the stack's dial plan answers;
* `until(...)`, `wait_calls_done(...)`, `wait_delivered(...)`: bounded waits;
* `check_deliveries(...)`: every outbox event once after dedupe, in order per lead, signed.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest

from db.pgserver import TempPostgres
from dialer.demo.data import business_zones, valid_number
from support.faults import CAMPAIGN, DIALER, FaultStack, wait_for
from support.webstack import WebSpec, WebStack

#: the [webhooks] table of the live tests: a quick worker and short retries
WEBHOOKS_TOML = ("\n[webhooks]\npoll_interval_s = 0.1\ntimeout_s = 2.0\n"
                 "first_backoff_s = 0.2\nmax_backoff_s = 2.0\n")


def backend(request: pytest.FixtureRequest) -> tuple[str, TempPostgres | None]:
    """For a fixture parametrized over ("default", "production"): the stack kind and, for
    production, the session's PostgreSQL (started here, outside the test's event loop)."""
    if request.param == "production":
        return request.param, request.getfixturevalue("pg_server")
    return str(request.param), None


class WebhooksSection(FaultStack):
    """Mixin of a FaultStack: its config gets `WEBHOOKS_TOML`."""

    def _write_config(self) -> None:
        super()._write_config()
        with self.config_path.open("a") as f:
            f.write(WEBHOOKS_TOML)


class CrmStack(WebhooksSection, WebStack):
    """The web stack (`st.web_url`) with webhooks, and request bodies over
    `api_max_body_bytes` refused (small, so a test can send an oversized body cheaply)."""

    api_max_body_bytes = 512 * 1024

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        web = f'[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n'
        assert web in text, "the web stack's [web] table moved"
        self.config_path.write_text(text.replace(
            web, web + f"api_max_body_bytes = {self.api_max_body_bytes}\n"))


# ------------------------------------------------------------------ the `dialer` command
async def dialer_cli(st: FaultStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`dialer ARGS --config <the stack's>`, as an operator runs it beside the live dialer."""
    return await asyncio.to_thread(
        subprocess.run, [DIALER, *args, "--config", str(st.config_path)],
        capture_output=True, text=True, timeout=60, cwd=st.dir,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(st.dir), os.environ.get("PYTHONPATH", "")])})


async def create_token(st: FaultStack, name: str, scopes: Iterable[str]) -> str:
    """A token from `dialer tokens create` (printed once, on stdout only)."""
    made = await dialer_cli(st, "tokens", "create", "--name", name,
                            "--scope", ",".join(scopes))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("dlr_") and token not in made.stderr
    return token


async def revoke_token(st: FaultStack, name: str) -> None:
    done = await dialer_cli(st, "tokens", "revoke", name)
    assert done.returncode == 0, done.stderr


def fresh_numbers(st: WebStack, n: int, seed: int = 11) -> list[tuple[str, str]]:
    """`n` valid (number, zone) where it is business time, unlike the stack's own (their
    last three digits are not the stack's behaviour codes: the callee answers, talks 1-5 s)."""
    zone, region, prefix = business_zones(st.started_at)[0]
    taken = {p for p, _ in st.numbers} | {p[-3:] for p, _ in st.numbers}
    rng = random.Random(seed)
    out: dict[str, str] = {}
    while len(out) < n:
        code = f"{rng.randrange(100, 1000):03d}"
        # the lengths in a random order: a prefix whose shortest number is valid (Berlin's)
        # would otherwise give one number per code, fewer than `n` in all
        number = valid_number(prefix, region, rng, code, rng.sample(range(7), 7))
        if number is not None and number not in taken and code not in taken:
            out[number] = zone
    return list(out.items())


# ------------------------------------------------------------------ waits
async def until(cond: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.2)


async def wait_calls_done(st: FaultStack, seconds: float) -> None:
    """Until no call is open, every bridged call has its disposition (or waits as "needs
    outcome") and no lead of the campaign is due."""

    async def quiet() -> bool:
        rows = await st.attempts()
        open_calls = [a for a in rows if a.ended_at is None]
        held = {x[0] for x in await st.query(
            "SELECT needs_outcome_attempt_id FROM leads "
            "WHERE needs_outcome_attempt_id IS NOT NULL")}
        wrapping = [a for a in rows if a.bridged_at and a.ended_at and
                    not a.disposition and a.id not in held]
        due = await st.query(
            "SELECT count(*) FROM leads l JOIN campaigns c ON c.id = l.campaign_id "
            "WHERE c.name = :n AND l.status IN ('potential', 'hot', 'served') "
            "AND l.next_call_at IS NOT NULL AND l.next_call_at <= :t",
            n=CAMPAIGN, t=datetime.now(UTC))
        return not open_calls and not wrapping and due[0][0] == 0

    await wait_for(quiet, seconds, "every due lead called and disposed of")


async def wait_delivered(st: FaultStack, seconds: float) -> None:
    """Until every event is fanned out and every delivery delivered."""

    async def delivered() -> bool:
        left = await st.query("SELECT count(*) FROM webhook_deliveries "
                              "WHERE status <> 'delivered'")
        unfanned = await st.query("SELECT count(*) FROM webhook_events "
                                  "WHERE fanned_out = :f", f=False)
        return left[0][0] == 0 and unfanned[0][0] == 0

    await wait_for(delivered, seconds, "every delivery delivered")


# ------------------------------------------------------------------ what the receiver got
class Delivery(Protocol):
    """A request the test's receiver took (tests/webhooks/receiver.py's `Received`)."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> str: ...

    @property
    def json(self) -> dict[str, Any]: ...


def check_deliveries(requests: Iterable[Delivery], accepted: Iterable[Delivery],
                     event_ids: Iterable[int],
                     verify: Callable[[Mapping[str, str], bytes], bool]) -> None:
    """`requests`: every request the receiver took; `accepted`: the 2xx-answered ones, each
    delivery id once (its dedupe); `event_ids`: the outbox's events. Every request is
    signed (`verify(headers, body)`), every event arrived once after dedupe, and a lead's
    events arrived in the order they were written."""
    requests, accepted = list(requests), list(accepted)
    assert requests and all(verify(q.headers, q.body) for q in requests), "bad signature"
    got = [q.json["event_id"] for q in accepted]
    assert len(set(got)) == len(got), "an event under two delivery ids"
    assert sorted(got) == sorted(event_ids), "every event once after dedupe"
    # order per lead: first arrivals of a lead's events come in event order
    per_lead: dict[int, list[int]] = defaultdict(list)
    for q in accepted:
        lead = q.json["data"].get("lead_id")
        if lead is not None:
            per_lead[lead].append(q.json["event_id"])
    assert all(ids == sorted(ids) for ids in per_lead.values()), per_lead
    for q in accepted:
        assert "+1" not in str(q.json["data"].get("phone_e164", "")), "no phone numbers"


__all__ = ["CAMPAIGN", "CrmStack", "WebSpec", "WebhooksSection", "backend", "check_deliveries",
           "create_token", "dialer_cli", "fresh_numbers", "revoke_token", "until",
           "wait_calls_done", "wait_delivered"]
