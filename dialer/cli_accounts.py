"""`dialer agents add|passwd|groups` and `dialer users add|passwd|list`: the web server's
accounts (docs/web.md, "Accounts, roles and sessions") and agents' named groups.

Passwords are asked twice with hidden input, or read from the first line of stdin with
`--password-stdin`; only their argon2id hash is stored. Nothing here prints a password or a
hash. Exit codes: 0 done, 2 nothing done (the message names what was wrong).
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from common.clock import utc_now
from common.vocabulary import check_groups
from dialer.cli import ConfigOpt, DbOpt, agents_app
from dialer.cli_data import _fail, _guard_db, _run, _url, out

users_app = typer.Typer(help="Web accounts of supervisors and admins: add, passwd, list.",
                        no_args_is_help=True)

_LOGIN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 8

PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of stdin (no prompt)")]


def _login(login: str) -> str:
    if not _LOGIN.fullmatch(login):
        raise _fail(f"LOGIN {login!r}: expected 1-64 letters, digits, '.', '_' or '-'")
    return login


GroupsOpt = Annotated[str | None, typer.Option(
    "--groups", help="Named groups, comma-separated (e.g. closers,senior): a transfer to a "
    "group goes to its longest-idle ready agent")]


def _groups(raw: str | None, option: str) -> list[str] | None:
    if raw is None:
        return None
    try:
        return check_groups([g.strip() for g in raw.split(",") if g.strip()])
    except ValueError as e:
        raise _fail(f"{option}: {e}") from None


def _password(from_stdin: bool) -> str:
    """The new password: stdin's first line, or asked twice (hidden); refused if short."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    if len(password) < MIN_PASSWORD:
        raise _fail(f"password too short: at least {MIN_PASSWORD} characters")
    return password


def _account_error(call: Any) -> Any:
    from db.web_accounts import AccountError

    try:
        return _guard_db(call)
    except AccountError as e:
        raise _fail(str(e)) from None


@agents_app.command("add")
def agents_add(
    login: Annotated[str, typer.Argument(help="The agent's login (web and MQTT)")],
    sip_uri: Annotated[str, typer.Option("--sip-uri", help="Where the agent's phone is "
                                         "reached, e.g. sip:alice@pbx.example.com")],
    campaign: Annotated[str | None, typer.Option(
        "--campaign", help="The campaign the agent takes calls for (default: the only one)")]
    = None,
    name: Annotated[str, typer.Option("--name", help="Display name")] = "",
    groups: GroupsOpt = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add an agent kept in the database, with its web account; `dialer run` takes it on at
    its next start."""
    from db import web_accounts
    from dialer.passwords import hash_password

    _login(login)
    if not re.fullmatch(r"sips?:\S+", sip_uri):
        raise _fail(f"--sip-uri {sip_uri!r}: expected a SIP URI such as "
                    "sip:alice@pbx.example.com")
    if len(name) > 200:
        raise _fail("--name: at most 200 characters")
    group_names = _groups(groups, "--groups")
    url = _url(config, db)
    password = _password(password_stdin)

    async def work(sessions: Any) -> Any:
        return await web_accounts.add_agent(
            sessions, login=login, sip_uri=sip_uri, password_hash=hash_password(password),
            now=utc_now(), display_name=name, campaign=campaign, groups=group_names)

    account = _account_error(lambda: _run(url, work))
    out.print(f"agent {account.login} added to campaign {account.campaign}; it signs in at "
              "/login (the dialer takes it on at its next start)", highlight=False)


@agents_app.command("passwd")
def agents_passwd(
    login: Annotated[str, typer.Argument(help="The agent's login")],
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Set an agent's web password; its open sessions end."""
    _set_password(login, "agent", password_stdin, config, db)


@agents_app.command("groups")
def agents_groups(
    login: Annotated[str, typer.Argument(help="The agent's login")],
    set_to: Annotated[str | None, typer.Option(
        "--set", help="Replace the agent's groups: comma-separated names, '' for none")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Show an agent's named groups, or replace them with --set (a running dialer takes the
    change on at its next start). A config agent with `groups` in the file gets the file's
    groups back at each start."""
    from db.repositories import agent_groups, set_agent_groups

    _login(login)
    names = _groups(set_to, "--set")
    url = _url(config, db)

    async def work(sessions: Any) -> list[str] | None:
        if names is not None and not await set_agent_groups(sessions, login, names):
            return None
        return await agent_groups(sessions, login)

    got = _guard_db(lambda: _run(url, work))
    if got is None:
        raise _fail(f"no agent {login!r} (add it with `dialer agents add`, or run the "
                    "dialer once with it in the config file)")
    out.print(f"{login}: {', '.join(got) if got else '(no groups)'}", highlight=False)


@users_app.command("add")
def users_add(
    login: Annotated[str, typer.Argument(help="The login")],
    role: Annotated[str, typer.Option("--role", help="supervisor or admin")],
    name: Annotated[str, typer.Option("--name", help="Display name")] = "",
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add a supervisor or admin account (agents: `dialer agents add`)."""
    from db import web_accounts
    from dialer.passwords import hash_password

    _login(login)
    if role not in ("supervisor", "admin"):
        raise _fail(f"--role {role!r}: expected supervisor or admin (agents: `dialer agents "
                    "add`)")
    url = _url(config, db)
    password = _password(password_stdin)

    async def work(sessions: Any) -> Any:
        return await web_accounts.create_user(
            sessions, login=login, role=role, password_hash=hash_password(password),
            now=utc_now(), display_name=name)

    account = _account_error(lambda: _run(url, work))
    out.print(f"{account.role} {account.login} added", highlight=False)


@users_app.command("passwd")
def users_passwd(
    login: Annotated[str, typer.Argument(help="The login")],
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Set a supervisor's or admin's password; their open sessions end."""
    _set_password(login, "user", password_stdin, config, db)


def _set_password(login: str, kind: str, password_stdin: bool, config: Any, db: Any) -> None:
    from db import web_accounts
    from dialer.passwords import hash_password

    url = _url(config, db)
    password = _password(password_stdin)

    async def work(sessions: Any) -> list[int]:
        return await web_accounts.set_password(
            sessions, login=login, password_hash=hash_password(password), now=utc_now(),
            role="agent" if kind == "agent" else "user")

    ended = _account_error(lambda: _run(url, work))
    out.print(f"password of {login} changed; {len(ended)} session(s) ended", highlight=False)


@users_app.command("list")
def users_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """List every web account: login, role, name, campaign, state, live sessions."""
    from db import web_accounts

    async def work(sessions: Any) -> Any:
        return await web_accounts.list_users(sessions, utc_now())

    rows = _guard_db(lambda: _run(_url(config, db), work))
    if not rows:
        out.print("no accounts (add one with `dialer agents add` or `dialer users add`)")
        return
    table = Table("login", "role", "name", "campaign", "active", "sessions",
                  "password changed")
    for account, live in rows:
        table.add_row(account.login, account.role, account.display_name,
                      account.campaign or "", "yes" if account.active else "no", str(live),
                      account.password_changed_at.strftime("%Y-%m-%d %H:%M UTC"))
    out.print(table)
