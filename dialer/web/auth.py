"""Sign-in, sessions, CSRF and roles of the web server (docs/web.md, "Accounts, roles and
sessions").

* A session is a random 256-bit token in the `dialer_session` cookie (HttpOnly,
  SameSite=Strict, Path=/, Secure by config); the database keeps only its SHA-256
  (`web_sessions.token_hash`), so a copy of the database signs nobody in.
* The CSRF token is derived from the session token (SHA-256 of a fixed label and the
  token): nothing more to store, it changes with every session, and a page on another site
  can learn neither (it cannot read the cookie, nor our JSON replies).
* Sign-in failures are limited per login and per client address (`SignInLimiter`, in
  memory: a restart forgets them, which costs an attacker a restart they cannot cause).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from db import web_accounts as accounts
from db.web_accounts import SessionInfo
from dialer.passwords import hash_password, verify_password
from dialer.web.deps import WebDeps, deps

log = logging.getLogger(__name__)

COOKIE = "dialer_session"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_LABEL = b"dialer csrf v1\x00"
#: the one message for any failed sign-in: never says which of the two was wrong
WRONG = "wrong login or password"
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_for(token: str) -> str:
    return hashlib.sha256(_CSRF_LABEL + token.encode("utf-8")).hexdigest()


def same(a: str | None, b: str) -> bool:
    """Constant-time equality of two strings (a missing value is never equal)."""
    return a is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


@functools.cache
def _dummy_hash() -> str:
    """Checked for unknown logins: the same argon2 work, so no login oracle by timing."""
    return hash_password(secrets.token_hex(16))


class SignInLimiter:
    """At most `max_failures` failed sign-ins per key (a login, a client address) within
    `window_s`; after that, sign-ins for that key are refused until the oldest failure leaves
    the window (`retry_after`). Bounded memory: at most `max_keys` keys are tracked."""

    def __init__(self, monotonic: Callable[[], float], *, max_failures: int = 5,
                 window_s: float = 300.0, max_keys: int = 10_000) -> None:
        self._now = monotonic
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_keys = max_keys
        self._failures: collections.OrderedDict[str, collections.deque[float]] = \
            collections.OrderedDict()

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until a sign-in for all `keys` is allowed again; None: allowed now."""
        now = self._now()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[-self.max_failures] + self.window_s - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, keys: Iterable[str]) -> None:
        now = self._now()
        for key in keys:
            times = self._recent(key, now) or collections.deque()
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


def limiter_keys(login: str, address: str | None) -> list[str]:
    keys = [f"login:{login.casefold()}"]
    if address:
        keys.append(f"addr:{address}")
    return keys


# ---------------------------------------------------------------- dependencies


@dataclass(frozen=True, slots=True)
class Signed:
    """The request's session and the token it came with."""

    session: SessionInfo
    token: str

    @property
    def login(self) -> str:
        return self.session.user.login

    @property
    def role(self) -> str:
        return self.session.user.role

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


async def session_of(d: WebDeps, token: str | None) -> SessionInfo | None:
    """The live session of a cookie's token, or None."""
    if not token or len(token) > 200:
        return None
    return await accounts.session_for_token(
        d.sessions, token_hash(token), now=d.clock.now(),
        idle=timedelta(seconds=d.web.session_idle_s))


async def signed_in(request: Request, d: Annotated[WebDeps, Depends(deps)]) -> Signed:
    """Dependency: a live session (401 otherwise) and, for state-changing methods, the
    CSRF header that goes with it (403 otherwise)."""
    token = request.cookies.get(COOKIE)
    session = await session_of(d, token)
    if session is None or token is None:
        raise HTTPException(401, "not signed in (or the session ended): sign in again")
    signed = Signed(session, token)
    if request.method in _UNSAFE_METHODS and not same(request.headers.get(CSRF_HEADER),
                                                      signed.csrf):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return signed


def role(*roles: str) -> Callable[..., Awaitable[Signed]]:
    """Dependency factory: a signed-in session whose role is one of `roles` (403 if not)."""

    async def check(s: Annotated[Signed, Depends(signed_in)]) -> Signed:
        if s.role not in roles:
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}; "
                                     f"you are signed in as {s.role}")
        if s.role == "agent" and s.session.user.agent_id is None:
            raise HTTPException(403, "this agent account has no agent record")
        return s

    return check


