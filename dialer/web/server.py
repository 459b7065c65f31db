"""The web server: the FastAPI app (`create_app`) and `WebServer`, which runs it with uvicorn
inside the dialer's own event loop (docs/web.md, "Why FastAPI on uvicorn").

    hub = AgentSocketHub(runner, metrics)
    d = WebDeps(sessions=..., web=settings.web, clock=clock, hub=hub,
                limiter=SignInLimiter(clock.monotonic), metrics=metrics, desk=app)
    async with WebServer(d) as web:       # listening when this returns; web.url
        ...
                                          # leaving: sockets told 1012, server stopped

`WebServer` binds its socket itself (a clear error naming host and port when it cannot;
port 0 picks a free one) and hands it to `uvicorn.Server.serve()`, with uvicorn's signal
handling switched off: the dialer keeps its own SIGTERM handling (drain, then stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from dialer.bus.messages import MAX_PAYLOAD_BYTES
from dialer.web import (
    agent_api,
    agent_ws,
    api_v1,
    auth,
    console_admin,
    console_api,
    console_companies,
    console_listen,
)
from dialer.web.auth import COOKIE, session_of
from dialer.web.deps import WebDeps, deps

log = logging.getLogger(__name__)

#: pages load scripts and styles from /static only (no inline script); the WebSocket and
#: the API are same-origin; no other site may frame the pages
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
}
Deps = Annotated[WebDeps, Depends(deps)]
#: how often the sessions gauge is read from the database
GAUGE_INTERVAL_S = 30.0


def create_app(d: WebDeps) -> FastAPI:
    """The ASGI app of the web server (served by `WebServer`, or tested in-process)."""
    app = FastAPI(title="dialer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.deps = d

    @app.middleware("http")
    async def headers(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for k, v in _SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # one readable line naming the field, as docs/web.md promises
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'request'}: "
            f"{e.get('msg', 'invalid')}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    app.include_router(auth.router)
    app.include_router(agent_api.router)
    app.include_router(agent_ws.router)
    app.include_router(console_api.router)
    app.include_router(console_companies.router)
    app.include_router(console_admin.router)
    app.include_router(console_listen.router)
    app.include_router(api_v1.router)
    api_v1.install(app)  # problem+json under /api/v1 only, body limit, openapi.json, docs

    async def _page(request: Request, d: WebDeps, name: str,
                    roles: tuple[str, ...] | None) -> Response:
        if roles is not None:
            session = await session_of(d, request.cookies.get(COOKIE))
            if session is None:
                return RedirectResponse("/login", status_code=303)
            if session.user.role not in roles:
                raise HTTPException(403, f"this page needs the role {' or '.join(roles)}; "
                                         f"you are signed in as {session.user.role}")
        path = d.static_dir / name
        if not path.is_file():
            raise HTTPException(404, f"the page {name} is not installed")
        return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def root(request: Request, d: Deps) -> Response:
        session = await session_of(d, request.cookies.get(COOKIE))
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/agent" if session.user.role == "agent" else "/supervisor",
                                status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request, d: Deps) -> Response:
        return await _page(request, d, "login.html", None)

    @app.get("/agent", include_in_schema=False)
    async def agent_page(request: Request, d: Deps) -> Response:
        return await _page(request, d, "agent.html", ("agent",))

    @app.get("/supervisor", include_in_schema=False)
    async def supervisor_page(request: Request, d: Deps) -> Response:
        return await _page(request, d, "supervisor.html", ("supervisor", "admin"))

    app.mount("/static", StaticFiles(directory=d.static_dir, check_dir=False), name="static")
    return app


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: the dialer's SIGTERM handling stays in charge."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The web server as one more task of the dialer's loop. See the module docstring."""

    def __init__(self, d: WebDeps, *, graceful_s: float = 3.0) -> None:
        self.deps = d
        self.app = create_app(d)
        self._graceful_s = graceful_s
        self._sock: socket.socket | None = None
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = self.deps.web.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        web = self.deps.web
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((web.host, web.port))
            sock.listen(128)
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"web server: cannot listen on {web.host}:{web.port}: "
                                   f"{e.strerror} (set [web] port, or enabled = false)") from e
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, lifespan="off", ws="websockets-sansio",
            # a command is at most 64 KiB (parse_command answers `too_large` up to twice that)
            ws_max_size=2 * MAX_PAYLOAD_BYTES, ws_ping_interval=20.0, ws_ping_timeout=20.0,
            timeout_graceful_shutdown=self._graceful_s, access_log=False, server_header=False)
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises why it could not start
                raise RuntimeError("web server stopped while starting")
            await asyncio.sleep(0.01)
        if self.deps.metrics is not None:
            self.deps.metrics.add_web()
            self._gauges = asyncio.create_task(self._gauge_loop(), name="web-gauges")
        log.info("web server on %s (agent desktop: %s/agent)", self.url, self.url)

    async def _gauge_loop(self) -> None:
        while True:
            await self.deps.refresh_gauges()
            await asyncio.sleep(GAUGE_INTERVAL_S)

    async def stop(self) -> None:
        """Tell the desktops the dialer is going away (1012: they reconnect later), then stop
        serving; open requests get `graceful_s` to finish."""
        if self._gauges is not None:
            self._gauges.cancel()
            await asyncio.gather(self._gauges, return_exceptions=True)
        self.deps.hub.close_all()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._graceful_s + 5.0)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            except Exception:
                log.exception("web server: failed while stopping")
        if self._sock is not None:
            self._sock.close()
        await self.deps.aclose()
        self._task = self._server = self._sock = None

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

