"""Running the `dialer` CLI's sub-apps in-process (typer's CliRunner) with wide consoles.

The CLI's rich consoles are made when their module is imported and take their width from
`COLUMNS` at that moment, so a runner's `env={"COLUMNS": ...}` comes too late: under a
narrower terminal (or pytest-xdist's workers, whose temporary paths are longer) a summary
line wraps and a test looking for it fails. `run_cli` sets the width for the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from typer.testing import CliRunner

import dialer.cli
import dialer.cli_data
import dialer.cli_schedule

WIDTH = 220


@contextlib.contextmanager
def wide_consoles(width: int = WIDTH) -> Iterator[None]:
    """The CLI modules' consoles at `width` columns, restored afterwards."""
    consoles = {id(c): c for m in (dialer.cli, dialer.cli_data, dialer.cli_schedule)
                for c in vars(m).values() if isinstance(c, Console)}
    saved = {k: c._width for k, c in consoles.items()}  # rich keeps no public "unset" width
    for c in consoles.values():
        c.width = width
    try:
        yield
    finally:
        for k, c in consoles.items():
            c._width = saved[k]


def run_cli(app: typer.Typer, *args: str) -> tuple[int, str]:
    """Exit code and output of `app args...`; an unexpected exception is raised as is."""
    with wide_consoles():
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(WIDTH),
                                                          "NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
