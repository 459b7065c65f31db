"""The CRM API's tokens (`api_tokens`, docs/api.md): create, list, revoke, and find the live
token of a request.

The database keeps the SHA-256 of a token, never the token: a copy of the database calls no
API. A fast hash is the right one here (unlike passwords, which get argon2): a token is 256
random bits, so there is nothing to guess a dictionary against, and every API request checks
one, which must cost microseconds, not the ~0.1 s of a password hash.

Creating and revoking a token writes an audit row (`token.create`, `token.revoke`) in the
same transaction. The token itself is returned once, by `create_token`, and never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from db import audit
from db.audit import Actor
from db.models import ApiToken
from db.repositories import RepositoryError, Sessions, transaction, translated

__all__ = ["TOKEN_PREFIX", "TokenError", "TokenInfo", "create_token", "hash_token",
           "list_tokens", "revoke_token", "token_for"]

#: every token starts with this, so a leaked one is recognisable (secret scanners, logs)
TOKEN_PREFIX = "dlr_"


class TokenError(Exception):
    """A token command cannot be done (a name taken, no such token); says why."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def _info(r: ApiToken) -> TokenInfo:
    return TokenInfo(id=r.id, name=r.name, prefix=r.prefix, scopes=frozenset(r.scopes or ()),
                     created_at=r.created_at, expires_at=r.expires_at,
                     revoked_at=r.revoked_at, last_used_at=r.last_used_at)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (see the module docstring for why a fast hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


async def create_token(sessions: Sessions, *, name: str, scopes: frozenset[str],
                       expires_at: datetime | None, actor: Actor,
                       now: datetime) -> tuple[str, TokenInfo]:
    """A new token: (the token, to show once; its stored description)."""
    token = new_token()
    try:
        async with transaction(sessions, "create API token") as s:
            if await s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise TokenError(f"a token named {name!r} exists already; revoke it or choose "
                                 "another name")
            row = ApiToken(name=name, token_hash=hash_token(token),
                           prefix=token[:len(TOKEN_PREFIX) + 4], scopes=sorted(scopes),
                           created_at=now, expires_at=expires_at)
            s.add(row)
            await s.flush()
            audit.add_entry(s, actor, "token.create", f"token:{name}",
                            {"scopes": sorted(scopes),
                             "expires_at": expires_at.isoformat() if expires_at else None},
                            now=now)
            info = _info(row)
    except RepositoryError as e:
        if isinstance(e.__cause__, IntegrityError):
            raise TokenError(f"a token named {name!r} exists already") from None
        raise
    return token, info


@translated
async def list_tokens(sessions: Sessions) -> list[TokenInfo]:
    async with sessions() as s:
        return [_info(r) for r in (await s.scalars(select(ApiToken).order_by(ApiToken.id)))]


async def revoke_token(sessions: Sessions, name_or_id: str, *, actor: Actor,
                       now: datetime) -> TokenInfo:
    """Revoke a token by name (or id, digits): it stops working at once."""
    async with transaction(sessions, "revoke API token") as s:
        q = select(ApiToken).where(ApiToken.name == name_or_id)
        if name_or_id.isdigit():
            q = select(ApiToken).where(or_(ApiToken.name == name_or_id,
                                           ApiToken.id == int(name_or_id)))
        rows = list(await s.scalars(q))
        if not rows:
            raise TokenError(f"no token named (or numbered) {name_or_id!r}; see "
                             "`dialer tokens list`")
        row = next((r for r in rows if r.name == name_or_id), rows[0])
        if row.revoked_at is None:
            row.revoked_at = now
            audit.add_entry(s, actor, "token.revoke", f"token:{row.name}", {"id": row.id},
                            now=now)
        return _info(row)


@translated
async def token_for(sessions: Sessions, token: str, *, now: datetime) -> TokenInfo | None:
    """The token's description when `token` is a live token (not revoked, not expired),
    else None. Notes its last use (at most once a minute per token)."""
    digest = hash_token(token)
    async with sessions() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None:
            return None
        info = _info(row)
        if not info.live(now):
            return None
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= 60:
            await s.execute(update(ApiToken).where(ApiToken.id == row.id)
                            .values(last_used_at=now))
            await s.commit()
    return info
