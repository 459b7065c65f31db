"""`dialer config check` shows the config's shape but never a secret (issue #12)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dialer.cli import app

SECRETS = ("dbpw-1", "mqttpw-2", "suppw-3", "agentpw-4", "trunkpw-5", "tok-6")

CONFIG = """
[database]
url = "postgresql://dialer:dbpw-1@db.example:5432/dialer"

[mqtt]
url = "mqtt://dialer:mqttpw-2@127.0.0.1:1883"
supervisors = { boss = "suppw-3" }

[sip.trunks.main]
uri = "sip:127.0.0.1:5060"
username = "acct"
password = "trunkpw-5"

[[agents]]
login = "alice"
sip_uri = "sip:alice@127.0.0.1:5070"
password = "agentpw-4"

[[campaigns]]
name = "c"
caller_id = "+14155550100"
script = "tok-6 is not a secret key name, this one shows"
"""


def test_config_check_redacts_every_secret_but_keeps_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "dialer.toml"
    path.write_text(CONFIG, encoding="utf-8")
    res = CliRunner().invoke(app, ["config", "check", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for secret in SECRETS[:-1]:
        assert secret not in res.output, secret
    shown = json.loads(res.stdout)
    assert shown["database"]["url"] == "postgresql://dialer:***@db.example:5432/dialer"
    assert shown["mqtt"]["url"] == "mqtt://dialer:***@127.0.0.1:1883"
    assert shown["mqtt"]["supervisors"] == {"boss": "***"}
    assert shown["sip"]["trunks"]["main"]["password"] == "***"
    assert shown["sip"]["trunks"]["main"]["username"] == "acct"
    assert shown["agents"][0]["password"] == "***" and shown["agents"][0]["login"] == "alice"
    assert shown["campaigns"][0]["script"].startswith("tok-6")  # not a secret: shown


def test_redaction_covers_secret_like_keys_anywhere() -> None:
    from dialer.config import redact_secrets

    data = {"a": {"api_token": "x1", "client_secret": "x2", "sip_password": "x3",
                  "password_hash": "scrypt$x4", "empty_password": "", "name": "n",
                  "items": [{"token": "x5"}], "url": "sqlite:///var/dialer.db"}}
    out = redact_secrets(data)
    assert out == {"a": {"api_token": "***", "client_secret": "***", "sip_password": "***",
                         "password_hash": "***", "empty_password": "", "name": "n",
                         "items": [{"token": "***"}], "url": "sqlite:///var/dialer.db"}}
    assert data["a"]["api_token"] == "x1"  # the input is not changed


def test_config_errors_do_not_echo_a_url_password(tmp_path: Path) -> None:
    from dialer.config import ConfigError, load_settings

    path = tmp_path / "dialer.toml"
    path.write_text('[database]\nurl = "mysql://dialer:dbpw-7@db:3306/dialer"\n')
    try:
        load_settings(path)
    except ConfigError as e:
        assert "database.url" in str(e) and "mysql://dialer:***@db" in str(e)
        assert "dbpw-7" not in str(e)
    else:
        raise AssertionError("a mysql URL must be refused")