AgentSession = Annotated[Signed, Depends(role("agent"))]
AnySession = Annotated[Signed, Depends(signed_in)]


# ---------------------------------------------------------------- routes

router = APIRouter()


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=8, max_length=1024)


def _client(request: Request) -> str:
    return (request.headers.get("user-agent") or "")[:120]


def set_session_cookie(response: Response, d: WebDeps, token: str) -> None:
    # no Max-Age: the browser forgets it when it closes; the server ends it after
    # [web] session_idle_s without use, whatever the browser does
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=d.web.secure_cookies)


@router.post("/api/session")
async def sign_in(body: SignIn, request: Request, response: Response,
                  d: Annotated[WebDeps, Depends(deps)]) -> dict[str, Any]:
    address = request.client.host if request.client else None
    keys = limiter_keys(body.login, address)
    wait = d.limiter.retry_after(keys)
    if wait is not None:
        d.count_sign_in_failure()
        log.warning("web: sign-in refused: too many failures (rate limited)")
        raise HTTPException(429, f"too many failed sign-ins: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    user = await accounts.user_by_login(d.sessions, body.login)
    stored = user.password_hash if user is not None and user.active else _dummy_hash()
    # argon2 costs ~0.1 s of CPU: off the event loop, where calls are being bridged
    ok = await asyncio.to_thread(verify_password, body.password, stored)
    if not ok or user is None or not user.active or (
            user.role == "agent" and user.agent_id is None):
        d.limiter.failed(keys)
        d.count_sign_in_failure()
        log.warning("web: a sign-in failed (wrong login or password)")
        log.debug("web: failed sign-in for login %r", body.login)
        raise HTTPException(401, WRONG)
    d.limiter.forget(keys[0])
    token = new_token()
    await accounts.create_session(d.sessions, user_id=user.id, token_hash=token_hash(token),
                                  now=d.clock.now(),
                                  idle=timedelta(seconds=d.web.session_idle_s),
                                  client=_client(request))
    set_session_cookie(response, d, token)
    log.info("web: %s %s signed in", user.role, user.login)
    d.sessions_changed()
    return {"login": user.login, "role": user.role, "csrf": csrf_for(token)}


@router.delete("/api/session", status_code=204)
async def sign_out(s: AnySession, response: Response,
                   d: Annotated[WebDeps, Depends(deps)]) -> None:
    sid = await accounts.delete_session(d.sessions, token_hash(s.token))
    if sid is not None:
        await d.hub.close_sessions([sid], reason="signed out")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=d.web.secure_cookies)
    log.info("web: %s signed out", s.login)
    d.sessions_changed()


@router.put("/api/me/password", status_code=204)
async def change_password(body: PasswordChange, s: AnySession,
                          d: Annotated[WebDeps, Depends(deps)]) -> None:
    """The signed-in person's new password; every other session of theirs ends."""
    user = await accounts.user_by_login(d.sessions, s.login)
    if user is None or not await asyncio.to_thread(verify_password, body.current,
                                                   user.password_hash):
        raise HTTPException(403, "the current password is wrong")
    new_hash = await asyncio.to_thread(hash_password, body.new)
    ended = await accounts.set_password(d.sessions, login=s.login, password_hash=new_hash,
                                        now=d.clock.now(), keep_session_id=s.session.id)
    await d.hub.close_sessions(ended, reason="password changed")
    log.info("web: %s changed their password (%d other sessions ended)", s.login, len(ended))
    d.sessions_changed()


@router.get("/api/me")
async def me(s: AnySession, d: Annotated[WebDeps, Depends(deps)]) -> dict[str, Any]:
    user = s.session.user
    campaign = None
    if user.role == "agent":
        c = await d.agent_campaign(user)
        campaign = c.name if c is not None else None
    return {"login": user.login, "role": user.role, "display_name": user.display_name,
            "csrf": s.csrf, "campaign": campaign, "pause_reasons": list(d.web.pause_reasons)}
