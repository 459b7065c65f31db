"""Fixtures of the browser end-to-end tests: Debian's Chromium driven by Playwright.

`browser` is one headless Chromium per test (launched from /usr/bin/chromium: Playwright's own
browser download is not used). Without Chromium or Playwright the tests skip, except under CI,
where scripts/setup installs both and a missing one is a failure. `artifacts` is where a test
saves its screenshots: $TEST_ARTIFACTS/web (default ./test-artifacts/web), kept after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (scripts/setup installs it)")
    pytest.skip(why)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if shutil.which(CHROMIUM) is None:
        _missing("Debian's chromium is not installed")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def artifacts() -> Path:
    out = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "web"
    out.mkdir(parents=True, exist_ok=True)
    return out
