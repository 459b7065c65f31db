"""The supervisor console's pure JavaScript functions (dialer/web/static/js/console_util.js),
run in Debian's Chromium through Playwright: which controls a campaign state offers, abandon
rate against the cap, percentages, time in state, hours text, DNC number lists, the companies
form's edit, the agents' order.

No server: the static files are served to the page by request interception on a made-up
origin. Skipped when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "dialer" / "web" / "static"
HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ORIGIN = "http://console.test"

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")

PAGE = """<!doctype html><meta charset="utf-8"><title>console pure</title>
<script type="module" src="/tests/console_pure_tests.js"></script>"""


async def test_console_pure_functions_in_chromium() -> None:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            async def serve(route: playwright_api.Route) -> None:
                path = "/" + route.request.url.removeprefix(ORIGIN).lstrip("/").split("?")[0]
                if path == "/":
                    await route.fulfill(status=200, content_type="text/html", body=PAGE)
                    return
                if path == "/tests/console_pure_tests.js":
                    f: Path | None = HERE / "console_pure_tests.js"
                elif path.startswith("/static/"):
                    f = (STATIC / path.removeprefix("/static/")).resolve()
                    f = f if f.is_relative_to(STATIC) and f.is_file() else None
                else:
                    f = None
                if f is None:
                    await route.fulfill(status=404, body="not found")
                    return
                await route.fulfill(status=200, content_type="text/javascript",
                                    body=f.read_bytes())

            await page.route(f"{ORIGIN}/**", serve)
            await page.goto(f"{ORIGIN}/")
            try:
                await page.wait_for_function("window.__results !== undefined", timeout=10_000)
            except playwright_api.TimeoutError:
                pytest.fail(f"the checks did not finish; page errors: {errors}")
            results = await page.evaluate("window.__results")
        finally:
            await browser.close()
    assert not errors, errors
    failed = [f"{r['name']}: {r['detail']}" for r in results if not r["ok"]]
    assert len(results) >= 20
    assert not failed, "\n".join(failed)
