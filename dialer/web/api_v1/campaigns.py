"""/api/v1/campaigns: create, read, change settings, statistics, start / pause / stop.

A campaign's settings are the config file's (`dialer.config.CampaignConfig`, same names,
same limits, same validation). Start, pause and stop are the supervisor console's holds
(dialer/control): a paused or stopped campaign places no new calls, calls in progress go
on, and the hold outlasts a restart and the calendar's edges. `active` in a campaign's JSON
is the calendar's flag (whether its hours are open), not a hold.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from db import api_store
from db.models import Campaign
from dialer.config import CampaignConfig
from dialer.web.api_v1.base import (
    CampaignsRead,
    CampaignsWrite,
    Deps,
    actor,
    store_errors,
)
from dialer.web.api_v1.problems import Problem
from scheduling.days import local_date, local_day_bounds

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

#: the config's campaign settings that are stored on the campaign (a config-only setting,
#: e.g. `hold_music_wav`, is read by the running dialer from its file, not from the row)
_SETTINGS = [f for f in CampaignConfig.model_fields
             if f not in ("name", "max_attempts") and hasattr(Campaign, f)]


class CampaignCreate(CampaignConfig):
    """A new campaign: the settings of a `[[campaigns]]` table of the config file."""

    description: str = Field(default="", max_length=2000)
    active: bool = True


CampaignPatch: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "CampaignPatch", __config__=ConfigDict(extra="forbid"),
    description=(str | None, Field(default=None, max_length=2000)),
    **{f: (CampaignConfig.model_fields[f].annotation | None, None)
       for f in [*_SETTINGS, "max_attempts"]})


class Switch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=200)


def campaign_json(c: Campaign) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c.id, "name": c.name, "description": c.description,
                           "active": c.active,
                           "max_attempts": (c.retry_rules or {}).get("max_attempts")}
    for f in _SETTINGS:
        v = getattr(c, f)
        out[f] = v.value if hasattr(v, "value") else v
    out["created_at"] = c.created_at.isoformat() if c.created_at else None
    return out


def _values(cfg: CampaignConfig, retry: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {f: getattr(cfg, f) for f in _SETTINGS}
    rules = dict(retry or {})
    rules["max_attempts"] = cfg.max_attempts
    values["retry_rules"] = rules
    return values


def _invalid(e: ValidationError) -> Problem:
    errors = [{"field": ".".join(str(p) for p in x["loc"]) or "body",
               "message": str(x["msg"]).removeprefix("Value error, ")} for x in e.errors()]
    return Problem(422, None, "; ".join(f"{x['field']}: {x['message']}" for x in errors),
                   errors=errors)


async def _campaign(d: Any, name: str) -> Campaign:
    with store_errors():
        return await api_store.get_campaign(d.sessions, name)


@router.get("")
async def list_campaigns(d: Deps, _c: CampaignsRead) -> dict[str, Any]:
    from db.lookups import campaigns_by_name

    with store_errors():
        rows = await campaigns_by_name(d.sessions)
    return {"campaigns": [campaign_json(c) for c in rows]}


@router.post("", status_code=201)
async def create_campaign(body: CampaignCreate, d: Deps,
                          caller: CampaignsWrite) -> dict[str, Any]:
    unstored = sorted(f for f in body.model_fields_set if f in CampaignConfig.model_fields
                      and f not in _SETTINGS and f not in ("name", "max_attempts"))
    if unstored:
        raise Problem(422, None, f"{unstored[0]}: set in the config file only", errors=[
            {"field": f, "message": "set in the config file only"} for f in unstored])
    values = _values(body)
    values.update(name=body.name, description=body.description, active=body.active)
    with store_errors():
        c = await api_store.create_campaign(d.sessions, values, actor=actor(caller),
                                            now=d.clock.now())
    return campaign_json(c)


@router.get("/{name}")
async def read_campaign(name: str, d: Deps,
                        _c: CampaignsRead) -> dict[str, Any]:
    return campaign_json(await _campaign(d, name))


@router.patch("/{name}")
async def update_campaign(name: str, body: CampaignPatch, d: Deps,  # type: ignore[valid-type]
                          caller: CampaignsWrite) -> dict[str, Any]:
    c = await _campaign(d, name)
    given = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
    current = campaign_json(c)
    merged = {f: current[f] for f in _SETTINGS}
    merged["max_attempts"] = current["max_attempts"] or 6
    merged.update({k: v for k, v in given.items() if k != "description"})
    try:
        cfg = CampaignConfig(name=c.name, **merged)
    except ValidationError as e:
        raise _invalid(e) from None
    values = _values(cfg, c.retry_rules)
    if given.get("description") is not None:
        values["description"] = given["description"]
    with store_errors():
        c = await api_store.update_campaign(d.sessions, name, values, actor=actor(caller),
                                            now=d.clock.now())
    return campaign_json(c)


@router.get("/{name}/stats")
async def campaign_stats(name: str, d: Deps,
                         _c: CampaignsRead) -> dict[str, Any]:
    """Leads by status, leads due now, and today's calls (the campaign's local day)."""
    c = await _campaign(d, name)
    now = d.clock.now()
    day = local_date(now, c.timezone)
    start, _ = local_day_bounds(day, c.timezone)
    with store_errors():
        stats = await api_store.campaign_stats(d.sessions, c.id, since=start, now=now)
    return {"campaign": c.name, "active": c.active, "date": day.isoformat(), **stats}


_HELD = {"campaign.pause": "paused", "campaign.stop": "stopped", "campaign.start": "idle"}


async def _switch(name: str, d: Any, caller: Any, action: str,
                  body: Switch | None) -> dict[str, Any]:
    """A supervisor's hold, through the running dialer's controls (dialer/control: the same
    ones the console uses, audited there); without a dialer in this process, the hold is
    recorded (its audit row is the hold) and the dialer applies it when it starts."""
    reason = body.reason if body else None
    who = actor(caller)
    c = await _campaign(d, name)
    control = d.console
    if control is not None:
        from dialer.control import ControlError

        try:
            if action == "campaign.pause":
                await control.pause_campaign(c.name, who, reason)
            elif action == "campaign.stop":
                await control.stop_campaign(c.name, who, reason)
            else:
                await control.start_campaign(c.name, who, reason)
        except ControlError as e:
            raise Problem(e.status, None, e.message) from None
        return {"campaign": c.name, "state": control.state_of(c.name), "applied": "now"}
    from db import audit

    with store_errors():
        await audit.record(d.sessions, who, action, f"campaign:{c.name}",
                           {"reason": reason, "was": "not running"}, now=d.clock.now())
    return {"campaign": c.name, "state": _HELD[action], "applied": "at the dialer's start"}


@router.post("/{name}/start")
async def start(name: str, d: Deps, caller: CampaignsWrite,
                body: Switch | None = None) -> dict[str, Any]:
    """Lift a pause or a stop: dialing resumes while the campaign's calendar is open."""
    return await _switch(name, d, caller, "campaign.start", body)


@router.post("/{name}/pause")
async def pause(name: str, d: Deps, caller: CampaignsWrite,
                body: Switch | None = None) -> dict[str, Any]:
    """Stop starting calls until start (calls in progress go on); kept over restarts."""
    return await _switch(name, d, caller, "campaign.pause", body)


@router.post("/{name}/stop")
async def stop(name: str, d: Deps, caller: CampaignsWrite,
               body: Switch | None = None) -> dict[str, Any]:
    """Stop dialing until start: nothing is hung up; a stop wins over a pause."""
    return await _switch(name, d, caller, "campaign.stop", body)

