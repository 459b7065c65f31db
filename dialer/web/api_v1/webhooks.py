"""/api/v1/webhooks: outcome webhook subscriptions and their dead letters (docs/webhooks.md).

    POST   /webhooks                              {"url", "events"} -> 201, the secret (once)
    GET    /webhooks                              the subscriptions (never their secrets)
    PATCH  /webhooks/{id}                         {"url"?, "events"?, "active"?} -> 200
    POST   /webhooks/{id}/rotate-secret           a new secret (once); old one no longer used
    DELETE /webhooks/{id}                         204; its pending deliveries are dropped
    GET    /webhooks/dead-letters                 deliveries given up after the retry horizon
    POST   /webhooks/dead-letters/{id}/requeue    due again now, with a fresh horizon

Reading takes `webhooks:read`, changing `webhooks:write`; every change is audited with the
token's name (never the URL, which may carry a receiver's token, nor the secret).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from db import webhooks as store
from dialer.web.api_v1.base import Deps, actor, scope, store_errors
from dialer.web.api_v1.problems import Problem

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000,
                     description="http(s) URL the dialer POSTs each event to")
    events: list[str] = Field(min_length=1, description=f"any of {list(store.EVENTS)}")


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=8, max_length=2000,
                            description="a new URL: pending deliveries go there")
    events: list[str] | None = Field(default=None, min_length=1,
                                     description=f"any of {list(store.EVENTS)}")
    active: bool | None = Field(default=None, description=(
        "false: no new deliveries, pending ones held until it is true again"))


def _checked(url: str | None, events: list[str] | None) -> None:
    """422 naming `url` or `events` when the store would refuse them."""
    try:
        if url is not None:
            store.check_url(url)
        if events is not None:
            store.check_events(events)
    except ValueError as e:
        field = "url" if "url" in str(e) else "events"
        raise Problem(422, None, f"{field}: {e}",
                      errors=[{"field": field, "message": str(e)}]) from None


def subscription_json(s: store.Subscription) -> dict[str, Any]:
    return {"id": s.id, "url": s.url, "events": s.events, "active": s.active,
            "created_by": s.created_by, "created_at": s.created_at.isoformat()}


@router.post("", status_code=201)
async def create_subscription(body: SubscriptionCreate, d: Deps,
                              caller: scope("webhooks:write")) -> dict[str, Any]:  # type: ignore[valid-type]
    """A new subscription. The answer holds its signing `secret`: shown this once only."""
    _checked(body.url, body.events)
    with store_errors():
        sub, secret = await store.create_subscription(
            d.sessions, body.url, body.events, created_by=caller.name, now=d.clock.now(),
            actor=actor(caller))
    return {**subscription_json(sub), "secret": secret}


@router.get("")
async def list_subscriptions(d: Deps,
                             _c: scope("webhooks:read")) -> dict[str, Any]:  # type: ignore[valid-type]
    with store_errors():
        subs = await store.subscriptions(d.sessions)
    return {"webhooks": [subscription_json(s) for s in subs]}


@router.get("/dead-letters")
async def list_dead_letters(d: Deps, _c: scope("webhooks:read"),  # type: ignore[valid-type]
                            limit: int = Query(100, ge=1, le=1000),
                            webhook: int | None = Query(None, description="a subscription id"),
                            ) -> dict[str, Any]:
    """Deliveries that failed for the whole retry horizon, newest first, with their event."""
    with store_errors():
        rows = await store.dead_letters(d.sessions, limit=limit, subscription_id=webhook)
    return {"dead_letters": [{
        "id": r.id, "delivery_id": r.delivery_id, "webhook_id": r.subscription_id,
        "event": r.event, "event_id": r.event_id, "attempts": r.attempts,
        "last_error": r.last_error, "created_at": r.created_at.isoformat(),
        "dead_at": r.dead_at.isoformat() if r.dead_at else None, "data": r.payload,
    } for r in rows]}


@router.post("/dead-letters/{dead_letter_id}/requeue")
async def requeue_dead_letter(dead_letter_id: int, d: Deps,
                              caller: scope("webhooks:write")) -> dict[str, Any]:  # type: ignore[valid-type]
    """Post it again (same `delivery_id`), due now, retried for another retry horizon."""
    with store_errors():
        ok = await store.requeue(d.sessions, dead_letter_id, now=d.clock.now(),
                                 policy=store.RetryPolicy(), actor=actor(caller))
    if not ok:
        raise Problem(404, None, f"no dead letter {dead_letter_id}")
    return {"id": dead_letter_id, "status": store.PENDING}


@router.patch("/{webhook_id}")
async def update_subscription(webhook_id: int, body: SubscriptionPatch, d: Deps,
                              caller: scope("webhooks:write")) -> dict[str, Any]:  # type: ignore[valid-type]
    """Change the URL, the events or `active` (fields left out stay as they are)."""
    _checked(body.url, body.events)
    with store_errors():
        sub = await store.update_subscription(
            d.sessions, webhook_id, now=d.clock.now(), url=body.url, events=body.events,
            active=body.active, actor=actor(caller))
    if sub is None:
        raise Problem(404, None, f"no webhook subscription {webhook_id}")
    return subscription_json(sub)


@router.post("/{webhook_id}/rotate-secret")
async def rotate_secret(webhook_id: int, d: Deps,
                        caller: scope("webhooks:write")) -> dict[str, Any]:  # type: ignore[valid-type]
    """A new signing `secret` (shown this once only): every post from now on, retries of
    earlier deliveries too, is signed with it."""
    with store_errors():
        done = await store.rotate_secret(d.sessions, webhook_id, now=d.clock.now(),
                                         actor=actor(caller))
    if done is None:
        raise Problem(404, None, f"no webhook subscription {webhook_id}")
    sub, secret = done
    return {**subscription_json(sub), "secret": secret}


@router.delete("/{webhook_id}", status_code=204)
async def delete_subscription(webhook_id: int, d: Deps,
                              caller: scope("webhooks:write")) -> Response:  # type: ignore[valid-type]
    with store_errors():
        gone = await store.delete_subscription(d.sessions, webhook_id, actor=actor(caller),
                                               now=d.clock.now())
    if not gone:
        raise Problem(404, None, f"no webhook subscription {webhook_id}")
    return Response(status_code=204)
