"""RFC 9457 problem details for the CRM API (docs/api.md, "Errors").

Every error under /api/v1 is `application/problem+json`:

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "name: expected at most 200 characters", "code": "invalid",
     "errors": [{"field": "name", "message": "expected at most 200 characters"}]}

`type` is `about:blank` (the status says what kind of problem it is), `code` is a stable
machine-readable word (`unauthorized`, `forbidden`, `not_found`, `conflict`, `invalid`,
`malformed_json`, `too_large`, `rate_limited`, ...), and `errors` names the wrong fields.

Raise `problem(status, title, detail, field=...)` in a route; `install` registers the
handlers, which answer with problem+json under /api/v1 only: every other path keeps the web
server's `{"detail": ...}` errors (docs/web.md).
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

__all__ = ["MEDIA_TYPE", "PREFIX", "FieldError", "Problem", "install", "problem",
           "problem_response", "under_api"]

MEDIA_TYPE = "application/problem+json"
PREFIX = "/api/v1"

FieldError = dict[str, str]  # {"field": "leads[3].phone", "message": "..."}

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large",
          415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
          500: "internal", 503: "unavailable"}


class Problem(Exception):
    """An API error: raised by a route, answered as problem+json by `install`'s handler."""

    def __init__(self, status: int, title: str | None = None, detail: str = "", *,
                 code: str | None = None, errors: Sequence[FieldError] = (),
                 field: str | None = None, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        if field is not None and not errors:
            errors = [{"field": field, "message": detail.removeprefix(f"{field}: ")}]
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "about:blank", "title": self.title,
                               "status": self.status, "detail": self.detail,
                               "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


def problem(status: int, title: str | None = None, detail: str = "",
            field: str | None = None, **kw: Any) -> Problem:
    """A Problem to raise; `field` names the one field that was wrong (if any)."""
    return Problem(status, title, detail, field=field, **kw)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(p: Problem) -> JSONResponse:
    return JSONResponse(p.body(), status_code=p.status, headers=p.headers or None,
                        media_type=MEDIA_TYPE)


def under_api(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def field_path(loc: Sequence[Any]) -> str:
    """A pydantic error location as the field a client sent: ("body", "leads", 3, "phone")
    -> "leads[3].phone"; ("query", "limit") -> "limit"."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_problem(exc: RequestValidationError) -> Problem:
    errors: list[FieldError] = []
    malformed = False
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            malformed = True
            ctx = e.get("ctx") or {}
            errors.append({"field": "body", "message": f"malformed JSON: "
                                                       f"{ctx.get('error', 'cannot parse')}"})
            continue
        errors.append({"field": field_path(e.get("loc", ())),
                       "message": str(e.get("msg", "invalid"))})
    if malformed:
        return Problem(400, "Malformed JSON", errors[0]["message"], code="malformed_json",
                       errors=errors)
    shown = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return Problem(422, None, shown + more, code="invalid", errors=errors[:100])


Handler = Callable[[Request, Any], Awaitable[Response]]


def install(app: FastAPI) -> None:
    """Answer errors under /api/v1 as problem+json; leave the app's other handlers (and so
    every other path's `{"detail": ...}` errors) as they are. Call after the app's own
    handlers are registered."""
    fallback_validation: Handler | None = app.exception_handlers.get(RequestValidationError)
    fallback_http: Handler = app.exception_handlers.get(  # type: ignore[assignment]
        StarletteHTTPException, http_exception_handler)

    async def on_problem(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if under_api(request) or fallback_validation is None:
            return problem_response(validation_problem(exc))
        return await fallback_validation(request, exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not under_api(request):
            return await fallback_http(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no API resource at {request.url.path}; see {PREFIX}/docs"
        p = Problem(exc.status_code, None, detail, headers=exc.headers)
        return problem_response(p)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
