"""Fixtures of the fault suite: `make_stack(spec)` builds a FaultStack (tests/support/faults.py).

The production stack (PostgreSQL + Mosquitto) takes a database of the session's PostgreSQL
server (`pg_server`), or a server of its own when the scenario restarts it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from support.faults import FaultStack, StackSpec
from support.kamailio import available as kamailio_available


@pytest.fixture
def make_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[StackSpec],
                                                                           FaultStack]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")

    # the session's PostgreSQL starts (and migrates, with its own event loop) here, outside
    # the test's loop: tests of the production stack have "production" in their node id
    shared_pg = request.getfixturevalue("pg_server") if "production" in request.node.name \
        else None

    def make(spec: StackSpec) -> FaultStack:
        pg = None
        if spec.kind == "production" and not spec.own_postgres:
            assert shared_pg is not None, "name a production-stack test '*production*'"
            pg = shared_pg
        return FaultStack(tmp_path, spec, pg)

    return make
