"""`dialer agents add|passwd`, `dialer users add|passwd|list`, the [web] config section, and
the accounts' queries on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from common.clock import SYSTEM_CLOCK
from db import web_accounts
from db.migrate import upgrade
from db.session import create_engine, session_factory
from dialer.cli import agents_app
from dialer.cli_accounts import users_app
from dialer.cli_data import campaigns_app
from dialer.config import WebSection
from dialer.passwords import verify_password

pytestmark = pytest.mark.usefixtures("wide_cli")

EXAMPLE = Path(__file__).parents[2] / "deploy" / "dialer.example.toml"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(agents_app, name="agents")
    app.add_typer(users_app, name="users")
    app.add_typer(campaigns_app, name="campaigns")
    return app


def test_cli_adds_lists_and_changes_accounts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    db = ["--db", url]
    run = CliRunner().invoke
    app = _cli()
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--password-stdin", *db],
            input="amy-pw-123\n")
    assert r.exit_code == 2 and "no campaign" in r.output
    assert run(app, ["campaigns", "create", "spring", "--caller-id", "+14155550100",
                     *db]).exit_code == 0
    assert run(app, ["campaigns", "create", "autumn", "--caller-id", "+14155550100",
                     *db]).exit_code == 0
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--password-stdin", *db],
            input="amy-pw-123\n")
    assert r.exit_code == 2 and "--campaign" in r.output and "spring" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--campaign", "winter",
                  "--password-stdin", *db], input="amy-pw-123\n")
    assert r.exit_code == 2 and "'winter' does not exist" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "amy@pbx", "--campaign", "spring",
                  "--password-stdin", *db], input="amy-pw-123\n")
    assert r.exit_code == 2 and "--sip-uri" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--campaign", "spring",
                  "--password-stdin", *db], input="short\n")
    assert r.exit_code == 2 and "too short" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--campaign", "spring",
                  "--name", "Amy A.", *db], input="amy-pw-123\namy-pw-123\n")
    assert r.exit_code == 0, r.output
    assert "amy-pw-123" not in r.output and "added to campaign spring" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--password-stdin",
                  "--campaign", "spring", *db], input="amy-pw-123\n")
    assert r.exit_code == 2 and "already has an account" in r.output
    r = run(app, ["users", "add", "sam", "--role", "owner", "--password-stdin", *db],
            input="sam-pw-123\n")
    assert r.exit_code == 2 and "supervisor or admin" in r.output
    r = run(app, ["users", "add", "sam", "--role", "supervisor", "--password-stdin", *db],
            input="sam-pw-123\n")
    assert r.exit_code == 0, r.output
    r = run(app, ["users", "passwd", "amy", "--password-stdin", *db], input="amy-pw-456\n")
    assert r.exit_code == 2 and "agents passwd" in r.output
    r = run(app, ["agents", "passwd", "amy", "--password-stdin", *db], input="amy-pw-456\n")
    assert r.exit_code == 0 and "0 session(s) ended" in r.output
    r = run(app, ["agents", "passwd", "nobody", "--password-stdin", *db], input="xx-pw-456\n")
    assert r.exit_code == 2 and "no agent account with login 'nobody'" in r.output
    r = run(app, ["users", "list", *db])
    assert r.exit_code == 0
    assert "amy" in r.output and "sam" in r.output and "supervisor" in r.output
    assert "argon2" not in r.output and "$" not in r.output


async def test_accounts_and_sessions_on_both_databases(db_url: str) -> None:
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    now = SYSTEM_CLOCK.now()
    try:
        from db.repositories import upsert_campaign
        from dialer.config import CampaignConfig

        await upsert_campaign(sessions, CampaignConfig(name="c1", caller_id="+14155550100"))
        acc = await web_accounts.add_agent(sessions, login="amy", sip_uri="sip:amy@x",
                                           password_hash="$argon2id$dummy", now=now)
        assert acc.campaign == "c1" and acc.agent_id is not None
        [wa] = await web_accounts.web_agents(sessions)
        assert wa.agent.login == "amy" and wa.campaign == "c1"
        idle = timedelta(hours=1)
        sid = await web_accounts.create_session(sessions, user_id=acc.id, token_hash="a" * 64,
                                                now=now, idle=idle, client="test")
        got = await web_accounts.session_for_token(sessions, "a" * 64, now=now, idle=idle)
        assert got is not None and got.id == sid and got.user.login == "amy"
        assert (await web_accounts.sessions_by_role(sessions, now))["agent"] == 1
        assert await web_accounts.session_for_token(sessions, "a" * 64,
                                                    now=now + 2 * idle, idle=idle) is None
        assert await web_accounts.sessions_by_role(sessions, now) == {
            "agent": 0, "supervisor": 0, "admin": 0}
        with pytest.raises(web_accounts.AccountError):
            await web_accounts.create_user(sessions, login="amy", role="admin",
                                           password_hash="x", now=now)
    finally:
        await engine.dispose()


def test_web_section_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    assert "\n[web]\n" in text
    for key in WebSection.model_fields:
        assert f"\n{key} = " in text, f"web.{key} undocumented"


def test_hash_password_command_prints_argon2id() -> None:
    r = CliRunner().invoke(_cli(), ["agents", "hash-password", "--stdin"], input="pw-x-1\n")
    assert r.exit_code == 0 and r.stdout.startswith("$argon2id$")
    assert verify_password("pw-x-1", r.stdout.strip())


def test_cli_sets_agents_named_groups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'groups.db'}"
    upgrade(url)
    db = ["--db", url]
    run = CliRunner().invoke
    app = _cli()
    assert run(app, ["campaigns", "create", "spring", "--caller-id", "+14155550100",
                     *db]).exit_code == 0
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--groups",
                  "Closers!", "--password-stdin", *db], input="amy-pw-123\n")
    assert r.exit_code == 2 and "--groups" in r.output and "'Closers!'" in r.output
    r = run(app, ["agents", "add", "amy", "--sip-uri", "sip:amy@pbx", "--groups",
                  "closers, senior,closers", "--password-stdin", *db], input="amy-pw-123\n")
    assert r.exit_code == 0, r.output
    r = run(app, ["agents", "groups", "amy", *db])
    assert r.exit_code == 0 and "amy: closers, senior" in r.output
    r = run(app, ["agents", "groups", "amy", "--set", "retention", *db])
    assert r.exit_code == 0 and "amy: retention" in r.output
    r = run(app, ["agents", "groups", "amy", "--set", "", *db])
    assert r.exit_code == 0 and "amy: (no groups)" in r.output
    r = run(app, ["agents", "groups", "bob", "--set", "closers", *db])
    assert r.exit_code == 2 and "no agent 'bob'" in r.output
    r = run(app, ["agents", "groups", "amy", "--set", "a b", *db])
    assert r.exit_code == 2 and "--set" in r.output
