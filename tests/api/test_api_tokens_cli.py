"""`dialer tokens create|list|revoke` (docs/api.md) against a real database, and the token
it prints working (and then not) on the API."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
import typer
from api_harness import NOW, make_deps
from typer.testing import CliRunner

from common.clock import ManualClock
from db import audit
from db.session import create_engine, session_factory
from dialer.cli_tokens import tokens_app
from dialer.web.server import create_app

pytestmark = pytest.mark.usefixtures("wide_cli")

runner = CliRunner()
app = typer.Typer()
app.add_typer(tokens_app, name="tokens")


def _run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


async def _cli(*args: str) -> tuple[int, str, str]:
    # the command runs its own event loop: off this test's loop
    return await asyncio.to_thread(_run, *args)


async def test_create_list_revoke(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "d.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    code, out, err = await _cli("tokens", "create", "--name", "crm", "--scope",
                          "leads:read,reports:read", "--expires", "30d", "--db", url)
    assert code == 0, err
    token = out.strip()
    assert re.fullmatch(r"dlr_[A-Za-z0-9_-]{43}", token)
    assert "shown only now" in err and token not in err
    code, out, err = await _cli("tokens", "create", "--name", "crm", "--scope", "leads:read",
                          "--db", url)
    assert code == 2 and "exists already" in err
    code, _, err = await _cli("tokens", "create", "--name", "x", "--scope", "leads:rw", "--db", url)
    assert code == 2 and "leads:rw" in err
    code, _, err = await _cli("tokens", "create", "--name", "x", "--scope", "leads:read",
                        "--expires", "yesterday", "--db", url)
    assert code == 2 and "--expires" in err
    code, out, _ = await _cli("tokens", "list", "--db", url)
    assert code == 0 and "crm" in out and token not in out and token[:8] in out

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        from api_harness import ApiDb

        db = ApiDb(sessions=session_factory(engine), campaign_id=0, company_id=0)
        clock = ManualClock(NOW)
        app_ = create_app(make_deps(db, clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_),
                                     base_url="http://t",
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            assert (await c.get("/api/v1/leads/1")).status_code == 404  # scope ok, no lead
            assert (await c.get("/api/v1/campaigns")).status_code == 403
            code, out, err = await _cli("tokens", "revoke", "crm", "--db", url)
            assert code == 0 and "revoked" in out
            assert (await c.get("/api/v1/leads/1")).status_code == 401
        rows = await audit.entries(db.sessions, action_prefix="token.")
        assert [(r.action, r.actor.kind) for r in rows] == [("token.revoke", "cli"),
                                                            ("token.create", "cli")]
        assert token not in str([r.detail for r in rows])
    finally:
        await engine.dispose()
    code, _, err = await _cli("tokens", "revoke", "nope", "--db", url)
    assert code == 2 and "no token" in err
