"""Fixtures of the live call-control tests (tests/support/live_runtime.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from sip.sipp import SippProcess


@pytest.fixture(params=["memory", pytest.param("sipp", marks=[pytest.mark.sipp])])
def backend(request: pytest.FixtureRequest) -> str:
    """The SIP backend a live test runs over: the memory pool, or a pjsua2 node with SIPp."""
    return str(request.param)


@pytest.fixture(scope="module")
def phone() -> Iterator[SippProcess]:
    """A SIPp phone (sip/scenarios/phone.xml) shared by a module's calls."""
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed")
    with SippProcess("phone", max_lifetime_s=600, extra_args=("-trace_logs",)) as p:
        yield p
