"""`dialer tokens create|list|revoke`: the CRM API's tokens (docs/api.md).

`create` prints the token once, on stdout alone (so `TOKEN=$(dialer tokens create ...)`
works); the database keeps only its SHA-256. Creating and revoking are audited with the
command line's user as the actor. Exit codes: 0 done, 2 nothing done.
"""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from common.clock import utc_now
from dialer.cli import ConfigOpt, DbOpt
from dialer.cli_data import _fail, _guard_db, _run, _url, out

tokens_app = typer.Typer(help="CRM API tokens: create (printed once), list, revoke.",
                         no_args_is_help=True)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DURATION = re.compile(r"^(\d{1,5})([dhm])$")


def _actor() -> Any:
    from db.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor.cli(user)


def _expiry(value: str | None, now: datetime) -> datetime | None:
    """`--expires 90d` / `12h` / `30m`, or a date / ISO time (UTC unless it says)."""
    if value is None:
        return None
    m = _DURATION.fullmatch(value.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now + timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: n})
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(f"--expires {value!r}: expected a duration (90d, 12h, 30m), a date "
                    "(2027-01-31) or an ISO time") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at <= now:
        raise _fail(f"--expires {value!r}: that is in the past")
    return at


def _token_error(call: Any) -> Any:
    from db.api_tokens import TokenError

    try:
        return _guard_db(call)
    except TokenError as e:
        raise _fail(str(e)) from None


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. crm")],
    scope: Annotated[str, typer.Option(
        "--scope", help="Comma-separated scopes, e.g. leads:write,reports:read "
                        "(see docs/api.md for the list)")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Stop working after: 90d, 12h, a date or an ISO time")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from db.api_tokens import create_token
    from dialer.web.api_v1.auth import SCOPES

    if not _NAME.fullmatch(name):
        raise _fail(f"--name {name!r}: expected 1-64 letters, digits, '.', '_' or '-'")
    scopes = frozenset(s.strip() for s in scope.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise _fail(f"--scope: unknown scope(s) {', '.join(unknown) or '(none given)'}; "
                    f"expected some of {', '.join(SCOPES)}")
    now = utc_now()
    until = _expiry(expires, now)

    async def work(sessions: Any) -> Any:
        return await create_token(sessions, name=name, scopes=scopes, expires_at=until,
                                  actor=_actor(), now=now)

    token, info = _token_error(lambda: _run(_url(config, db), work))
    typer.echo(token)
    typer.echo(f"token {info.name} (id {info.id}) created with scopes "
               f"{', '.join(sorted(info.scopes))}"
               + (f", expires {info.expires_at.isoformat()}" if info.expires_at else "")
               + ": it is shown only now; store it in the CRM's secret store", err=True)


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """List tokens (never the tokens themselves: their first characters)."""
    from db.api_tokens import list_tokens

    rows = _guard_db(lambda: _run(_url(config, db), list_tokens))
    now = utc_now()
    table = Table("id", "name", "starts", "scopes", "created", "expires", "last used", "state")
    for t in rows:
        state = ("revoked" if t.revoked_at else "expired" if not t.live(now) else "live")
        table.add_row(str(t.id), t.name, t.prefix + "...", ", ".join(sorted(t.scopes)),
                      f"{t.created_at:%Y-%m-%d %H:%M}",
                      f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "-",
                      f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-", state)
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="The token's name or id")],
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Revoke a token: it stops working at once."""
    from db.api_tokens import revoke_token

    async def work(sessions: Any) -> Any:
        return await revoke_token(sessions, token, actor=_actor(), now=utc_now())

    info = _token_error(lambda: _run(_url(config, db), work))
    out.print(f"token {info.name} (id {info.id}) revoked", highlight=False)
