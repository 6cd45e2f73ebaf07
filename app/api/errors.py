"""Every error leaves the API as application/problem+json (RFC 9457).

The one place where the layers' errors become HTTP statuses: services raise a kind of
ServiceError, the definitions layer an InvalidDocument of a kind; neither knows HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.conf.errors import InvalidDocument, Problem
from app.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unauthorized,
)

log = logging.getLogger("virtnet.api")
PROBLEM = "application/problem+json"
#: a problem lists at most this many errors, then says how many it left out
MAX_ERRORS = 50

#: each kind of service error as (status, title); a kind not listed is a plain 400
SERVICE_STATUS: dict[type[ServiceError], tuple[int, str]] = {
    ServiceError: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    PreconditionFailed: (412, "Precondition failed"),
    Invalid: (422, "Invalid definition"),
    Forbidden: (403, "Forbidden"),
    Unauthorized: (401, "Unauthorized"),
}
#: each kind of refused document as (status, title)
DOCUMENT_STATUS: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed request"),
    "too_large": (413, "Invalid request"),
    "invalid": (422, "Invalid request"),
}


def service_status(exc: ServiceError) -> tuple[int, str]:
    """The status and title of the nearest kind of ``exc`` that has one."""
    for kind in type(exc).__mro__:
        if kind in SERVICE_STATUS:
            return SERVICE_STATUS[kind]
    raise AssertionError("ServiceError itself has a status")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: Iterable[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    errors = list(errors)
    if errors:
        body["errors"] = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        body["errors_omitted"] = more
        body["detail"] = f"{detail} (and {more} more errors not listed)"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def field_path(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "(document)"


def problems_to_errors(
    problems: Iterable[Problem], locate: Callable[[Sequence[str | int]], Any] | None = None
) -> list[dict[str, Any]]:
    """Each problem with its field's path in the format the client sent: a JSON path, or
    with ``locate`` (an XML body's Findings.locate) the XPath and line of the XML."""
    if locate is None:
        return [{"field": field_path(p.loc), "message": p.msg} for p in problems]
    return [
        {"field": where.path, "line": where.line, "message": p.msg}
        for p in problems
        for where in [locate(p.loc)]
    ]


def pydantic_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p != "body"]
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = "unknown field; check its spelling against the API reference"
        out.append({"field": field_path(loc), "message": message})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        status, title = service_status(exc)
        return problem(
            status,
            title,
            exc.detail,
            errors=problems_to_errors(exc.problems, getattr(request.state, "xml_locate", None)),
            headers=headers,
        )

    @app.exception_handler(InvalidDocument)
    async def _document(_: Request, exc: InvalidDocument) -> JSONResponse:
        status, title = DOCUMENT_STATUS[exc.kind]
        return problem(status, title, exc.detail, errors=exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = pydantic_errors(exc.errors())
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem(400, "Malformed request", "the body is not valid JSON", errors=errors)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(
            exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "virtnet hit an unexpected error; see its log")
