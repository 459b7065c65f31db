"""Fixtures for the telephony engine tests: real SIPp processes on loopback ports.

The callee network and the agent phones are module-scoped (one SIPp each, reused by many
calls); every test starts its own NodePool so a failing test cannot poison the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sip.config import PoolConfig
from sip.pool import NodePool
from sip.sipp import SippProcess


@pytest.fixture(scope="module")
def callee() -> Iterator[SippProcess]:
    with SippProcess.callee(max_lifetime_s=300) as p:
        yield p


@pytest.fixture(scope="module")
def agent() -> Iterator[SippProcess]:
    with SippProcess.agent(max_lifetime_s=300) as p:
        yield p


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[NodePool]:
    p = NodePool(PoolConfig(nodes=1, node_log_dir=str(tmp_path)))
    await p.start()
    try:
        yield p
    finally:
        await p.close(drain_deadline_s=0)
