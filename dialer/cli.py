"""The `dialer` command line. Each area owns its sub-app; this module mounts them."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dialer.config import ConfigError, Settings, load_settings

app = typer.Typer(
    name="dialer",
    help="Open-source predictive dialer: SIP via pjsua2, compliant pacing, SQL records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Configuration file checks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $DIALER_CONFIG or built-ins)"),
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL; overrides the config")]


def settings_from(config: Path | None, db: str | None = None) -> Settings:
    """Load settings for a command, turning a bad config into a clear exit (code 2)."""
    try:
        settings = load_settings(config)
    except ConfigError as e:
        err.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(2) from None
    if db:
        settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": db})}
        )
    return settings


def ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOpt = None, db: DbOpt = None, revision: str = "head"
) -> None:
    """Create or upgrade the schema to REVISION (default: the newest)."""
    from db.migrate import upgrade

    settings = settings_from(config, db)
    ensure_sqlite_dir(settings.database.url)
    upgrade(settings.database.url, revision)
    err.print(f"database at revision {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Downgrade the schema to REVISION ('base' removes every table)."""
    from db.migrate import downgrade

    downgrade(settings_from(config, db).database.url, revision)
    err.print(f"database at revision {revision}")


@config_app.command("check")
def config_check(config: Annotated[Path, typer.Argument(help="TOML file to validate")]) -> None:
    """Validate a config file and print the effective settings (secrets hidden)."""
    settings = settings_from(config)
    shown = settings.model_dump(mode="json")
    for trunk in shown["sip"]["trunks"].values():
        if trunk.get("password"):
            trunk["password"] = "***"
    for agent in shown["agents"]:
        if agent.get("password"):
            agent["password"] = "***"
    Console().print_json(data=shown)


# Sub-apps owned by other modules: (module, attribute, command name).
_SUBAPPS: list[tuple[str, str, str]] = []


def _mount_subapps() -> None:
    for module, attr, name in _SUBAPPS:
        sub = getattr(importlib.import_module(module), attr)
        app.add_typer(sub, name=name)


def _mount_commands() -> None:
    """Single commands defined elsewhere: (module, function, command name)."""


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _mount_subapps()
    _mount_commands()
    app()


if __name__ == "__main__":
    main()
