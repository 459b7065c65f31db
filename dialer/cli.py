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
from dialer.demo import MAX_LEADS_PER_COMPANY

app = typer.Typer(
    name="dialer",
    help="Open-source predictive dialer: SIP via pjsua2, compliant pacing, SQL records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Configuration file checks.", no_args_is_help=True)
agents_app = typer.Typer(help="Agents: add agents with web accounts, set their passwords, "
                              "hash passwords for the config's agent entries.",
                         no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(agents_app, name="agents")

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
    from dialer.config import redact_secrets

    settings = settings_from(config)
    # every secret: URL passwords, [mqtt] supervisors, agent and trunk passwords, and any
    # key named like password/secret/token (dialer.config.redact_secrets)
    Console().print_json(data=redact_secrets(settings.model_dump(mode="json")))


@agents_app.command("hash-password")
def agents_hash_password(
    stdin: Annotated[bool, typer.Option(
        "--stdin", help="Read the password from the first line of stdin (no prompt)")] = False,
) -> None:
    """Print a password hash (argon2id) for an agent's `password_hash = "..."` config key.

    Prompts twice (input hidden) unless --stdin; prints only the hash, on stdout.
    """
    from dialer.passwords import hash_password

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    if not password:
        err.print("[red]empty password:[/red] nothing to hash")
        raise typer.Exit(2)
    typer.echo(hash_password(password))


@app.command("run")
def run_cmd(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Run the dialer: campaigns, SIP nodes, MQTT, scheduling jobs and /metrics until SIGTERM."""
    import asyncio

    from dialer.allocator import tune_malloc
    from dialer.app import DialerApp

    tune_malloc()  # before any thread: see dialer/allocator.py
    settings = settings_from(config, db)
    logging.getLogger().setLevel(settings.dialer.log_level)

    async def main() -> None:
        dialer = DialerApp(settings)
        dialer.install_signal_handlers()
        summary = await dialer.run()
        err.print(f"stopped: placed={summary.placed} results={summary.results}")

    try:
        asyncio.run(main())
    except ConfigError as e:
        err.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(2) from None


@app.command("demo")
def demo_cmd(
    minutes: Annotated[float, typer.Option(help="How long the campaign runs", min=0.1)] = 3.0,
    agents: Annotated[int, typer.Option(help="Simulated agents", min=1, max=40)] = 8,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics (0: any free)")] = 9464,
    live: Annotated[bool, typer.Option(help="Live terminal view (--no-live: periodic lines)")]
    = True,
    seed: Annotated[int, typer.Option(help="Seed of the generated leads and agents")] = 7,
    leads_per_company: Annotated[int, typer.Option(
        help="Generated leads per company (a long run needs more)", min=1,
        max=MAX_LEADS_PER_COMPANY)] = 30,
    amd: Annotated[bool, typer.Option(help="Answering-machine detection on (adds its ~1.5 s "
                                           "analysis to answer-to-agent)")] = False,
    web_port: Annotated[int, typer.Option(help="Port of the web desktop, where a seat for "
                                               "you waits (0: any free)")] = 8080,
    db: DbOpt = None,
) -> None:
    """A predictive campaign on loopback: SQLite, embedded MQTT, SIPp callees and phones."""
    import asyncio

    from dialer.allocator import tune_malloc
    from dialer.demo.run import DemoOptions, run_demo

    tune_malloc()  # as `dialer run` does
    opts = DemoOptions(minutes=minutes, agents=agents, metrics_port=metrics_port, live=live,
                       seed=seed, leads_per_company=leads_per_company, database_url=db,
                       amd=amd, web_port=web_port)
    asyncio.run(run_demo(opts))


# Sub-apps owned by other modules: (module, attribute, command name).
_SUBAPPS: list[tuple[str, str, str]] = [
    ("dialer.cli_data", "leads_app", "leads"),
    ("dialer.cli_data", "campaigns_app", "campaigns"),
    ("dialer.cli_data", "dnc_app", "dnc"),
    ("dialer.sim.cli", "app", "simulate"),
    ("dialer.cli_schedule", "plan_app", "plan"),
    ("dialer.cli_schedule", "report_app", "report"),
    ("dialer.cli_accounts", "users_app", "users"),
    ("dialer.cli_companies", "companies_app", "companies"),
    ("dialer.cli_tokens", "tokens_app", "tokens"),
]


def _mount_subapps() -> None:
    for module, attr, name in _SUBAPPS:
        sub = getattr(importlib.import_module(module), attr)
        app.add_typer(sub, name=name)


def _mount_commands() -> None:
    """Commands defined elsewhere on this module's sub-apps (`agents add`, `agents passwd`:
    dialer/cli_accounts.py registers them on `agents_app` when imported)."""
    importlib.import_module("dialer.cli_accounts")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # third-party chatter at INFO drowns the dialer's own lines
    for noisy in ("alembic", "amqtt", "transitions", "apscheduler", "aiomqtt", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _mount_subapps()
    _mount_commands()
    app()


if __name__ == "__main__":
    main()
