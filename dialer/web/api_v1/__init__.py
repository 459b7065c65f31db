"""The CRM API under /api/v1 (docs/api.md): token-authenticated JSON for a CRM to create
campaigns, push leads, read calls and erase people.

    from dialer.web import api_v1
    app.include_router(api_v1.router)
    api_v1.install(app)        # problem+json errors, body limit, /openapi.json, /docs

Modules: problems.py (RFC 9457 errors), auth.py (`require_scope`, tokens, rate limit),
base.py (what the routers share: dependencies, store errors as problems, cursors, JSON
shapes), campaigns.py, leads.py, resources.py (companies, DNC, callbacks, attempts, plan,
report), docs_page.py (the reference page), and webhooks.py (outcome webhooks: its own
router, included here when present).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialer.web.api_v1 import campaigns, docs_page, leads, problems, resources
from dialer.web.api_v1.auth import SCOPES
from dialer.web.api_v1.problems import PREFIX, Problem, problem_response

__all__ = ["PREFIX", "install", "router"]

API_VERSION = "1.0"

router = APIRouter(prefix=PREFIX)
router.include_router(campaigns.router)
router.include_router(leads.router)
router.include_router(resources.router)
# Outcome webhooks live in their own module (another piece of work): included once it exists.
if importlib.util.find_spec("dialer.web.api_v1.webhooks") is not None:
    router.include_router(importlib.import_module("dialer.web.api_v1.webhooks").router)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware of /api/v1: a request body larger than `limit` bytes gets 413
    problem+json before anything parses it (by its Content-Length, or counted as it streams
    when there is none), so nothing is written; and every reply's status is counted
    (`dialer_api_requests_total`)."""

    def __init__(self, app: ASGIApp, limit: int, deps: Any = None) -> None:
        self.app = app
        self.limit = limit
        self.deps = deps  # WebDeps: requests are counted on its metrics, if any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        too_large = Problem(413, None, f"the request body is larger than {self.limit} bytes; "
                                       "send fewer rows per request", code="too_large")
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    if getattr(self.deps, "metrics", None) is not None:
                        self.deps.metrics.api.request(413)
                    await problem_response(too_large)(scope, receive, send)
                    return
        seen = 0
        started = exceeded = False
        reply = problem_response(too_large)

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        metrics = getattr(self.deps, "metrics", None)

        async def watched(message: Message) -> None:
            # the framework may turn _TooLarge into its own error reply: ours goes instead
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    if metrics is not None:
                        metrics.api.request(413)
                    await send({"type": "http.response.start", "status": 413,
                                "headers": reply.raw_headers})
                    await send({"type": "http.response.body", "body": reply.body})
                return
            if message["type"] == "http.response.start":
                started = True
                if metrics is not None:
                    metrics.api.request(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await reply(scope, receive, send)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3 document of /api/v1, generated from the routes (cached on the app)."""
    cached: dict[str, Any] | None = getattr(app.state, "api_openapi", None)
    if cached is not None:
        return cached
    doc = get_openapi(
        title="dialer CRM API", version=API_VERSION, routes=app.routes,
        description=("Token-authenticated JSON API of the predictive dialer for CRMs. "
                     "Send `Authorization: Bearer <token>` (create one with "
                     "`dialer tokens create`). Errors are RFC 9457 problem+json. Scopes: "
                     + ", ".join(f"`{k}` ({v})" for k, v in SCOPES.items()) + "."))
    # the app's other routes (sign-in, agent desktop) are not part of this API
    doc["paths"] = {p: v for p, v in doc.get("paths", {}).items()
                    if p.startswith(PREFIX + "/")}
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})["apiToken"] = {
        "type": "http", "scheme": "bearer",
        "description": "an API token from `dialer tokens create`; scopes: "
                       + ", ".join(SCOPES)}
    components.setdefault("schemas", {})["Problem"] = {
        "type": "object", "description": "RFC 9457 problem details (application/problem+json)",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": {
                "type": "object", "properties": {"field": {"type": "string"},
                                                 "message": {"type": "string"}}}}},
        "required": ["type", "title", "status"]}
    doc["security"] = [{"apiToken": []}]
    problem_ref = {"content": {problems.MEDIA_TYPE: {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                responses = op["responses"]
                responses.pop("422", None)
                for code, what in (("401", "no, unknown, expired or revoked token"),
                                   ("403", "the token lacks the scope"),
                                   ("422", "invalid input: `errors` names the fields"),
                                   ("429", "rate limited: see Retry-After")):
                    responses.setdefault(code, {"description": what, **problem_ref})
    components["schemas"] = _used_schemas(doc["paths"], components.get("schemas", {}))
    app.state.api_openapi = doc
    return doc


def _used_schemas(paths: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The component schemas `paths` refer to, directly or through other schemas."""
    used: set[str] = set()
    todo: list[Any] = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in used and name in schemas:
                    used.add(name)
                    todo.append(schemas[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {k: v for k, v in schemas.items() if k in used}


def install(app: FastAPI) -> None:
    """Problem+json error handlers (under /api/v1 only), the body size limit, and the API's
    own OpenAPI document and reference page. Call once the routers are included."""
    problems.install(app)
    d = app.state.deps
    app.add_middleware(BodyLimit, limit=d.web.api_max_body_bytes, deps=d)

    @app.get(PREFIX + "/openapi.json", include_in_schema=False)
    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document(request.app))

    @app.get(PREFIX + "/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page.render(openapi_document(request.app)),
                            headers={"Cache-Control": "no-cache"})
