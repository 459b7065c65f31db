"""The agent desktop's pure JavaScript functions (dialer/web/static/js), run in Debian's
Chromium through Playwright: script filling and escaping, durations, reconnect backoff, zone
arithmetic for the next contact, reply shapes, language choice and the WebSocket client's
command envelope, ref_id matching, duplicate dropping and reconnect (with a fake socket).

No server: the static files are served to the page by request interception on a made-up
origin. Skipped when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import mimetypes
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "dialer" / "web" / "static"
HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ORIGIN = "http://desk.test"

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")

PAGE = """<!doctype html><meta charset="utf-8"><title>pure</title>
<script type="module" src="/tests/pure_tests.js"></script>"""


def _file_for(path: str) -> Path | None:
    if path.startswith("/static/"):
        f = (STATIC / path.removeprefix("/static/")).resolve()
        return f if f.is_relative_to(STATIC) and f.is_file() else None
    if path == "/tests/pure_tests.js":
        return HERE / "pure_tests.js"
    return None


async def test_pure_functions_in_chromium() -> None:
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
                f = _file_for(path)
                if f is None:
                    await route.fulfill(status=404, body="not found")
                    return
                ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
                if f.suffix == ".js":
                    ctype = "text/javascript"
                await route.fulfill(status=200, content_type=ctype, body=f.read_bytes())

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
    assert len(results) > 50
    assert not failed, "\n".join(failed)
