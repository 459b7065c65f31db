"""API tokens on requests: `require_scope(scope)`, the dependency every /api/v1 route takes.

    @router.get("/leads/{lead_id}")
    async def read(lead_id: int,
                   caller: Annotated[ApiCaller, Depends(require_scope("leads:read"))]):
        ...

A request carries `Authorization: Bearer <token>`. No header, an unknown, expired or revoked
token: 401 problem+json (with `WWW-Authenticate: Bearer`); a live token without the scope:
403 naming the scope. Each token may make `[web] api_rate_per_s` requests per second on
average and `api_burst` at once (a token bucket per token, in memory: a restart refills the
buckets); beyond that, 429 with `Retry-After`. Tokens are never logged.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from db.api_tokens import token_for
from dialer.web.api_v1.problems import Problem
from dialer.web.deps import WebDeps, deps

__all__ = ["SCOPES", "ApiCaller", "RateLimiter", "require_scope"]

#: every scope a token may hold, and what it allows (docs/api.md has the same table)
SCOPES: dict[str, str] = {
    "campaigns:read": "read campaigns, their settings and statistics",
    "campaigns:write": "create campaigns, change their settings, start, pause and stop them",
    "leads:read": "read leads and their calls",
    "leads:write": "create, bulk upsert, update and erase (GDPR) leads",
    "companies:read": "read companies and their calendars",
    "companies:write": "create and change companies and their calendars",
    "dnc:read": "list do-not-call entries",
    "dnc:write": "add and delete do-not-call entries",
    "callbacks:read": "list callbacks",
    "callbacks:write": "create and cancel callbacks",
    "attempts:read": "read call attempts",
    "reports:read": "read the daily plan and the end-of-day report",
    "webhooks:read": "list webhook subscriptions and deliveries",
    "webhooks:write": "create, change and delete webhook subscriptions",
}


@dataclass(frozen=True, slots=True)
class ApiCaller:
    """Who is calling: the token's id, name (what the audit log names) and scopes."""

    token_id: int
    name: str
    scopes: frozenset[str]


class RateLimiter:
    """A token bucket per API token: `rate` requests per second refill it up to `burst`.
    Bounded memory: the least recently used buckets beyond `max_keys` are dropped (a dropped
    bucket comes back full, which only ever favours a token unused for a while)."""

    def __init__(self, monotonic: Callable[[], float], *, rate: float, burst: int,
                 max_keys: int = 10_000) -> None:
        self._now = monotonic
        self.rate = rate
        self.burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()  # level, at

    def take(self, key: int) -> float | None:
        """Spend one request of `key`'s bucket: None if allowed, else the seconds to wait."""
        now = self._now()
        level, at = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            self._buckets.move_to_end(key)
            return (1.0 - level) / self.rate
        self._buckets[key] = (level - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return None


def limiter_of(request: Request, d: WebDeps) -> RateLimiter:
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "api_limiter", None)
    if limiter is None:
        limiter = RateLimiter(d.clock.monotonic, rate=d.web.api_rate_per_s,
                              burst=d.web.api_burst)
        state.api_limiter = limiter
    return limiter


_CHALLENGE = 'Bearer realm="dialer"'


def _unauthorized(detail: str) -> Problem:
    return Problem(401, None, detail, headers={
        "WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})


async def _caller(request: Request, d: WebDeps) -> ApiCaller:
    header = request.headers.get("authorization")
    if not header:
        raise Problem(401, None, "no API token: send the header "
                      "`Authorization: Bearer <token>` (create one with `dialer tokens create`)",
                      headers={"WWW-Authenticate": _CHALLENGE})
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("the Authorization header must be `Bearer <token>`")
    if len(token) > 200:
        raise _unauthorized("unknown, expired or revoked API token")
    info = await token_for(d.sessions, token, now=d.clock.now())
    if info is None:
        raise _unauthorized("unknown, expired or revoked API token")
    wait = limiter_of(request, d).take(info.id)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise Problem(429, None, f"too many requests for token {info.name!r}: at most "
                      f"{d.web.api_rate_per_s:g} per second on average (burst "
                      f"{d.web.api_burst}); retry in {seconds} s",
                      headers={"Retry-After": str(seconds)})
    caller = ApiCaller(token_id=info.id, name=info.name, scopes=info.scopes)
    request.state.api_caller = caller
    return caller


def require_scope(scope: str) -> Callable[..., Awaitable[ApiCaller]]:
    """Dependency factory: the request's live API token (401), holding `scope` (403), within
    its rate limit (429)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; add it to SCOPES first")

    async def check(request: Request, d: Annotated[WebDeps, Depends(deps)]) -> ApiCaller:
        caller: ApiCaller | None = getattr(request.state, "api_caller", None)
        if caller is None:
            caller = await _caller(request, d)
        if scope not in caller.scopes:
            raise Problem(403, None, f"this token ({caller.name!r}) lacks the scope {scope!r}",
                          code="insufficient_scope", headers={
                              "WWW-Authenticate":
                                  f'{_CHALLENGE}, error="insufficient_scope", scope="{scope}"'},
                          scope=scope)
        return caller

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check
